//! The binary on PostgreSQL: what it keeps through kill -9 under load, and how it gets over connections that
//! PostgreSQL terminates. Each test on a fresh schema of the server `TASKY_TEST_DATABASE_URL` names; skipped,
//! with one line saying so, without it. (A restart of PostgreSQL itself is tests/pg_restart.rs: it takes the
//! server away from every test, so it runs in a binary of its own.)

use std::time::{Duration, Instant};

use crate::client::*;
use crate::faults::kill_9_under_load;
use crate::pg_support;

/// A fresh schema, and the variables that put the binary on it under the application name `name`.
pub fn database(name: &str) -> Option<(pg_support::Schema, Vec<(&'static str, String)>)> {
    let server = pg_support::url_or_skip("tests/process (PostgreSQL)")?;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let schema = runtime.block_on(pg_support::Schema::create(&server));
    let url = format!("{}&application_name={name}", schema.url);
    Some((schema, vec![("DATABASE_URL", url)]))
}

pub fn vars<'a>(owned: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    owned.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn every_task_answered_201_survives_kill_9_under_load_on_postgres() {
    let Some((_schema, env)) = database("tasky_kill9") else {
        return;
    };
    kill_9_under_load(&vars(&env));
}

#[test]
fn connections_terminated_by_postgres_are_replaced_and_the_next_requests_succeed() {
    let app = "tasky_terminated";
    let Some((schema, env)) = database(app) else {
        return;
    };
    let (_dir, path) = workdir();
    let server = Server::start(&path, &vars(&env));
    let token = user(&server.address, "survivor");
    // Enough requests at once to open several pooled connections.
    let warm: Vec<_> = (0..8)
        .map(|_| {
            let (address, token) = (server.address.clone(), token.clone());
            std::thread::spawn(move || authorized(&address, &token, "GET", "/tasks", None))
        })
        .collect();
    for request in warm {
        assert_eq!(request.join().unwrap().expect("answer").status, 200);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let terminated = runtime.block_on(pg_support::query(
        &schema.url,
        &format!(
            "WITH ours AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE application_name = '{app}') \
             SELECT pg_terminate_backend(pid) FROM ours"
        ),
    ));
    assert!(!terminated.is_empty(), "the service held no connection");
    // Once PostgreSQL has let the backends go, their connections are closed on the service's side too.
    let start = Instant::now();
    loop {
        let left = runtime.block_on(pg_support::query(
            &schema.url,
            &format!("SELECT pid FROM pg_stat_activity WHERE application_name = '{app}'"),
        ));
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "backends still there: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..20 {
        let body = format!(r#"{{"title": "after {i}"}}"#);
        let created =
            authorized(&server.address, &token, "POST", "/tasks", Some(&body)).expect("answer");
        assert_eq!(
            created.status,
            201,
            "request {i}: {}\n{}",
            created.body,
            server.log().join("\n")
        );
    }
    assert_eq!(all_tasks(&server.address, &token).len(), 20);
    assert_eq!(health(&server.address).status, 200);
}

fn health(address: &str) -> Answer {
    send(address, "GET", "/healthz", &[], None).expect("health")
}
