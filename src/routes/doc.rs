//! The schema types of the OpenAPI document ([`super::ApiDoc`]): request bodies, error answers and the two
//! security schemes. A leaf: it knows the domain, not the routes.
//!
//! Each endpoint carries its own `#[utoipa::path]` beside its filter, and the read models derive their schemas
//! beside their `Serialize`. The request schemas are built here from the domain types' own limits
//! (`Username::MAX`, `TaskTitle::MAX`, ...), so a rule cannot change in one place and not the other.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Flow, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoResponses, Modify, PartialSchema, ToSchema};

use crate::domain::{self, TaskDescription, TaskStatus, TaskTitle, Username};

/// Name of the OAuth2 password-flow scheme (the bearer token from `POST /token`).
pub const OAUTH2: &str = "OAuth2PasswordBearer";
/// Name of the `X-API-Key` scheme.
pub const API_KEY: &str = "APIKeyHeader";

/// Declares the two credentials. The API key's value is configuration, so it never appears here.
pub(super) struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let password = Flow::Password(Password::new("/token", Scopes::new()));
        components.add_security_scheme(
            OAUTH2,
            SecurityScheme::OAuth2(OAuth2::with_description(
                [password],
                "Log in with username and password; the token answered is sent as `Authorization: Bearer ...`.",
            )),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The service's API key, required together with the bearer token.",
            ))),
        );
    }
}

/// The characters `str::trim` removes (Unicode White_Space), as a regex class that reads the same in
/// ECMA-262 (JSON Schema's dialect) and Python (which schema-driven test generators use).
const TRIMMED: &str = r"\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A title: what remains after trimming is `TaskTitle::MIN` to `TaskTitle::MAX` characters. `maxLength`
/// would count the whitespace around it, so the rule is a pattern: optional whitespace, a non-space
/// character, up to `MAX - 2` of anything and a last non-space character, optional whitespace.
fn title_schema() -> ObjectBuilder {
    debug_assert_eq!(
        TaskTitle::MIN,
        1,
        "the pattern below spells out a minimum of one character"
    );
    // No U+0000 anywhere (domain::NO_NUL): the classes below leave it out.
    let pattern = format!(
        r"^[{TRIMMED}]*[^{TRIMMED}\x00](?:[^\x00]{{0,{}}}[^{TRIMMED}\x00])?[{TRIMMED}]*$",
        TaskTitle::MAX - 2
    );
    string_schema(&format!(
        "{} to {} characters once surrounding whitespace is trimmed (the trimmed text is stored), without U+0000",
        TaskTitle::MIN,
        TaskTitle::MAX
    ))
    .pattern(Some(pattern))
    .examples(["Write report"])
}

fn description_schema() -> ObjectBuilder {
    string_schema("Free text without U+0000, kept as sent")
        .max_length(Some(TaskDescription::MAX))
        .pattern(Some(domain::NO_NUL))
        .examples(["Quarterly numbers"])
}

fn status_schema() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(TaskStatus::name()))
}

fn string_schema(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

/// Implements `ToSchema` for a request type whose schema is built by a function here.
macro_rules! request_schema {
    ($name:ident, $build:expr) => {
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $build
            }
        }
        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

/// The body of `POST /signup`.
pub struct SignupRequest;

request_schema!(
    SignupRequest,
    ObjectBuilder::new()
        .property(
            "username",
            string_schema("Unique, compared ignoring case")
                .min_length(Some(Username::MIN))
                .max_length(Some(Username::MAX))
                .pattern(Some(Username::PATTERN))
                .examples(["alice"]),
        )
        .required("username")
        .property(
            "password",
            string_schema("Stored only as an Argon2id hash")
                .min_length(Some(domain::Password::MIN))
                .max_length(Some(domain::Password::MAX))
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Password
                )))
                .examples(["s3cret-pass"]),
        )
        .required("password")
        .examples([json!({"username": "alice", "password": "s3cret-pass"})])
        .into()
);

/// The form of `POST /token`: the password grant (RFC 6749 §4.3.2) or the refresh grant (§6).
pub struct LoginForm;

