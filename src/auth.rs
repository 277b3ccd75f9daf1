//! Credentials: Argon2id password hashing and HS256 access tokens.
//!
//! A hash or verify costs ~15 ms of CPU and 19 MiB by design, so it never runs on the async workers, nor on
//! tokio's shared blocking threads: [`Passwords`] owns one thread per core for it, at a lower scheduling
//! priority. When nothing else wants the CPU, logins use every core; when requests are waiting, the scheduler
//! runs those first, so a login storm cannot starve the rest of the API. Memory stays bounded at one Argon2
//! block set per thread, however many logins arrive.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::phc::Output;
use argon2::{Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blake2::{Blake2b128, Blake2b256, Digest};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{
    Password, PasswordHash, PresentedRefresh, Principal, RefreshHash, SessionId, UserId,
};
use crate::error::Error;

/// Verified against when a login names no user, so that answering "no such user" takes as long as "wrong
/// password" and response times do not reveal which usernames exist. It is the hash of a random password with
/// the same parameters as every real hash (the test below keeps the two in step).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$vpc81FE4Qys0Rl0ih9UaLA$nPwscuSr86rSc1et2jhY2hfgDoy5swlAdBfr2/9O8K4";

/// The nice value of the hashing threads: under contention the scheduler gives them about a tenth of the
/// share of a normal thread (CFS weights 110 against 1024).
const HASHING_NICE: i32 = 10;

/// Hashes waiting for a thread beyond which new ones are refused with 503 rather than queued for seconds.
const MAX_WAITING_PER_THREAD: usize = 256;

/// The hasher: Argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1), which is the crate's default.
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

/// A job for a hashing thread, given the thread's Argon2 working memory.
type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

/// A hashing thread's Argon2 working memory (19 MiB at our cost). Kept while work is queued, so back-to-back
/// verifications do not each map and fault in a fresh block, and given back when the queue runs dry, so an idle
/// service does not hold it.
#[derive(Default)]
pub struct Workspace(Vec<Block>);

/// The largest working memory a stored hash may ask for (64 MiB); our own ask for 19 MiB.
const MAX_BLOCKS: usize = 64 * 1024;

impl Workspace {
    /// Verifies `password` against the PHC string `phc` in this memory. These are the steps of the argon2
    /// crate's `PasswordVerifier` (parse; recompute with the stored algorithm, version, parameters and salt;
    /// compare the outputs in constant time), with the working memory supplied rather than allocated anew.
    fn verify(&mut self, password: &[u8], phc: &str) -> bool {
        let Ok(hash) = argon2::PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
            return false;
        };
        let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm.as_str()) else {
            return false;
        };
        let Ok(version) = hash.version.map(Version::try_from).transpose() else {
            return false;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return false;
        };
        let hasher = Argon2::new(algorithm, version.unwrap_or_default(), params);
        let blocks = hasher.params().block_count();
        if blocks > MAX_BLOCKS {
            return false;
        }
        if self.0.len() < blocks {
            self.0.resize(blocks, Block::default());
        }
        let mut output = [0u8; 64];
        let Some(output) = output.get_mut(..expected.len()) else {
            return false;
        };
        if hasher
            .hash_password_into_with_memory(password, salt, output, &mut self.0[..blocks])
            .is_err()
        {
            return false;
        }
        Output::new(output).is_ok_and(|computed| computed == *expected)
    }
}

/// Argon2id hashing and verification on dedicated, lower-priority threads.
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

