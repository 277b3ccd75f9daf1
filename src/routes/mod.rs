//! The endpoints: one small named filter each, grouped by resource.
//!
//! Every endpoint chains its checks in one order: path → method → `api_key` → `jwt_user` → path id → body →
//! `with_db` → handler. Credentials come before the id and the body, so a request without them is a 401, never
//! a 422 (API.md). Path ids arrive as text and are parsed in the handler: a failed parse inside `path!` would be
//! a 404, and the contract wants a 422.

pub mod meta;
pub mod tasks;
pub mod users;

use serde::{Deserialize, Deserializer};
use warp::Filter;
use warp::filters::path::FullPath;
use warp::http::Method;
use warp::reply::Response;

use crate::Route;
use crate::error::{Error, FieldError, Problem};

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
    /// Parses a member that may be left out; a present member must be a string that `parse` accepts.
    /// Problems are pushed onto `errors` under `loc` `["body", name]`.
    fn optional<T, E: Into<Problem>>(
        self,
        name: &'static str,
        parse: impl FnOnce(String) -> Result<T, E>,
        errors: &mut Vec<FieldError>,
    ) -> Option<T> {
        let problem = match self {
            Self::Missing => return None,
            Self::Text(text) => match parse(text) {
                Ok(value) => return Some(value),
                Err(problem) => problem.into(),
            },
            Self::NotText => Problem::NotAString,
        };
        errors.push(FieldError::body(Some(name), problem));
        None
    }

    /// Like [`Field::optional`], for a member that must be present.
    fn required<T, E: Into<Problem>>(
        self,
        name: &'static str,
        parse: impl FnOnce(String) -> Result<T, E>,
        errors: &mut Vec<FieldError>,
    ) -> Option<T> {
        if let Self::Missing = self {
            errors.push(FieldError::body(Some(name), Problem::Missing));
            return None;
        }
        self.optional(name, parse, errors)
    }
}

/// `Ok(value)` when nothing went wrong, else every problem found.
fn collect<T>(value: Option<T>, errors: Vec<FieldError>) -> Result<T, Vec<FieldError>> {
    match value {
        Some(value) if errors.is_empty() => Ok(value),
        _ => Err(errors),
    }
}

/// The methods served at a path (trailing slash ignored), for the `Allow` header of a 405; `None` for a path
/// the API does not serve. Kept beside the endpoint filters, and checked against them by the tests.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut segments = path.strip_prefix('/')?.split('/');
    let allow = match (segments.next()?, segments.next(), segments.next()) {
        ("signup", None, _) => "POST",
        ("token", None, _) => "POST",
        ("users", Some("me"), None) => "GET",
        ("tasks", None, _) => "GET, POST",
        ("tasks", Some(id), None) if !id.is_empty() => "GET, PUT, DELETE",
        ("healthz", None, _) => "GET",
        _ => return None,
    };
    Some(allow)
}

/// The last branch of [`crate::api`]: a known path with a method it does not serve gets a 405 with `Allow`;
/// anything else falls through as "not found", so the other branches' rejections decide the answer.
pub fn method_not_allowed() -> Route {
    warp::method()
        .and(warp::path::full())
        .and_then(|method: Method, path: FullPath| async move {
            let rejection = match allowed_methods(path.as_str()) {
                Some(allow) if !allow.split(", ").any(|m| m == method.as_str()) => {
                    warp::reject::custom(Error::MethodNotAllowed { allow })
                }
                _ => warp::reject::not_found(),
            };
            Err::<Response, _>(rejection)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_methods_follow_the_routes() {
        assert_eq!(allowed_methods("/tasks"), Some("GET, POST"));
        assert_eq!(allowed_methods("/tasks/"), Some("GET, POST"));
        assert_eq!(allowed_methods("/tasks/7"), Some("GET, PUT, DELETE"));
        assert_eq!(allowed_methods("/tasks/abc/"), Some("GET, PUT, DELETE"));
        assert_eq!(allowed_methods("/tasks/7/x"), None);
        assert_eq!(allowed_methods("/users/me"), Some("GET"));
        assert_eq!(allowed_methods("/users"), None);
        assert_eq!(allowed_methods("/"), None);
        assert_eq!(allowed_methods("/nope"), None);
    }
}