request_schema!(
    LoginForm,
    ObjectBuilder::new()
        .description(Some(
            "The password grant sends `username` and `password` (and `grant_type=password`, or none); the refresh \
             grant sends `grant_type=refresh_token` and `refresh_token`."
        ))
        .property(
            "username",
            string_schema("The username, in any case (password grant)").min_length(Some(1))
        )
        .property(
            "password",
            string_schema("The password (password grant)")
                .min_length(Some(1))
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Password
                ))),
        )
        .property(
            "grant_type",
            // An empty form value counts as not sent, as in every OAuth2PasswordRequestForm.
            string_schema("`password` (or empty/absent), or `refresh_token`")
                .pattern(Some("^(password|refresh_token)?$")),
        )
        .property(
            "refresh_token",
            // Empty counts as not sent, as for every field of this form.
            string_schema("The refresh token of the last answer (refresh grant)")
        )
        .property("scope", string_schema("Ignored"))
        .property("client_id", string_schema("Ignored"))
        .property("client_secret", string_schema("Ignored"))
        .examples([
            json!({"username": "alice", "password": "s3cret-pass", "grant_type": "password"})
        ])
        .into()
);

/// The body of `PUT /users/me/password`.
pub struct PasswordChangeRequest;

request_schema!(
    PasswordChangeRequest,
    ObjectBuilder::new()
        .property(
            "current_password",
            string_schema("The password now").format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Password)
            )),
        )
        .required("current_password")
        .property(
            "new_password",
            string_schema("The new password")
                .min_length(Some(domain::Password::MIN))
                .max_length(Some(domain::Password::MAX))
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Password
                ))),
        )
        .required("new_password")
        .examples([
            json!({"current_password": "s3cret-pass", "new_password": "an even better one"})
        ])
        .into()
);

/// The body of `POST /tasks`.
pub struct NewTaskRequest;

request_schema!(
    NewTaskRequest,
    ObjectBuilder::new()
        .property("title", title_schema())
        .required("title")
        .property("description", description_schema().default(Some(json!(""))))
        .property("status", status_schema())
        .examples([json!({"title": "Write report", "description": "Quarterly numbers", "status": "pending"})])
        .into()
);

/// The body of `PUT /tasks/{id}`: any of the three fields, at least one.
pub struct TaskChangesRequest;

request_schema!(TaskChangesRequest, {
    let with_required = |member: &str| {
        ObjectBuilder::new()
            .property("title", title_schema())
            .property("description", description_schema())
            .property("status", status_schema())
            .required(member)
    };
    AnyOfBuilder::new()
        .item(with_required("title"))
        .item(with_required("description"))
        .item(with_required("status"))
        .description(Some("The fields to change; at least one of them"))
        .examples([json!({"status": "completed"})])
        .into()
});

/// An error answer whose body is [`ErrorDetail`] with the given examples (name, detail).
fn error_response(
    description: &str,
    examples: &[(&str, &str)],
    bearer_challenge: bool,
) -> Response {
    let mut content =
        ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorDetail::name())));
    content = match examples {
        [(_, detail)] => content.example(Some(json!({ "detail": detail }))),
        _ => content.examples_from_iter(examples.iter().map(|(name, detail)| {
            (
                *name,
                ExampleBuilder::new()
                    .summary(*detail)
                    .value(Some(json!({ "detail": detail })))
                    .build(),
            )
        })),
    };
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content.build());
    if bearer_challenge {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some("`Bearer`, when the token is at fault"))
                .build(),
        );
    }
    response.build()
}

/// Implements `IntoResponses` for a reusable answer: `status => response`.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident: $status:literal => $response:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([($status.to_string(), RefOr::T($response))])
            }
        }
    )*};
}

