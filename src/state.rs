//! What the routes are built from, and what they build: a leaf, so no module imports back up from `lib.rs`.

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::auth::{Passwords, Tokens};
use crate::config::{Config, CorsOrigins, Secret};
use crate::limiter::LoginLimiter;
use crate::store::Store;

/// An endpoint, or a group of them: a filter that answers with one response type. Erased so signatures stay
/// short and compiles fast.
pub type Route = BoxedFilter<(Response,)>;

/// Everything the endpoints are built from; each filter is handed the one part it uses. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Issues and checks access tokens.
    pub tokens: Arc<Tokens>,
    /// Hashes and verifies passwords, off the async workers.
    pub passwords: Arc<Passwords>,
    /// The value `X-API-Key` must carry.
    pub api_key: Arc<Secret>,
    /// Counts failed logins: in the store when other processes share it, else in memory.
    pub login_limiter: Arc<LoginLimiter>,
    /// Which browser origins may call the API.
    pub cors_origins: CorsOrigins,
}

impl AppState {
    /// The state for `config` over `store`. Without `JWT_SECRET` (allowed with SQLite only), tokens are signed
    /// with a random secret that dies with the process.
    pub fn new(config: &Config, store: Store) -> Self {
        let secret = config.jwt_secret.clone().unwrap_or_else(|| {
            log::warn!("JWT_SECRET is not set: signing tokens with a random secret; they stop working on restart");
            Secret::from(rand::random::<[u8; 32]>().to_vec())
        });
        Self {
            login_limiter: Arc::new(LoginLimiter::new(
                config.login_rate_limit,
                &store,
                secret.expose(),
            )),
            store,
            tokens: Arc::new(Tokens::new(
                secret.expose(),
                config.jwt_secret_previous.as_ref().map(Secret::expose),
                config.token_ttl,
                config.refresh_ttl,
            )),
            passwords: Arc::new(Passwords::per_core()),
            api_key: Arc::new(config.api_key.clone()),
            cors_origins: config.cors_origins.clone(),
        }
    }
}
