//! The one error type, and the one place that turns it (and every other rejection) into an HTTP answer.
//!
//! Handlers and filters name an outcome with [`Error`]; [`recover`] alone picks the status code and the `detail`
//! text, FastAPI-shaped. Internal causes are logged here once and never reach the client.

use std::convert::Infallible;
use std::fmt::Write as _;

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};
use warp::{Rejection, reject};

use crate::domain::Invalid;
use crate::store::StoreError;

/// Everything a request can end in, other than success.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// `X-API-Key` missing or wrong.
    #[error("invalid or missing API key")]
    InvalidApiKey,
    /// Bearer token missing, malformed, tampered, expired, or its user is gone.
    #[error("invalid bearer token")]
    InvalidToken,
    /// Login with an unknown username or a wrong password.
    #[error("incorrect username or password")]
    BadCredentials,
    /// A refresh token that is unknown, expired, spent, or of an ended session.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A password change whose current password is wrong.
    #[error("incorrect password")]
    IncorrectPassword,
    /// The task does not exist or belongs to someone else.
    #[error("task not found")]
    NotFound,
    /// The username is taken.
    #[error("username already registered")]
    Conflict,
    /// The request did not meet the contract; one entry per problem.
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// The body is over the size limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body could not be read as HTTP (a broken chunked encoding, a connection cut mid-body).
    #[error("malformed request body")]
    MalformedBody,
    /// A known path with a method it does not serve; `allow` is the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// Too many failed logins; the client may try again after this many seconds.
    #[error("too many login attempts")]
    TooManyAttempts { retry_after: u64 },
    /// The request did not arrive in time (a body trickling in).
    #[error("request timeout")]
    RequestTimeout,
    /// The store cannot serve requests right now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A fault of ours; the text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl reject::Reject for Error {}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => Self::Conflict,
            StoreError::NoSuchUser => Self::InvalidToken,
            StoreError::Unavailable(why) => Self::Unavailable(why),
            StoreError::Internal(why) => Self::Internal(why),
        }
    }
}

/// One entry of a 422 `detail` list: `{"loc": ["body", "title"], "msg": "...", "type": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    loc: Vec<Loc>,
    problem: Problem,
}

/// One step of a `loc`: a member name, or a character position in a malformed JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Loc {
    Name(&'static str),
    Position(usize),
}

/// What is wrong with one input, in pydantic's vocabulary so clients of the FastAPI version recognise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A required input is absent.
    Missing,
    /// Not a JSON string.
    NotAString,
    /// Not an integer.
    NotAnInteger,
    /// Not a boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`).
    NotABoolean,
    /// The body is not valid JSON.
    MalformedJson,
    /// The body is valid JSON but not an object.
    NotAnObject,
    /// A `PUT` body that names none of the fields it could change.
    NoChanges,
    /// A value a domain parser refused.
    Invalid(Invalid),
}

impl FieldError {
    /// A problem with body member `name` (or with the whole body when `name` is `None`).
    pub fn body(name: Option<&'static str>, problem: impl Into<Problem>) -> Self {
        let mut loc = vec![Loc::Name("body")];
        loc.extend(name.map(Loc::Name));
        Self {
            loc,
            problem: problem.into(),
        }
    }

    /// A malformed JSON body, located at character `position`.
    pub fn malformed_json(position: usize) -> Self {
        Self {
            loc: vec![Loc::Name("body"), Loc::Position(position)],
            problem: Problem::MalformedJson,
        }
    }

    /// A problem with query parameter `name`.
    pub fn query(name: &'static str, problem: impl Into<Problem>) -> Self {
        Self {
            loc: vec![Loc::Name("query"), Loc::Name(name)],
            problem: problem.into(),
        }
    }

    /// A problem with path parameter `name`.
    pub fn path(name: &'static str, problem: impl Into<Problem>) -> Self {
        Self {
            loc: vec![Loc::Name("path"), Loc::Name(name)],
            problem: problem.into(),
        }
    }
}

impl From<Invalid> for Problem {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid)
    }
}

