//! Endpoints about the service itself: health, the OpenAPI document, and its interactive page.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;
use warp::Filter;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

use super::ApiDoc;
use super::doc::ErrorDetail;
use crate::error::{Error, respond};
use crate::filters::with_db;
use crate::state::{AppState, Route};
use crate::store::Store;

/// Every endpoint of this module.
pub fn routes(state: &AppState) -> Route {
    let docs = Arc::new(DocsPage::new());
    meta_health(state)
        .or(meta_openapi())
        .unify()
        .or(meta_docs(docs.clone()))
        .unify()
        .or(meta_docs_file(docs))
        .unify()
        .boxed()
}

/// The answer of a healthy `/healthz`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// GET /healthz
#[utoipa::path(
    get, path = "/healthz", operation_id = "check_health", tag = "meta",
    summary = "Health check",
    description = "200 when the database answers a query, 503 otherwise. Needs no credentials.",
    responses(
        (status = 200, description = "The service and its database work", body = Health),
        (status = 503, description = "The database does not answer", body = ErrorDetail,
            example = json!({"detail": "Service temporarily unavailable"})),
    ),
)]
pub(crate) fn meta_health(state: &AppState) -> Route {
    warp::path!("healthz")
        .and(warp::get())
        .and(with_db(&state.store))
        .then(check_health)
        .map(respond)
        .boxed()
}

async fn check_health(store: Store) -> Result<Response, Error> {
    store
        .ping()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    Ok(warp::reply::json(&Health { status: "ok" }).into_response())
}

/// GET /openapi.json
#[utoipa::path(
    get, path = "/openapi.json", operation_id = "read_openapi", tag = "meta",
    summary = "This OpenAPI document",
    description = "The OpenAPI 3.1 document of the whole API, generated from the code. Generate clients from it.",
    responses(
        (status = 200, description = "The document", content_type = "application/json", body = Object,
            example = json!({"openapi": "3.1.0", "info": {"title": "Tasky"}, "paths": {}})),
    ),
)]
pub(crate) fn meta_openapi() -> Route {
    let document = Bytes::from(ApiDoc::json());
    warp::path!("openapi.json")
        .and(warp::get())
        .map(move || {
            let mut response = Response::new(document.clone().into());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        })
        .boxed()
}

/// GET /docs
#[utoipa::path(
    get, path = "/docs", operation_id = "read_docs", tag = "meta",
    summary = "Interactive documentation (Swagger UI)",
    description = "Swagger UI for this document. Its assets are compiled into the binary, so it works \
        without internet access. Authorize with both schemes, then use *Try it out*.",
    responses(
        (status = 200, description = "The Swagger UI page", content_type = "text/html", body = String,
            example = json!("<!DOCTYPE html>...")),
    ),
)]
pub(crate) fn meta_docs(docs: Arc<DocsPage>) -> Route {
    warp::path!("docs")
        .and(warp::get())
        .map(move || docs.index())
        .boxed()
}

/// GET /docs/{file}
#[utoipa::path(
    get, path = "/docs/{file}", operation_id = "read_docs_asset", tag = "meta",
    summary = "A Swagger UI asset",
    description = "The scripts, styles and icons the `/docs` page loads.",
    params(("file" = String, Path, description = "An asset of the page", example = "swagger-ui.css",
        pattern = "^(swagger-ui\\.css|index\\.css|swagger-ui-bundle\\.js|swagger-ui-standalone-preset\\.js|swagger-initializer\\.js|favicon-32x32\\.png|favicon-16x16\\.png)$")),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/css", example = json!("body{}")),
            (String = "text/javascript", example = json!("window.onload=function(){}")),
            (String = "image/png", example = json!("<binary>")),
        )),
        (status = 404, description = "No such asset", body = ErrorDetail, example = json!({"detail": "Not Found"})),
    ),
)]
pub(crate) fn meta_docs_file(docs: Arc<DocsPage>) -> Route {
    warp::path!("docs" / String)
        .and(warp::get())
        .and_then(move |file: String| {
            let answer = docs.asset(&file).ok_or_else(warp::reject::not_found);
            async move { answer }
        })
        .boxed()
}

/// The assets the page loads, each served at `/docs/<name>`.
const ASSETS: &[&str] = &[
    "swagger-ui.css",
    "index.css",
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-initializer.js",
    "favicon-32x32.png",
    "favicon-16x16.png",
];

/// Swagger UI, prepared once: the page with absolute asset links (so `/docs` and `/docs/` both work without a
/// redirect) and the initializer pointing at `/openapi.json`.
pub struct DocsPage {
    index: Bytes,
    assets: Vec<(&'static str, &'static str, Bytes)>,
}

/// The page only loads its own files; everything else is refused by the browser.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self' data:; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

impl DocsPage {
    fn new() -> Self {
        let config = Arc::new(
            utoipa_swagger_ui::Config::new(["/openapi.json"]).display_request_duration(true),
        );
        let file = |name: &str| -> Option<(String, Bytes)> {
            let file = utoipa_swagger_ui::serve(name, config.clone())
                .ok()
                .flatten()?;
            Some((file.content_type, Bytes::from(file.bytes.into_owned())))
        };
        let index = file("index.html")
            .map(|(_, html)| {
                let html = String::from_utf8_lossy(&html)
                    .replace("href=\"./", "href=\"/docs/")
                    .replace("src=\"./", "src=\"/docs/")
                    .replace("href=\"index.css\"", "href=\"/docs/index.css\"")
                    .replace("<title>Swagger UI</title>", "<title>Tasky API</title>");
                Bytes::from(html)
            })
            .unwrap_or_default();
        let assets = ASSETS
            .iter()
            .filter_map(|&name| {
                let (_, bytes) = file(name)?;
                let content_type = match name.rsplit('.').next() {
                    Some("css") => "text/css; charset=utf-8",
                    Some("js") => "text/javascript; charset=utf-8",
                    _ => "image/png",
                };
                Some((name, content_type, bytes))
            })
            .collect();
        Self { index, assets }
    }

    fn index(&self) -> Response {
        let mut response = Response::new(self.index.clone().into());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    fn asset(&self, name: &str) -> Option<Response> {
        let (_, content_type, bytes) = self.assets.iter().find(|(asset, _, _)| *asset == name)?;
        let mut response = Response::new(bytes.clone().into());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        Some(response)
    }
}
