//! Several Tasky processes on one PostgreSQL database behave as one service (API.md, "Several processes on one
//! PostgreSQL database"): they start together and migrate once, honour each other's tokens and logouts, decide races across
//! processes as one process would, share one login rate limit (directly and behind nginx), and lose nothing
//! when one of them is killed or stopped under load. Each test starts three binaries on a fresh schema of the
//! server `TASKY_TEST_DATABASE_URL` names; skipped, with one line saying so, without it. (PostgreSQL restarted
//! under several replicas is tests/pg_restart.rs.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::*;
use crate::nginx::Nginx;
use crate::pg_support;
use crate::postgres::{database, vars};

const REPLICAS: usize = 3;

/// Three processes on one fresh schema, started at the same instant, each with `extra` variables too.
struct Replicas {
    servers: Vec<Server>,
    schema: pg_support::Schema,
    env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

impl Replicas {
    fn start(name: &str, extra: &[(&'static str, &str)]) -> Option<Self> {
        let (schema, mut env) = database(name)?;
        env.extend(extra.iter().map(|&(k, v)| (k, v.to_owned())));
        let (dir, path) = workdir();
        let barrier = Arc::new(Barrier::new(REPLICAS));
        let starting: Vec<_> = (0..REPLICAS)
            .map(|_| {
                let (barrier, env, path) = (barrier.clone(), env.clone(), path.clone());
                thread::spawn(move || {
                    let command = tasky(&path, &vars(&env));
                    barrier.wait();
                    Server::spawn(command)
                })
            })
            .collect();
        let servers = starting
            .into_iter()
            .map(|s| s.join().expect("a replica started"))
            .collect();
        Some(Self {
            servers,
            schema,
            env,
            _dir: dir,
        })
    }

    fn address(&self, i: usize) -> &str {
        &self.servers[i % REPLICAS].address
    }

    fn addresses(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.address.clone()).collect()
    }

    /// Replaces replica `i` (already stopped or killed) with a fresh process on the same database.
    fn restart(&mut self, i: usize) {
        let (_, path) = workdir();
        self.servers[i] = Server::start(&path, &vars(&self.env));
    }

    fn sql(&self, query: &str) -> Vec<Vec<Option<String>>> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(pg_support::query(&self.schema.url, query))
    }
}

#[test]
fn replicas_started_at_the_same_instant_on_an_empty_database_apply_each_migration_once() {
    let Some(replicas) = Replicas::start("tasky_replicas_migrate", &[]) else {
        return;
    };
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/postgres"))
        .unwrap()
        .count();
    let mut applied = Vec::new();
    for server in &replicas.servers {
        assert_eq!(
            send(&server.address, "GET", "/healthz", &[], None)
                .expect("health")
                .status,
            200
        );
        let log = server.log();
        // Up at the first try: no process found the schema half made by another and had to try again.
        assert!(
            !log.iter().any(|line| line.contains("retrying")),
            "{}",
            log.join("\n")
        );
        applied.extend(
            log.into_iter()
                .filter_map(|line| Some(line.split_once("applied migration ")?.1.to_owned())),
        );
    }
    applied.sort();
    assert_eq!(applied.len(), migrations, "each applied once: {applied:?}");
    applied.dedup();
    assert_eq!(applied.len(), migrations, "each applied once: {applied:?}");
    let history = replicas.sql("SELECT count(*) FROM refinery_schema_history");
    assert_eq!(
        history[0][0].as_deref(),
        Some(migrations.to_string().as_str())
    );
}

#[test]
fn a_token_issued_by_one_replica_works_on_every_other() {
    let Some(replicas) = Replicas::start("tasky_replicas_token", &[]) else {
        return;
    };
    let token = user(replicas.address(0), "roamer");
    let body = json!({"title": "written on replica 1"}).to_string();
    let created = authorized(replicas.address(1), &token, "POST", "/tasks", Some(&body)).unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let path = format!("/tasks/{}", created.json()["id"]);
    for i in 0..REPLICAS {
        let me = authorized(replicas.address(i), &token, "GET", "/users/me", None).unwrap();
        assert_eq!(me.status, 200, "replica {i}: {}", me.body);
        assert_eq!(me.json()["username"], "roamer");
        let task = authorized(replicas.address(i), &token, "GET", &path, None).unwrap();
        assert_eq!(task.json(), created.json(), "replica {i}");
    }
}

/// Runs `request(replica)` once on each replica at the same instant, and returns the statuses in replica order.
fn at_once_on_every_replica(
    replicas: &Replicas,
    request: impl Fn(&str) -> Answer + Send + Sync + 'static,
) -> Vec<u16> {
    let request = Arc::new(request);
    let barrier = Arc::new(Barrier::new(REPLICAS));
    let sent: Vec<_> = replicas
        .addresses()
        .into_iter()
        .map(|address| {
            let (request, barrier) = (request.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                request(&address).status
            })
        })
        .collect();
    sent.into_iter().map(|s| s.join().unwrap()).collect()
}

