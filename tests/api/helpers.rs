//! `TestApp`: the real service over a fresh database, and shorthands for its requests.
//!
//! The suite runs twice: as the test binary `api` on a fresh SQLite file in a temp dir, and as `api_postgres`
//! (tests/api_postgres.rs) on a fresh schema of the PostgreSQL server `TASKY_TEST_DATABASE_URL` names. Without
//! that variable the second run's tests return at once, after one line on stderr saying so.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tasky::config::{Config, DatabaseConfig, PostgresUrl, Secret};
use tasky::store::Store;
use tasky::{AppState, Route, api};
use tempfile::TempDir;
use warp::http::Response;
use warp::test::RequestBuilder;

use super::pg_support;

/// The API key every protected request sends.
pub const API_KEY: &str = "test-api-key";
/// The JWT secret of every test app, so tests can sign tokens of their own.
pub const JWT_SECRET: &[u8] = b"test-jwt-secret-that-is-long-enough-for-hs256";
/// A password that meets the signup rules.
pub const PASSWORD: &str = "correct horse battery";

/// Which backend this run of the suite is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend of this test binary: the suite is compiled twice, and the crate's name tells the runs apart.
pub fn backend() -> Backend {
    if env!("CARGO_CRATE_NAME") == "api_postgres" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Where a test app's data lives, kept for as long as the app.
enum Data {
    Sqlite(TempDir),
    Postgres(pg_support::Schema),
}

/// The service under test and its database.
pub struct TestApp {
    pub api: Route,
    config: Config,
    data: Data,
}

/// A user who has signed up and logged in.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: i64,
    pub token: String,
    pub refresh: String,
}

