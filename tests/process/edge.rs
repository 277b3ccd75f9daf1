//! The serve loop's edge on real sockets: malformed requests, slow and silent clients, clients that stop reading,
//! one address holding many connections, early answers, percent-encoded paths. The server is the library's own
//! loop with short limits, so every rule is seen in well under a second of its limit.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tasky::config::{Config, DatabaseConfig, TrustProxy};
use tasky::server::{self, Limits};
use tasky::store::Store;
use tasky::{AppState, api};

use crate::client::{self, Answer, connect_from, read_answer, send};

/// A server of the real api() on a loopback port, on its own runtime thread.
struct Edge {
    address: String,
    _dir: tempfile::TempDir,
}

const SHORT: Limits = Limits {
    header_read: Duration::from_millis(500),
    write_stall: Duration::from_millis(500),
    linger: Duration::from_secs(5),
    max_connections: 64,
    per_address: 8,
    drain: Duration::from_secs(5),
};

fn serve(limits: Limits) -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasky.db");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let config = Config {
                database: DatabaseConfig::Sqlite(path),
                api_key: client::API_KEY.into(),
                jwt_secret: Some("edge-test-secret-edge-test-secret-0123".into()),
                ..Config::default()
            };
            let db = Store::connect(&config.database).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().to_string()).unwrap();
            let app = api(AppState::new(&config, db));
            server::serve(
                listener,
                app,
                limits,
                TrustProxy::No,
                std::future::pending(),
            )
            .await;
        });
    });
    Edge {
        address: rx.recv().unwrap(),
        _dir: dir,
    }
}

/// A connection to `address` whose reads give up after 10 s, so a server that never answers fails the test.
fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `bytes` on a fresh connection and reads the one answer, until the server closes.
fn exchange(address: &str, bytes: &[u8]) -> Answer {
    let mut stream = connect(address);
    stream.write_all(bytes).unwrap();
    read_answer(&mut stream).unwrap_or_else(|e| {
        panic!(
            "{e:?} for {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        )
    })
}

/// The answer to a request refused before any route ran: the status, `{"detail": <reason>}`, `nosniff`, and the
/// connection closing.
fn assert_refused(answer: &Answer, status: u16, detail: &str, case: &str) {
    assert_eq!(answer.status, status, "{case}: {answer:?}");
    assert_eq!(
        answer.json(),
        serde_json::json!({ "detail": detail }),
        "{case}"
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{case}"
    );
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{case}"
    );
    assert_eq!(answer.header("connection"), Some("close"), "{case}");
}

#[test]
fn every_request_the_http_layer_refuses_gets_a_json_detail() {
    // A head limit that a loaded machine sending half a megabyte of header cannot meet by accident.
    let edge = serve(Limits {
        header_read: Duration::from_secs(30),
        ..SHORT
    });
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..120)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let large_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "v".repeat(500_000)
    );
    let cases: [(&str, &[u8], u16, &str); 11] = [
        ("conflicting lengths", b"POST /signup HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "Bad Request"),
        ("a coding before chunked", b"POST /signup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, "Bad Request"),
        ("chunked not last", b"POST /signup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400, "Bad Request"),
        ("an obs-folded header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", 400, "Bad Request"),
        ("a bad request line", b"BAD\r\n\r\n", 400, "Bad Request"),
        ("a bad version", b"GET /healthz HTTP/1.7\r\nHost: x\r\n\r\n", 400, "Bad Request"),
        ("a control character in the target", b"GET /hea\x01lthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad Request"),
        ("a control character in a header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "Bad Request"),
        ("a target too long", long_target.as_bytes(), 414, "URI Too Long"),
        ("too many headers", many_headers.as_bytes(), 431, "Request Header Fields Too Large"),
        ("a header too large", large_header.as_bytes(), 431, "Request Header Fields Too Large"),
    ];
    for (case, bytes, status, detail) in cases {
        assert_refused(&exchange(&edge.address, bytes), status, detail, case);
    }
}

#[test]
fn a_length_beside_chunked_is_ignored_and_the_connection_closes_after() {
    let edge = serve(SHORT);
    // The chunked body is empty; a length of 5 would have read "0\r\n\r\n" as a body of five bytes.
    let answer = exchange(
        &edge.address,
        b"POST /signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.json()["detail"][0]["type"], "missing");
    assert_eq!(answer.header("connection"), Some("close"));
}

#[test]
fn a_head_not_complete_in_time_gets_408() {
    let edge = serve(SHORT);
    let mut stream = connect(&edge.address);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    // One more byte of the header every 100 ms, for 10 s unless the server answers first: every byte arrives
    // well within the 500 ms limit, so only a limit on the whole head can end this early.
    let mut trickle = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            if trickle.write_all(b"a").is_err() {
                return;
            }
        }
    });
    let start = Instant::now();
    let answer = read_answer(&mut stream).expect("an answer, then the close");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        start.elapsed()
    );
    assert_refused(&answer, 408, "Request Timeout", "a trickled head");
}