impl Passwords {
    /// A hasher with `threads` threads (at least one).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_priority();
                    let mut workspace = Workspace::default();
                    loop {
                        let next = receiver.lock().map(|r| r.try_recv());
                        let job = match next {
                            Ok(Ok(job)) => job,
                            Ok(Err(mpsc::TryRecvError::Empty)) => {
                                workspace = Workspace::default(); // idle: give the memory back
                                match receiver.lock().map(|r| r.recv()) {
                                    Ok(Ok(job)) => job,
                                    _ => return, // the sender is gone: the service is stopping
                                }
                            }
                            _ => return,
                        };
                        // A panic would take the thread with it; keep the thread, the job's caller sees an error.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut workspace)));
                    }
                });
            if let Err(err) = spawned {
                log::error!("could not start hashing thread {index}: {err}");
            }
        }
        Self {
            jobs: sender,
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: threads * MAX_WAITING_PER_THREAD,
        }
    }

    /// One hashing thread per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    pub async fn hash(&self, password: Password) -> Result<PasswordHash, Error> {
        self.run(move |_| {
            argon2()
                .hash_password(password.expose().as_bytes())
                .map(|hash| PasswordHash::from_phc(hash.to_string()))
                .map_err(|e| Error::Internal(format!("hashing a password failed: {e}")))
        })
        .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no such user (which always
    /// fails). A stored hash that cannot be parsed counts as a mismatch.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<PasswordHash>,
    ) -> Result<bool, Error> {
        self.run(move |workspace| {
            let phc = stored.as_ref().map_or(DUMMY_HASH, PasswordHash::as_str);
            workspace.verify(password.as_bytes(), phc) && stored.is_some()
        })
        .await
    }

    /// Queues `work` for a hashing thread right away (or refuses it when too many wait) and returns its answer.
    fn run<T, F>(&self, work: F) -> impl Future<Output = Result<T, Error>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut Workspace) -> T + Send + 'static,
    {
        let queued = self.enqueue(work);
        async move {
            queued?
                .await
                .map_err(|_| Error::Internal("a hashing job failed".into()))
        }
    }

    fn enqueue<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, Error> {
        let waiting = self.waiting.clone();
        if waiting.fetch_add(1, Ordering::Relaxed) >= self.max_waiting {
            waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::Unavailable(
                "too many password hashes waiting".into(),
            ));
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |workspace| {
            waiting.fetch_sub(1, Ordering::Relaxed);
            let _ = answer.send(work(workspace));
        });
        if self.jobs.send(job).is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::Internal("hashing threads are gone".into()));
        }
        Ok(answered)
    }
}