error_responses! {
    /// 400: a body that could not be read as HTTP.
    MalformedBody: "400" => error_response(
        "The body could not be read (for example a broken chunked encoding)",
        &[("malformed", "Malformed request body")], false);
    /// 401 of a protected operation: the API key is checked first, then the token.
    Unauthorized: "401" => error_response(
        "The API key, checked first, or the bearer token is missing or wrong; a token also fails when expired, \
         when its session has ended (logout, password change, a replayed refresh token) or when its user no \
         longer exists",
        &[("api_key", "Invalid or missing API key"), ("token", "Could not validate credentials")], true);
    /// 404 for a task that does not exist or is someone else's.
    TaskNotFound: "404" => error_response(
        "No such task among yours (another user's task is not found either)", &[("not_found", "Task not found")], false);
    /// 408 for a body that does not arrive in time.
    SlowBody: "408" => error_response(
        "The body did not arrive within 30 s of the request's head", &[("timeout", "Request Timeout")], false);
    /// 503 when the database cannot be read or written (read-only, removed, full, or overloaded).
    StorageUnavailable: "503" => error_response(
        "The database cannot serve the request right now; nothing was changed", &[("unavailable", "Service temporarily unavailable")], false);
    /// 413 for bodies over the size limit.
    TooLarge: "413" => error_response(
        "The body is over 64 KiB, declared or counted", &[("too_large", "Content Too Large")], false);
    /// 422: the request does not meet the contract.
    Unprocessable: "422" => ResponseBuilder::new()
        .description("The request does not meet the rules; one entry per problem")
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name(ValidationError::name()))).build(),
        )
        .build();
}

/// Every error but 422: `{"detail": "..."}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": "Task not found"}))]
pub struct ErrorDetail {
    /// What went wrong, for people.
    pub detail: String,
}

/// A 422: one entry per problem found.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": [
    {"loc": ["body", "title"], "msg": "String should have at least 1 character", "type": "string_too_short"}
]}))]
pub struct ValidationError {
    pub detail: Vec<ValidationIssue>,
}

/// One problem: where (`body`, `query` or `path`, then the member), what, and its pydantic type.
#[derive(Serialize, ToSchema)]
pub struct ValidationIssue {
    /// Where the problem is: `["body", "title"]`, `["query", "limit"]`, `["path", "id"]`, or for malformed
    /// JSON `["body", <character position>]`.
    pub loc: Vec<LocItem>,
    /// The problem, for people.
    pub msg: String,
    /// The problem, for programs (`missing`, `string_too_short`, `literal_error`, ...).
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
}

/// A step of a `loc`: a member name or a position.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocItem {
    Name(String),
    Position(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn title_pattern() -> regex::Regex {
        let RefOr::T(Schema::Object(title)) = RefOr::T(Schema::Object(title_schema().build()))
        else {
            unreachable!("built as an object")
        };
        regex::Regex::new(&title.pattern.expect("titles carry a pattern")).expect("a valid regex")
    }

    #[test]
    fn the_title_pattern_accepts_exactly_what_the_domain_accepts() {
        let pattern = title_pattern();
        let space = |n: usize| {
            " \t\n\u{A0}\u{3000}"
                .chars()
                .cycle()
                .take(n)
                .collect::<String>()
        };
        let mut samples: Vec<String> = vec![
            String::new(),
            " ".into(),
            "\u{2003}\u{2029}".into(),
            "x".into(),
            " x ".into(),
            "a b".into(),
            "\u{FEFF}".into(),
            "\u{1C}".into(),
            "\0".into(),
            "line\nbreak".into(),
            "t".repeat(199),
            "t".repeat(200),
            "t".repeat(201),
            "é".repeat(200),
            "🦀".repeat(201),
            format!("{}{}{}", space(5), "t".repeat(200), space(7)),
            format!("{}{}{}", space(1), "t".repeat(201), space(1)),
            format!("x{}x", space(198)),
            format!("x{}x", space(199)),
        ];
        samples.extend(char::from_u32(0x85).map(|c| format!("{c}y{c}")));
        for sample in samples {
            assert_eq!(
                pattern.is_match(&sample),
                TaskTitle::parse(sample.clone()).is_ok(),
                "{sample:?} ({} chars)",
                sample.chars().count()
            );
        }
    }

    #[test]
    fn the_trimmed_class_lists_every_white_space_character() {
        let class = regex::Regex::new(&format!("^[{TRIMMED}]$")).expect("a valid class");
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(class.is_match(&c.to_string()), c.is_whitespace(), "{c:?}");
        }
    }
}