#[test]
fn of_concurrent_deletes_sent_to_different_replicas_exactly_one_gets_204() {
    let Some(replicas) = Replicas::start("tasky_replicas_delete", &[]) else {
        return;
    };
    let token = user(replicas.address(0), "deleter");
    for round in 0..15 {
        let body = json!({"title": format!("doomed {round}")}).to_string();
        let created = authorized(
            replicas.address(round),
            &token,
            "POST",
            "/tasks",
            Some(&body),
        );
        let path = format!("/tasks/{}", created.unwrap().json()["id"]);
        let token = token.clone();
        let mut statuses = at_once_on_every_replica(&replicas, move |address| {
            authorized(address, &token, "DELETE", &path, None).expect("answer")
        });
        statuses.sort_unstable();
        assert_eq!(statuses, [204, 404, 404], "round {round}");
    }
}

#[test]
fn a_signup_race_spread_over_replicas_has_exactly_one_201() {
    let Some(replicas) = Replicas::start("tasky_replicas_signup", &[]) else {
        return;
    };
    for round in 0..10 {
        let mut statuses = at_once_on_every_replica(&replicas, move |address| {
            // The same name in another case on each replica: names are unique ignoring case.
            let port = address.rsplit(':').next().unwrap().parse::<u32>().unwrap();
            let name = if port % 2 == 0 {
                format!("Racer{round}")
            } else {
                format!("racer{round}")
            };
            let body = json!({"username": name, "password": PASSWORD}).to_string();
            send(
                address,
                "POST",
                "/signup",
                &[],
                Some(("application/json", &body)),
            )
            .expect("answer")
        });
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409, 409], "round {round}");
    }
    let users = replicas.sql("SELECT count(*) FROM users");
    assert_eq!(users[0][0].as_deref(), Some("10"));
}

#[test]
fn concurrent_puts_on_different_replicas_each_land_whole() {
    let Some(replicas) = Replicas::start("tasky_replicas_put", &[]) else {
        return;
    };
    let token = user(replicas.address(0), "writer");
    let body = json!({"title": "contested"}).to_string();
    let created = authorized(replicas.address(0), &token, "POST", "/tasks", Some(&body)).unwrap();
    let path = format!("/tasks/{}", created.json()["id"]);
    let version = |i: usize| {
        json!({
            "title": format!("version {i}"),
            "description": format!("description of version {i}"),
            "status": if i.is_multiple_of(2) { "pending" } else { "completed" },
        })
    };
    for round in 0..15 {
        let counter = Arc::new(AtomicUsize::new(round * REPLICAS));
        let (put_token, put_path) = (token.clone(), path.clone());
        let statuses = at_once_on_every_replica(&replicas, move |address| {
            let i = counter.fetch_add(1, Ordering::Relaxed);
            let body = version(i).to_string();
            authorized(address, &put_token, "PUT", &put_path, Some(&body)).expect("answer")
        });
        assert_eq!(statuses, [200; REPLICAS], "round {round}");
        let stored = authorized(replicas.address(round + 1), &token, "GET", &path, None)
            .unwrap()
            .json();
        let whole = (round * REPLICAS..(round + 1) * REPLICAS).any(|i| {
            let v = version(i);
            stored["title"] == v["title"]
                && stored["description"] == v["description"]
                && stored["status"] == v["status"]
        });
        assert!(
            whole,
            "round {round}: fields of different PUTs mixed: {stored}"
        );
    }
}

