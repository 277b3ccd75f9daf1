//! The endpoints: one small named filter each, grouped by resource; the table of every route, and the OpenAPI
//! document of them all beside it.
//!
//! Every endpoint chains its checks in one order: path → method → `api_key` → `jwt_user` → path id → body →
//! `with_db` → handler. Credentials come before the id and the body, so a request without them is a 401, never
//! a 422 (API.md). Path ids arrive as text and are parsed in the handler: a failed parse inside `path!` would be
//! a 404, and the contract wants a 422.

pub mod doc;
pub mod meta;
pub mod tasks;
pub mod users;

use serde::{Deserialize, Deserializer};
use utoipa::OpenApi;

use self::doc::SecuritySchemes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::reply::Response;

use crate::domain::{
    Invalid, Password, Principal, TaskDescription, TaskStatus, TaskTitle, Username,
};
use crate::error::{Error, FieldError, Problem};
use crate::state::Route;
use crate::store::{self, Store};

/// A member of a JSON request body as sent: absent, a string, or something else.
///
/// Raw request types hold their members as `Field`s so that one parse sees every member and the 422 can list
/// every problem at once, as FastAPI's does, instead of stopping at serde's first.
#[derive(Debug, Default)]
pub enum Field {
    #[default]
    Missing,
    Text(String),
    NotText,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Self::Text(text),
            _ => Self::NotText,
        })
    }
}

impl Field {
    /// Parses a member that may be left out. Problems are pushed onto `errors` under `["body", name]`.
    fn optional<T: FromMember>(
        self,
        name: &'static str,
        errors: &mut Vec<FieldError>,
    ) -> Option<T> {
        let problem = match self {
            Self::Missing => return None,
            Self::Text(text) => match T::from_member(text) {
                Ok(value) => return Some(value),
                Err(invalid) => invalid.into(),
            },
            Self::NotText => T::NOT_TEXT,
        };
        errors.push(FieldError::body(Some(name), problem));
        None
    }

    /// Like [`Field::optional`], for a member that must be present.
    fn required<T: FromMember>(
        self,
        name: &'static str,
        errors: &mut Vec<FieldError>,
    ) -> Option<T> {
        if let Self::Missing = self {
            errors.push(FieldError::body(Some(name), Problem::Missing));
            return None;
        }
        self.optional(name, errors)
    }
}

/// A domain value sent as a JSON string member.
trait FromMember: Sized {
    /// What a member that is not a string at all is reported as.
    const NOT_TEXT: Problem = Problem::NotAString;

    fn from_member(text: String) -> Result<Self, Invalid>;
}

/// Any text: a value that is only compared, such as the current password of a password change.
impl FromMember for String {
    fn from_member(text: String) -> Result<Self, Invalid> {
        Ok(text)
    }
}

impl FromMember for Username {
    fn from_member(text: String) -> Result<Self, Invalid> {
        Self::parse(text)
    }
}

impl FromMember for Password {
    fn from_member(text: String) -> Result<Self, Invalid> {
        Self::parse(text)
    }
}

impl FromMember for TaskTitle {
    fn from_member(text: String) -> Result<Self, Invalid> {
        Self::parse(text)
    }
}

impl FromMember for TaskDescription {
    fn from_member(text: String) -> Result<Self, Invalid> {
        Self::parse(text)
    }
}

impl FromMember for TaskStatus {
    /// pydantic reports a status of the wrong type as "not one of the values", not as "not a string".
    const NOT_TEXT: Problem = Problem::Invalid(Invalid::NotOneOf(TaskStatus::ALL));

    fn from_member(text: String) -> Result<Self, Invalid> {
        Self::parse(&text)
    }
}

/// Parses an integer query or path parameter and checks it with `parse`. A number too large for 64 bits is out
/// of range rather than "not an integer", as pydantic, with its unbounded integers, reports it.
fn integer<T>(raw: &str, parse: impl Fn(i64) -> Result<T, Invalid>) -> Result<T, Problem> {
    use std::num::IntErrorKind;
    match raw.trim().parse::<i64>() {
        Ok(number) => parse(number).map_err(Problem::Invalid),
        Err(err) => Err(match err.kind() {
            IntErrorKind::PosOverflow => Problem::Invalid(
                parse(i64::MAX)
                    .err()
                    .unwrap_or(Invalid::TooLarge { max: i64::MAX }),
            ),
            IntErrorKind::NegOverflow => Problem::Invalid(
                parse(i64::MIN)
                    .err()
                    .unwrap_or(Invalid::TooSmall { min: i64::MIN }),
            ),
            _ => Problem::NotAnInteger,
        }),
    }
}

/// The parsed input of a protected request, or the answer to input that broke the contract: a 422 listing every
/// problem, unless the session of its credentials has ended, which is a 401 and comes first (API.md checks
/// credentials before input). That check is the only extra round trip the store sees, and only for refused
/// input; valid requests check their session inside their own query.
pub(crate) async fn checked<T>(
    store: &Store,
    user: Principal,
    parsed: Result<T, Vec<FieldError>>,
) -> Result<T, Error> {
    let errors = match parsed {
        Ok(value) => return Ok(value),
        Err(errors) => errors,
    };
    Err(match store::users::require(store, user).await {
        Ok(()) => Error::Validation(errors),
        Err(err) => Error::from(err),
    })
}

/// `Ok(value)` when nothing went wrong, else every problem found.
fn collect<T>(value: Option<T>, errors: Vec<FieldError>) -> Result<T, Vec<FieldError>> {
    match value {
        Some(value) if errors.is_empty() => Ok(value),
        _ => Err(errors),
    }
}

