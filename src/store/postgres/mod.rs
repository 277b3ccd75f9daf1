//! The PostgreSQL backend: a deadpool-postgres pool, TLS as libpq means it ([`tls`]), the SQLSTATE mapping, and
//! its SQL. Any number of processes may share one database.
//!
//! Every call runs on a pooled connection and answers within [`CALL_LIMIT`]: a database that cannot be
//! reached is a 503, never a hang. Connections found closed (PostgreSQL restarted, a backend terminated) are
//! dropped by the pool at checkout, so the service recovers by itself once the server is back.

/// The condition that the session whose id is the statement parameter `$session` is live for the user `$user`:
/// its row exists (ended sessions are deleted; a user's go with the user) and has not expired. Every statement
/// made for a request carries it, so an ended session is refused in the statement that does the work.
macro_rules! session_live {
    ($user:literal, $session:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM sessions WHERE user_id = ",
            $user,
            " AND id = ",
            $session,
            " AND expires_at > now())"
        )
    };
}

pub(super) mod logins;
pub(super) mod sessions;
pub(super) mod tasks;
mod tls;
pub(super) mod users;

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use self::tls::SslMode;
use super::StoreError;
use crate::config::PostgresUrl;

mod embedded {
    refinery::embed_migrations!("sql/postgres");
}

/// The longest any call may take, waiting for a connection included, before it answers 503.
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// The longest opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an unreachable server is retried at start before the process gives up.
const START_RETRY: Duration = Duration::from_secs(30);

/// The advisory lock every Tasky process holds while it migrates, so that processes starting together apply
/// each migration once (refinery has no lock of its own). The bytes of "tasky".
const MIGRATION_LOCK: i64 = 0x74_61_73_6b_79;

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
}

