//! Storage: every SQL statement of the service lives in this module, behind functions that take and return
//! domain types, so another backend can stand in without touching a route.
//!
//! SQLite serialises writers. Rather than let concurrent writers collide inside SQLite (where the loser sleeps in
//! the busy handler, or fails with "database is locked"), writes go through a pool of exactly one connection and
//! queue, first come first served, in the pool; reads use a separate pool and run beside the writer, which WAL
//! allows. Every call runs on tokio's blocking threads through `interact`, never on the async workers.

pub mod tasks;
pub mod users;

use std::path::Path;
use std::time::Duration;

use deadpool_sqlite::{Hook, HookError, Pool, PoolConfig, Runtime, Timeouts};
use rusqlite::{Connection, ErrorCode};

mod embedded {
    refinery::embed_migrations!("sql");
}

/// How long a request waits for a connection before it is answered 503.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// How long SQLite itself waits on a lock held by another process (a backup, the sqlite3 shell) before failing.
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    reader: Pool,
    writer: Pool,
}

/// What can go wrong in the store, sorted by what the client should be told.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A uniqueness rule refused the write (the only one clients can reach: usernames).
    #[error("unique constraint violated")]
    Conflict,
    /// The file cannot be read or written right now (read-only, removed, disk full, locked for too long).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, not the client's doing.
    #[error("database error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        let code = err.sqlite_error().map(|e| (e.code, e.extended_code));
        match code {
            Some((ErrorCode::ConstraintViolation, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)) => {
                Self::Conflict
            }
            Some((
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::PermissionDenied
                | ErrorCode::NotADatabase
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::OutOfMemory,
                _,
            )) => Self::Unavailable(err.to_string()),
            _ => Self::Internal(err.to_string()),
        }
    }
}

impl From<deadpool_sqlite::PoolError> for DbError {
    fn from(err: deadpool_sqlite::PoolError) -> Self {
        use deadpool_sqlite::PoolError;
        match err {
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(_) | PoolError::PostCreateHook(_) => {
                Self::Unavailable(err.to_string())
            }
            PoolError::Closed | PoolError::NoRuntimeSpecified => Self::Internal(err.to_string()),
        }
    }
}

impl Db {
    /// Opens (creating if needed) the SQLite file at `path` and applies every pending migration.
    pub async fn open(path: &Path) -> Result<Self, DbError> {
        let readers = std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4));
        let db = Self {
            reader: pool(path, readers, Role::Reader)?,
            writer: pool(path, 1, Role::Writer)?,
        };
        let report = db
            .write(|conn| {
                embedded::migrations::runner()
                    .run(conn)
                    .map_err(|e| DbError::Internal(e.to_string()))
            })
            .await?;
        for migration in report.applied_migrations() {
            log::info!("applied migration {}", migration);
        }
        Ok(db)
    }

    /// Answers when the database can be read.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    /// Runs `f` on a reader connection, on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        interact(&self.reader, f).await
    }

    /// Runs `f` on the one writer connection, on a blocking thread; concurrent writes wait their turn.
    async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        interact(&self.writer, f).await
    }
}

async fn interact<T, F>(pool: &Pool, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
{
    let conn = pool.get().await?;
    conn.interact(f)
        .await
        .map_err(|e| DbError::Internal(e.to_string()))?
}

#[derive(Clone, Copy)]
enum Role {
    Reader,
    Writer,
}

fn pool(path: &Path, size: usize, role: Role) -> Result<Pool, DbError> {
    let config = PoolConfig {
        max_size: size,
        timeouts: Timeouts {
            wait: Some(POOL_WAIT),
            create: Some(POOL_WAIT),
            recycle: Some(POOL_WAIT),
        },
        ..PoolConfig::default()
    };
    deadpool_sqlite::Config::new(path)
        .builder(Runtime::Tokio1)
        .map_err(|e| DbError::Internal(e.to_string()))?
        .config(config)
        .post_create(Hook::async_fn(move |conn, _| {
            Box::pin(async move {
                conn.interact(move |conn| configure(conn, role))
                    .await
                    .map_err(|e| HookError::message(e.to_string()))?
                    .map_err(HookError::Backend)
            })
        }))
        .build()
        .map_err(|e| DbError::Internal(e.to_string()))
}

/// Per-connection settings; SQLite keeps none of these but `journal_mode` in the file.
fn configure(conn: &mut Connection, role: Role) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS.into()))?;
    // WAL: readers never block the writer nor each other, and a commit is one append to the log.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // synchronous=NORMAL: in WAL mode a commit has been written to the log with write(2) before COMMIT returns,
    // so it is in the OS page cache and survives the process being killed (kill -9), which is API.md's
    // promise. Only an OS crash or power loss could lose the last commits; FULL would guard against that too,
    // at the price of an fsync on every write, which the contract does not ask for.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Off by default in SQLite: without it ON DELETE CASCADE and the users(id) reference do nothing.
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if let Role::Reader = role {
        // A reader that tried to write would bypass the writer queue; make that impossible.
        conn.pragma_update(None, "query_only", "ON")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("detail".into()))
    }

    #[test]
    fn unique_violations_are_conflicts_and_io_faults_are_unavailable() {
        assert!(matches!(
            sqlite_error(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE).into(),
            DbError::Conflict
        ));
        assert!(matches!(
            sqlite_error(rusqlite::ffi::SQLITE_READONLY).into(),
            DbError::Unavailable(_)
        ));
        assert!(matches!(
            sqlite_error(rusqlite::ffi::SQLITE_BUSY).into(),
            DbError::Unavailable(_)
        ));
        assert!(matches!(
            sqlite_error(rusqlite::ffi::SQLITE_CONSTRAINT_CHECK).into(),
            DbError::Internal(_)
        ));
        assert!(matches!(
            rusqlite::Error::InvalidQuery.into(),
            DbError::Internal(_)
        ));
    }
}
