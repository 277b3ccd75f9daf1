//! The binary as it serves: the addresses it listens on, the open-file limit it raises, its access log, and its
//! client address behind a real appending proxy (Debian's nginx, started here on a loopback port).

use std::io::Write;
use std::time::Duration;

use tasky::server::Limits;

use crate::client::{self, PASSWORD, Server, connect_from, read_answer, send, workdir};
use crate::nginx::Nginx;

#[test]
fn on_the_ipv6_wildcard_it_serves_ipv6_and_ipv4_clients() {
    let (_dir, path) = workdir();
    let server = Server::start(&path, &[("HOST", "::")]);
    let port = server.address.rsplit_once(':').unwrap().1.to_owned();
    assert_eq!(server.address, format!("[::]:{port}"));
    for address in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let answer = send(&address, "GET", "/healthz", &[], None).expect("answer");
        assert_eq!(answer.status, 200, "{address}");
    }
}

/// Runs `script` as root in a network namespace of its own (loopback up), with the binary's path as `$0`, and
/// returns what it printed; `None`, with a line saying so, where namespaces cannot be made.
fn in_own_network_namespace(script: &str) -> Option<String> {
    let probe = std::process::Command::new("unshare")
        .args(["--net", "true"])
        .output();
    if !probe.is_ok_and(|out| out.status.success()) {
        eprintln!("skipped: a network namespace cannot be made here (unshare --net, as root)");
        return None;
    }
    let (_dir, path) = workdir();
    let output = client::tasky_in_shell(
        &format!("exec unshare --net bash -c 'ip link set lo up; {script}' \"$0\""),
        &path,
        &[("HOST", "::"), ("PORT", "8000")],
    )
    .stdout(std::process::Stdio::piped())
    .output()
    .expect("run the script");
    assert!(output.status.success(), "{output:?}");
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// In the namespace: the server on `::`, started in the background, answers `GET /healthz` from IPv4's loopback.
const SERVE_AND_ASK_OVER_IPV4: &str = r#""$0" & pid=$!; \
    for i in $(seq 100); do exec 3<>/dev/tcp/127.0.0.1/8000 && break; sleep 0.1; done; \
    printf "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" >&3; head -n 1 <&3; \
    kill -TERM $pid; wait $pid"#;

#[test]
fn on_the_ipv6_wildcard_ipv4_is_served_even_where_the_system_default_is_ipv6_only() {
    let Some(output) = in_own_network_namespace(&format!(
        "sysctl -qw net.ipv6.bindv6only=1; {SERVE_AND_ASK_OVER_IPV4}"
    )) else {
        return;
    };
    assert!(output.starts_with("HTTP/1.1 200"), "{output}");
}

#[test]
fn on_the_ipv6_wildcard_it_still_starts_where_ipv6_is_disabled() {
    let Some(output) = in_own_network_namespace(&format!(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
         net.ipv6.conf.lo.disable_ipv6=1; {SERVE_AND_ASK_OVER_IPV4}"
    )) else {
        return;
    };
    assert!(output.starts_with("HTTP/1.1 200"), "{output}");
}

#[test]
fn the_open_file_limit_is_raised_as_far_as_allowed_and_the_connection_limit_logged() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let hard = limit.rlim_max;
    assert!(
        hard > 256,
        "this test needs a hard open-file limit above 256, not {hard}"
    );
    let (_dir, path) = workdir();
    let server = Server::spawn(client::tasky_in_shell(
        r#"ulimit -Sn 256 && exec "$0""#,
        &path,
        &[],
    ));
    let expected = Limits::for_open_files(hard);
    server.await_log(&format!(
        "open-file limit {hard}: serving up to {} connections, {} per client address",
        expected.max_connections, expected.per_address
    ));
}

#[test]
fn the_access_log_names_the_client_and_escapes_what_it_sent() {
    let (_dir, path) = workdir();
    let server = Server::start(&path, &[]);
    let mut stream = connect_from("127.0.0.3", &server.address);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: evil\" 200 \"-\xff\r\nReferer: a\\b\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut stream).expect("answer").status, 200);
    let line = server.await_log("\"GET /healthz");
    assert!(
        line.contains(
            r#"127.0.0.3 "GET /healthz HTTP/1.1" 200 "a\x5cb" "evil\x22 200 \x22-\xff" "#
        ),
        "{line}"
    );
}

/// A login through nginx from the loopback address `client`, sending `forged` as its own `X-Forwarded-For`
/// and `X-Real-IP`.
fn login_via(nginx: &Nginx, client: &str, forged: &str, password: &str) -> u16 {
    let headers = [("X-Forwarded-For", forged), ("X-Real-IP", forged)];
    client::login_from(client, &nginx.address, ("proxied", password), &headers)
}

fn a_client_behind_nginx_cannot_pick_its_address(trust_proxy: &str) {
    let (_dir, path) = workdir();
    let server = Server::start(
        &path,
        &[("TRUST_PROXY", trust_proxy), ("LOGIN_RATE_LIMIT", "2")],
    );
    let Some(nginx) = Nginx::start(&[&server.address]) else {
        return;
    };
    client::user(&server.address, "proxied");
    // Every attempt claims another address; the one nginx saw is the same each time.
    assert_eq!(
        login_via(&nginx, "127.0.0.11", "203.0.113.1", "wrong password"),
        401
    );
    assert_eq!(
        login_via(&nginx, "127.0.0.11", "203.0.113.2", "wrong password"),
        401
    );
    assert_eq!(
        login_via(&nginx, "127.0.0.11", "203.0.113.3", PASSWORD),
        429
    );
    // Another client of the same proxy is its own address.
    assert_eq!(login_via(&nginx, "127.0.0.12", "127.0.0.11", PASSWORD), 200);
    server.await_log(r#"127.0.0.11 "POST /token HTTP/1.0" 429"#);
    server.await_log(r#"127.0.0.12 "POST /token HTTP/1.0" 200"#);
}

#[test]
fn behind_nginx_trust_proxy_true_takes_the_entry_nginx_appended() {
    a_client_behind_nginx_cannot_pick_its_address("true");
}

#[test]
fn behind_nginx_trust_proxy_x_real_ip_takes_the_header_nginx_set() {
    a_client_behind_nginx_cannot_pick_its_address("X-Real-IP");
}

#[test]
fn behind_nginx_an_early_413_reaches_the_client() {
    let (_dir, path) = workdir();
    let server = Server::start(&path, &[("TRUST_PROXY", "true")]);
    let Some(nginx) = Nginx::start(&[&server.address]) else {
        return;
    };
    let body = "a".repeat(512 * 1024);
    for attempt in 0..20 {
        let answer = send(
            &nginx.address,
            "POST",
            "/signup",
            &[],
            Some(("application/json", &body)),
        )
        .unwrap_or_else(|e| panic!("attempt {attempt}: {e:?}"));
        assert_eq!(answer.status, 413, "attempt {attempt}: {answer:?}");
        assert_eq!(
            answer.json(),
            serde_json::json!({ "detail": "Content Too Large" })
        );
    }
}