impl Postgres {
    /// Connects (retrying an unreachable server for [`START_RETRY`]), migrates under the advisory lock, and
    /// opens the pool.
    pub(super) async fn connect(url: &PostgresUrl) -> Result<Self, StoreError> {
        let target = Target::parse(url.expose())?;
        let started = tokio::time::Instant::now();
        loop {
            match target.migrate().await {
                Ok(()) => break,
                Err(err) if started.elapsed() < START_RETRY => {
                    log::warn!("PostgreSQL is not ready, retrying: {err}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => {
                    return Err(StoreError::Unavailable(format!(
                        "PostgreSQL could not be reached within {START_RETRY:?}: {err}"
                    )));
                }
            }
        }
        // PostgreSQL stops a statement at the same limit the service answers 503 at, so a call given up on does
        // not go on running, holding its connection and perhaps committing after the client was told it failed.
        let mut config = target.config.clone();
        let options = config.get_options().unwrap_or_default().to_owned();
        config.options(format!("{options} -c statement_timeout={}", CALL_LIMIT.as_millis()).trim());
        let manager = Manager::from_config(
            config,
            target.tls,
            ManagerConfig {
                // A closed connection (server restarted, backend terminated) is noticed by its connection task
                // at once and dropped at checkout; no query of its own per request.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(url.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CALL_LIMIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Internal(format!("building the pool: {e}")))?;
        Ok(Self { pool })
    }

    /// Answers when the database answers a query.
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.run(Retry::Read, || async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    /// Closes the pool's connections.
    pub(super) async fn close(&self) -> Result<(), StoreError> {
        self.pool.close();
        Ok(())
    }

    /// A pooled connection and `sql` prepared on it (each connection keeps its statements).
    async fn prepared(
        &self,
        sql: &str,
    ) -> Result<(deadpool_postgres::Object, tokio_postgres::Statement), Failure> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(Failure::NotSent)?;
        Ok((client, statement))
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, Failure> {
        self.pool.get().await.map_err(|err| match err {
            PoolError::Backend(err) => Failure::NotSent(err),
            PoolError::Timeout(_) | PoolError::PostCreateHook(_) => Failure::Store(
                StoreError::Unavailable(format!("no connection to PostgreSQL: {err}")),
            ),
            PoolError::Closed | PoolError::NoRuntimeSpecified => {
                Failure::Store(StoreError::Internal(err.to_string()))
            }
        })
    }
}

/// What a call can fail with, before it is sorted for the client: the driver's own error is kept, so that a
/// call PostgreSQL never carried out can be tried again.
pub(super) enum Failure {
    /// The statement of the call may have reached PostgreSQL.
    Db(tokio_postgres::Error),
    /// The call failed before its statement was sent: checking a connection out or preparing on it.
    NotSent(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Db(err)
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Db(err) | Failure::NotSent(err) => db_error(err),
            Failure::Store(err) => err,
        }
    }
}

/// Whether a call may be run again after `failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// A read: again after any failure of the connection.
    Read,
    /// A write: again when its statement was never sent, or when PostgreSQL said the connection was going away
    /// (SQLSTATE class 57P: shut down, terminated), which it says instead of carrying the statement out. A
    /// connection that broke without a word after the statement was sent may have committed it: that write
    /// answers 503 rather than run twice.
    Write,
}

impl Retry {
    fn allows(self, failure: &Failure) -> bool {
        let (err, sent) = match failure {
            Failure::Db(err) => (err, true),
            Failure::NotSent(err) => (err, false),
            Failure::Store(_) => return false,
        };
        match err.code() {
            Some(code) => code.code().starts_with("57P"),
            None => self == Self::Read || !sent,
        }
    }
}

impl Postgres {
    /// Runs `call` within [`CALL_LIMIT`] (past it, 503: never a hang). A pooled connection can have been closed
    /// by PostgreSQL (restarted, backend terminated) a moment before its own task noticed; a call that fails on
    /// one for that reason, and may be retried, runs again on another, up to one more time than the pool has
    /// connections.
    async fn run<T, F, Fut>(&self, retry: Retry, call: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let attempts = self.pool.status().max_size + 1;
        let calls = async {
            let mut attempt = 1;
            loop {
                match call().await {
                    Err(failure) if attempt < attempts && retry.allows(&failure) => {
                        if let Failure::Db(err) = &failure {
                            log::info!(
                                "a connection to PostgreSQL went away ({err}); trying another"
                            );
                        }
                        attempt += 1;
                    }
                    outcome => return outcome.map_err(StoreError::from),
                }
            }
        };
        tokio::time::timeout(CALL_LIMIT, calls)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "PostgreSQL did not answer within {CALL_LIMIT:?}"
                )))
            })
    }
}

/// Sorts a driver error by what the client should be told.
fn db_error(err: tokio_postgres::Error) -> StoreError {
    let Some(code) = err.code() else {
        // No SQLSTATE: the connection itself failed (closed, reset, refused, timed out).
        return StoreError::Unavailable(err.to_string());
    };
    let class = &code.code()[..2];
    if *code == SqlState::UNIQUE_VIOLATION {
        StoreError::Conflict
    } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
        // A task's owner deleted while the task was being written.
        StoreError::NoSuchUser
    } else if matches!(class, "08" | "53" | "57" | "40" | "25") {
        // Connection exceptions, insufficient resources, operator intervention (shutdown, terminated backend),
        // transaction rollbacks (serialization, deadlock), a read-only server: the database's state, not a bug.
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Internal(err.to_string())
    }
}

/// Where to connect, parsed from `DATABASE_URL`.
struct Target {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
}