impl TestApp {
    /// A test app whose configuration `adjust` changes first; `None` when this run is on PostgreSQL and no
    /// server was given (see [`test_app!`]).
    pub async fn start(adjust: impl FnOnce(&mut Config)) -> Option<Self> {
        let (data, database) = match backend() {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("tasky.db");
                (Data::Sqlite(dir), DatabaseConfig::Sqlite(path))
            }
            Backend::Postgres => {
                let server = pg_support::url_or_skip("tests/api")?;
                let schema = pg_support::Schema::create(&server).await;
                let url = PostgresUrl::new(schema.url.clone(), 4);
                (Data::Postgres(schema), DatabaseConfig::Postgres(url))
            }
        };
        let mut config = Config {
            database,
            api_key: Secret::from(API_KEY),
            jwt_secret: Some(Secret::from(JWT_SECRET.to_vec())),
            token_ttl: Duration::from_secs(30 * 60),
            ..Config::default()
        };
        adjust(&mut config);
        let store = Store::connect(&config.database)
            .await
            .expect("open the test database");
        Some(Self {
            api: api(AppState::new(&config, store)),
            config,
            data,
        })
    }

    /// The service again, as another process would run it on the same database, with its configuration
    /// changed by `adjust`.
    pub async fn another_process(&self, adjust: impl FnOnce(&mut Config)) -> Route {
        let mut config = self.config.clone();
        adjust(&mut config);
        let store = Store::connect(&config.database)
            .await
            .expect("open the test database again");
        api(AppState::new(&config, store))
    }

    /// Sends `request` to `api`, another process's (see [`TestApp::another_process`]).
    pub async fn send_to(api: &Route, request: RequestBuilder) -> Response<Bytes> {
        request.reply(api).await
    }

    /// Runs `statement` on the database underneath the API, for tests that look or reach under it; the rows
    /// come back as text.
    pub async fn sql(&self, statement: &str) -> Vec<Vec<Option<String>>> {
        match &self.data {
            Data::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("tasky.db")).unwrap();
                let mut stmt = conn.prepare(statement).unwrap();
                let columns = stmt.column_count();
                stmt.query_map([], |row| {
                    (0..columns)
                        .map(|i| {
                            Ok(match row.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => None,
                                rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                                rusqlite::types::ValueRef::Real(x) => Some(x.to_string()),
                                rusqlite::types::ValueRef::Text(t)
                                | rusqlite::types::ValueRef::Blob(t) => {
                                    Some(String::from_utf8_lossy(t).into_owned())
                                }
                            })
                        })
                        .collect()
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
            }
            Data::Postgres(schema) => pg_support::query(&schema.url, statement).await,
        }
    }

    /// Removes the user `id` behind the service's back: on SQLite as an operator in the sqlite3 shell would, with
    /// foreign keys off, so its tasks stay behind; on PostgreSQL, where foreign keys cannot be switched off, with
    /// the cascade.
    pub async fn remove_user_underneath(&self, id: i64) {
        match &self.data {
            Data::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("tasky.db")).unwrap();
                conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
                conn.execute("DELETE FROM users WHERE id = ?1", [id])
                    .unwrap();
            }
            Data::Postgres(schema) => {
                pg_support::execute(&schema.url, &format!("DELETE FROM users WHERE id = {id}"))
                    .await;
            }
        }
    }

    pub async fn send(&self, request: RequestBuilder) -> Response<Bytes> {
        request.reply(&self.api).await
    }

    pub async fn signup(&self, username: &str, password: &str) -> Response<Bytes> {
        self.send(post_json(
            "/signup",
            &json!({"username": username, "password": password}),
        ))
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response<Bytes> {
        let form = format!(
            "username={}&password={}",
            urlencode(username),
            urlencode(password)
        );
        self.send(post_form("/token", &form)).await
    }

    /// Signs up and logs in `username`.
    pub async fn user(&self, username: &str) -> TestUser {
        let signup = self.signup(username, PASSWORD).await;
        assert_eq!(
            signup.status(),
            201,
            "signup of {username}: {:?}",
            signup.body()
        );
        let id = body(&signup)["id"].as_i64().expect("id");
        let login = self.login(username, PASSWORD).await;
        assert_eq!(
            login.status(),
            200,
            "login of {username}: {:?}",
            login.body()
        );
        let login = body(&login);
        let token = login["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        let refresh = login["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned();
        TestUser { id, token, refresh }
    }

    /// Creates a task for `user` and returns it as answered.
    pub async fn task(&self, user: &TestUser, task: Value) -> Value {
        let response = self.send(as_user(post_json("/tasks", &task), user)).await;
        assert_eq!(response.status(), 201, "create: {:?}", response.body());
        body(&response)
    }
}

pub fn request(method: &str, path: &str) -> RequestBuilder {
    warp::test::request().method(method).path(path)
}

pub fn post_json(path: &str, value: &Value) -> RequestBuilder {
    request("POST", path).json(value)
}

pub fn put_json(path: &str, value: &Value) -> RequestBuilder {
    request("PUT", path).json(value)
}

pub fn post_form(path: &str, form: &str) -> RequestBuilder {
    request("POST", path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
}

/// Adds both credentials of `user`.
pub fn as_user(request: RequestBuilder, user: &TestUser) -> RequestBuilder {
    request
        .header("x-api-key", API_KEY)
        .header("authorization", format!("Bearer {}", user.token))
}

/// The response body as JSON.
pub fn body(response: &Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(response.body())
        )
    })
}

/// A header as text, if present.
pub fn header<'a>(response: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("visible ASCII header"))
}

/// Asserts a `{"detail": "<text>"}` answer with `status`.
pub fn assert_detail(response: &Response<Bytes>, status: u16, detail: &str) {
    assert_eq!(
        response.status(),
        status,
        "body: {:?}",
        String::from_utf8_lossy(response.body())
    );
    assert_eq!(header(response, "content-type"), Some("application/json"));
    assert_eq!(body(response), json!({"detail": detail}));
}

/// Asserts a 422 whose entries are exactly `expected`, each given as (`loc`, `type`), in order.
pub fn assert_invalid(response: &Response<Bytes>, expected: &[(Value, &str)]) {
    assert_eq!(
        response.status(),
        422,
        "body: {:?}",
        String::from_utf8_lossy(response.body())
    );
    assert_eq!(header(response, "content-type"), Some("application/json"));
    let detail = body(response)["detail"]
        .as_array()
        .expect("detail is a list")
        .clone();
    let found: Vec<(Value, &str)> = detail
        .iter()
        .map(|e| {
            (
                e["loc"].clone(),
                e["type"].as_str().expect("type is a string"),
            )
        })
        .collect();
    assert_eq!(found, expected, "detail: {detail:#?}");
    for entry in &detail {
        assert!(
            entry["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "msg missing in {entry}"
        );
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The claims of a JWT, read without checking its signature.
pub fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
