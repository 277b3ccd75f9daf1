//! Load benchmark: starts the release binary on a loopback port with a fresh database and drives it over
//! HTTP/1.1 keep-alive connections, one scenario after another.
//!
//! ```sh
//! cargo bench                          # everything, about 3 minutes
//! BENCH_DURATION=5 cargo bench         # shorter scenarios
//! BENCH_URL=http://127.0.0.1:8000 cargo bench   # the throughput scenarios only, against a running server
//! ```
//!
//! Scenarios (each `BENCH_DURATION` seconds, default 10, at `BENCH_CONC` connections, default 64):
//! `list` (`GET /tasks?limit=20` of a user with 1000 tasks), `get` (one of that user's tasks, at random),
//! `create`, `update` (a random task, status flipped at random), `login` (`POST /token` at `BENCH_LOGIN_CONC`,
//! default 8) and `list_under_login` (list again while a login storm runs beside it, whose own numbers are the
//! `login_beside_list` line). Then: the list's latency at concurrency 1 for a user with 100 000 tasks against one
//! with 1000, the time from start to the first `/healthz` 200 on a fresh database, and the server's peak memory.
//!
//! The server runs with `RUST_LOG=warn` (no access log) unless `RUST_LOG` is set.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type Sender = SendRequest<Full<Bytes>>;
type Error = Box<dyn std::error::Error + Send + Sync>;

const PASSWORD: &str = "benchmark password";
/// Tasks of the users the list and get scenarios read.
const SEED: usize = 1_000;
/// Tasks of the large user.
const LARGE: usize = 100_000;

fn main() -> std::process::ExitCode {
    let result = Settings::from_env().and_then(|settings| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(settings))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("load: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Settings {
    duration: Duration,
    conc: usize,
    login_conc: usize,
    api_key: String,
    /// A server to drive instead of starting one.
    url: Option<SocketAddr>,
}

impl Settings {
    fn from_env() -> Result<Self, Error> {
        let number = |name: &str, default: u64| -> Result<u64, Error> {
            match std::env::var(name) {
                Ok(raw) => match raw.parse() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{name}: not a positive whole number: {raw:?}").into()),
                },
                Err(_) => Ok(default),
            }
        };
        let url = match std::env::var("BENCH_URL") {
            Ok(raw) => {
                let authority = raw.strip_prefix("http://").unwrap_or(&raw);
                let address = authority.trim_end_matches('/').parse().map_err(|_| {
                    format!("BENCH_URL: not http://IP:PORT (no host names, no https): {raw:?}")
                })?;
                Some(address)
            }
            Err(_) => None,
        };
        Ok(Self {
            duration: Duration::from_secs(number("BENCH_DURATION", 10)?),
            conc: usize::try_from(number("BENCH_CONC", 64)?)?,
            login_conc: usize::try_from(number("BENCH_LOGIN_CONC", 8)?)?,
            api_key: std::env::var("API_KEY").unwrap_or_else(|_| "123456".into()),
            url,
        })
    }
}