/// Lowers the calling thread's scheduling priority. On Linux nice values are per thread, and `PRIO_PROCESS`
/// with the thread's id names exactly this thread.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
        let result = unsafe {
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::gettid() as libc::id_t,
                HASHING_NICE,
            )
        };
        if result != 0 {
            log::warn!(
                "could not lower the hashing threads' priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Issues and checks access tokens (HS256 only, `exp` required, no clock leeway) and refresh tokens.
///
/// Tokens are signed with `JWT_SECRET` and verified with it or with `JWT_SECRET_PREVIOUS`, so the secret can be
/// rotated without logging anyone out.
///
/// A refresh token is 53 bytes, base64url: a format byte, the user id, the session id, the session's rotation
/// count (its generation) when it was issued, 16 random bytes, and a 16-byte tag (keyed BLAKE2b over the rest,
/// with a key derived from the secret). The store keeps only a hash of the current one. The clear ids let the
/// store find the session by its key; the tag lets a spent token be recognised as one this service issued, so
/// that its replay ends the session while a forgery naming the session cannot.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: Vec<DecodingKey>,
    tag_keys: Vec<[u8; 32]>,
    validation: Validation,
    ttl: Duration,
    refresh_ttl: Duration,
}

/// The claims of an access token we issue.
#[derive(Debug, Serialize)]
struct Claims {
    /// The user id, as a string (RFC 7519 makes `sub` a string).
    sub: String,
    /// The session id, as a string.
    sid: String,
    iat: i64,
    exp: i64,
}

/// The claims read back from a token. `exp` is checked by `jsonwebtoken`; RFC 7519 allows NumericDate values
/// with fractions, so `iat` is read as a float. A token without `sid` (issued before sessions) is refused.
#[derive(Debug, Deserialize)]
struct ReceivedClaims {
    sub: String,
    sid: String,
    #[serde(default)]
    iat: Option<f64>,
}

const REFRESH_FORMAT: u8 = 1;
const REFRESH_BODY: usize = 1 + 8 + 8 + 4 + 16;
const REFRESH_BYTES: usize = REFRESH_BODY + 16;

impl Tokens {
    /// Tokens signed with `secret`, also accepted when signed with `previous`; access tokens live for `ttl`,
    /// refresh tokens for `refresh_ttl`.
    pub fn new(
        secret: &[u8],
        previous: Option<&[u8]>,
        ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        validation.validate_nbf = true;
        let secrets: Vec<&[u8]> = std::iter::once(secret).chain(previous).collect();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: secrets
                .iter()
                .map(|s| DecodingKey::from_secret(s))
                .collect(),
            tag_keys: secrets.iter().map(|s| tag_key(s)).collect(),
            validation,
            ttl,
            refresh_ttl,
        }
    }

    /// How long a refresh token lives; its session ends with it.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// How long an access token lives, in seconds (the `expires_in` of `POST /token`).
    pub fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }

    /// A signed access token for `principal`.
    pub fn issue(&self, principal: Principal) -> Result<String, Error> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: principal.user.0.to_string(),
            sid: principal.session.0.to_string(),
            iat: now,
            exp: now.saturating_add(ttl),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing a token failed: {e}")))
    }

    /// Whom an access token speaks for, when its signature (by the current or the previous secret), algorithm
    /// and expiry check out and it was not issued in the future. Whether its session is still live is the
    /// store's to say.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let claims = self.decoding.iter().find_map(|key| {
            jsonwebtoken::decode::<ReceivedClaims>(token, key, &self.validation).ok()
        })?;
        let claims = claims.claims;
        if claims
            .iat
            .is_some_and(|iat| iat > Utc::now().timestamp() as f64)
        {
            return None;
        }
        let user = claims.sub.parse().ok().filter(|id| *id >= 1).map(UserId)?;
        let session = claims
            .sid
            .parse()
            .ok()
            .filter(|id| *id >= 1)
            .map(SessionId)?;
        Some(Principal { user, session })
    }

    /// A new refresh token for `session` at rotation `generation`, and the hash the store keeps of it.
    pub fn issue_refresh(&self, session: Principal, generation: i32) -> (String, RefreshHash) {
        let mut bytes = [0u8; REFRESH_BYTES];
        bytes[0] = REFRESH_FORMAT;
        bytes[1..9].copy_from_slice(&session.user.0.to_be_bytes());
        bytes[9..17].copy_from_slice(&session.session.0.to_be_bytes());
        bytes[17..21].copy_from_slice(&generation.to_be_bytes());
        bytes[21..37].copy_from_slice(&rand::random::<[u8; 16]>());
        let tag = tag(&self.tag_keys[0], &bytes[..REFRESH_BODY]);
        bytes[REFRESH_BODY..].copy_from_slice(&tag);
        (URL_SAFE_NO_PAD.encode(bytes), refresh_hash(&bytes))
    }

    /// Reads a presented refresh token; `None` when it cannot be one of ours at all.
    pub fn read_refresh(&self, token: &str) -> Option<PresentedRefresh> {
        if token.len() != (REFRESH_BYTES * 4).div_ceil(3) {
            return None;
        }
        let bytes: [u8; REFRESH_BYTES] = URL_SAFE_NO_PAD.decode(token).ok()?.try_into().ok()?;
        if bytes[0] != REFRESH_FORMAT {
            return None;
        }
        let int = |range: std::ops::Range<usize>| {
            let mut raw = [0u8; 8];
            raw[8 - range.len()..].copy_from_slice(&bytes[range]);
            i64::from_be_bytes(raw)
        };
        let (user, session) = (int(1..9), int(9..17));
        let generation = i32::from_be_bytes(bytes[17..21].try_into().ok()?);
        if user < 1 || session < 1 || generation < 0 {
            return None;
        }
        let sent_tag = &bytes[REFRESH_BODY..];
        let authentic = self.tag_keys.iter().any(|key| {
            subtle::ConstantTimeEq::ct_eq(&tag(key, &bytes[..REFRESH_BODY])[..], sent_tag).into()
        });
        Some(PresentedRefresh {
            session: Principal {
                user: UserId(user),
                session: SessionId(session),
            },
            generation,
            hash: refresh_hash(&bytes),
            authentic,
        })
    }
}