impl Target {
    /// Parses the URL. `sslmode` and `sslrootcert` are taken out and handled as libpq does (see [`tls`]); the
    /// rest is the driver's. No error repeats the URL's password.
    fn parse(url: &str) -> Result<Self, StoreError> {
        let malformed = |why: String| {
            StoreError::Internal(format!(
                "malformed PostgreSQL URL: {}",
                scrub(&why, password_of(url))
            ))
        };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut mode, mut root_cert, mut kept) = (SslMode::Prefer, None, Vec::new());
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            match key {
                "sslmode" => {
                    mode = SslMode::parse(&value).ok_or_else(|| {
                        malformed(format!(
                            "sslmode {value:?} is not disable, allow, prefer, require, verify-ca or verify-full"
                        ))
                    })?;
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(value.into_owned())),
                _ => kept.push(pair),
            }
        }
        let driver_url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config =
            tokio_postgres::Config::from_str(&driver_url).map_err(|e| malformed(e.to_string()))?;
        config
            .ssl_mode(mode.driver())
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("tasky");
        }
        let tls = tls::connector(mode, root_cert.as_ref()).map_err(malformed)?;
        Ok(Self { config, tls })
    }

    /// Applies pending migrations on a connection of its own, holding [`MIGRATION_LOCK`] meanwhile.
    async fn migrate(&self) -> Result<(), String> {
        let (mut client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| e.to_string())?;
        let connection = tokio::spawn(async move {
            if let Err(err) = connection.await {
                log::debug!("the migration connection ended: {err}");
            }
        });
        let lock = client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await;
        let report = match lock {
            Ok(_) => embedded::migrations::runner()
                .run_async(&mut client)
                .await
                .map_err(|e| format!("migrating: {e}")),
            Err(err) => Err(err.to_string()),
        };
        // Closing the connection releases the lock too; unlocking first lets the next process in sooner.
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        drop(client);
        let _ = connection.await;
        for migration in report?.applied_migrations() {
            log::info!("applied migration {migration}");
        }
        Ok(())
    }
}

/// The password in a URL's user info, if any, as written and as decoded.
fn password_of(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let user_info = authority.rsplit_once('@')?.0;
    let raw = user_info.split_once(':')?.1;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    Some((raw.to_owned(), decoded))
}

/// `text` with every occurrence of the password replaced.
fn scrub(text: &str, password: Option<(String, String)>) -> String {
    let mut text = text.to_owned();
    if let Some((raw, decoded)) = password {
        for secret in [raw, decoded] {
            if !secret.is_empty() {
                text = text.replace(&secret, "***");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_out_and_the_rest_reaches_the_driver() {
        let target = Target::parse(
            "postgres://tasky:s%40cret@db.example.com:6543/tasky?sslmode=require&application_name=x",
        )
        .unwrap();
        assert_eq!(target.config.get_user(), Some("tasky"));
        assert_eq!(target.config.get_password(), Some(&b"s@cret"[..]));
        assert_eq!(target.config.get_dbname(), Some("tasky"));
        assert_eq!(
            target.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let default = Target::parse("postgresql://localhost/tasky").unwrap();
        assert_eq!(
            default.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        for mode in ["verify-ca", "verify-full"] {
            let verified =
                Target::parse(&format!("postgres://localhost/x?sslmode={mode}")).unwrap();
            assert_eq!(
                verified.config.get_ssl_mode(),
                tokio_postgres::config::SslMode::Require
            );
        }
    }

    #[test]
    fn errors_never_repeat_the_password() {
        for url in [
            "postgres://tasky:hunter2@db:notaport/tasky",
            "postgres://tasky:hunter2@db/tasky?sslmode=sometimes",
            "postgres://tasky:hunter2@db/tasky?sslrootcert=/nonexistent/hunter2.pem&sslmode=verify-full",
        ] {
            let err = Target::parse(url).err().expect("refused").to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn passwords_are_found_and_scrubbed() {
        assert_eq!(
            password_of("postgres://u:p%40ss@h/d"),
            Some(("p%40ss".into(), "p@ss".into()))
        );
        assert_eq!(password_of("postgres://u@h/d"), None);
        assert_eq!(
            scrub("bad p@ss here", password_of("postgres://u:p%40ss@h/d")),
            "bad *** here"
        );
    }
}
