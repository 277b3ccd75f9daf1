//! Running the built binary, and a minimal HTTP/1.1 client over std sockets for talking to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const API_KEY: &str = "process-test-key";
pub const PASSWORD: &str = "process test password";

/// The binary with a database in `dir` on a free port; `vars` are added to (or override) that.
pub fn tasky(dir: &Path, vars: &[(&str, &str)]) -> Command {
    configured(Command::new(env!("CARGO_BIN_EXE_tasky")), dir, vars)
}

/// The binary as [`tasky`] runs it, started by `sh -c script` with the binary's path as `$0`.
pub fn tasky_in_shell(script: &str, dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script, env!("CARGO_BIN_EXE_tasky")]);
    configured(command, dir, vars)
}

fn configured(mut command: Command, dir: &Path, vars: &[(&str, &str)]) -> Command {
    command
        .env_remove("RUST_LOG")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("DATABASE_PATH", dir.join("tasky.db"))
        .env("JWT_SECRET", "process-test-secret-process-test-secret")
        .env("API_KEY", API_KEY)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary on `dir` and waits until it listens.
    pub fn start(dir: &Path, vars: &[(&str, &str)]) -> Self {
        Self::spawn(tasky(dir, vars))
    }

    /// Starts `command` (see [`tasky`]) and waits until it listens.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().expect("start tasky");
        let log = Arc::new(Mutex::new(Vec::new()));
        let address = listening_address(&mut child, log.clone());
        Self {
            child,
            address,
            log,
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the server logs a line containing `needle`, at most 10 s, and returns it.
    pub fn await_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log().into_iter().find(|line| line.contains(needle)) {
                return line;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no log line with {needle:?} in:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (TERM, INT, KILL) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the process to end, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("the process did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait(Duration::from_secs(30))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for the "listening on http://ADDR" log line and returns ADDR; every line goes into `log`.
fn listening_address(child: &mut Child, log: Arc<Mutex<Vec<String>>>) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server logs its address first")
            .expect("utf-8");
        log.lock().unwrap().push(line.clone());
        if let Some((_, address)) = line.split_once("listening on http://") {
            break address.trim().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            log.lock().unwrap().push(line);
        }
    });
    address
}

/// A whole HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// A header's value (names compared ignoring case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The JSON body.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Why a request got no whole answer.
#[derive(Debug)]
pub enum Failure {
    /// The server did not take the connection: refused at connect, or reset before a single byte of answer
    /// (a connection the kernel queued but the server never accepted).
    Refused,
    /// Taken, but the answer was cut short or never came.
    Incomplete(String),
}

/// One request on a fresh connection (`Connection: close`). `body` is (content type, bytes).
pub fn send(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Result<Answer, Failure> {
    let mut stream = TcpStream::connect(address).map_err(|_| Failure::Refused)?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some((content_type, bytes)) = body {
        request.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    }
    request.push_str("\r\n");
    if let Some((_, bytes)) = body {
        request.push_str(bytes);
    }
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return Err(match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                Failure::Refused
            }
            _ => Failure::Incomplete(format!("write: {e}")),
        });
    }
    read_answer(&mut stream)
}

/// Reads until the server closes the connection, and parses the one answer that came.
pub fn read_answer(stream: &mut TcpStream) -> Result<Answer, Failure> {
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        if raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset {
            return Err(Failure::Refused);
        }
        return Err(Failure::Incomplete(format!(
            "read: {e} after {} bytes",
            raw.len()
        )));
    }
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| Failure::Incomplete(format!("no head: {raw:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Incomplete(format!("no status: {head:?}")))?;
    let answer = Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    };
    if let Some(length) = answer
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        && answer.body.len() != length
    {
        return Err(Failure::Incomplete(format!(
            "{} of {length} body bytes",
            answer.body.len()
        )));
    }
    Ok(answer)
}

/// A connection to `address` from the loopback address `source` (any of 127.0.0.0/8), so that one test can be
/// several clients.
pub fn connect_from(source: &str, address: &str) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let source: std::net::SocketAddr = format!("{source}:0").parse().expect("source address");
    socket
        .bind(&source.into())
        .expect("bind the source address");
    let target: std::net::SocketAddr = address.parse().expect("server address");
    socket.connect(&target.into()).expect("connect");
    socket.into()
}

