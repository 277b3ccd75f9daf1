//! What the service keeps through kill -9, SIGTERM under load, many writers at once, and storage taken away.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::*;

#[test]
fn every_task_answered_201_survives_kill_9_under_load() {
    kill_9_under_load(&[]);
}

/// Three rounds of eight writers, each round ended by kill -9 once some creates were answered, the binary
/// started again on the same database (`vars`) after each: every create answered 201 is there, intact.
pub fn kill_9_under_load(vars: &[(&str, &str)]) {
    let (_dir, path) = workdir();
    let mut server = Server::start(&path, vars);
    let tokens: Vec<String> = (0..3)
        .map(|i| user(&server.address, &format!("crash{i}")))
        .collect();
    let mut answered: Vec<(usize, Value)> = Vec::new();
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let writers = create_until(
            &server.address,
            &tokens,
            8,
            &format!("round {round}"),
            (&stop, &acked),
        );
        // Killed mid-load: once this round's writers have had some creates answered.
        await_count(&acked, 20 + 10 * round);
        server.signal("KILL");
        let _ = server.wait(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            answered.extend(writer.join().expect("writer thread"));
        }
        server = Server::start(&path, vars);
    }
    assert!(
        answered.len() >= 60,
        "the load was real: {} creates answered",
        answered.len()
    );
    assert_all_kept(&server.address, &tokens, &answered);
}

#[test]
fn sigterm_under_load_answers_every_accepted_request_and_exits_zero_promptly() {
    let (_dir, path) = workdir();
    let mut server = Server::start(&path, &[]);
    let token = user(&server.address, "draining");
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new((0usize, 0usize, Vec::<String>::new())));
    let clients: Vec<_> = (0..8)
        .map(|t| {
            let (address, token, stop, outcomes) = (
                server.address.clone(),
                token.clone(),
                stop.clone(),
                outcomes.clone(),
            );
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let result = if n % 3 == 0 {
                        authorized(&address, &token, "GET", "/tasks?limit=50", None)
                    } else {
                        let body = json!({"title": format!("drain {t} {n}")}).to_string();
                        authorized(&address, &token, "POST", "/tasks", Some(&body))
                    };
                    let mut outcomes = outcomes.lock().unwrap();
                    match result {
                        Ok(answer) if [200, 201].contains(&answer.status) => outcomes.0 += 1,
                        Ok(answer) => outcomes
                            .2
                            .push(format!("status {}: {}", answer.status, answer.body)),
                        Err(Failure::Refused) => outcomes.1 += 1,
                        Err(Failure::Incomplete(why)) => outcomes.2.push(why),
                    }
                    n += 1;
                }
            })
        })
        .collect();
    // Stopped mid-load: once the clients have had some answers.
    let start = Instant::now();
    while outcomes.lock().unwrap().0 < 60 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no load after 30 s"
        );
        thread::sleep(Duration::from_millis(5));
    }
    server.signal("TERM");
    let signalled = Instant::now();
    let status = server.wait(Duration::from_secs(20));
    let stop_time = signalled.elapsed();
    // The clients go on until one of them has been refused by the stopped server.
    let start = Instant::now();
    while outcomes.lock().unwrap().1 == 0 && start.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }
    let (answered, refused, broken) = outcomes.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0));
    // Well inside the 20 s drain limit: reaching it would mean a request or connection held the stop up.
    assert!(
        stop_time < Duration::from_secs(15),
        "stopped in {stop_time:?}"
    );
    assert!(answered > 50, "the load was real: {answered} answered");
    assert!(refused > 0, "connections after the stop are refused");
    assert!(
        broken.is_empty(),
        "every request the server took was answered whole: {broken:?}"
    );
}

