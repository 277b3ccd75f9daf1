//! The SQLite backend: one file, embedded; its pools, queues, pragmas, file checks and SQL.
//!
//! SQLite serialises writers. Rather than let concurrent writers collide inside SQLite (where the loser sleeps in
//! the busy handler, or fails with "database is locked"), writes queue, first come first served, for a pool of
//! exactly one connection, which runs them back to back (see [`Sqlite::write`]); reads queue for a separate pool,
//! one connection per core, and run beside the writer, which WAL allows. Each queue is worked through by lanes
//! (one for writes, one per core for reads) that stay on a blocking thread while calls keep coming (see
//! [`run_lane`]). Every call runs on tokio's blocking threads through `interact`, never on the async workers.

/// The condition that the session whose id is the statement parameter `$session` is live for the user `$user`:
/// its row exists and has not expired, and the user is there too (one removed with foreign keys off, the
/// `sqlite3` shell's default, leaves its sessions behind). Every statement made for a request carries it, so an
/// ended session is refused in the statement that does the work.
macro_rules! session_live {
    ($user:literal, $session:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM sessions JOIN users ON users.id = sessions.user_id WHERE sessions.user_id = ",
            $user,
            " AND sessions.id = ",
            $session,
            " AND sessions.expires_at > unixepoch())"
        )
    };
}

pub(super) mod sessions;
pub(super) mod tasks;
pub(super) mod users;

use std::os::unix::fs::MetadataExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use deadpool_sqlite::{PoolConfig, Runtime, Timeouts};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OptionalExtension};
use tokio::sync::{Mutex, RwLock, mpsc, oneshot};

use super::StoreError;

mod embedded {
    refinery::embed_migrations!("sql/sqlite");
}

/// How long a call waits for its turn (a lane and a connection) before it is answered 503. Checked when a lane
/// takes the call up; a call is never run after it.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// How many queued calls one turn of a lane runs before its connection is handed back to the pool, so a reopen
/// or the final checkpoint gets its turn under a steady stream of calls.
const TURN: usize = 64;

