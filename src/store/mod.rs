//! Storage: the one interface the routes call, over domain types only, and the two backends that keep it.
//!
//! # The contract both backends keep
//!
//! - **Sessions.** Every function taking a [`Principal`](crate::domain::Principal) (a user in one of their
//!   sessions) answers [`StoreError::NoSuchUser`] when that session is no longer live (ended, expired, or its
//!   user gone), checked in the same statement as the function's own work: a token of an ended session is
//!   refused on the very next request, on every process, at no extra round trip.
//! - **Isolation.** Every task statement is keyed by its owner: another user's task looks exactly like one that
//!   does not exist (`None`, `false`), and nothing joins across users, so tasks can later be spread over
//!   machines by user.
//! - **Atomicity.** Each write is one statement: a failed call changes nothing; concurrent updates of one task
//!   each land whole; of concurrent deletes of one task exactly one returns `true`; of concurrent signups of one
//!   name (compared ignoring case) exactly one succeeds and the others get [`StoreError::Conflict`].
//! - **Durability.** A call that returned `Ok` survives the process being killed.
//! - **Faults.** A database that cannot be reached, or a call that waited too long for a connection, is
//!   [`StoreError::Unavailable`] (a 503), never a hang; the store recovers by itself when the database is back.
//! - **Totals.** A page's total is the number of the owner's tasks matching before paging, consistent with the
//!   page itself.
//!
//! # Why an enum
//!
//! The backends are a closed set, so [`Store`] is an enum over them rather than a trait object: calls are
//! plain `async fn`s with no boxed future on the hot path, and a function a backend lacks is a compile error
//! at the `match`, not a runtime surprise. Each backend is private in its own module (its pools, SQL, driver
//! types and error mapping); nothing outside `store/` sees a driver.

mod postgres;
mod sqlite;

use std::fmt;

use crate::config::DatabaseConfig;

/// What can go wrong in the store, sorted by what the client should be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (the only one clients can reach: usernames).
    #[error("unique constraint violated")]
    Conflict,
    /// The user a call is made for no longer exists (its token outlived it).
    #[error("no such user")]
    NoSuchUser,
    /// The database cannot be used right now: unreachable, read-only, removed, or too busy to give a connection
    /// in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, not the client's doing.
    #[error("database error: {0}")]
    Internal(String),
}

/// The store: a handle on one of the backends; cheap to clone.
#[derive(Clone)]
pub enum Store {
    /// An SQLite file, embedded.
    Sqlite(sqlite::Sqlite),
    /// A PostgreSQL database, shared by any number of processes.
    Postgres(postgres::Postgres),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "Store::Sqlite",
            Self::Postgres(_) => "Store::Postgres",
        })
    }
}

/// Calls `$call` on whichever backend `$store` is, with that backend's handle as `$db` and, in the second form,
/// its module as `$backend`.
macro_rules! dispatch {
    ($store:expr, |$db:ident| $call:expr) => {
        match $store {
            $crate::store::Store::Sqlite($db) => $call,
            $crate::store::Store::Postgres($db) => $call,
        }
    };
    ($store:expr, |$backend:ident, $db:ident| $call:expr) => {
        match $store {
            $crate::store::Store::Sqlite($db) => {
                use $crate::store::sqlite as $backend;
                $call
            }
            $crate::store::Store::Postgres($db) => {
                use $crate::store::postgres as $backend;
                $call
            }
        }
    };
}