#[test]
fn two_hundred_concurrent_writers_all_succeed_and_every_write_is_kept() {
    let (_dir, path) = workdir();
    let server = Server::start(&path, &[]);
    let tokens: Vec<String> = (0..20)
        .map(|i| user(&server.address, &format!("writer{i}")))
        .collect();
    let start = Arc::new(std::sync::Barrier::new(200));
    let writers: Vec<_> = (0..200)
        .map(|t| {
            let (address, token, start) = (
                server.address.clone(),
                tokens[t % 20].clone(),
                start.clone(),
            );
            thread::spawn(move || {
                start.wait();
                (0..5)
                    .map(|n| {
                        let body = json!({"title": format!("writer {t} write {n}")}).to_string();
                        match authorized(&address, &token, "POST", "/tasks", Some(&body)) {
                            Ok(answer) => (answer.status, answer.body),
                            Err(failure) => (0, format!("{failure:?}")),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(u16, String)> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    let failures: Vec<&(u16, String)> = results
        .iter()
        .filter(|(status, _)| *status != 201)
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 1000 writes failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    for token in &tokens {
        assert_eq!(all_tasks(&server.address, token).len(), 50);
    }
    let log = server.log().join("\n");
    assert!(!log.to_lowercase().contains("locked"), "{log}");
}

fn create(address: &str, token: &str, title: &str) -> Answer {
    authorized(
        address,
        token,
        "POST",
        "/tasks",
        Some(&json!({"title": title}).to_string()),
    )
    .expect("answer")
}

fn health(address: &str) -> Answer {
    send(address, "GET", "/healthz", &[], None).expect("answer")
}

fn assert_unavailable(answer: &Answer) {
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.json()["detail"].is_string(), "{}", answer.body);
}

#[test]
fn a_read_only_database_file_refuses_writes_with_503_until_it_is_writable_again() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = workdir();
    let server = Server::start(&path, &[]);
    let token = user(&server.address, "readonly");
    let file = path.join("tasky.db");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    assert_unavailable(&create(&server.address, &token, "refused"));
    assert_unavailable(&health(&server.address));
    let listed = authorized(&server.address, &token, "GET", "/tasks", None).unwrap();
    assert_eq!(listed.status, 200, "reads go on");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(health(&server.address).status, 200);
    assert_eq!(create(&server.address, &token, "accepted").status, 201);
    let titles: Vec<Value> = all_tasks(&server.address, &token)
        .iter()
        .map(|t| t["title"].clone())
        .collect();
    assert_eq!(
        titles,
        [json!("accepted")],
        "the refused write changed nothing"
    );
    assert!(!server.log().join("\n").contains("panicked"));
}

#[test]
fn a_removed_database_file_refuses_writes_until_it_is_back() {
    let (_dir, path) = workdir();
    let server = Server::start(&path, &[]);
    let token = user(&server.address, "removed");
    assert_eq!(create(&server.address, &token, "before").status, 201);
    let (file, aside) = (path.join("tasky.db"), path.join("aside.db"));
    std::fs::rename(&file, &aside).unwrap();
    assert_unavailable(&create(&server.address, &token, "while gone"));
    assert_unavailable(&health(&server.address));
    // Enough reads at once that the pool opens new connections: they must not create an empty file in its
    // place, and no read may fail with a 500.
    let reads: Vec<_> = (0..24)
        .map(|_| {
            let (address, token) = (server.address.clone(), token.clone());
            thread::spawn(move || authorized(&address, &token, "GET", "/tasks", None).unwrap())
        })
        .collect();
    for read in reads {
        let answer = read.join().unwrap();
        assert!(
            [200, 503].contains(&answer.status),
            "{} {}",
            answer.status,
            answer.body
        );
    }
    assert!(!file.exists(), "a connection created a new database file");
    std::fs::rename(&aside, &file).unwrap();
    assert_eq!(health(&server.address).status, 200);
    assert_eq!(create(&server.address, &token, "after").status, 201);
    let titles: Vec<Value> = all_tasks(&server.address, &token)
        .iter()
        .map(|t| t["title"].clone())
        .collect();
    assert_eq!(titles, [json!("after"), json!("before")]);
}

#[test]
fn a_database_file_replaced_by_a_copy_is_reopened() {
    let (_dir, path) = workdir();
    let server = Server::start(&path, &[]);
    let token = user(&server.address, "replaced");
    assert_eq!(create(&server.address, &token, "in the copy").status, 201);
    // A consistent copy (the log included), as a backup tool makes one.
    let (file, backup) = (path.join("tasky.db"), path.join("backup.db"));
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_unavailable(&create(&server.address, &token, "while gone"));
    assert_unavailable(&health(&server.address));
    std::fs::copy(&backup, &file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answer = create(&server.address, &token, "after");
    while answer.status == 503 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        answer = create(&server.address, &token, "after");
    }
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(health(&server.address).status, 200);
    let titles: Vec<Value> = all_tasks(&server.address, &token)
        .iter()
        .map(|t| t["title"].clone())
        .collect();
    assert_eq!(titles, [json!("after"), json!("in the copy")]);
}