/// How long SQLite itself waits on a lock held by another process (a backup, the sqlite3 shell) before failing.
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// What can go wrong here: the store's errors, and one only this backend has.
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum DbError {
    /// A uniqueness rule refused the write (the only one clients can reach: usernames).
    #[error("unique constraint violated")]
    Conflict,
    /// The file cannot be read or written right now (read-only, removed, disk full, locked for too long).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The user a request is made for no longer exists (its token outlived it).
    #[error("no such user")]
    NoSuchUser,
    /// The file at the database's path is not the one opened: it was replaced under the running service. The
    /// store moves to the new file; this request is not retried.
    #[error("database file was replaced")]
    Replaced,
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
            // A task's owner deleted between the owner check and the write.
            Some((ErrorCode::ConstraintViolation, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)) => {
                Self::NoSuchUser
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

impl From<DbError> for StoreError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Conflict => Self::Conflict,
            DbError::NoSuchUser => Self::NoSuchUser,
            DbError::Unavailable(why) => Self::Unavailable(why),
            DbError::Replaced => Self::Unavailable("database file was replaced; reopened".into()),
            DbError::Internal(why) => Self::Internal(why),
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Sqlite {
    inner: Arc<Inner>,
}

struct Inner {
    path: Arc<Path>,
    /// Every operation holds this for reading while it runs; reopening holds it for writing, so it runs with
    /// nothing in flight.
    pools: RwLock<Pools>,
    /// How many lanes work the read queue, and so how many reader connections there are.
    read_lanes: usize,
    /// Reads waiting for a reader connection.
    reads: mpsc::UnboundedSender<Job>,
    /// Writes waiting for the writer connection, in the order they came.
    writes: mpsc::UnboundedSender<Job>,
}

/// A call waiting its turn. It is given a connection and the file the pools were opened on, or the reason there
/// is no connection, and answers its caller itself.
type Job = Box<dyn FnOnce(Result<&mut Connection, DbError>, FileId) + Send>;

/// A queue of calls shared by the lanes that work through it.
type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Job>>>;

/// The connections to one database file.
struct Pools {
    reader: Pool,
    writer: Pool,
    /// The file they were opened on.
    file: FileId,
}

/// Which file a path named when it was opened: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl Sqlite {
    /// Opens (creating if needed) the SQLite file at `path` and applies every pending migration.
    ///
    /// This is the only place a database file is ever created. Pool connections open the file read-write
    /// without creating it, so a file removed under the running service stays missing (503) rather than
    /// coming back empty, which would hand out the removed users' ids again.
    pub(super) async fn open(path: &Path) -> Result<Self, DbError> {
        let path: Arc<Path> = Arc::from(path);
        let create = path.clone();
        tokio::task::spawn_blocking(move || Connection::open(&create).map(drop))
            .await
            .map_err(|e| DbError::Internal(e.to_string()))??;
        let read_lanes = read_lanes();
        let pools = Pools::open(&path, Schema::Create, read_lanes).await?;
        let (reads, read_queue) = mpsc::unbounded_channel();
        let (writes, write_queue) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            path,
            pools: RwLock::new(pools),
            read_lanes,
            reads,
            writes,
        });
        let read_queue = Arc::new(Mutex::new(read_queue));
        for _ in 0..read_lanes {
            let lane = run_lane(Arc::downgrade(&inner), read_queue.clone(), Role::Reader);
            tokio::spawn(lane);
        }
        let write_queue = Arc::new(Mutex::new(write_queue));
        tokio::spawn(run_lane(Arc::downgrade(&inner), write_queue, Role::Writer));
        Ok(Self { inner })
    }

    /// Answers when the database can be read and written: the file is where it was opened, writable, and
    /// answers a query.
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let path = self.inner.path.clone();
        self.write(move |conn| {
            // Opening for writing also notices a read-only filesystem, which the permission bits do not show.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| {
                    DbError::Unavailable(format!("database file cannot be written: {e}"))
                })?;
            Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)
        })
        .await
        .map_err(Into::into)
    }

    /// Folds the log into the database file, so a copy of the file alone holds every write. Called once the
    /// server has stopped; connections do not do it on close (see `configure`).
    pub(super) async fn close(&self) -> Result<(), StoreError> {
        let pools = self.inner.pools.write().await;
        Ok(interact(&pools.writer, |conn| truncate_log(conn)).await?)
    }

    /// Runs `f` on a reader connection, on a blocking thread, once a read lane takes it from the queue (see
    /// [`run_lane`]). Like a write, a read that waited longer than [`POOL_WAIT`] answers 503, and one whose caller
    /// has gone is not run.
    async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        self.submit(&self.inner.reads, |conn, _| f(conn)).await?.0
    }

    /// Runs `f` on the one writer connection, on a blocking thread; concurrent writes wait their turn in a queue
    /// that the writer lane works through without pausing between them (see [`run_lane`]). The file is checked
    /// first, so nothing is written to a file that was removed, replaced or made read-only under the running
    /// service: such a write answers 503 instead, and succeeds again once the file is back (a file put back by
    /// another inode is reopened).
    ///
    /// A write that waited longer than [`POOL_WAIT`] for its turn is not run and answers 503, and one whose
    /// caller has gone (the client hung up) is not run at all: a request that got no success changes nothing.
    async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let path = self.inner.path.clone();
        let (outcome, opened) = self
            .submit(&self.inner.writes, move |conn, opened| {
                check_file(&path, opened)?;
                f(conn)
            })
            .await?;
        if let Err(DbError::Replaced) = outcome {
            self.reopen(opened).await?;
        }
        outcome
    }

    /// Queues `f` for a connection of `queue`'s pool and waits for its outcome and the file it ran on. A call
    /// that waited longer than [`POOL_WAIT`] for its turn is not run and answers 503; one whose caller has gone
    /// is not run at all.
    async fn submit<T, F>(
        &self,
        queue: &mpsc::UnboundedSender<Job>,
        f: F,
    ) -> Result<(Result<T, DbError>, FileId), DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, FileId) -> Result<T, DbError> + Send + 'static,
    {
        let (answer, outcome) = oneshot::channel();
        let deadline = Instant::now() + POOL_WAIT;
        let job: Job = Box::new(move |conn, opened| {
            if answer.is_closed() {
                return;
            }
            let outcome = if Instant::now() > deadline {
                Err(DbError::Unavailable(
                    "the call waited too long for a connection".into(),
                ))
            } else {
                conn.and_then(|conn| f(conn, opened))
            };
            let _ = answer.send((outcome, opened));
        });
        queue
            .send(job)
            .map_err(|_| DbError::Internal("the store has stopped".into()))?;
        outcome
            .await
            .map_err(|_| DbError::Internal("a call ended without an answer".into()))
    }

    /// Moves to the file now at the path, once the file `stale` was replaced. Runs with no operation in flight.
    async fn reopen(&self, stale: FileId) -> Result<(), DbError> {
        let mut pools = self.inner.pools.write().await;
        if pools.file != stale {
            return Ok(()); // another request already did
        }
        log::warn!(
            "{} was replaced under the running service; reopening it",
            self.inner.path.display()
        );
        // Leave the old file's log empty: the new file shares the log's path, and must not meet old pages.
        // Connections never checkpoint or remove the log on close (see `configure`), so closing the old pool
        // later cannot touch the log the new connections use.
        interact(&pools.writer, |conn| truncate_log(conn)).await?;
        *pools = Pools::open(&self.inner.path, Schema::Required, self.inner.read_lanes).await?;
        Ok(())
    }
}