#[test]
fn idle_and_silent_connections_are_closed_without_an_answer() {
    let edge = serve(SHORT);
    let mut stream = connect(&edge.address);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_answer(&mut stream).expect("the answer, then the close");
    assert_eq!(
        answer.status, 200,
        "the idle keep-alive connection was closed after its one answer"
    );

    let mut silent = connect(&edge.address);
    let mut received = Vec::new();
    silent
        .read_to_end(&mut received)
        .expect("closed, not timed out");
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
}

#[test]
fn a_client_that_stops_reading_loses_its_connection_while_others_are_served() {
    let edge = serve(SHORT);
    let mut greedy = TcpStream::connect(&edge.address).unwrap();
    // 40 answers of 1.5 MB each: far more than the socket buffers of both ends hold, and never read.
    let request = b"GET /docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..40 {
        greedy.write_all(request).unwrap();
    }
    let served = send(&edge.address, "GET", "/healthz", &[], None).expect("another client");
    assert_eq!(served.status, 200);

    // The server abandons the connection once its answer has made no progress for the stall limit; the next
    // bytes the client sends are then answered with a reset.
    greedy.set_nonblocking(true).unwrap();
    let start = Instant::now();
    loop {
        match greedy.write(request) {
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break;
            }
            Ok(_) | Err(_) if start.elapsed() > Duration::from_secs(20) => {
                panic!("the connection of a client that never reads is still open after 20 s")
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let served = send(&edge.address, "GET", "/healthz", &[], None).expect("another client");
    assert_eq!(served.status, 200);
}

#[test]
fn one_address_cannot_take_every_connection_slot() {
    // A head limit longer than the test, so silent connections hold their slots throughout.
    let edge = serve(Limits {
        header_read: Duration::from_secs(60),
        ..SHORT
    });
    let mut kept: Vec<TcpStream> = (0..SHORT.max_connections + 6)
        .map(|_| connect_from("127.0.0.1", &edge.address))
        .collect();
    // Connections are accepted in the order they were made: the address's share is kept (and stays open for
    // the rest of the test), the rest turned away.
    let over = kept.split_off(SHORT.per_address);
    for (i, mut stream) in over.into_iter().enumerate() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let answer = read_answer(&mut stream).unwrap_or_else(|e| panic!("connection {i}: {e:?}"));
        assert_refused(
            &answer,
            503,
            "Service Unavailable",
            "over the address's share",
        );
    }
    let start = Instant::now();
    let mut other = connect_from("127.0.0.2", &edge.address);
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_answer(&mut other).expect("another address is served");
    assert_eq!(answer.status, 200);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        start.elapsed()
    );
    drop(kept);
}

#[test]
fn a_413_before_the_body_closes_cleanly_after_reading_it_away() {
    let edge = serve(SHORT);
    let mut stream = connect(&edge.address);
    // Far more than the socket buffers of both ends hold (about 4 MB on loopback): a body that fits is sent
    // whole before the answer, and a close without lingering then goes unnoticed (the reset comes after the FIN).
    let body = vec![b'a'; 16 << 20];
    stream
        .write_all(format!("POST /signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes())
        .unwrap();
    // The body goes on being sent while the answer comes: as through a proxy, which streams it.
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || writer.write_all(&body));
    let answer = read_answer(&mut stream).expect("the 413, then a clean close");
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(
        answer.json(),
        serde_json::json!({ "detail": "Content Too Large" })
    );
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(
        sending.join().unwrap().is_ok(),
        "the server reset the connection while the body was still being sent"
    );
}

#[test]
fn paths_are_percent_decoded_before_routing() {
    let edge = serve(SHORT);
    let token = client::user(&edge.address, "percent");
    let created = client::authorized(
        &edge.address,
        &token,
        "POST",
        "/tasks",
        Some(r#"{"title": "one"}"#),
    )
    .expect("create");
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_i64().unwrap();
    let encoded_id: String = id
        .to_string()
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    for path in [
        format!("/tasks/{encoded_id}"),
        format!("/%74asks/{id}"),
        format!("/tasks%2F{id}"),
    ] {
        let answer = client::authorized(&edge.address, &token, "GET", &path, None).expect("get");
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(answer.json()["id"], id, "{path}");
    }
    let answer =
        client::authorized(&edge.address, &token, "GET", "/tasks/%2531", None).expect("get");
    assert_eq!(answer.status, 422, "decoded once only: {}", answer.body);
}