impl Problem {
    /// pydantic's error `type`.
    fn kind(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotAString => "string_type",
            Self::NotAnInteger => "int_parsing",
            Self::NotABoolean => "bool_parsing",
            Self::MalformedJson => "json_invalid",
            Self::NotAnObject => "model_attributes_type",
            Self::NoChanges => "value_error",
            Self::Invalid(Invalid::TooShort { .. }) => "string_too_short",
            Self::Invalid(Invalid::TooLong { .. }) => "string_too_long",
            Self::Invalid(Invalid::Pattern(_)) => "string_pattern_mismatch",
            Self::Invalid(Invalid::NotOneOf(_)) => "literal_error",
            Self::Invalid(Invalid::TooSmall { .. }) => "greater_than_equal",
            Self::Invalid(Invalid::TooLarge { .. }) => "less_than_equal",
        }
    }

    /// pydantic's error `msg`.
    fn message(self) -> String {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        match self {
            Self::Missing => "Field required".into(),
            Self::NotAString => "Input should be a valid string".into(),
            Self::NotAnInteger => {
                "Input should be a valid integer, unable to parse string as an integer".into()
            }
            Self::NotABoolean => {
                "Input should be a valid boolean, unable to interpret input".into()
            }
            Self::MalformedJson => "JSON decode error".into(),
            Self::NotAnObject => {
                "Input should be a valid dictionary or object to extract fields from".into()
            }
            Self::NoChanges => {
                "Value error, at least one of title, description, status is required".into()
            }
            Self::Invalid(Invalid::TooShort { min }) => {
                format!("String should have at least {min} character{}", plural(min))
            }
            Self::Invalid(Invalid::TooLong { max }) => {
                format!("String should have at most {max} character{}", plural(max))
            }
            Self::Invalid(Invalid::Pattern(pattern)) => {
                format!("String should match pattern '{pattern}'")
            }
            Self::Invalid(Invalid::NotOneOf(values)) => {
                let mut msg = String::from("Input should be ");
                for (i, value) in values.iter().enumerate() {
                    let sep = match i {
                        0 => "",
                        i if i + 1 == values.len() => " or ",
                        _ => ", ",
                    };
                    let _ = write!(msg, "{sep}'{value}'");
                }
                msg
            }
            Self::Invalid(Invalid::TooSmall { min }) => {
                format!("Input should be greater than or equal to {min}")
            }
            Self::Invalid(Invalid::TooLarge { max }) => {
                format!("Input should be less than or equal to {max}")
            }
        }
    }
}

impl Serialize for FieldError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut entry = serializer.serialize_struct("FieldError", 3)?;
        entry.serialize_field("loc", &self.loc)?;
        entry.serialize_field("msg", &self.problem.message())?;
        entry.serialize_field("type", self.problem.kind())?;
        entry.end()
    }
}

/// `{"detail": ...}`, the body of every error answer.
#[derive(Serialize)]
struct Detail<T: Serialize> {
    detail: T,
}

/// A JSON error answer.
fn answer<T: Serialize>(status: StatusCode, detail: T) -> Response {
    warp::reply::with_status(warp::reply::json(&Detail { detail }), status).into_response()
}