/// Whether opening the pools may lay a schema down on a file that has none.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// At start-up, on the file `Sqlite::open` just created or found.
    Create,
    /// When moving to a file put at the path later: it must already be a Tasky database (older ones are
    /// migrated); an empty or foreign file is refused rather than started afresh.
    Required,
}

impl Pools {
    fn pool(&self, role: Role) -> &Pool {
        match role {
            Role::Reader => &self.reader,
            Role::Writer => &self.writer,
        }
    }

    /// Opens the pools on `path`, with one reader connection per read lane (a lane holds its connection for a
    /// whole turn).
    async fn open(path: &Path, schema: Schema, readers: usize) -> Result<Self, DbError> {
        let (reader, writer) = (
            pool(path, readers, Role::Reader)?,
            pool(path, 1, Role::Writer)?,
        );
        let opened = path.to_owned();
        let (report, file) = interact(&writer, move |conn| {
            if schema == Schema::Required && !has_schema(conn)? {
                return Err(DbError::Unavailable(format!(
                    "{} holds no Tasky database",
                    opened.display()
                )));
            }
            let report = embedded::migrations::runner()
                .run(conn)
                .map_err(|e| DbError::Internal(e.to_string()))?;
            Ok((report, file_id(&opened)?))
        })
        .await?;
        for migration in report.applied_migrations() {
            log::info!("applied migration {migration}");
        }
        Ok(Self {
            reader,
            writer,
            file,
        })
    }
}

/// Threads for blocking work: one per read lane and one for the writer lane. Only SQLite calls use them
/// (hashing has threads of its own), and SQLite on a cached file is CPU-bound, so more threads than cores only
/// add context switches.
pub(super) fn blocking_threads() -> usize {
    read_lanes() + 1
}

