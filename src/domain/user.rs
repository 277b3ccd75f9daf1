//! Users: who they are, and the values a signup must satisfy.

use std::fmt;

use serde::Serialize;
use utoipa::ToSchema;

use super::{Invalid, check_length};

/// A user's id, handed out by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
pub struct UserId(pub i64);

/// A username: 3 to 32 characters of `A-Z a-z 0-9 _ . -`. Uniqueness ignores ASCII case (the store enforces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// The allowed characters, as the 422 message and the OpenAPI document state them.
    pub const PATTERN: &'static str = "^[A-Za-z0-9_.-]+$";
    /// Fewest characters.
    pub const MIN: usize = 3;
    /// Most characters.
    pub const MAX: usize = 32;

    /// Accepts `raw` when it meets the rules above; the first rule broken is the one reported.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        check_length(&raw, Self::MIN, Self::MAX)?;
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        if raw.bytes().all(allowed) {
            Ok(Self(raw))
        } else {
            Err(Invalid::Pattern(Self::PATTERN))
        }
    }

    /// The username as the user chose it (case kept).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8 to 128 characters. It is never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Fewest characters.
    pub const MIN: usize = 8;
    /// Most characters.
    pub const MAX: usize = 128;

    /// Accepts `raw` when its length is in range.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        check_length(&raw, Self::MIN, Self::MAX)?;
        Ok(Self(raw))
    }

    /// The secret itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// An Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`): what the store keeps instead of a
/// password. Made by `auth::hash_password` or read back from the store; never sent to a client.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A user as clients see it: `{"id": 1, "username": "alice"}`. The password hash is not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "username": "alice"}))]
pub struct User {
    pub id: UserId,
    pub username: String,
}

/// What a login checks a password against.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub id: UserId,
    pub password_hash: PasswordHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_accepts_the_allowed_alphabet_at_both_length_limits() {
        for ok in ["abc", "Alice_01.x-y", &"a".repeat(32)] {
            let parsed = Username::parse(ok.to_string()).expect(ok);
            assert_eq!(parsed.as_str(), ok);
        }
    }

    #[test]
    fn username_reports_length_before_pattern() {
        assert_eq!(
            Username::parse("ab".into()),
            Err(Invalid::TooShort { min: 3 })
        );
        assert_eq!(
            Username::parse("a!".into()),
            Err(Invalid::TooShort { min: 3 })
        );
        assert_eq!(
            Username::parse("a".repeat(33)),
            Err(Invalid::TooLong { max: 32 })
        );
    }

    #[test]
    fn username_refuses_characters_outside_the_pattern() {
        for bad in [
            "alice bob",
            "al\u{0}ice",
            "ålice",
            "alice;--",
            "a/b/c",
            "' OR 1=1",
        ] {
            assert_eq!(
                Username::parse(bad.to_string()),
                Err(Invalid::Pattern(Username::PATTERN)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn password_counts_characters_not_bytes() {
        assert!(
            Password::parse("ééééééé".into()).is_err(),
            "7 characters, 14 bytes"
        );
        assert!(Password::parse("éééééééé".into()).is_ok());
        assert_eq!(
            Password::parse("x".repeat(129)),
            Err(Invalid::TooLong { max: 128 })
        );
        assert!(Password::parse("x".repeat(128)).is_ok());
    }

    #[test]
    fn password_debug_never_shows_the_secret() {
        let password = Password::parse("hunter22-secret".into()).unwrap();
        assert!(!format!("{password:?}").contains("hunter22"));
    }
}