async fn run(settings: Settings) -> Result<(), Error> {
    let (address, server, started) = match settings.url {
        Some(address) => (address, None, Vec::new()),
        None => {
            let started = startup_times(5).await?;
            let server = Server::start()?;
            server.ready(Duration::from_secs(10)).await?;
            (server.address, Some(server), started)
        }
    };
    let client = Client {
        address,
        api_key: settings.api_key.clone(),
    };
    println!(
        "# {} cores, {} connections ({} for logins), {} s per scenario",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        settings.conc,
        settings.login_conc,
        settings.duration.as_secs()
    );

    let run_id = std::process::id();
    let reader = client.user(&format!("bench{run_id}a")).await?;
    let neighbour = client.user(&format!("bench{run_id}b")).await?;
    let writer = client.user(&format!("bench{run_id}c")).await?;
    let ids = Arc::new(client.seed(&reader, SEED, 8).await?);
    // A second user as large, so the list has to pick its owner's rows out of others'.
    client.seed(&neighbour, SEED, 8).await?;

    println!("# scenario req_per_s p50_ms p99_ms errors");
    let (conc, duration) = (settings.conc, settings.duration);
    let list = client.list_request(&reader);
    let list_alone = client
        .scenario("list", conc, duration, StatusCode::OK, list.clone())
        .await;

    let get = {
        let (client, token, ids) = (client.clone(), reader.clone(), ids.clone());
        move || {
            let path = format!("/tasks/{}", random_id(&ids));
            client.request(Method::GET, &path, Some(&token), None)
        }
    };
    let mut outcomes = vec![
        client
            .scenario("get", conc, duration, StatusCode::OK, get)
            .await,
    ];

    let create = {
        let (client, token) = (client.clone(), writer.clone());
        move || {
            let body = r#"{"title": "Benchmark task", "description": "Created under load"}"#;
            client.request(Method::POST, "/tasks", Some(&token), Some(json(body)))
        }
    };
    outcomes.push(
        client
            .scenario("create", conc, duration, StatusCode::CREATED, create)
            .await,
    );

    let update = {
        let (client, token, ids) = (client.clone(), reader.clone(), ids.clone());
        move || {
            let path = format!("/tasks/{}", random_id(&ids));
            let body = [r#"{"status": "completed"}"#, r#"{"status": "pending"}"#];
            let body = json(body[rand::random_range(0..body.len())]);
            client.request(Method::PUT, &path, Some(&token), Some(body))
        }
    };
    outcomes.push(
        client
            .scenario("update", conc, duration, StatusCode::OK, update)
            .await,
    );

    let (login_conc, login) = (
        settings.login_conc,
        client.login_request(&format!("bench{run_id}a")),
    );
    outcomes.push(
        client
            .scenario("login", login_conc, duration, StatusCode::OK, login.clone())
            .await,
    );

    // The storm starts first and ends last, so the list runs under it all along.
    let storm = tokio::spawn({
        let client = client.clone();
        let storm_duration = duration + Duration::from_secs(2);
        async move {
            client
                .drive(login_conc, storm_duration, StatusCode::OK, login)
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let under_login = client
        .scenario("list_under_login", conc, duration, StatusCode::OK, list)
        .await;
    let storm = storm.await?;
    storm.print("login_beside_list");
    outcomes.push(storm);
    let errors: u64 = [&list_alone, &under_login]
        .into_iter()
        .chain(&outcomes)
        .map(|outcome| outcome.errors)
        .sum();

    if let Some(server) = server {
        println!();
        println!(
            "list under a login storm: {:.0} % of list alone, p99 {:.1}x",
            100.0 * under_login.per_second() / list_alone.per_second(),
            under_login.percentile(0.99).as_secs_f64() / list_alone.percentile(0.99).as_secs_f64()
        );
        large_user(&client, &reader, settings.duration).await?;
        println!(
            "start to /healthz 200 on a fresh database: median {:.1} ms, slowest {:.1} ms (5 starts)",
            millis(started[started.len() / 2]),
            millis(started[started.len() - 1])
        );
        println!(
            "peak memory (VmHWM) over the whole run: {:.1} MiB",
            server.peak_memory_kib()? as f64 / 1024.0
        );
        server.stop()?;
    }
    if errors > 0 {
        return Err(format!("{errors} requests failed; see the errors column").into());
    }
    Ok(())
}

/// One of `ids`, at random.
fn random_id(ids: &[i64]) -> i64 {
    ids[rand::random_range(0..ids.len())]
}

/// The list's latency at concurrency 1 for a user with `LARGE` tasks, against one with `SEED`.
async fn large_user(client: &Client, small: &str, duration: Duration) -> Result<(), Error> {
    let large = client
        .user(&format!("bench{}large", std::process::id()))
        .await?;
    let seeding = Instant::now();
    client.seed(&large, LARGE, 32).await?;
    println!(
        "seeded {LARGE} tasks in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let total = client.total(&large).await?;
    if total != LARGE {
        return Err(format!("X-Total-Count of the large user: {total}, not {LARGE}").into());
    }
    let mut p50 = Vec::new();
    for (name, token) in [("1000 tasks", small), ("100000 tasks", large.as_str())] {
        let scenario = format!("list_c1_{}", name.replace(' ', "_"));
        let outcome = client
            .scenario(
                &scenario,
                1,
                duration,
                StatusCode::OK,
                client.list_request(token),
            )
            .await;
        if outcome.errors > 0 {
            return Err(format!("{scenario}: {} requests failed", outcome.errors).into());
        }
        p50.push(outcome.percentile(0.5));
    }
    println!(
        "list p50 at concurrency 1: {:.3} ms (1000 tasks), {:.3} ms (100000 tasks): {:.2}x",
        millis(p50[0]),
        millis(p50[1]),
        p50[1].as_secs_f64() / p50[0].as_secs_f64()
    );
    Ok(())
}

/// Starts the binary `count` times on a fresh database each time; each start's time to the first `/healthz`
/// 200, sorted.
async fn startup_times(count: usize) -> Result<Vec<Duration>, Error> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let server = Server::start()?;
        times.push(server.ready(Duration::from_secs(10)).await?);
        server.stop()?;
    }
    times.sort();
    Ok(times)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn json(body: &'static str) -> (&'static str, Bytes) {
    ("application/json", Bytes::from_static(body.as_bytes()))
}

/// The release binary, on a free loopback port, with a database in a temporary directory.
struct Server {
    child: Child,
    address: SocketAddr,
    launched: Instant,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Result<Self, Error> {
        let dir = tempfile::tempdir()?;
        let address = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = dir.path().join("server.log");
        let secret: [u8; 32] = rand::random();
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let launched = Instant::now();
        // Nothing of the caller's environment but the key: a LOGIN_RATE_LIMIT or TOKEN_TTL_MINUTES set in the
        // shell would change what is measured.
        let mut command = Command::new(env!("CARGO_BIN_EXE_tasky"));
        command.env_clear();
        if let Ok(key) = std::env::var("API_KEY") {
            command.env("API_KEY", key);
        }
        // The PostgreSQL backend, on a database the caller made for the run (fresh, or a start is not "fresh").
        if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
            command.env("DATABASE_URL", url);
        }
        let child = command
            .env("HOST", "127.0.0.1")
            .env("PORT", address.port().to_string())
            .env("DATABASE_PATH", dir.path().join("tasky.db"))
            .env("JWT_SECRET", secret)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self {
            child,
            address,
            launched,
            log,
            _dir: dir,
        })
    }

    /// Waits for the first `/healthz` 200; the time since launch.
    async fn ready(&self, limit: Duration) -> Result<Duration, Error> {
        while self.launched.elapsed() < limit {
            if let Ok(mut sender) = connect(self.address).await {
                let request = Request::get("/healthz")
                    .header(HOST, self.address.to_string())
                    .body(Full::default())?;
                if let Ok((StatusCode::OK, _)) = send(&mut sender, request).await {
                    return Ok(self.launched.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(format!("the server did not answer /healthz within {limit:?}; its log:\n{log}").into())
    }

    /// The most memory the process has held at once (VmHWM), in KiB.
    fn peak_memory_kib(&self) -> Result<u64, Error> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| "no VmHWM in /proc/PID/status".into())
    }

    /// SIGTERM, and waits (at most 30 s) for a clean exit.
    fn stop(mut self) -> Result<(), Error> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err("kill -TERM failed".into());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let exit = loop {
            if let Some(exit) = self.child.try_wait()? {
                break exit;
            }
            if Instant::now() > deadline {
                return Err("the server did not stop within 30 s of SIGTERM".into()); // Drop kills it
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !exit.success() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            return Err(format!("the server exited with {exit}; its log:\n{log}").into());
        }
        Ok(())
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

/// Builds requests for one server.
#[derive(Clone)]
struct Client {
    address: SocketAddr,
    api_key: String,
}

impl Client {
    /// A request; with a token, it carries both credentials.
    fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&'static str, Bytes)>,
    ) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.method_mut() = method;
        *request.uri_mut() = path.parse().expect("the benchmark's paths are valid URIs");
        let headers = request.headers_mut();
        headers.insert(HOST, self.header(&self.address.to_string()));
        if let Some(token) = token {
            headers.insert(AUTHORIZATION, self.header(&format!("Bearer {token}")));
            headers.insert("x-api-key", self.header(&self.api_key));
        }
        if let Some((content_type, bytes)) = body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            *request.body_mut() = Full::new(bytes);
        }
        request
    }

    fn header(&self, value: &str) -> HeaderValue {
        HeaderValue::from_str(value).expect("tokens and keys are valid header values")
    }

    fn list_request(
        &self,
        token: &str,
    ) -> impl Fn() -> Request<Full<Bytes>> + Clone + Send + 'static {
        let (client, token) = (self.clone(), token.to_owned());
        move || client.request(Method::GET, "/tasks?limit=20", Some(&token), None)
    }

    fn login_request(
        &self,
        username: &str,
    ) -> impl Fn() -> Request<Full<Bytes>> + Clone + Send + 'static {
        let client = self.clone();
        let form = format!(
            "username={username}&password={}",
            PASSWORD.replace(' ', "+")
        );
        let form = Bytes::from(form);
        move || {
            let body = ("application/x-www-form-urlencoded", form.clone());
            client.request(Method::POST, "/token", None, Some(body))
        }
    }

    /// One request on a connection of its own: status and body.
    async fn once(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), Error> {
        let mut sender = connect(self.address).await?;
        send(&mut sender, request).await
    }

    /// Signs `username` up and logs in; the token.
    async fn user(&self, username: &str) -> Result<String, Error> {
        let body = format!(r#"{{"username": "{username}", "password": "{PASSWORD}"}}"#);
        let signup = self.request(
            Method::POST,
            "/signup",
            None,
            Some(("application/json", Bytes::from(body))),
        );
        let (status, body) = self.once(signup).await?;
        if status != StatusCode::CREATED {
            return Err(format!("signup: {status} {body:?}").into());
        }
        let (status, body) = self.once(self.login_request(username)()).await?;
        if status != StatusCode::OK {
            return Err(format!("login: {status} {body:?}").into());
        }
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "login: no access_token".into())
    }

    /// Creates `count` tasks for `token`'s user over `conc` connections; their ids.
    async fn seed(&self, token: &str, count: usize, conc: usize) -> Result<Vec<i64>, Error> {
        let left = Arc::new(AtomicUsize::new(count));
        let mut workers = Vec::with_capacity(conc);
        for _ in 0..conc {
            let (client, token, left) = (self.clone(), token.to_owned(), left.clone());
            workers.push(tokio::spawn(async move {
                let mut sender = connect(client.address).await?;
                let mut ids = Vec::new();
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let body =
                        json(r#"{"title": "Seeded task", "description": "For the benchmark"}"#);
                    let request = client.request(Method::POST, "/tasks", Some(&token), Some(body));
                    let (status, body) = send(&mut sender, request).await?;
                    if status != StatusCode::CREATED {
                        return Err(format!("seeding: {status} {body:?}").into());
                    }
                    let task: serde_json::Value = serde_json::from_slice(&body)?;
                    ids.push(task["id"].as_i64().ok_or("seeding: no id")?);
                }
                Ok::<_, Error>(ids)
            }));
        }
        let mut ids = Vec::with_capacity(count);
        for worker in workers {
            ids.extend(worker.await??);
        }
        Ok(ids)
    }

    /// `X-Total-Count` of `token`'s user's list.
    async fn total(&self, token: &str) -> Result<usize, Error> {
        let mut sender = connect(self.address).await?;
        let response = sender.send_request(self.list_request(token)()).await?;
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        total.ok_or_else(|| format!("list: {} without X-Total-Count", response.status()).into())
    }

    /// [`Client::drive`], and prints the outcome as one line named `name`.
    async fn scenario<F>(
        &self,
        name: &str,
        conc: usize,
        duration: Duration,
        expect: StatusCode,
        make: F,
    ) -> Outcome
    where
        F: Fn() -> Request<Full<Bytes>> + Clone + Send + 'static,
    {
        let outcome = self.drive(conc, duration, expect, make).await;
        outcome.print(name);
        outcome
    }

    /// Sends requests made by `make` over `conc` connections for `duration`; requests in flight at the end
    /// are waited for. A request counts as done when its status is `expect` and its whole body has arrived.
    async fn drive<F>(
        &self,
        conc: usize,
        duration: Duration,
        expect: StatusCode,
        make: F,
    ) -> Outcome
    where
        F: Fn() -> Request<Full<Bytes>> + Clone + Send + 'static,
    {
        let start = Instant::now();
        let deadline = start + duration;
        let mut workers = Vec::with_capacity(conc);
        for _ in 0..conc {
            let (address, make) = (self.address, make.clone());
            workers.push(tokio::spawn(async move {
                let mut outcome = Outcome::default();
                let mut sender = None;
                while Instant::now() < deadline {
                    let connection = match sender.as_mut() {
                        Some(connection) => connection,
                        None => match connect(address).await {
                            Ok(connection) => sender.insert(connection),
                            Err(_) => {
                                outcome.errors += 1;
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        },
                    };
                    let request = make();
                    let sent = Instant::now();
                    let result = send(connection, request).await;
                    outcome.latencies.push(sent.elapsed());
                    match result {
                        Ok((status, _)) if status == expect => outcome.done += 1,
                        Ok(_) => outcome.errors += 1,
                        Err(_) => {
                            outcome.errors += 1;
                            sender = None;
                        }
                    }
                }
                outcome
            }));
        }
        let mut total = Outcome::default();
        for worker in workers {
            match worker.await {
                Ok(outcome) => total.merge(outcome),
                Err(_) => total.errors += 1,
            }
        }
        total.elapsed = start.elapsed();
        total.latencies.sort_unstable();
        total
    }
}

async fn connect(address: SocketAddr) -> Result<Sender, Error> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), Error> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// What one scenario did.
#[derive(Default)]
struct Outcome {
    done: u64,
    errors: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.done += other.done;
        self.errors += other.errors;
        self.latencies.extend(other.latencies);
    }

    fn per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency below which `share` of the requests fell (the latencies are sorted).
    fn percentile(&self, share: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (share * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    fn print(&self, scenario: &str) {
        println!(
            "{scenario} {:.1} {:.2} {:.2} {}",
            self.per_second(),
            millis(self.percentile(0.5)),
            millis(self.percentile(0.99)),
            self.errors
        );
    }
}