/// How many lanes work through the read queue: one per core, as SQLite on a cached file is CPU-bound and more
/// would only take turns on the same cores; and at least two, so one slow read never holds up all the others.
fn read_lanes() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// Works through a queue with connections of `role`'s pool, beside the other lanes of the same queue. Each turn
/// takes one call, checks a connection out, and then, on the blocking thread, keeps running calls as long as
/// the queue has more (up to [`TURN`]), so under load a lane stays on its thread instead of waking a thread
/// per call: handing every call to a fresh blocking thread cost more than the query itself. Each write is still
/// its own transaction, committed before its caller is answered. Ends when the `Sqlite` is dropped.
async fn run_lane(inner: Weak<Inner>, queue: Queue, role: Role) {
    loop {
        let Some(first) = queue.lock().await.recv().await else {
            return;
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let pools = inner.pools.read().await;
        let opened = pools.file;
        let conn = match pools.pool(role).get().await {
            Ok(conn) => conn,
            Err(err) => {
                // The calls queued behind this one would meet the same failure: answer them all now, rather
                // than one checkout attempt at a time.
                let err = DbError::from(err);
                first(Err(err.clone()), opened);
                while let Some(job) = take_queued(&queue) {
                    job(Err(err.clone()), opened);
                }
                continue;
            }
        };
        let queue = queue.clone();
        let turn = conn
            .interact(move |conn| {
                let mut next = Some(first);
                let mut ran = 0;
                while let Some(job) = next.take() {
                    // A panic ends only its own call (its caller sees no answer), never the turn.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(conn), opened)));
                    ran += 1;
                    if ran < TURN {
                        next = take_queued(&queue);
                    }
                }
            })
            .await;
        if let Err(err) = turn {
            log::error!("a turn of calls ended early: {err}");
        }
    }
}

/// The next call already in `queue`, if no idle lane is waiting on it (that lane takes the rest).
fn take_queued(queue: &Queue) -> Option<Job> {
    queue.try_lock().ok()?.try_recv().ok()
}

/// Whether the database on `conn` was laid down by these migrations (at any version).
fn has_schema(conn: &Connection) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Folds the log into the database file and empties it. SQLite answers a busy flag rather than an error when
/// another connection (another process) keeps it from finishing; that is a failure here.
fn truncate_log(conn: &Connection) -> Result<(), DbError> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
    if busy != 0 {
        return Err(DbError::Unavailable(
            "the log could not be folded into the database file: it is in use".into(),
        ));
    }
    Ok(())
}

/// The file at `path` now.
fn file_id(path: &Path) -> Result<FileId, DbError> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| DbError::Unavailable(format!("database file {}: {e}", path.display())))?;
    Ok(FileId(metadata.dev(), metadata.ino()))
}

/// Whether the file at `path` is still the writable file `opened`.
fn check_file(path: &Path, opened: FileId) -> Result<(), DbError> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| DbError::Unavailable(format!("database file {}: {e}", path.display())))?;
    if metadata.permissions().readonly() {
        return Err(DbError::Unavailable(format!(
            "database file {} is read-only",
            path.display()
        )));
    }
    if FileId(metadata.dev(), metadata.ino()) != opened {
        return Err(DbError::Replaced);
    }
    Ok(())
}

/// Runs a write statement with a `RETURNING` clause and reads the row it returns (if any), stepping the
/// statement to its end. SQLite runs the WAL hook, and with it the automatic checkpoint, only when a statement
/// reaches its end; one reset after its first row, as `query_row` does, commits without ever checkpointing, and
/// the log then grows without bound.
fn returning<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    read: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let mut rows = stmt.query(params)?;
    let value = match rows.next()? {
        Some(row) => Some(read(row)?),
        None => None,
    };
    while rows.next()?.is_some() {}
    Ok(value)
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
    let connections = deadpool_sqlite::Manager::from_config(
        &deadpool_sqlite::Config::new(uri(path)),
        Runtime::Tokio1,
    );
    Pool::builder(Manager { connections, role })
        .config(config)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Internal(e.to_string()))
}

/// `path` as an SQLite URI that opens the file for reading and writing but never creates it (rusqlite opens
/// with URI names allowed).
fn uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3F"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=rw");
    uri
}

/// deadpool-sqlite's manager with a cheaper recycle. Its own recycle runs a query on a blocking thread at every
/// checkout, which doubles the blocking-thread round trips of every request (measured: a third more list and
/// write throughput without it). A SQLite connection to a local file does not go stale the way a network
/// connection does; what can break it here is a panic inside `interact`, which poisons its mutex, and that is
/// what this recycle checks. (Lanes catch a call's panic themselves; rusqlite resets the call's statements and
/// rolls back its transaction as it unwinds, so the connection stays usable.)
struct Manager {
    connections: deadpool_sqlite::Manager,
    role: Role,
}

