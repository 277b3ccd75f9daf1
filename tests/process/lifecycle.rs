//! Starting and stopping.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::client::*;

#[test]
fn a_bad_value_stops_the_start_with_one_line_naming_the_variable() {
    let (_dir, path) = workdir();
    let cases = [
        ("PORT", "eighty"),
        ("HOST", "not-an-address"),
        ("TOKEN_TTL_MINUTES", "0"),
        ("REFRESH_TOKEN_TTL_DAYS", "0"),
        ("JWT_SECRET_PREVIOUS", "only-twenty-six-bytes-long"),
        ("DATABASE_PATH", ":memory:"),
        ("DATABASE_PATH", "/nonexistent-directory/for/tasky.db"),
        ("API_KEY", "has spaces"),
        ("JWT_SECRET", "only-twenty-six-bytes-long"),
        ("CORS_ORIGINS", "not-an-origin"),
        ("LOGIN_RATE_LIMIT", "lots"),
        ("TRUST_PROXY", "perhaps?"),
    ];
    for (var, value) in cases {
        let output = tasky(&path, &[(var, value)]).output().expect("run tasky");
        assert_eq!(output.status.code(), Some(1), "{var}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{var}={value}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("{var}: ")),
            "{var}={value}: {stderr}"
        );
    }
}

#[test]
fn a_malformed_database_url_stops_the_start_without_showing_its_password() {
    let (_dir, path) = workdir();
    let secret = ("JWT_SECRET", "process-test-secret-process-test-secret");
    for url in [
        "mysql://tasky:hunter2@db.example.com/tasky",
        "postgres://tasky:hunter2@db.example.com:notaport/tasky",
        "postgres://tasky:hunter2@db.example.com/tasky?sslmode=sometimes",
    ] {
        let output = tasky(&path, &[("DATABASE_URL", url), secret])
            .output()
            .expect("run tasky");
        assert_eq!(output.status.code(), Some(1), "{url}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("DATABASE_URL: "), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{url}: {stderr}");
    }
    let output = tasky(&path, &[("DATABASE_URL", "postgres://localhost/tasky")])
        .env_remove("JWT_SECRET")
        .output()
        .expect("run tasky");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("JWT_SECRET: "));
}

#[test]
fn an_unreachable_postgres_is_retried_for_30_s_then_the_start_fails_with_one_line() {
    let (_dir, path) = workdir();
    // A port nothing listens on: every attempt is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "postgres://tasky:hunter2@127.0.0.1:{}/tasky",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let started = Instant::now();
    let output = tasky(&path, &[("DATABASE_URL", url.as_str())])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tasky");
    let waited = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        waited >= Duration::from_secs(29),
        "gave up after {waited:?}"
    );
    assert!(
        stderr.matches("PostgreSQL is not ready, retrying").count() >= 10,
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("DATABASE_URL: "), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn an_address_in_use_or_missing_names_port_or_host() {
    let (_dir, path) = workdir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for (vars, var) in [
        (vec![("PORT", port.as_str())], "PORT"),
        (vec![("HOST", "192.0.2.123")], "HOST"),
    ] {
        let output = tasky(&path, &vars).output().expect("run tasky");
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with(&format!("{var}: ")), "{stderr}");
    }
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_zero() {
    let (_dir, path) = workdir();
    let mut server = Server::start(&path, &[]);
    let address = server.address.clone();

    // A signup whose body is still on its way when the signal arrives.
    let body = br#"{"username": "slowpoke", "password": "long enough password"}"#;
    let mut stream = TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST /signup HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the process must wait for the request in flight"
    );

    stream.write_all(&body[10..]).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains(r#""username":"slowpoke""#), "{answer}");
    assert_eq!(server.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn sigint_stops_an_idle_server_with_exit_zero() {
    let (_dir, path) = workdir();
    let mut server = Server::start(&path, &[]);
    let mut idle = TcpStream::connect(&server.address).unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.address).as_bytes())
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // The keep-alive connection is now idle; it must not hold the shutdown up.
    server.signal("INT");
    assert_eq!(server.wait(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn a_clean_stop_leaves_every_write_in_the_database_file_itself() {
    let (_dir, path) = workdir();
    let server = Server::start(&path, &[]);
    let token = user(&server.address, "tidy");
    let answer = authorized(
        &server.address,
        &token,
        "POST",
        "/tasks",
        Some(r#"{"title": "kept"}"#),
    )
    .unwrap();
    assert_eq!(answer.status, 201);
    assert_eq!(server.stop().code(), Some(0));
    // Copy the main file alone, as a naive backup would, and read it.
    let copy = path.join("copy.db");
    std::fs::copy(path.join("tasky.db"), &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let titles: i64 = conn
        .query_row("SELECT count(*) FROM tasks WHERE title = 'kept'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(titles, 1);
}