/// A failed login for `username` sent to `address` from the loopback address `client`; the status.
fn failed_login(address: &str, client: &str, username: &str) -> u16 {
    login_from(client, address, (username, "wrong password"), &[])
}

#[test]
fn failed_logins_spread_round_robin_over_replicas_share_one_limit_that_outlives_a_restart() {
    // A limit of 3 drains one attempt each 20 s: the test cannot outlast it.
    let Some(mut replicas) = Replicas::start("tasky_replicas_limit", &[("LOGIN_RATE_LIMIT", "3")])
    else {
        return;
    };
    user(replicas.address(0), "target");
    // Three failures, one on each process, then the fourth is refused on whichever process gets it.
    for attempt in 0..3 {
        let status = failed_login(replicas.address(attempt), "127.0.0.31", "target");
        assert_eq!(status, 401, "attempt {attempt}");
    }
    for i in 0..REPLICAS {
        let status = failed_login(replicas.address(3 + i), "127.0.0.31", "TARGET");
        assert_eq!(status, 429, "replica {i}");
    }
    // A restarted process has not forgotten.
    replicas.servers[0].signal("KILL");
    let _ = replicas.servers[0].wait(Duration::from_secs(10));
    replicas.restart(0);
    assert_eq!(
        failed_login(replicas.address(0), "127.0.0.31", "target"),
        429
    );
    // Another client address has its own count.
    assert_eq!(
        failed_login(replicas.address(0), "127.0.0.32", "target"),
        401
    );
}

