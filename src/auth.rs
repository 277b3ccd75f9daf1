//! Credentials: Argon2id password hashing and HS256 access tokens.
//!
//! Hashing costs ~15 ms of CPU by design, so it never runs on the async workers: every hash and verify goes to
//! tokio's blocking threads.

use std::time::Duration;

use argon2::password_hash::PasswordHasher as _;
use argon2::{Argon2, PasswordVerifier as _};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{Password, PasswordHash, UserId};
use crate::error::Error;

/// Verified against when a login names no user, so that answering "no such user" takes as long as "wrong
/// password" and response times do not reveal which usernames exist. It is the hash of a random password with
/// the same parameters as every real hash (the test below keeps the two in step).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$vpc81FE4Qys0Rl0ih9UaLA$nPwscuSr86rSc1et2jhY2hfgDoy5swlAdBfr2/9O8K4";

/// The hasher: Argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1), which is the crate's default.
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

/// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`), on a blocking thread.
pub async fn hash_password(password: Password) -> Result<PasswordHash, Error> {
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.expose().as_bytes())
            .map(|hash| PasswordHash::from_phc(hash.to_string()))
            .map_err(|e| Error::Internal(format!("hashing a password failed: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(format!("hashing task failed: {e}")))?
}

/// Checks `password` against `stored` (or against the dummy hash when there is no such user, which always
/// fails), on a blocking thread. A stored hash that cannot be parsed counts as a mismatch.
pub async fn verify_password(
    password: String,
    stored: Option<PasswordHash>,
) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || {
        let matches = argon2()
            .verify_password(
                password.as_bytes(),
                stored.as_ref().map_or(DUMMY_HASH, PasswordHash::as_str),
            )
            .is_ok();
        matches && stored.is_some()
    })
    .await
    .map_err(|e| Error::Internal(format!("verifying task failed: {e}")))
}

/// Issues and checks access tokens: HS256 only, `exp` required, no clock leeway.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

/// The claims of an access token we issue.
#[derive(Debug, Serialize)]
struct Claims {
    /// The user id, as a string (RFC 7519 makes `sub` a string).
    sub: String,
    iat: i64,
    exp: i64,
}

/// The claims read back from a token. `exp` is checked by `jsonwebtoken`; RFC 7519 allows NumericDate values
/// with fractions, so `iat` is read as a float.
#[derive(Debug, Deserialize)]
struct ReceivedClaims {
    sub: String,
    #[serde(default)]
    iat: Option<f64>,
}

impl Tokens {
    /// Tokens signed with `secret` that live for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// How long a token lives, in seconds (the `expires_in` of `POST /token`).
    pub fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }

    /// A signed token for `user`.
    pub fn issue(&self, user: UserId) -> Result<String, Error> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: user.0.to_string(),
            iat: now,
            exp: now.saturating_add(ttl),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing a token failed: {e}")))
    }

    /// The user a token was issued to, when its signature, algorithm and expiry check out and it was not
    /// issued in the future.
    pub fn verify(&self, token: &str) -> Option<UserId> {
        let claims =
            jsonwebtoken::decode::<ReceivedClaims>(token, &self.decoding, &self.validation)
                .ok()?
                .claims;
        if claims
            .iat
            .is_some_and(|iat| iat > Utc::now().timestamp() as f64)
        {
            return None;
        }
        claims.sub.parse().ok().filter(|id| *id >= 1).map(UserId)
    }
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHash as Phc;

    use super::*;

    #[test]
    fn the_dummy_hash_costs_what_a_real_hash_costs() {
        let real = argon2()
            .hash_password(b"some password")
            .unwrap()
            .to_string();
        let real = Phc::new(&real).unwrap();
        let dummy = Phc::new(DUMMY_HASH).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert!(DUMMY_HASH.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hash = hash_password(Password::parse("correct horse".into()).unwrap())
            .await
            .unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse!".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password("anything".into(), None).await.unwrap());
        assert!(
            !verify_password(
                "anything".into(),
                Some(PasswordHash::from_phc("not a phc string".into()))
            )
            .await
            .unwrap()
        );
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let tokens = Tokens::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let token = tokens.issue(UserId(42)).unwrap();
        assert_eq!(tokens.verify(&token), Some(UserId(42)));
        let other = Tokens::new(b"another secret, just as long....", Duration::from_secs(60));
        assert_eq!(other.verify(&token), None);
        assert_eq!(tokens.verify(&format!("{token}x")), None);
        assert_eq!(tokens.verify(""), None);
    }

    #[test]
    fn expired_tokens_and_other_algorithms_are_refused() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let tokens = Tokens::new(secret, Duration::from_secs(60));
        let now = Utc::now().timestamp();
        let sign = |alg: Algorithm, claims: &Claims| {
            jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
                .unwrap()
        };
        let expired = Claims {
            sub: "1".into(),
            iat: now - 120,
            exp: now - 1,
        };
        assert_eq!(tokens.verify(&sign(Algorithm::HS256, &expired)), None);
        let valid = Claims {
            sub: "1".into(),
            iat: now,
            exp: now + 60,
        };
        assert_eq!(tokens.verify(&sign(Algorithm::HS384, &valid)), None);
        assert_eq!(
            tokens.verify(&sign(Algorithm::HS256, &valid)),
            Some(UserId(1))
        );
        let bad_sub = Claims {
            sub: "0".into(),
            iat: now,
            exp: now + 60,
        };
        assert_eq!(tokens.verify(&sign(Algorithm::HS256, &bad_sub)), None);
        let from_the_future = Claims {
            sub: "1".into(),
            iat: now + 3600,
            exp: now + 7200,
        };
        assert_eq!(
            tokens.verify(&sign(Algorithm::HS256, &from_the_future)),
            None
        );
    }
}
