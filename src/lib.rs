//! Tasky: a task-management REST API. Users sign up, log in with the OAuth2 password flow, and manage their own
//! tasks with a bearer token plus an API key. The contract is API.md; this crate is its implementation on warp,
//! with SQLite (embedded, the default) or PostgreSQL holding the data.
//!
//! # Layout
//!
//! - [`config`]: the environment variables, parsed once in `main` by a pure function.
//! - [`domain`]: ids, validated values (`Username`, `TaskTitle`, ...) and read models; no HTTP, no SQL.
//! - [`store`]: the storage contract both backends keep, over domain types; each backend (`sqlite/`,
//!   `postgres/`) private in its own module with its pools and SQL, migrations from `sql/<backend>/`.
//! - [`state`]: `AppState` (what the endpoints are built from) and `Route`; a leaf.
//! - [`auth`]: Argon2id password hashing (off the async workers) and HS256 access tokens.
//! - [`filters`]: `api_key`, `jwt_user`, `with_db` and the size-limited body parsers every endpoint chains.
//! - [`routes`]: one small named filter per endpoint, grouped by resource, and their handlers; the table of
//!   routes and the OpenAPI 3.1 document beside it, with its schema types in `routes::doc`.
//! - [`error`]: the one [`error::Error`] type and [`error::recover`], the only code that picks status codes.
//! - [`limiter`]: the login rate limit, in bounded memory.
//! - [`cors`]: CORS for the browser origins of `CORS_ORIGINS`.
//! - [`server`]: the HTTP/1.1 serve loop: connection limits, timeouts, client addresses, the access log, and a
//!   graceful stop.
//!
//! [`api`] assembles the routes into the whole service; `main.rs` only configures, connects and serves it.

pub mod auth;
pub mod config;
pub mod cors;
pub mod domain;
pub mod error;
pub mod filters;
pub mod limiter;
pub mod routes;
pub mod server;
pub mod state;
pub mod store;

use warp::http::{HeaderMap, HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Reply};

pub use crate::state::{AppState, Route};

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