impl deadpool::managed::Manager for Manager {
    type Type = <deadpool_sqlite::Manager as deadpool::managed::Manager>::Type;
    type Error = rusqlite::Error;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let conn = self.connections.create().await?;
        let role = self.role;
        conn.interact(move |conn| configure(conn, role))
            .await
            .map_err(|e| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(format!("configuring a connection failed: {e}")),
                )
            })??;
        Ok(conn)
    }

    async fn recycle(
        &self,
        conn: &mut Self::Type,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Self::Error> {
        if conn.is_mutex_poisoned() {
            Err(deadpool::managed::RecycleError::message(
                "a query panicked while holding this connection",
            ))
        } else {
            Ok(())
        }
    }
}

type Pool = deadpool::managed::Pool<Manager>;

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
    // Closing never checkpoints or removes the log: connections to a file that was replaced under the service
    // are closed in the background, and must not delete the log that connections to the new file use. The log
    // is checkpointed as it grows (every 1000 pages) and on reopening, and SQLite recovers it on the next open.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    // Off by default in SQLite: without it ON DELETE CASCADE and the users(id) reference do nothing.
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if let Role::Reader = role {
        // A reader that tried to write would bypass the writer queue; make that impossible.
        conn.pragma_update(None, "query_only", "ON")?;
        // 512 KiB of page cache per reader instead of SQLite's 2 MiB: there is a reader per core, the pages a
        // request touches are few (an index path and one page of rows), and the OS caches the file for all of
        // them anyway. Keeps the service's memory flat as the file grows.
        conn.pragma_update(None, "cache_size", -512)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("detail".into()))
    }

    #[tokio::test]
    async fn the_log_is_folded_into_the_database_as_it_grows() {
        use crate::domain::{
            NewTask, PasswordHash, TaskDescription, TaskQuery, TaskStatus, TaskTitle, Username,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasky.db");
        let db = Sqlite::open(&path).await.unwrap();
        let username = Username::parse("writer".into()).unwrap();
        let user = users::insert(&db, username, PasswordHash::from_phc("x".into()))
            .await
            .unwrap();
        let owner = crate::domain::Principal {
            user: user.id,
            session: crate::domain::SessionId(1),
        };
        let day = std::time::Duration::from_secs(86_400);
        let verified = PasswordHash::from_phc("x".into());
        sessions::start(
            &db,
            owner,
            &verified,
            crate::domain::RefreshHash([0; 32]),
            day,
        )
        .await
        .unwrap();
        assert!(
            users::find_credentials(&db, "writer")
                .await
                .unwrap()
                .is_some()
        );
        for i in 0..3000 {
            let task = NewTask {
                title: TaskTitle::parse(format!("task {i}")).unwrap(),
                description: TaskDescription::default(),
                status: TaskStatus::Pending,
            };
            let created = tasks::insert(&db, owner, task).await.unwrap();
            let changes =
                crate::domain::TaskChanges::new(None, None, Some(TaskStatus::Completed)).unwrap();
            tasks::update(&db, owner, created.id, changes)
                .await
                .unwrap();
            if i % 500 == 0 {
                tasks::list(&db, owner, TaskQuery::default()).await.unwrap();
            }
        }
        let wal = std::fs::metadata(dir.path().join("tasky.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        let main = std::fs::metadata(&path).unwrap().len();
        assert!(wal < 16 << 20, "the log was never reset: {wal} bytes");
        assert!(
            main > 100_000,
            "the log was never folded into the database file: {main} bytes"
        );
    }

    #[tokio::test]
    async fn queued_writes_run_in_order_and_a_write_whose_caller_left_never_runs() {
        use crate::domain::{PasswordHash, Username};
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("tasky.db")).await.unwrap();
        let signup = |name: &str| {
            let username = Username::parse(name.into()).unwrap();
            users::insert(&db, username, PasswordHash::from_phc("x".into()))
        };
        // Hold the writer connection so that writes queue behind it.
        let held = db.inner.pools.read().await.writer.get().await.unwrap();
        // A caller that gives up while its write is still queued (a client hanging up).
        let abandoned = tokio::time::timeout(Duration::from_millis(50), signup("abandoned")).await;
        assert!(
            abandoned.is_err(),
            "the write ran while the writer was held"
        );
        let queued = futures_util::future::join_all((0..20).map(|i| {
            let db = db.clone();
            async move {
                let username = Username::parse(format!("queued{i}")).unwrap();
                users::insert(&db, username, PasswordHash::from_phc("x".into())).await
            }
        }));
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        };
        let (created, ()) = tokio::join!(queued, release);
        let ids: Vec<i64> = created.into_iter().map(|user| user.unwrap().id.0).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        let abandoned = users::find_credentials(&db, "abandoned").await.unwrap();
        assert!(abandoned.is_none(), "a write whose caller left was run");
    }

    #[tokio::test]
    async fn reads_go_on_while_one_read_is_slow_and_a_read_whose_caller_left_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("tasky.db")).await.unwrap();
        let select = |conn: &mut Connection| Ok(conn.query_row("SELECT 1", [], |row| row.get(0))?);

        // One read keeps its lane busy until released; the others are taken by the remaining lanes.
        let (release, slow_until) = std::sync::mpsc::channel::<()>();
        let slow = tokio::spawn({
            let db = db.clone();
            async move {
                db.read(move |_| {
                    let _ = slow_until.recv_timeout(Duration::from_secs(30));
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..20 {
            let one: i64 = tokio::time::timeout(Duration::from_secs(10), db.read(select))
                .await
                .expect("a read waited behind a slow one")
                .unwrap();
            assert_eq!(one, 1);
        }
        assert!(!slow.is_finished(), "the slow read was not running");
        release.send(()).unwrap();
        slow.await.unwrap().unwrap();

        // Hold every reader connection, so that reads queue.
        let pools = db.inner.pools.read().await;
        let mut held = Vec::new();
        for _ in 0..db.inner.read_lanes {
            held.push(pools.reader.get().await.unwrap());
        }
        drop(pools);
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let abandoned = tokio::time::timeout(Duration::from_millis(50), {
            let ran = ran.clone();
            db.read(move |_| {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
        })
        .await;
        assert!(
            abandoned.is_err(),
            "the read ran while every reader was held"
        );
        drop(held);
        let one: i64 = db.read(select).await.unwrap();
        assert_eq!(one, 1);
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "a read whose caller left was run"
        );
    }

    #[tokio::test]
    async fn an_empty_file_put_in_place_of_the_database_is_refused_not_started_afresh() {
        use crate::domain::{PasswordHash, Username};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasky.db");
        let db = Sqlite::open(&path).await.unwrap();
        let signup = |name: &str| {
            let username = Username::parse(name.into()).unwrap();
            users::insert(&db, username, PasswordHash::from_phc("x".into()))
        };
        signup("first").await.unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::File::create(&path).unwrap();
        for _ in 0..3 {
            let refused = signup("second").await;
            assert!(
                matches!(refused, Err(StoreError::Unavailable(_))),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn migrating_a_database_with_tasks_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("old.db")).unwrap();
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(2))
            .run(&mut conn)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'a', 'x', 't'), (2, 'b', 'x', 't');
             INSERT INTO tasks (user_id, title, status, created_at, updated_at) VALUES
                 (1, 't', 'pending', 't', 't'), (1, 't', 'pending', 't', 't'), (1, 't', 'completed', 't', 't'),
                 (2, 't', 'completed', 't', 't');",
        )
        .unwrap();
        embedded::migrations::runner().run(&mut conn).unwrap();
        let counts: Vec<(i64, String, i64)> = conn
            .prepare("SELECT user_id, status, n FROM task_counts ORDER BY user_id, status")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = [(1, "completed", 1), (1, "pending", 2), (2, "completed", 1)];
        let expected: Vec<(i64, String, i64)> = expected
            .iter()
            .map(|(u, s, n)| (*u, s.to_string(), *n))
            .collect();
        assert_eq!(counts, expected);
        conn.execute("DELETE FROM users WHERE id = 1", []).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM task_counts WHERE user_id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "a removed user's counts go with it");
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
