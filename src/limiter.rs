//! The login rate limit (API.md's `LOGIN_RATE_LIMIT`): failed `POST /token` attempts per minute for one username
//! from one client address, and ten times that per address over all usernames.
//!
//! Each key has a leaky bucket that drains `limit` attempts per minute, so a burst of `limit` is allowed and then
//! one more each `60 / limit` seconds. An attempt is counted when it starts, before the password is checked: a
//! refused attempt costs no Argon2 work, and concurrent guesses cannot slip past the count together. A login that
//! succeeds gives its count back.
//!
//! Keys are keyed hashes (BLAKE2b) of the client's address, or of its address and the lowercased username: fixed
//! in size whatever was sent, and meaningless without the key. Where the buckets live follows the store:
//! - a store that several processes share (PostgreSQL) keeps them, so every process counts against the same
//!   buckets, in one round trip per attempt; the hashing key is derived from `JWT_SECRET`, which every process
//!   has (see `sql/postgres/V4__login_attempts.sql` for why that table stays bounded);
//! - otherwise they live in this process's memory, at most [`MAX_KEYS`] of them; when the table is full, drained
//!   buckets go first, then the least filled, so a flood of fresh names or addresses evicts other fresh entries,
//!   not the ones being brute-forced.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use blake2::{Blake2b128, Blake2b256, Digest};

use crate::store::{self, LoginKey, Store, StoreError};

/// Most buckets kept at once in memory (about 4 MiB).
pub const MAX_KEYS: usize = 50_000;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Attempts counted, as of `at`.
    level: f64,
    at: Instant,
}

/// The limiter; shared by all requests.
pub struct LoginLimiter {
    per_pair: f64,
    per_address: f64,
    /// The key of the keyed hash that makes bucket keys.
    key: [u8; 32],
    buckets: Buckets,
}

/// Where the buckets are kept.
enum Buckets {
    Memory(Mutex<HashMap<LoginKey, Bucket>>),
    Store(Store),
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("per_pair", &self.per_pair)
            .field("shared", &matches!(self.buckets, Buckets::Store(_)))
            .finish_non_exhaustive()
    }
}

/// An attempt that has been counted. [`Attempt::succeeded`] gives the count back.
#[derive(Debug)]
#[must_use = "a successful login must give its count back"]
pub struct Attempt {
    keys: Option<[LoginKey; 2]>,
}

