//! A fresh PostgreSQL schema per test, on the server `TASKY_TEST_DATABASE_URL` names, so tests run side by side
//! on one database without seeing each other. Shared by the test binaries that have a PostgreSQL half.

// Each binary uses the part it needs.
#![allow(dead_code)]

use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The variable that turns the PostgreSQL half on.
pub const URL_VAR: &str = "TASKY_TEST_DATABASE_URL";

/// The server's URL, or `None` after saying once, on stderr (which the harness does not capture), that the
/// PostgreSQL half of `suite` did not run and how to run it.
pub fn url_or_skip(suite: &str) -> Option<String> {
    static SAID: Once = Once::new();
    let url = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty());
    if url.is_none() {
        SAID.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: the PostgreSQL half of {suite} did not run; set {URL_VAR} (e.g. \
                 postgres://root@127.0.0.1:5432/test) to run it"
            );
        });
    }
    url
}

/// A schema of its own on the test server, dropped with this guard.
pub struct Schema {
    admin_url: String,
    name: String,
    /// The server's URL with this schema as the search path: what the service under test is given.
    pub url: String,
}

impl Schema {
    /// Creates a fresh, empty schema on the server at `admin_url`.
    pub async fn create(admin_url: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tasky_test_{}_{}_{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        execute(admin_url, &format!("CREATE SCHEMA {name}")).await;
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-csearch_path%3D{name}");
        Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, statement) = (
            self.admin_url.clone(),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own does it.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(execute(&url, &statement));
        })
        .join();
    }
}

/// Runs `statement` on a connection of its own.
pub async fn execute(url: &str, statement: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}: {e}"));
    let connection = tokio::spawn(connection);
    client
        .batch_execute(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    drop(client);
    let _ = connection.await;
}

/// Runs `query` on a connection of its own and returns its rows as text.
pub async fn query(url: &str, query: &str) -> Vec<Vec<Option<String>>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}: {e}"));
    let connection = tokio::spawn(connection);
    let rows = client
        .simple_query(query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e:?}"))
        .into_iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    drop(client);
    let _ = connection.await;
    rows
}
