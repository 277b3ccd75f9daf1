//! Tasky: a task-management REST API. Users sign up, log in with the OAuth2 password flow, and manage their own
//! tasks with a bearer token plus an API key. The contract is API.md; this crate is its implementation on warp
//! and SQLite.
//!
//! # Layout
//!
//! - [`config`]: the environment variables, parsed once in `main` by a pure function.
//! - [`domain`]: ids, validated values (`Username`, `TaskTitle`, ...) and read models; no HTTP, no SQL.
//! - [`db`]: the SQLite pools, migrations from `sql/`, and every SQL statement, behind functions over domain types.
//! - [`auth`]: Argon2id password hashing (off the async workers) and HS256 access tokens.
//! - [`filters`]: `api_key`, `jwt_user`, `with_db` and the size-limited body parsers every endpoint chains.
//! - [`routes`]: one small named filter per endpoint, grouped by resource, and their handlers.
//! - [`error`]: the one [`error::Error`] type and [`error::recover`], the only code that picks status codes.
//! - [`limiter`]: the login rate limit, in bounded memory.
//! - [`cors`]: CORS for the browser origins of `CORS_ORIGINS`.
//! - [`server`]: the HTTP/1.1 serve loop, with timeouts and a graceful stop.
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the routes' annotations and the domain's limits.
//!
//! [`api`] assembles the routes into the whole service; `main.rs` only configures, connects and serves it.

pub mod auth;
pub mod config;
pub mod cors;
pub mod db;
pub mod domain;
pub mod error;
pub mod filters;
pub mod limiter;
pub mod openapi;
pub mod routes;
pub mod server;

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{Passwords, Tokens};
use crate::config::{Config, CorsOrigins, Secret};
use crate::db::Db;
use crate::limiter::LoginLimiter;

/// An endpoint, or a group of them: a filter that answers with one response type. Erased so signatures stay
/// short and compiles fast.
pub type Route = BoxedFilter<(Response,)>;

/// What the filters and handlers need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub db: Db,
    /// Issues and checks access tokens.
    pub tokens: Arc<Tokens>,
    /// Hashes and verifies passwords, off the async workers.
    pub passwords: Arc<Passwords>,
    /// The value `X-API-Key` must carry.
    pub api_key: Arc<Secret>,
    /// Counts failed logins.
    pub login_limiter: Arc<LoginLimiter>,
    /// Which browser origins may call the API.
    pub cors_origins: CorsOrigins,
}

impl AppState {
    /// The state for `config` over `db`. Without `JWT_SECRET`, tokens are signed with a random secret that dies
    /// with the process.
    pub fn new(config: &Config, db: Db) -> Self {
        let secret = config.jwt_secret.clone().unwrap_or_else(|| {
            log::warn!("JWT_SECRET is not set: signing tokens with a random secret; they stop working on restart");
            Secret::from(rand::random::<[u8; 32]>().to_vec())
        });
        Self {
            db,
            tokens: Arc::new(Tokens::new(secret.expose(), config.token_ttl)),
            passwords: Arc::new(Passwords::per_core()),
            api_key: Arc::new(config.api_key.clone()),
            login_limiter: Arc::new(LoginLimiter::new(config.login_rate_limit)),
            cors_origins: config.cors_origins.clone(),
        }
    }
}

/// The whole service: the body size limit, every endpoint, the 405 fallback, JSON errors for every rejection,
/// CORS, and the headers every answer carries. (The access log is the serve loop's, which knows the client.)
pub fn api(state: AppState) -> Route {
    // Most requests are for tasks: their routes are tried first, so they skip the others' filters.
    let endpoints = routes::tasks::routes(&state)
        .or(routes::users::routes(&state))
        .unify()
        .or(routes::meta::routes(&state))
        .unify()
        .or(routes::method_not_allowed())
        .unify();
    let answered = filters::declared_body_limit()
        .and(endpoints)
        .recover(error::recover)
        .unify()
        .boxed();
    cors::wrap(answered, &state.cors_origins)
        .map(|mut response: Response| {
            protect(response.headers_mut());
            response
        })
        .map(Reply::into_response)
        .boxed()
}

/// Headers for every answer: browsers must not guess a content type (a JSON error rendered as HTML is a script
/// injection), and nothing the API answers may be cached unless its route says so (tokens and task data are
/// private, RFC 6749 §5.1 for the former).
fn protect(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