/// Refused: the client must wait this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl LoginLimiter {
    /// A limiter allowing `limit` failed attempts per minute per (username, address), 0 turning it off. Its
    /// buckets live in `store` when other processes share it, hashed with a key derived from `secret` (the same
    /// in every process); in memory otherwise.
    pub fn new(limit: u32, store: &Store, secret: &[u8]) -> Self {
        if store.is_shared() {
            let key = Blake2b256::new()
                .chain_update(b"tasky login rate limit\0")
                .chain_update(secret)
                .finalize();
            Self::with(limit, key.into(), Buckets::Store(store.clone()))
        } else {
            Self::in_memory(limit)
        }
    }

    /// A limiter keeping its buckets in this process's memory.
    pub fn in_memory(limit: u32) -> Self {
        let buckets = Buckets::Memory(Mutex::new(HashMap::new()));
        Self::with(limit, rand::random(), buckets)
    }

    fn with(limit: u32, key: [u8; 32], buckets: Buckets) -> Self {
        Self {
            per_pair: f64::from(limit),
            per_address: f64::from(limit) * 10.0,
            key,
            buckets,
        }
    }

    /// Counts a login attempt for `username` from `address`, or refuses it when either bucket is full.
    pub async fn begin(
        &self,
        username: &str,
        address: IpAddr,
    ) -> Result<Result<Attempt, RetryAfter>, StoreError> {
        if self.per_pair == 0.0 {
            return Ok(Ok(Attempt { keys: None }));
        }
        let keys = self.keys(username, address);
        match &self.buckets {
            Buckets::Memory(buckets) => Ok(self.count_at(buckets, keys, Instant::now())),
            Buckets::Store(store) => {
                let buckets = [(keys[0], self.per_pair), (keys[1], self.per_address)];
                Ok(match store::logins::count(store, &buckets).await? {
                    Some(seconds) => Err(retry_after(seconds)),
                    None => Ok(Attempt { keys: Some(keys) }),
                })
            }
        }
    }

    /// The keys of the two buckets an attempt counts against: this username from this address, and this
    /// address.
    fn keys(&self, username: &str, address: IpAddr) -> [LoginKey; 2] {
        let address = match network(address) {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let hash = |kind: &[u8], name: &[u8]| {
            let digest = Blake2b128::new()
                .chain_update(self.key)
                .chain_update(kind)
                .chain_update(address)
                .chain_update(name)
                .finalize();
            LoginKey(digest.into())
        };
        [
            hash(b"pair", username.to_lowercase().as_bytes()),
            hash(b"address", b""),
        ]
    }

    /// Counts an attempt against buckets in memory, as of `now`.
    fn count_at(
        &self,
        buckets: &Mutex<HashMap<LoginKey, Bucket>>,
        keys: [LoginKey; 2],
        now: Instant,
    ) -> Result<Attempt, RetryAfter> {
        let limits = [(keys[0], self.per_pair), (keys[1], self.per_address)];
        let mut buckets = buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let wait = limits
            .iter()
            .map(|&(key, limit)| {
                let level = buckets.get(&key).map_or(0.0, |b| drained(*b, limit, now));
                // Room for one more when the level is at most limit - 1.
                let excess = level - (limit - 1.0);
                (excess > 0.0).then(|| excess * WINDOW.as_secs_f64() / limit)
            })
            .fold(None, |a: Option<f64>, b| match (a, b) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            });
        if let Some(seconds) = wait {
            return Err(retry_after(seconds));
        }
        make_room(&mut buckets, now);
        for (key, limit) in limits {
            let level = buckets.get(&key).map_or(0.0, |b| drained(*b, limit, now));
            buckets.insert(
                key,
                Bucket {
                    level: level + 1.0,
                    at: now,
                },
            );
        }
        Ok(Attempt { keys: Some(keys) })
    }

    /// How many buckets this process holds in memory.
    pub fn len(&self) -> usize {
        match &self.buckets {
            Buckets::Memory(buckets) => buckets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .len(),
            Buckets::Store(_) => 0,
        }
    }

    /// Whether no bucket is held in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Attempt {
    /// The password was right: this attempt does not count, and the username's bucket at this address empties.
    /// A store that cannot be reached just now keeps the count: the login itself has succeeded.
    pub async fn succeeded(self, limiter: &LoginLimiter) {
        let Some([pair, address]) = self.keys else {
            return;
        };
        match &limiter.buckets {
            Buckets::Memory(buckets) => {
                let mut buckets = buckets
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                buckets.remove(&pair);
                if let Some(bucket) = buckets.get_mut(&address) {
                    bucket.level = (bucket.level - 1.0).max(0.0);
                }
            }
            Buckets::Store(store) => {
                if let Err(err) = store::logins::forgive(store, pair, address).await {
                    log::warn!("a successful login's attempt stays counted: {err}");
                }
            }
        }
    }
}

/// Whole seconds to wait, at least one.
fn retry_after(seconds: f64) -> RetryAfter {
    RetryAfter(seconds.ceil().max(1.0) as u64)
}

/// The level of `bucket` at `now`, after draining `limit` per [`WINDOW`].
fn drained(bucket: Bucket, limit: f64, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.level - elapsed * limit / WINDOW.as_secs_f64()).max(0.0)
}

/// Keeps the table under [`MAX_KEYS`] before two more keys go in.
fn make_room(buckets: &mut HashMap<LoginKey, Bucket>, now: Instant) {
    if buckets.len() + 2 <= MAX_KEYS {
        return;
    }
    // A bucket never holds more than its limit and drains its limit per window, so one idle for a whole window
    // is empty.
    buckets.retain(|_, bucket| now.saturating_duration_since(bucket.at) < WINDOW);
    if buckets.len() + 2 <= MAX_KEYS {
        return;
    }
    // Still full of live buckets: drop the emptiest tenth.
    let mut levels: Vec<f64> = buckets.values().map(|b| b.level).collect();
    let cut = levels.len() / 10;
    let threshold = *levels.select_nth_unstable_by(cut, f64::total_cmp).1;
    let mut to_drop = cut + 1;
    buckets.retain(|_, bucket| {
        let drop = to_drop > 0 && bucket.level <= threshold;
        to_drop -= usize::from(drop);
        !drop
    });
}