/// `POST /token` for `username` and `password` sent to `address` from the loopback address `client` (see
/// [`connect_from`]), with `headers` besides; the status of the answer.
pub fn login_from(
    client: &str,
    address: &str,
    (username, password): (&str, &str),
    headers: &[(&str, &str)],
) -> u16 {
    let form = format!(
        "username={username}&password={}",
        password.replace(' ', "+")
    );
    let mut stream = connect_from(client, address);
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = String::from("POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    ));
    stream.write_all(request.as_bytes()).unwrap();
    read_answer(&mut stream).expect("answer").status
}

/// Signs `username` up and returns its bearer token.
pub fn user(address: &str, username: &str) -> String {
    let signup = format!(r#"{{"username": "{username}", "password": "{PASSWORD}"}}"#);
    let answer = send(
        address,
        "POST",
        "/signup",
        &[],
        Some(("application/json", &signup)),
    )
    .expect("signup");
    assert_eq!(answer.status, 201, "signup {username}: {}", answer.body);
    login(address, username)
}

/// Logs `username` in and returns its bearer token.
pub fn login(address: &str, username: &str) -> String {
    let form = format!(
        "username={username}&password={}",
        PASSWORD.replace(' ', "+")
    );
    let answer = send(
        address,
        "POST",
        "/token",
        &[],
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .expect("login");
    assert_eq!(answer.status, 200, "login {username}: {}", answer.body);
    answer.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// A request with both credentials.
pub fn authorized(
    address: &str,
    token: &str,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> Result<Answer, Failure> {
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str()), ("X-API-Key", API_KEY)];
    send(
        address,
        method,
        path,
        &headers,
        json.map(|body| ("application/json", body)),
    )
}

/// Every task of a user, newest first, following the pages.
pub fn all_tasks(address: &str, token: &str) -> Vec<serde_json::Value> {
    let mut tasks = Vec::new();
    loop {
        let path = format!("/tasks?limit=1000&offset={}", tasks.len());
        let answer = authorized(address, token, "GET", &path, None).expect("list");
        assert_eq!(answer.status, 200, "{}", answer.body);
        let page = answer.json().as_array().expect("array").clone();
        if page.is_empty() {
            return tasks;
        }
        tasks.extend(page);
    }
}

/// A temporary directory for a database, kept while the test runs.
pub fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_owned();
    (dir, path)
}

/// Creates tasks from `threads` threads, round robin over `tokens`, until `stop`, counting every 201 in
/// `acked`; returns, per thread, what was answered 201 and with which owner.
pub fn create_until(
    address: &str,
    tokens: &[String],
    threads: usize,
    tag: &str,
    (stop, acked): (&Arc<AtomicBool>, &Arc<AtomicUsize>),
) -> Vec<thread::JoinHandle<Vec<(usize, Value)>>> {
    (0..threads)
        .map(|t| {
            let (address, tokens, stop, acked, tag) = (
                address.to_owned(),
                tokens.to_vec(),
                stop.clone(),
                acked.clone(),
                tag.to_owned(),
            );
            thread::spawn(move || {
                let mut created = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let owner = (t + n) % tokens.len();
                    let status = if n % 2 == 0 { "pending" } else { "completed" };
                    let body = json!({
                        "title": format!("{tag} thread {t} task {n}"),
                        "description": format!("written by thread {t}, number {n}: ✓ intact"),
                        "status": status,
                    });
                    if let Ok(answer) = authorized(
                        &address,
                        &tokens[owner],
                        "POST",
                        "/tasks",
                        Some(&body.to_string()),
                    ) && answer.status == 201
                    {
                        created.push((owner, answer.json()));
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
                created
            })
        })
        .collect()
}

/// Waits until `count` reaches `at_least`, at most 30 s.
pub fn await_count(count: &AtomicUsize, at_least: usize) {
    let start = Instant::now();
    while count.load(Ordering::Relaxed) < at_least {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "only {} of {at_least} after 30 s",
            count.load(Ordering::Relaxed)
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Every task answered 201 in `answered` is stored, intact, for its owner.
pub fn assert_all_kept(address: &str, tokens: &[String], answered: &[(usize, Value)]) {
    for (owner, token) in tokens.iter().enumerate() {
        let stored: std::collections::HashMap<i64, Value> = all_tasks(address, token)
            .into_iter()
            .map(|t| (t["id"].as_i64().unwrap(), t))
            .collect();
        for (_, task) in answered.iter().filter(|(o, _)| *o == owner) {
            let id = task["id"].as_i64().unwrap();
            assert_eq!(
                stored.get(&id),
                Some(task),
                "task {id} was answered 201 and must be there, intact"
            );
        }
    }
}
