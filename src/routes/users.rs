//! `/signup`, `/token` and `/users/me`.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::doc::{
    ErrorDetail, LoginForm, MalformedBody, SignupRequest, SlowBody, StorageUnavailable, TooLarge,
    Unauthorized, Unprocessable,
};
use super::{Field, collect};
use crate::auth::{Passwords, Tokens};
use crate::domain::{Invalid, Password, User, UserId, Username};
use crate::error::{Error, FieldError, Problem, respond};
use crate::filters::{
    Fields, api_key, client_address, form_body, json_body, jwt_user, with, with_db,
};
use crate::limiter::{LoginLimiter, RetryAfter};
use crate::state::{AppState, Route};
use crate::store::{self, Store};

/// Every endpoint of this module.
pub fn routes(state: &AppState) -> Route {
    users_signup(state)
        .or(users_token(state))
        .unify()
        .or(users_me(state))
        .unify()
        .boxed()
}

/// POST /signup
#[utoipa::path(
    post, path = "/signup", operation_id = "sign_up", tag = "users",
    summary = "Create a user",
    description = "Usernames are unique, compared ignoring case. The password is stored only as an Argon2id hash.",
    request_body(content = SignupRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new user", body = User),
        MalformedBody, SlowBody,
        (status = 409, description = "The username is taken", body = ErrorDetail,
            example = json!({"detail": "Username already registered"})),
        TooLarge,
        Unprocessable, StorageUnavailable,
    ),
)]
pub(crate) fn users_signup(state: &AppState) -> Route {
    warp::path!("signup")
        .and(warp::post())
        .and(json_body::<SignupBody>())
        .and(with_db(&state.store))
        .and(with(state.passwords.clone()))
        .then(sign_up)
        .map(respond)
        .boxed()
}

/// POST /token
#[utoipa::path(
    post, path = "/token", operation_id = "log_in", tag = "users",
    summary = "Log in (OAuth2 password flow)",
    description = "Exchanges a username and password for a bearer token (RFC 6749 §4.3). A wrong password and an \
        unknown username get the same answer, in the same time.",
    // multipart/form-data is taken too, and left out here as FastAPI leaves it out of its document: two
    // content types of one schema make generated clients (openapi-python-client) emit code that fails to import.
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A bearer token", body = AccessToken, headers(
            ("Cache-Control" = String, description = "`no-store`: a token must not be cached (RFC 6749 §5.1)"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        MalformedBody, SlowBody,
        (status = 401, description = "Wrong username or password", body = ErrorDetail,
            headers(("WWW-Authenticate" = String, description = "`Bearer`")),
            example = json!({"detail": "Incorrect username or password"})),
        TooLarge,
        Unprocessable, StorageUnavailable,
        (status = 429, description = "Too many failed logins for this username from this address (or from this \
            address overall); the answer is the same whether or not the password is right", body = ErrorDetail,
            headers(("Retry-After" = i64, description = "Seconds to wait before the next attempt")),
            example = json!({"detail": "Too many login attempts"})),
    ),
)]
pub(crate) fn users_token(state: &AppState) -> Route {
    warp::path!("token")
        .and(warp::post())
        .and(client_address())
        .and(form_body())
        .and(with_db(&state.store))
        .and(with(state.tokens.clone()))
        .and(with(state.passwords.clone()))
        .and(with(state.login_limiter.clone()))
        .then(log_in)
        .map(respond)
        .boxed()
}

/// GET /users/me
#[utoipa::path(
    get, path = "/users/me", operation_id = "read_current_user", tag = "users",
    summary = "The current user",
    responses(
        (status = 200, description = "Who the token belongs to", body = User),
        Unauthorized, StorageUnavailable,
    ),
    security(("OAuth2PasswordBearer" = [], "APIKeyHeader" = [])),
)]
pub(crate) fn users_me(state: &AppState) -> Route {
    warp::path!("users" / "me")
        .and(warp::get())
        .and(api_key(&state.api_key))
        .and(jwt_user(&state.tokens))
        .and(with_db(&state.store))
        .then(read_current_user)
        .map(respond)
        .boxed()
}