#[test]
fn behind_nginx_failed_logins_hit_429_at_the_limit_whichever_replica_serves_them() {
    let Some(replicas) = Replicas::start(
        "tasky_replicas_nginx",
        &[("LOGIN_RATE_LIMIT", "3"), ("TRUST_PROXY", "X-Real-IP")],
    ) else {
        return;
    };
    let upstreams = replicas.addresses();
    let upstreams: Vec<&str> = upstreams.iter().map(String::as_str).collect();
    let Some(nginx) = Nginx::start(&upstreams) else {
        return;
    };
    user(replicas.address(0), "proxied");
    for attempt in 0..3 {
        let status = failed_login(&nginx.address, "127.0.0.41", "proxied");
        assert_eq!(status, 401, "attempt {attempt}");
    }
    for attempt in 0..REPLICAS {
        let status = failed_login(&nginx.address, "127.0.0.41", "proxied");
        assert_eq!(status, 429, "attempt {}", 3 + attempt);
    }
    assert_eq!(failed_login(&nginx.address, "127.0.0.42", "proxied"), 401);
    // nginx did spread them: every replica logged one of the refusals of 127.0.0.41.
    for server in &replicas.servers {
        server.await_log(r#"127.0.0.41 "POST /token HTTP/1.0" 4"#);
    }
}

#[test]
fn kill_9_of_one_replica_under_load_loses_no_acknowledged_write_and_the_others_go_on() {
    let Some(mut replicas) = Replicas::start("tasky_replicas_kill", &[]) else {
        return;
    };
    let tokens: Vec<String> = (0..3)
        .map(|i| user(replicas.address(i), &format!("spread{i}")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Vec<Arc<AtomicUsize>> = (0..REPLICAS).map(|_| Arc::default()).collect();
    // Four writers per replica.
    let writers: Vec<_> = (0..REPLICAS)
        .map(|i| {
            create_until(
                replicas.address(i),
                &tokens,
                4,
                &format!("replica {i}"),
                (&stop, &acked[i]),
            )
        })
        .collect();
    for count in &acked {
        await_count(count, 20);
    }
    replicas.servers[0].signal("KILL");
    let _ = replicas.servers[0].wait(Duration::from_secs(10));
    // The others go on: each acknowledges more writes after the kill.
    for count in &acked[1..] {
        let now = count.load(Ordering::Relaxed);
        await_count(count, now + 20);
    }
    stop.store(true, Ordering::Relaxed);
    let answered: Vec<(usize, Value)> = writers
        .into_iter()
        .flatten()
        .flat_map(|writer| writer.join().expect("writer"))
        .collect();
    assert_all_kept(replicas.address(1), &tokens, &answered);
    replicas.restart(0);
    assert_all_kept(replicas.address(0), &tokens, &answered);
}

#[test]
fn sigterm_of_one_replica_behind_nginx_loses_no_request_and_the_others_go_on() {
    let Some(mut replicas) = Replicas::start("tasky_replicas_sigterm", &[]) else {
        return;
    };
    let upstreams = replicas.addresses();
    let upstreams: Vec<&str> = upstreams.iter().map(String::as_str).collect();
    let Some(nginx) = Nginx::start(&upstreams) else {
        return;
    };
    let token = user(&nginx.address, "steady");
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    // Every answer that was not a 201, with what it said.
    let broken = Arc::new(Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..12)
        .map(|t| {
            let (address, token) = (nginx.address.clone(), token.clone());
            let (stop, acked, broken, answered) = (
                stop.clone(),
                acked.clone(),
                broken.clone(),
                answered.clone(),
            );
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"title": format!("client {t} task {n}")}).to_string();
                    match authorized(&address, &token, "POST", "/tasks", Some(&body)) {
                        Ok(answer) if answer.status == 201 => {
                            answered.lock().unwrap().push((0, answer.json()));
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        other => broken.lock().unwrap().push(format!("{other:?}")),
                    }
                    n += 1;
                }
            })
        })
        .collect();
    await_count(&acked, 100);
    let mut stopped = replicas.servers.remove(0);
    stopped.signal("TERM");
    let status = stopped.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let after = acked.load(Ordering::Relaxed);
    await_count(&acked, after + 100);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let broken = broken.lock().unwrap().clone();
    assert!(
        broken.is_empty(),
        "{} requests lost of {}: {:?}\nnginx: {}",
        broken.len(),
        acked.load(Ordering::Relaxed) + broken.len(),
        &broken[..broken.len().min(5)],
        nginx.error_log()
    );
    // The stopped replica served its share until the signal, and no more.
    assert!(
        stopped
            .log()
            .iter()
            .any(|line| line.contains(r#""POST /tasks HTTP/1.0" 201"#))
    );
    let answered = answered.lock().unwrap().clone();
    assert_all_kept(replicas.address(0), &[token], &answered);
}

#[test]
fn a_logout_on_one_replica_is_in_force_on_every_other_for_the_very_next_request() {
    let Some(replicas) = Replicas::start("tasky_replicas_logout", &[]) else {
        return;
    };
    user(replicas.address(0), "leaver");
    let form = format!("username=leaver&password={}", PASSWORD.replace(' ', "+"));
    let login = send(
        replicas.address(0),
        "POST",
        "/token",
        &[],
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .unwrap()
    .json();
    let (token, refresh) = (
        login["access_token"].as_str().unwrap(),
        login["refresh_token"].as_str().unwrap(),
    );
    for i in 0..REPLICAS {
        let me = authorized(replicas.address(i), token, "GET", "/users/me", None).unwrap();
        assert_eq!(me.status, 200, "replica {i}");
    }
    let out = authorized(replicas.address(1), token, "POST", "/logout", None).unwrap();
    assert_eq!(out.status, 204);
    for i in [2, 0] {
        let me = authorized(replicas.address(i), token, "GET", "/users/me", None).unwrap();
        assert_eq!(me.status, 401, "replica {i}: {}", me.body);
        assert_eq!(me.json()["detail"], "Could not validate credentials");
        let form = format!("grant_type=refresh_token&refresh_token={refresh}");
        let refreshed = send(
            replicas.address(i),
            "POST",
            "/token",
            &[],
            Some(("application/x-www-form-urlencoded", &form)),
        )
        .unwrap();
        assert_eq!(refreshed.status, 401, "replica {i}: {}", refreshed.body);
    }
}
