//! The binary as it serves: the open-file limit it raises, its access log, and its client address behind a real
//! appending proxy (Debian's nginx, started here on a loopback port).

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tasky::server::Limits;

use crate::client::{self, PASSWORD, Server, connect_from, read_answer, send, workdir};

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

/// nginx in front of `upstream`, appending to `X-Forwarded-For` and setting `X-Real-IP`, as in its documented
/// reverse-proxy setup. `None` (with a line saying so) where nginx is not installed, unless
/// `TASKY_REQUIRE_NGINX` is set, as `.ci/run` does after installing it.
struct Nginx {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: &str) -> Option<Self> {
        let Some(binary) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        else {
            assert!(
                std::env::var_os("TASKY_REQUIRE_NGINX").is_none(),
                "TASKY_REQUIRE_NGINX is set but nginx is not installed"
            );
            eprintln!(
                "skipped: nginx is not installed (apt-get install nginx); .ci/run installs it"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let prefix = dir.path().display();
        let config = format!(
            "daemon off;\nmaster_process off;\nerror_log {prefix}/error.log;\npid {prefix}/nginx.pid;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_max_body_size 4m;\n\
               client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
               fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://{upstream};\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_set_header X-Real-IP $remote_addr;\n    }}\n  }}\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx");
        let address = format!("127.0.0.1:{port}");
        let nginx = Self {
            child,
            address,
            _dir: dir,
        };
        nginx.await_listening();
        Some(nginx)
    }

    fn await_listening(&self) {
        let start = Instant::now();
        while TcpStream::connect(&self.address).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not listen: {}",
                std::fs::read_to_string(self._dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A login through nginx from the loopback address `client`, sending `forged` as its own `X-Forwarded-For`
/// and `X-Real-IP`.
fn login_via(nginx: &Nginx, client: &str, forged: &str, password: &str) -> u16 {
    let form = format!("username=proxied&password={}", password.replace(' ', "+"));
    let mut stream = connect_from(client, &nginx.address);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-For: {forged}\r\nX-Real-IP: {forged}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    read_answer(&mut stream).expect("answer").status
}

fn a_client_behind_nginx_cannot_pick_its_address(trust_proxy: &str) {
    let (_dir, path) = workdir();
    let server = Server::start(
        &path,
        &[("TRUST_PROXY", trust_proxy), ("LOGIN_RATE_LIMIT", "2")],
    );
    let Some(nginx) = Nginx::start(&server.address) else {
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
    let Some(nginx) = Nginx::start(&server.address) else {
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