/// The address a bucket is kept for: IPv6 clients by their /64, which one subscriber usually holds whole.
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
        IpAddr::V6(v6) => IpAddr::V4(
            v6.to_ipv4_mapped()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        ),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use futures_util::FutureExt;

    use super::*;

    impl LoginLimiter {
        /// [`LoginLimiter::begin`] at `now`, on a limiter in memory.
        fn begin_at(
            &self,
            username: &str,
            address: IpAddr,
            now: Instant,
        ) -> Result<Attempt, RetryAfter> {
            if self.per_pair == 0.0 {
                return Ok(Attempt { keys: None });
            }
            let Buckets::Memory(buckets) = &self.buckets else {
                unreachable!("tested in memory")
            };
            self.count_at(buckets, self.keys(username, address), now)
        }
    }

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const AWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn the_limit_allows_a_burst_then_one_attempt_per_share_of_the_minute() {
        let limiter = LoginLimiter::in_memory(10);
        let start = Instant::now();
        for _ in 0..10 {
            let _ = limiter
                .begin_at("alice", HOME, start)
                .expect("within the limit");
        }
        assert_eq!(
            limiter.begin_at("alice", HOME, start).unwrap_err(),
            RetryAfter(6)
        );
        assert!(
            limiter.begin_at("ALICE", HOME, start).is_err(),
            "usernames are compared ignoring case"
        );
        assert!(
            limiter
                .begin_at("alice", HOME, start + Duration::from_secs(5))
                .is_err()
        );
        let _ = limiter
            .begin_at("alice", HOME, start + Duration::from_secs(6))
            .expect("drained by one");
        assert!(
            limiter
                .begin_at("alice", HOME, start + Duration::from_secs(6))
                .is_err()
        );
    }

    #[test]
    fn other_users_and_other_addresses_have_their_own_buckets() {
        let limiter = LoginLimiter::in_memory(3);
        let now = Instant::now();
        for _ in 0..3 {
            let _ = limiter.begin_at("alice", HOME, now).unwrap();
        }
        assert!(limiter.begin_at("alice", HOME, now).is_err());
        assert!(limiter.begin_at("bob", HOME, now).is_ok());
        assert!(limiter.begin_at("alice", AWAY, now).is_ok());
    }

    #[test]
    fn one_address_gets_ten_times_the_limit_over_all_usernames() {
        let limiter = LoginLimiter::in_memory(2);
        let now = Instant::now();
        for i in 0..20 {
            let _ = limiter
                .begin_at(&format!("user{i}"), HOME, now)
                .expect("under 10 x 2");
        }
        assert_eq!(
            limiter.begin_at("someone-new", HOME, now).unwrap_err(),
            RetryAfter(3)
        );
        assert!(limiter.begin_at("someone-new", AWAY, now).is_ok());
    }

    #[test]
    fn a_success_gives_its_count_back() {
        let limiter = LoginLimiter::in_memory(2);
        let now = Instant::now();
        let _ = limiter.begin_at("alice", HOME, now).unwrap();
        limiter
            .begin_at("alice", HOME, now)
            .unwrap()
            .succeeded(&limiter)
            .now_or_never()
            .expect("in memory, at once");
        let _ = limiter
            .begin_at("alice", HOME, now)
            .expect("the failure before the success was forgiven");
        let _ = limiter.begin_at("alice", HOME, now).unwrap();
        assert!(limiter.begin_at("alice", HOME, now).is_err());
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = LoginLimiter::in_memory(0);
        for _ in 0..1000 {
            let _ = limiter.begin_at("alice", HOME, Instant::now()).unwrap();
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn a_flood_of_names_and_addresses_cannot_grow_the_table_past_its_bound() {
        let limiter = LoginLimiter::in_memory(10);
        let now = Instant::now();
        // A brute-forced pair, then a flood of fresh names from fresh addresses.
        for _ in 0..10 {
            let _ = limiter.begin_at("victim", HOME, now).unwrap();
        }
        for i in 0..(3 * MAX_KEYS as u32) {
            let address = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i));
            let _ = limiter.begin_at(
                &format!("name-{i}-{}", "x".repeat(i as usize % 300)),
                address,
                now,
            );
            assert!(limiter.len() <= MAX_KEYS);
        }
        assert!(
            limiter.begin_at("victim", HOME, now).is_err(),
            "the full bucket survived the flood"
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(network("::ffff:192.0.2.1".parse().unwrap()), HOME);
    }
}
