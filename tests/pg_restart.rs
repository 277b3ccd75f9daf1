//! PostgreSQL restarted under load on three replicas: requests that need it answer 503 with a `detail` within
//! 10 s (never a 500, never a hang), every replica recovers by itself once the server is back, and every write
//! acknowledged by any of them is there. It takes the server away from everything using it, so it is a test binary of its own (cargo runs
//! test binaries one after another). Runs with `TASKY_TEST_DATABASE_URL` and `TASKY_TEST_PG_RESTART`, a shell
//! command that restarts that server (`.ci/run` sets both); skipped, with one line saying so, without them.

#[path = "process/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "support/postgres.rs"]
mod pg_support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use client::{Failure, Server, assert_all_kept, authorized, await_count, user, workdir};

const REPLICAS: usize = 3;

#[test]
fn postgres_restarted_under_load_gives_503s_then_every_replica_recovers_and_nothing_is_lost() {
    let Some(server_url) = pg_support::url_or_skip("tests/pg_restart") else {
        return;
    };
    let Some(restart) = std::env::var("TASKY_TEST_PG_RESTART")
        .ok()
        .filter(|c| !c.is_empty())
    else {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: tests/pg_restart needs TASKY_TEST_PG_RESTART, a command that restarts the PostgreSQL server \
             of TASKY_TEST_DATABASE_URL (e.g. 'pg_ctlcluster 15 main restart')"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let schema = runtime.block_on(pg_support::Schema::create(&server_url));
    let (_dir, path) = workdir();
    let replicas: Vec<Server> = (0..REPLICAS)
        .map(|_| Server::start(&path, &[("DATABASE_URL", schema.url.as_str())]))
        .collect();
    let tokens: Vec<String> = (0..2)
        .map(|i| user(&replicas[i].address, &format!("restart{i}")))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    // Writes acknowledged, by each replica.
    let acked: Arc<Vec<AtomicUsize>> =
        Arc::new((0..REPLICAS).map(|_| AtomicUsize::new(0)).collect());
    let answered = Arc::new(Mutex::new(Vec::new()));
    // Every answer's status and how long it took, and every answer that broke the rules.
    let seen = Arc::new(Mutex::new((Vec::<u16>::new(), Vec::<String>::new())));
    // Three clients per replica: one reading, two writing.
    let clients: Vec<_> = (0..3 * REPLICAS)
        .map(|t| {
            let replica = t % REPLICAS;
            let (address, tokens) = (replicas[replica].address.clone(), tokens.clone());
            let (stop, acked, answered, seen) =
                (stop.clone(), acked.clone(), answered.clone(), seen.clone());
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let owner = (t + n) % tokens.len();
                    let started = Instant::now();
                    let result = if t < REPLICAS {
                        authorized(&address, &tokens[owner], "GET", "/tasks?limit=5", None)
                    } else {
                        let body = json!({"title": format!("restart {t} {n}")}).to_string();
                        authorized(&address, &tokens[owner], "POST", "/tasks", Some(&body))
                    };
                    let took = started.elapsed();
                    let mut seen = seen.lock().unwrap();
                    match result {
                        Ok(answer) => {
                            seen.0.push(answer.status);
                            if answer.status == 201 {
                                answered.lock().unwrap().push((owner, answer.json()));
                                acked[replica].fetch_add(1, Ordering::Relaxed);
                            }
                            let shape_ok = match answer.status {
                                200 | 201 => true,
                                503 => answer.json()["detail"].is_string(),
                                _ => false,
                            };
                            if !shape_ok {
                                seen.1.push(format!("{} {}", answer.status, answer.body));
                            }
                        }
                        Err(Failure::Refused) | Err(Failure::Incomplete(_)) => {
                            seen.1.push(format!("no answer: {result:?}"))
                        }
                    }
                    if took > Duration::from_secs(11) {
                        seen.1.push(format!("an answer took {took:?}"));
                    }
                    n += 1;
                }
            })
        })
        .collect();

    for count in acked.iter() {
        await_count(count, 10);
    }
    let status = std::process::Command::new("sh")
        .args(["-c", &restart])
        .status()
        .expect("run TASKY_TEST_PG_RESTART");
    assert!(status.success(), "{restart}: {status}");
    // Every replica recovered by itself, under the same load: more writes acknowledged after the restart.
    for count in acked.iter() {
        let after = count.load(Ordering::Relaxed);
        await_count(count, after + 10);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }

    let (statuses, broken) = seen.lock().unwrap().clone();
    assert!(
        broken.is_empty(),
        "answers that broke the rules: {broken:?}"
    );
    let unavailable = statuses.iter().filter(|s| **s == 503).count();
    let _ = writeln!(
        std::io::stderr(),
        "pg_restart: {} answers, {unavailable} of them 503 while PostgreSQL restarted",
        statuses.len()
    );
    let answered = answered.lock().unwrap().clone();
    for replica in &replicas {
        assert_all_kept(&replica.address, &tokens, &answered);
    }
}