/// A 401 that asks for a bearer token (RFC 6750).
fn bearer_challenge(detail: &str) -> Response {
    let mut response = answer(StatusCode::UNAUTHORIZED, detail);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

impl Error {
    fn to_response(&self) -> Response {
        match self {
            Self::InvalidApiKey => answer(StatusCode::UNAUTHORIZED, "Invalid or missing API key"),
            Self::InvalidToken => bearer_challenge("Could not validate credentials"),
            Self::BadCredentials => bearer_challenge("Incorrect username or password"),
            Self::InvalidRefreshToken => bearer_challenge("Invalid refresh token"),
            Self::IncorrectPassword => answer(StatusCode::BAD_REQUEST, "Incorrect password"),
            Self::NotFound => answer(StatusCode::NOT_FOUND, "Task not found"),
            Self::Conflict => answer(StatusCode::CONFLICT, "Username already registered"),
            Self::Validation(errors) => answer(StatusCode::UNPROCESSABLE_ENTITY, errors),
            Self::PayloadTooLarge => {
                // Refused before the body was read whole: the rest of it is still coming, so the connection
                // cannot carry another request (the serve loop lingers to read it away before closing).
                let mut response = answer(StatusCode::PAYLOAD_TOO_LARGE, "Content Too Large");
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
            Self::MalformedBody => answer(StatusCode::BAD_REQUEST, "Malformed request body"),
            Self::MethodNotAllowed { allow } => {
                let mut response = answer(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                response
            }
            Self::TooManyAttempts { retry_after } => {
                let mut response = answer(StatusCode::TOO_MANY_REQUESTS, "Too many login attempts");
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                response
            }
            Self::RequestTimeout => {
                // The body was still arriving: the connection closes, lingering to read the rest away.
                let mut response = answer(StatusCode::REQUEST_TIMEOUT, "Request Timeout");
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
            Self::Unavailable(why) => {
                log::warn!("answering 503: {why}");
                answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service temporarily unavailable",
                )
            }
            Self::Internal(why) => {
                log::error!("answering 500: {why}");
                internal_error()
            }
        }
    }
}

/// The answer to a request the HTTP layer refuses before any route runs (a malformed head, a refused
/// `Transfer-Encoding`, a head too slow, too long or too large): `{"detail": "<reason phrase>"}`, as Starlette
/// words its own HTTP errors, and the connection closes, since the rest of what the client sent cannot be
/// trusted to be framed as it claims.
pub fn protocol_error(status: StatusCode) -> Response {
    let mut response = answer(status, status.canonical_reason().unwrap_or("Bad Request"));
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// [`protocol_error`] as bytes on the wire, for the serve loop to send where hyper would have answered itself.
pub fn protocol_error_bytes(status: StatusCode) -> Vec<u8> {
    let reason = status.canonical_reason().unwrap_or("Bad Request");
    let body = serde_json::to_string(&Detail { detail: reason }).unwrap_or_default();
    format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-content-type-options: nosniff\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        body.len(),
    )
    .into_bytes()
}

fn internal_error() -> Response {
    answer(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// The one adapter from a handler's outcome to warp's world: handlers return `Result<Response, Error>`, and an
/// error is rendered here exactly as [`recover`] renders it when a filter rejects.
pub fn respond(outcome: Result<Response, Error>) -> Response {
    outcome.unwrap_or_else(|err| err.to_response())
}

/// Turns any rejection into the contract's JSON answer. The routes' own [`Error`] comes first, then warp's
/// "no route matched"; anything else is a fault of ours and answers 500 without details.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    if let Some(err) = rejection.find::<Error>() {
        return Ok(err.to_response());
    }
    if rejection.is_not_found() {
        return Ok(answer(StatusCode::NOT_FOUND, "Not Found"));
    }
    if rejection.find::<reject::MethodNotAllowed>().is_some() {
        // routes::method_not_allowed answers every path of ROUTES with Allow; getting here means an endpoint
        // serves a path the table does not list.
        log::error!("405 without Allow: an endpoint's path is missing from routes::ROUTES");
        return Ok(answer(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"));
    }
    log::error!("answering 500 for an unhandled rejection: {rejection:?}");
    Ok(internal_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rendered(err: Error) -> (StatusCode, String) {
        use warp::Filter as _;
        let failing = warp::any()
            .and_then(move || {
                let err = err.clone();
                async move { Err::<Response, _>(reject::custom(err)) }
            })
            .recover(recover);
        let response = warp::test::request().reply(&failing).await;
        (
            response.status(),
            String::from_utf8_lossy(response.body()).into_owned(),
        )
    }

    #[tokio::test]
    async fn internal_causes_never_reach_the_client() {
        let cause = "SELECT * FROM users: sqlite error near $argon2id$v=19 at src/db/users.rs:42";
        let (status, body) = rendered(Error::Internal(cause.into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, r#"{"detail":"Internal Server Error"}"#);
        let (status, body) = rendered(Error::Unavailable(cause.into())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, r#"{"detail":"Service temporarily unavailable"}"#);
    }

    fn entry(err: FieldError) -> serde_json::Value {
        serde_json::to_value(err).unwrap()
    }

    #[test]
    fn entries_use_pydantic_types_and_messages() {
        let e = entry(FieldError::body(
            Some("username"),
            Invalid::TooShort { min: 3 },
        ));
        assert_eq!(
            e,
            serde_json::json!({"loc": ["body", "username"], "msg": "String should have at least 3 characters", "type": "string_too_short"})
        );
        let e = entry(FieldError::body(
            Some("title"),
            Invalid::TooShort { min: 1 },
        ));
        assert_eq!(e["msg"], "String should have at least 1 character");
        let e = entry(FieldError::query(
            "status",
            Invalid::NotOneOf(&["pending", "completed"]),
        ));
        assert_eq!(e["msg"], "Input should be 'pending' or 'completed'");
        assert_eq!(e["loc"], serde_json::json!(["query", "status"]));
        let e = entry(FieldError::malformed_json(7));
        assert_eq!(e["loc"], serde_json::json!(["body", 7]));
        assert_eq!(e["type"], "json_invalid");
        let e = entry(FieldError::body(None, Problem::Missing));
        assert_eq!(e["loc"], serde_json::json!(["body"]));
    }
}