/// The body of `POST /signup`, as sent.
#[derive(Debug, Deserialize)]
struct SignupBody {
    #[serde(default)]
    username: Field,
    #[serde(default)]
    password: Field,
}

/// A valid signup.
struct Signup {
    username: Username,
    password: Password,
}

impl TryFrom<SignupBody> for Signup {
    type Error = Vec<FieldError>;

    fn try_from(body: SignupBody) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let username = body.username.required("username", &mut errors);
        let password = body.password.required("password", &mut errors);
        collect(
            username
                .zip(password)
                .map(|(username, password)| Self { username, password }),
            errors,
        )
    }
}

async fn read_current_user(user: UserId, store: Store) -> Result<Response, Error> {
    let user = store::users::get(&store, user)
        .await?
        .ok_or(Error::InvalidToken)?;
    Ok(warp::reply::json(&user).into_response())
}

async fn sign_up(
    body: Result<SignupBody, Vec<FieldError>>,
    store: Store,
    passwords: Arc<Passwords>,
) -> Result<Response, Error> {
    let Signup { username, password } =
        body.and_then(Signup::try_from).map_err(Error::Validation)?;
    let password_hash = passwords.hash(password).await?;
    let user = store::users::insert(&store, username, password_hash).await?;
    Ok(warp::reply::with_status(warp::reply::json(&user), StatusCode::CREATED).into_response())
}

/// A login of the OAuth2 password flow (RFC 6749 §4.3).
struct Login {
    username: String,
    password: String,
}

impl TryFrom<Fields> for Login {
    type Error = Vec<FieldError>;

    /// `username` and `password` are required; `grant_type` may be left out, but if sent it must be `password`;
    /// `scope` is ignored. An empty field counts as not sent, as in FastAPI's forms. Usernames are not checked
    /// against the signup rules: a name that breaks them simply matches no user, and the answer must not tell
    /// the two apart.
    fn try_from(form: Fields) -> Result<Self, Vec<FieldError>> {
        let sent = |name: &str| form.last(name).filter(|value| !value.is_empty());
        let mut errors = Vec::new();
        let mut required = |name: &'static str| {
            let value = sent(name).map(str::to_owned);
            if value.is_none() {
                errors.push(FieldError::body(Some(name), Problem::Missing));
            }
            value
        };
        let (username, password) = (required("username"), required("password"));
        if sent("grant_type").is_some_and(|grant| grant != "password") {
            errors.push(FieldError::body(
                Some("grant_type"),
                Invalid::Pattern("^password$"),
            ));
        }
        collect(
            username
                .zip(password)
                .map(|(username, password)| Self { username, password }),
            errors,
        )
    }
}

/// The answer of a successful login.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "token_type": "bearer", "expires_in": 1800}))]
pub struct AccessToken {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

async fn log_in(
    address: IpAddr,
    form: Fields,
    store: Store,
    tokens: Arc<Tokens>,
    passwords: Arc<Passwords>,
    limiter: Arc<LoginLimiter>,
) -> Result<Response, Error> {
    let Login { username, password } = form.try_into().map_err(Error::Validation)?;
    // Counted before the password is checked: a refused attempt costs no hashing, right password or not.
    let attempt = limiter
        .begin(&username, address)
        .await?
        .map_err(|RetryAfter(retry_after)| Error::TooManyAttempts { retry_after })?;
    let credentials = store::users::find_credentials(&store, &username).await?;
    let (user_id, stored_hash) = credentials.map(|c| (c.id, c.password_hash)).unzip();
    // Unknown users are verified against a dummy hash: both failures cost one Argon2id verification.
    let valid = passwords.verify(password, stored_hash).await?;
    let user_id = user_id.filter(|_| valid).ok_or(Error::BadCredentials)?;
    attempt.succeeded(&limiter).await;
    let body = AccessToken {
        access_token: tokens.issue(user_id)?,
        token_type: "bearer",
        expires_in: tokens.ttl_secs(),
    };
    let mut response = warp::reply::json(&body).into_response();
    // RFC 6749 §5.1: a response carrying a token must not be cached.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}
