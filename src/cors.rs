//! CORS (API.md's `CORS_ORIGINS`): which browser origins may call the API.
//!
//! This wrapper never refuses a request. It answers preflights from allowed origins and adds the CORS headers to
//! every answer for them, error answers included, since it wraps the routes after [`crate::error::recover`].
//! A request from any other origin is served as usual without the headers, and the browser keeps the answer
//! from the page. (warp's own `cors()` refuses such requests with 403 instead, which would also refuse
//! same-origin POSTs from `/docs`: browsers send `Origin` on those too.)

use std::sync::Arc;

use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::Route;
use crate::config::CorsOrigins;
use crate::filters::header;

/// Methods a preflight may ask for.
const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE";
/// Request headers a preflight may ask for: the two credentials and the body's type.
const ALLOW_HEADERS: &str = "Authorization, X-API-Key, Content-Type";
/// Response headers a page may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "Location, X-Total-Count, Retry-After, WWW-Authenticate";
/// How long a browser may reuse a preflight answer, in seconds.
const MAX_AGE: &str = "600";

/// `api` with CORS for `origins`; unchanged when no origin is allowed.
pub fn wrap(api: Route, origins: &CorsOrigins) -> Route {
    if *origins == CorsOrigins::None {
        return api;
    }
    let policy = Arc::new(origins.clone());
    let preflight = {
        let policy = policy.clone();
        warp::options()
            .and(header("origin"))
            .and(header("access-control-request-method"))
            .and_then(move |origin: Option<String>, method: Option<String>| {
                let allowed =
                    method.is_some() && origin.as_deref().is_some_and(|o| allows(&policy, o));
                async move {
                    if allowed {
                        let mut response = Response::default();
                        *response.status_mut() = StatusCode::NO_CONTENT;
                        let headers = response.headers_mut();
                        headers.insert(
                            header::ACCESS_CONTROL_ALLOW_METHODS,
                            HeaderValue::from_static(ALLOW_METHODS),
                        );
                        headers.insert(
                            header::ACCESS_CONTROL_ALLOW_HEADERS,
                            HeaderValue::from_static(ALLOW_HEADERS),
                        );
                        headers.insert(
                            header::ACCESS_CONTROL_MAX_AGE,
                            HeaderValue::from_static(MAX_AGE),
                        );
                        Ok(response)
                    } else {
                        // Not a preflight this policy answers: the routes decide (an OPTIONS there is a 405).
                        Err(warp::reject::not_found())
                    }
                }
            })
    };
    header("origin")
        .and(preflight.or(api).unify())
        .map(move |origin: Option<String>, mut response: Response| {
            decorate(&policy, origin.as_deref(), response.headers_mut());
            response
        })
        .boxed()
}

/// Whether `origin` may read answers.
fn allows(policy: &CorsOrigins, origin: &str) -> bool {
    match policy {
        CorsOrigins::None => false,
        CorsOrigins::Any => true,
        CorsOrigins::List(list) => list
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin)),
    }
}

/// Adds the CORS headers of an answer to a request from `origin`.
fn decorate(policy: &CorsOrigins, origin: Option<&str>, headers: &mut HeaderMap) {
    if let CorsOrigins::List(_) = policy {
        // The answer depends on the Origin header, so caches must key on it.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    let Some(origin) = origin.filter(|origin| allows(policy, origin)) else {
        return;
    };
    let allow_origin = match policy {
        CorsOrigins::Any => HeaderValue::from_static("*"),
        _ => match HeaderValue::from_str(origin) {
            Ok(value) => value,
            Err(_) => return,
        },
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}