impl Store {
    /// Connects to the configured database and brings its schema up to date.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, StoreError> {
        match config {
            DatabaseConfig::Sqlite(path) => Ok(Self::Sqlite(sqlite::Sqlite::open(path).await?)),
            DatabaseConfig::Postgres(url) => {
                Ok(Self::Postgres(postgres::Postgres::connect(url).await?))
            }
        }
    }

    /// Answers when the database can be read and written.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, |db| db.ping().await)
    }

    /// Leaves the database tidy once the server has stopped (SQLite folds its log into the file).
    pub async fn close(&self) -> Result<(), StoreError> {
        dispatch!(self, |db| db.close().await)
    }

    /// Whether other processes may serve this store at once (PostgreSQL), so that what must hold across all of
    /// them, such as the login rate limit, has to live in the database rather than in this process.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Threads the store runs blocking work on (SQLite's lanes); the runtime is sized by it.
    pub fn blocking_threads(config: &DatabaseConfig) -> usize {
        match config {
            DatabaseConfig::Sqlite(_) => sqlite::blocking_threads(),
            // tokio-postgres resolves host names on them when the pool opens connections.
            DatabaseConfig::Postgres(_) => 4,
        }
    }
}

/// Users in the store.
pub mod users {
    use super::{Store, StoreError};
    use crate::domain::{Credentials, PasswordHash, Principal, User, Username};

    /// Creates a user; a username already taken, ignoring case, is [`StoreError::Conflict`].
    pub async fn insert(
        store: &Store,
        username: Username,
        password_hash: PasswordHash,
    ) -> Result<User, StoreError> {
        dispatch!(store, |backend, db| backend::users::insert(
            db,
            username,
            password_hash
        )
        .await)
    }

    /// The id and password hash of the user called `username` (ignoring case), if there is one.
    pub async fn find_credentials(
        store: &Store,
        username: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        dispatch!(store, |backend, db| backend::users::find_credentials(
            db, username
        )
        .await)
    }

    /// The user `principal` speaks for, in a live session.
    pub async fn get(store: &Store, principal: Principal) -> Result<User, StoreError> {
        dispatch!(store, |backend, db| backend::users::get(db, principal)
            .await)
    }

    /// [`StoreError::NoSuchUser`] unless `principal`'s session is live: for a request refused on its input,
    /// whose credentials come first.
    pub async fn require(store: &Store, principal: Principal) -> Result<(), StoreError> {
        dispatch!(store, |backend, db| backend::users::require(db, principal)
            .await)
    }

    /// The username and password hash of the user `principal` speaks for, in a live session.
    pub async fn credentials(
        store: &Store,
        principal: Principal,
    ) -> Result<(String, PasswordHash), StoreError> {
        dispatch!(store, |backend, db| backend::users::credentials(
            db, principal
        )
        .await)
    }

    /// Sets the password of `principal`'s user and ends every other session of theirs, at once.
    pub async fn set_password(
        store: &Store,
        principal: Principal,
        password_hash: PasswordHash,
    ) -> Result<(), StoreError> {
        dispatch!(store, |backend, db| backend::users::set_password(
            db,
            principal,
            password_hash
        )
        .await)
    }

    /// Removes `principal`'s user, with every task and session of theirs; the username is free again.
    pub async fn delete(store: &Store, principal: Principal) -> Result<(), StoreError> {
        dispatch!(store, |backend, db| backend::users::delete(db, principal)
            .await)
    }
}

/// Sessions: started by a password login, kept going by refreshes, ended by logout, a password change,
/// account deletion, a replayed refresh token, or expiry.
pub mod sessions {
    use std::time::Duration;

    use super::{Store, StoreError};
    use crate::domain::{PasswordHash, PresentedRefresh, Principal, RefreshHash, Rotation};

    /// Starts `session` with the refresh token `refresh`, which expires after `ttl`, if `verified` (the hash
    /// the login's password was just checked against) is still the user's: [`StoreError::NoSuchUser`] when the
    /// password has changed or the user is gone meanwhile, so that no login outlives a password change that
    /// ended every other session. Prunes a few expired sessions on the way (ended ones are deleted when they
    /// end), so storage holds live sessions only.
    pub async fn start(
        store: &Store,
        session: Principal,
        verified: &PasswordHash,
        refresh: RefreshHash,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        dispatch!(store, |backend, db| backend::sessions::start(
            db, session, verified, refresh, ttl
        )
        .await)
    }