/// The key refresh-token tags are made with, derived from a signing secret.
fn tag_key(secret: &[u8]) -> [u8; 32] {
    Blake2b256::new()
        .chain_update(b"tasky refresh token tag\0")
        .chain_update(secret)
        .finalize()
        .into()
}

fn tag(key: &[u8; 32], body: &[u8]) -> [u8; 16] {
    Blake2b128::new()
        .chain_update(key)
        .chain_update(body)
        .finalize()
        .into()
}

/// What the store keeps of a refresh token.
fn refresh_hash(bytes: &[u8]) -> RefreshHash {
    RefreshHash(Blake2b256::digest(bytes).into())
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
        let passwords = Passwords::new(2);
        let hash = passwords
            .hash(Password::parse("correct horse".into()).unwrap())
            .await
            .unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("wrong horse!".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
        let garbage = PasswordHash::from_phc("not a phc string".into());
        assert!(
            !passwords
                .verify("anything".into(), Some(garbage))
                .await
                .unwrap()
        );
    }

    #[test]
    fn verifying_in_a_workspace_agrees_with_the_crates_verifier() {
        use argon2::PasswordVerifier as _;
        let cheap = Argon2::new(
            argon2::Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 1, 1, Some(24)).unwrap(),
        );
        let hashes = [
            argon2()
                .hash_password(b"correct horse")
                .unwrap()
                .to_string(),
            cheap.hash_password(b"correct horse").unwrap().to_string(),
            DUMMY_HASH.to_owned(),
        ];
        let mut workspace = Workspace::default();
        for phc in &hashes {
            for password in [&b"correct horse"[..], b"correct hors", b"", b"wrong"] {
                let ours = workspace.verify(password, phc);
                let crates = argon2().verify_password(password, phc.as_str()).is_ok();
                assert_eq!(ours, crates, "{phc} / {password:?}");
            }
        }
        assert!(workspace.verify(b"correct horse", &hashes[0]));
        assert!(
            workspace.verify(b"correct horse", &hashes[1]),
            "other parameters are read from the hash"
        );
        let broken = [
            "",
            "not a phc string",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
        ];
        for phc in broken {
            assert!(!workspace.verify(b"anything", phc), "{phc}");
        }
    }

    #[tokio::test]
    async fn hashes_run_on_the_hashing_threads_and_a_full_queue_is_refused() {
        let passwords = Passwords::new(1);
        let thread = passwords
            .run(|_| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(thread.as_deref(), Some("argon2-0"));
        // Park the only thread, fill the queue, and see the next one refused.
        let (release, parked) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let blocker = passwords.run(move |_| {
            started.send(()).unwrap();
            parked.recv().ok()
        });
        running.recv().unwrap();
        let queued: Vec<_> = (0..MAX_WAITING_PER_THREAD)
            .map(|_| passwords.run(|_| ()))
            .collect();
        let refused = passwords.run(|_| ()).await;
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
        release.send(()).unwrap();
        blocker.await.unwrap();
        for job in queued {
            job.await.unwrap();
        }
        assert!(
            passwords.run(|_| ()).await.is_ok(),
            "room again once the queue drained"
        );
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ALICE: Principal = Principal {
        user: UserId(42),
        session: SessionId(7),
    };

    fn tokens(secret: &[u8], previous: Option<&[u8]>) -> Tokens {
        let day = Duration::from_secs(86_400);
        Tokens::new(secret, previous, Duration::from_secs(60), day)
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let tokens = tokens(SECRET, None);
        let token = tokens.issue(ALICE).unwrap();
        assert_eq!(tokens.verify(&token), Some(ALICE));
        let other = self::tokens(b"another secret, just as long....", None);
        assert_eq!(other.verify(&token), None);
        assert_eq!(tokens.verify(&format!("{token}x")), None);
        assert_eq!(tokens.verify(""), None);
    }

    #[test]
    fn the_previous_secret_verifies_but_never_signs() {
        let old = tokens(b"the old secret, thirty-two bytes", None);
        let rotated = tokens(SECRET, Some(b"the old secret, thirty-two bytes"));
        let from_before = old.issue(ALICE).unwrap();
        assert_eq!(rotated.verify(&from_before), Some(ALICE));
        let from_now = rotated.issue(ALICE).unwrap();
        assert_eq!(old.verify(&from_now), None, "signed with the new secret");
        assert_eq!(tokens(SECRET, None).verify(&from_now), Some(ALICE));
        // Refresh tokens: issued before the rotation, still recognised as ours.
        let (refresh, _) = old.issue_refresh(ALICE, 3);
        assert!(rotated.read_refresh(&refresh).unwrap().authentic);
        assert!(
            !tokens(SECRET, None)
                .read_refresh(&refresh)
                .unwrap()
                .authentic
        );
    }

    #[test]
    fn expired_tokens_other_algorithms_and_tokens_without_a_session_are_refused() {
        let tokens = tokens(SECRET, None);
        let now = Utc::now().timestamp();
        let sign = |alg: Algorithm, claims: &serde_json::Value| {
            jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(SECRET))
                .unwrap()
        };
        let claims = |sub: &str, iat: i64, exp: i64| serde_json::json!({"sub": sub, "sid": "7", "iat": iat, "exp": exp});
        assert_eq!(
            tokens.verify(&sign(Algorithm::HS256, &claims("1", now - 120, now - 1))),
            None
        );
        let valid = claims("1", now, now + 60);
        assert_eq!(tokens.verify(&sign(Algorithm::HS384, &valid)), None);
        assert_eq!(
            tokens.verify(&sign(Algorithm::HS256, &valid)),
            Some(Principal {
                user: UserId(1),
                session: SessionId(7)
            })
        );
        assert_eq!(
            tokens.verify(&sign(Algorithm::HS256, &claims("0", now, now + 60))),
            None
        );
        assert_eq!(
            tokens.verify(&sign(
                Algorithm::HS256,
                &claims("1", now + 3600, now + 7200)
            )),
            None
        );
        // Issued before sessions: no `sid`.
        let sessionless = serde_json::json!({"sub": "1", "iat": now, "exp": now + 60});
        assert_eq!(tokens.verify(&sign(Algorithm::HS256, &sessionless)), None);
    }

    #[test]
    fn refresh_tokens_carry_their_session_are_random_and_tagged() {
        let tokens = tokens(SECRET, None);
        let (first, first_hash) = tokens.issue_refresh(ALICE, 5);
        let (second, second_hash) = tokens.issue_refresh(ALICE, 5);
        assert_ne!(first, second, "random");
        assert_ne!(first_hash, second_hash);
        let read = tokens.read_refresh(&first).unwrap();
        assert_eq!(
            (read.session, read.generation, read.hash),
            (ALICE, 5, first_hash)
        );
        assert!(read.authentic);
        // One bit changed anywhere: either unreadable, or not ours, and never the same hash.
        let mut bytes = URL_SAFE_NO_PAD.decode(&first).unwrap();
        for i in [20, 30, 40, 52] {
            bytes[i] ^= 1;
            let forged = URL_SAFE_NO_PAD.encode(&bytes);
            let read = tokens.read_refresh(&forged).unwrap();
            assert!(!read.authentic, "byte {i}");
            assert_ne!(read.hash, first_hash);
            bytes[i] ^= 1;
        }
        for junk in ["", "x", &first[1..], &format!("{first}A"), &"A".repeat(71)] {
            assert!(
                tokens.read_refresh(junk).is_none_or(|r| !r.authentic),
                "{junk:?}"
            );
        }
    }
}