/// The document: every operation, schema and security scheme of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tasky",
        description = "Task management: sign up, log in with the OAuth2 password flow, and manage your own \
            tasks. Every task route needs both the bearer token from `POST /token` and the `X-API-Key` header.",
    ),
    paths(
        users::users_signup,
        users::users_token,
        users::users_me,
        users::users_change_password,
        users::users_delete_me,
        users::users_logout,
        tasks::tasks_create,
        tasks::tasks_list,
        tasks::tasks_get,
        tasks::tasks_update,
        tasks::tasks_delete,
        meta::meta_health,
        meta::meta_openapi,
        meta::meta_docs,
        meta::meta_docs_file,
    ),
    components(schemas(
        crate::domain::User,
        crate::domain::Task,
        crate::domain::TaskStatus,
        crate::domain::Timestamp,
        doc::SignupRequest,
        doc::LoginForm,
        doc::PasswordChangeRequest,
        doc::NewTaskRequest,
        doc::TaskChangesRequest,
        users::AccessToken,
        meta::Health,
        doc::ErrorDetail,
        doc::ValidationError,
        doc::ValidationIssue,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "users", description = "Accounts, sessions and tokens"),
        (name = "tasks", description = "Your own tasks; nobody else's are visible"),
        (name = "meta", description = "The service itself: health, this document, its interactive page"),
    ),
)]
pub struct ApiDoc;

impl ApiDoc {
    /// The document as JSON, as served at `/openapi.json`.
    pub fn json() -> String {
        // Serialising plain data built by utoipa cannot fail; an empty document would fail the tests at once.
        serde_json::to_string(&Self::openapi()).unwrap_or_default()
    }
}

/// Every path the API serves, as OpenAPI templates, with the methods it serves there. The `Allow` header of a
/// 405 comes from here, and tests hold this table equal to the OpenAPI document and to what `api()` answers.
pub const ROUTES: &[(&str, &str)] = &[
    ("/signup", "POST"),
    ("/token", "POST"),
    ("/users/me", "GET, DELETE"),
    ("/users/me/password", "PUT"),
    ("/logout", "POST"),
    ("/tasks", "GET, POST"),
    ("/tasks/{id}", "GET, PUT, DELETE"),
    ("/healthz", "GET"),
    ("/openapi.json", "GET"),
    ("/docs", "GET"),
    ("/docs/{file}", "GET"),
];

/// The last branch of [`crate::api`]: a path of [`ROUTES`] asked with a method it does not serve gets a 405
/// with `Allow`; anything else falls through as "not found", so the endpoints' own rejections decide the
/// answer. The two never compete: when this branch answers 405, no endpoint got past its method filter.
///
/// Matches with segment filters like the endpoints themselves: warp's `path::full()` panics on a request whose
/// target is not a path (`CONNECT host:port`), and this branch sees every request.
pub fn method_not_allowed() -> Route {
    ROUTES
        .iter()
        .map(|&(template, allow)| resource(template, allow))
        .reduce(|routes, route| routes.or(route).unify().boxed())
        .unwrap_or_else(|| {
            warp::any()
                .and_then(|| async { Err(warp::reject::not_found()) })
                .boxed()
        })
}

/// Rejects a request to the path `template` with 405 unless its method is one of `allow`.
fn resource(template: &'static str, allow: &'static str) -> Route {
    template
        .trim_start_matches('/')
        .split('/')
        .map(|segment| -> BoxedFilter<()> {
            if segment.starts_with('{') {
                warp::path::param::<String>()
                    .map(|_| ())
                    .untuple_one()
                    .boxed()
            } else {
                warp::path(segment).boxed()
            }
        })
        .fold(warp::any().boxed(), |path, segment| {
            path.and(segment).boxed()
        })
        .and(warp::path::end())
        .and(warp::method())
        .and_then(move |method: Method| async move {
            let rejection = if allow.split(", ").any(|m| m == method.as_str()) {
                warp::reject::not_found()
            } else {
                warp::reject::custom(Error::MethodNotAllowed { allow })
            };
            Err::<Response, _>(rejection)
        })
        .boxed()
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Limit, Offset, TaskId};

    #[test]
    fn integers_read_like_pydantic() {
        assert_eq!(integer(" +7 ", TaskId::parse), Ok(TaskId(7)));
        assert_eq!(integer("abc", TaskId::parse), Err(Problem::NotAnInteger));
        assert_eq!(integer("1.5", TaskId::parse), Err(Problem::NotAnInteger));
        assert_eq!(integer("", Limit::parse), Err(Problem::NotAnInteger));
        assert_eq!(
            integer("0", TaskId::parse),
            Err(Invalid::TooSmall { min: 1 }.into())
        );
    }

    #[test]
    fn integers_beyond_64_bits_are_out_of_range() {
        let huge = "9".repeat(30);
        assert_eq!(
            integer(&huge, Limit::parse),
            Err(Invalid::TooLarge { max: 1000 }.into())
        );
        assert_eq!(
            integer(&huge, Offset::parse),
            Err(Invalid::TooLarge { max: i64::MAX }.into())
        );
        assert_eq!(
            integer("9223372036854775808", TaskId::parse),
            Err(Invalid::TooLarge { max: i64::MAX }.into())
        );
        assert_eq!(
            integer(&format!("-{huge}"), Offset::parse),
            Err(Invalid::TooSmall { min: 0 }.into())
        );
    }

    proptest::proptest! {
        #[test]
        fn integers_never_panic_and_keep_their_value(raw in proptest::prelude::any::<String>(), n in proptest::prelude::any::<i64>()) {
            let _ = integer(&raw, Offset::parse);
            proptest::prop_assert_eq!(integer(&n.to_string(), Ok::<_, Invalid>), Ok(n));
            proptest::prop_assert_eq!(integer(&format!(" {n} "), Ok::<_, Invalid>), Ok(n));
        }
    }
}