    /// Spends `presented` for `next` (expiring after `ttl`), if it is its live session's current refresh token.
    /// An authentic token that its session already spent is a replay: the session ends.
    pub async fn refresh(
        store: &Store,
        presented: PresentedRefresh,
        next: RefreshHash,
        ttl: Duration,
    ) -> Result<Rotation, StoreError> {
        dispatch!(store, |backend, db| backend::sessions::refresh(
            db, presented, next, ttl
        )
        .await)
    }

    /// Ends `principal`'s session, or every session of its user; [`StoreError::NoSuchUser`] when that session
    /// is not live.
    pub async fn end(
        store: &Store,
        principal: Principal,
        everywhere: bool,
    ) -> Result<(), StoreError> {
        dispatch!(store, |backend, db| backend::sessions::end(
            db, principal, everywhere
        )
        .await)
    }
}

/// Tasks in the store, each statement keyed by its owner.
pub mod tasks {
    use super::{Store, StoreError};
    use crate::domain::{NewTask, Principal, Task, TaskChanges, TaskId, TaskPage, TaskQuery};

    /// Creates a task for `owner`; both timestamps are now.
    pub async fn insert(
        store: &Store,
        owner: Principal,
        task: NewTask,
    ) -> Result<Task, StoreError> {
        dispatch!(store, |backend, db| backend::tasks::insert(db, owner, task)
            .await)
    }

    /// One page of `owner`'s tasks, newest first, with the number that matched before paging.
    pub async fn list(
        store: &Store,
        owner: Principal,
        query: TaskQuery,
    ) -> Result<TaskPage, StoreError> {
        dispatch!(store, |backend, db| backend::tasks::list(db, owner, query)
            .await)
    }

    /// `owner`'s task `id`, if it exists.
    pub async fn get(
        store: &Store,
        owner: Principal,
        id: TaskId,
    ) -> Result<Option<Task>, StoreError> {
        dispatch!(store, |backend, db| backend::tasks::get(db, owner, id)
            .await)
    }

    /// Applies `changes` to `owner`'s task `id` and stamps `updated_at`, in one statement; `None` when there
    /// is no such task.
    pub async fn update(
        store: &Store,
        owner: Principal,
        id: TaskId,
        changes: TaskChanges,
    ) -> Result<Option<Task>, StoreError> {
        dispatch!(store, |backend, db| backend::tasks::update(
            db, owner, id, changes
        )
        .await)
    }

    /// Deletes `owner`'s task `id`; `true` only when this call removed it.
    pub async fn delete(store: &Store, owner: Principal, id: TaskId) -> Result<bool, StoreError> {
        dispatch!(store, |backend, db| backend::tasks::delete(db, owner, id)
            .await)
    }
}

/// A login rate-limit bucket's key: a keyed hash of what it counts (see [`crate::limiter`]), fixed in size
/// whatever was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginKey(pub [u8; 16]);

/// Login rate-limit buckets kept in a shared store ([`Store::is_shared`]), so that every process counts against
/// the same ones. A store of one process keeps none: its limiter counts in memory.
pub mod logins {
    use super::{LoginKey, Store, StoreError, postgres};

    /// Counts one attempt against every bucket (its key and its capacity per minute), all of them or none, in
    /// one round trip; `Some(seconds)` to wait when one of them is full.
    pub async fn count(
        store: &Store,
        buckets: &[(LoginKey, f64)],
    ) -> Result<Option<f64>, StoreError> {
        match store {
            Store::Postgres(db) => postgres::logins::count(db, buckets).await,
            Store::Sqlite(_) => Err(not_shared()),
        }
    }

    /// A login succeeded: `pair`'s bucket empties and `address`'s gives the attempt back.
    pub async fn forgive(
        store: &Store,
        pair: LoginKey,
        address: LoginKey,
    ) -> Result<(), StoreError> {
        match store {
            Store::Postgres(db) => postgres::logins::forgive(db, pair, address).await,
            Store::Sqlite(_) => Err(not_shared()),
        }
    }

    fn not_shared() -> StoreError {
        StoreError::Internal("this store keeps no login counts: count them in memory".into())
    }
}
