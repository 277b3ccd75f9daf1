//! The serve loop's limits on a real socket: clients that send nothing, or too slowly, are let go.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tasky::config::Config;
use tasky::db::Db;
use tasky::server::{self, Limits};
use tasky::{AppState, api};

/// Serves the real api() on a loopback port with a 300 ms header timeout, on its own runtime thread.
fn serve_with_short_timeouts() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasky.db");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let config = Config {
                database_path: path,
                ..Config::default()
            };
            let db = Db::open(&config.database_path).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().to_string()).unwrap();
            let limits = Limits {
                header_read: Duration::from_millis(300),
                ..Limits::default()
            };
            server::serve(
                listener,
                api(AppState::new(&config, db)),
                limits,
                std::future::pending(),
            )
            .await;
        });
    });
    (rx.recv().unwrap(), dir)
}

/// Reads until the server closes the connection; returns what came and how long it took.
fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    (
        String::from_utf8_lossy(&received).into_owned(),
        start.elapsed(),
    )
}

#[test]
fn a_client_that_trickles_its_headers_is_disconnected() {
    let (address, _dir) = serve_with_short_timeouts();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    // One more byte of the header every 100 ms, for 10 s unless the server hangs up first: every byte arrives
    // well within the 300 ms limit, so only a limit on the whole header can end this early.
    let mut trickle = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            if trickle.write_all(b"a").is_err() {
                return;
            }
        }
    });
    let (received, waited) = read_until_closed(&mut stream);
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    assert!(
        !received.contains("200 OK"),
        "the request was never completed: {received:?}"
    );
}

#[test]
fn an_idle_connection_is_closed_and_a_silent_one_too() {
    let (address, _dir) = serve_with_short_timeouts();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (received, waited) = read_until_closed(&mut stream);
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(
        waited < Duration::from_secs(5),
        "the idle keep-alive connection was closed after {waited:?}"
    );

    let mut silent = TcpStream::connect(&address).unwrap();
    let (received, waited) = read_until_closed(&mut silent);
    assert!(received.is_empty());
    assert!(
        waited < Duration::from_secs(5),
        "a connection that never sends is closed after {waited:?}"
    );
}
