//! Endpoints about the service itself.

use serde_json::json;
use warp::Filter;
use warp::reply::{Reply, Response};

use crate::db::Db;
use crate::error::Error;
use crate::filters::with_db;
use crate::{AppState, Route};

/// Every endpoint of this module.
pub fn routes(state: &AppState) -> Route {
    meta_health(state)
}

/// GET /healthz
fn meta_health(state: &AppState) -> Route {
    warp::path!("healthz")
        .and(warp::get())
        .and(with_db(state))
        .and_then(health)
        .boxed()
}

/// 200 when the database answers a query, 503 otherwise.
async fn health(db: Db) -> Result<Response, warp::Rejection> {
    db.ping()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    Ok(warp::reply::json(&json!({"status": "ok"})).into_response())
}
