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
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{Password, PasswordHash, UserId};
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
