//! The `tasky` binary as a process: how it refuses to start, and how it stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary with a database in `dir` and a free port; `vars` are added to (or override) that.
fn tasky(dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tasky"));
    command
        .env_remove("RUST_LOG")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("DATABASE_PATH", dir.join("tasky.db"))
        .env("JWT_SECRET", "process-test-secret-process-test-secret")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Waits for the "listening on http://ADDR" log line and returns ADDR.
fn listening_address(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server logs its address before anything else ends")
            .expect("utf-8");
        if let Some((_, address)) = line.split_once("listening on http://") {
            break address.trim().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    address
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn a_bad_value_stops_the_start_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("PORT", "eighty"),
        ("HOST", "not-an-address"),
        ("TOKEN_TTL_MINUTES", "0"),
        ("DATABASE_PATH", ":memory:"),
        ("DATABASE_PATH", "/nonexistent-directory/for/tasky.db"),
        ("API_KEY", "has spaces"),
    ];
    for (var, value) in cases {
        let output = tasky(dir.path(), &[(var, value)])
            .output()
            .expect("run tasky");
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
fn a_port_in_use_stops_the_start_naming_port() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = tasky(dir.path(), &[("PORT", &port)])
        .output()
        .expect("run tasky");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("PORT: ")),
        "{stderr}"
    );
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tasky(dir.path(), &[]).spawn().expect("start tasky");
    let address = listening_address(&mut child);

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
    signal(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
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

    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigint_stops_an_idle_server_with_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tasky(dir.path(), &[]).spawn().expect("start tasky");
    let address = listening_address(&mut child);
    let mut idle = TcpStream::connect(&address).unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // The keep-alive connection is now idle; it must not hold the shutdown up.
    signal(&child, "INT");
    let status = wait_with_timeout(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}

/// Sends one HTTP/1.1 request with `Connection: close` and returns the whole answer.
fn exchange(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn post(address: &str, path: &str, content_type: &str, body: &str) -> String {
    exchange(
        address,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn a_write_answered_2xx_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = tasky(dir.path(), &[]).spawn().expect("start tasky");
    let address = listening_address(&mut first);
    let signup = r#"{"username": "durable", "password": "survives kill -9"}"#;
    let answer = post(&address, "/signup", "application/json", signup);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    signal(&first, "KILL");
    let _ = first.wait();

    let mut second = tasky(dir.path(), &[]).spawn().expect("restart tasky");
    let address = listening_address(&mut second);
    let login = "username=durable&password=survives+kill+-9";
    let answer = post(
        &address,
        "/token",
        "application/x-www-form-urlencoded",
        login,
    );
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the signup answered 201 must still be there: {answer}"
    );
    signal(&second, "TERM");
    assert_eq!(
        wait_with_timeout(&mut second, Duration::from_secs(10)).code(),
        Some(0)
    );
}
