//! `/signup`, `/token` and `/users/me`.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::doc::{
    ErrorDetail, LoginForm, MalformedBody, PasswordChangeRequest, SignupRequest, SlowBody,
    StorageUnavailable, TooLarge, Unauthorized, Unprocessable,
};
use super::{Field, checked, collect};
use crate::auth::{Passwords, Tokens};
use crate::domain::{Invalid, Password, Principal, Rotation, SessionId, User, Username};
use crate::error::{Error, FieldError, Problem, respond};
use crate::filters::{
    Fields, api_key, client_address, form_body, json_body, jwt_user, query_fields, with, with_db,
};
use crate::limiter::{LoginLimiter, RetryAfter};
use crate::state::{AppState, Route};
use crate::store::{self, Store, StoreError};

/// Every endpoint of this module.
pub fn routes(state: &AppState) -> Route {
    users_signup(state)
        .or(users_token(state))
        .unify()
        .or(users_me(state))
        .unify()
        .or(users_change_password(state))
        .unify()
        .or(users_delete_me(state))
        .unify()
        .or(users_logout(state))
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
    summary = "Log in (OAuth2 password flow), or refresh",
    description = "The password grant (RFC 6749 §4.3) exchanges a username and password for a bearer token and a \
        refresh token, and starts a session; a wrong password and an unknown username get the same answer, in \
        the same time. The refresh grant (`grant_type=refresh_token`, RFC 6749 §6) exchanges the refresh token \
        for a new access token and a new refresh token; the one sent is spent, and presenting a spent one again \
        ends its session.",
    // multipart/form-data is taken too, and left out here as FastAPI leaves it out of its document: two
    // content types of one schema make generated clients (openapi-python-client) emit code that fails to import.
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A bearer token and a refresh token", body = AccessToken, headers(
            ("Cache-Control" = String, description = "`no-store`: a token must not be cached (RFC 6749 §5.1)"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        MalformedBody, SlowBody,
        (status = 401, description = "Wrong username or password; or a refresh token that is unknown, expired, \
            spent, or of an ended session", body = ErrorDetail,
            headers(("WWW-Authenticate" = String, description = "`Bearer`")),
            examples(
                ("password" = (value = json!({"detail": "Incorrect username or password"}))),
                ("refresh" = (value = json!({"detail": "Invalid refresh token"}))),
            )),
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

/// PUT /users/me/password
#[utoipa::path(
    put, path = "/users/me/password", operation_id = "change_password", tag = "users",
    summary = "Change your password",
    description = "Checks the current password, sets the new one and ends every other session of yours; this one \
        goes on. A wrong current password counts as a failed login for the rate limit.",
    request_body(content = PasswordChangeRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "Changed; your other sessions have ended"),
        (status = 400, description = "The current password is wrong", body = ErrorDetail,
            example = json!({"detail": "Incorrect password"})),
        MalformedBody, Unauthorized, SlowBody, TooLarge, Unprocessable,
        (status = 429, description = "Too many failed logins (and password checks) for this user from this \
            address", body = ErrorDetail,
            headers(("Retry-After" = i64, description = "Seconds to wait before the next attempt")),
            example = json!({"detail": "Too many login attempts"})),
        StorageUnavailable,
    ),
    security(("OAuth2PasswordBearer" = [], "APIKeyHeader" = [])),
)]
pub(crate) fn users_change_password(state: &AppState) -> Route {
    warp::path!("users" / "me" / "password")
        .and(warp::put())
        .and(api_key(&state.api_key))
        .and(jwt_user(&state.tokens))
        .and(client_address())
        .and(json_body::<PasswordChangeBody>())
        .and(with_db(&state.store))
        .and(with(state.passwords.clone()))
        .and(with(state.login_limiter.clone()))
        .then(change_password)
        .map(respond)
        .boxed()
}

/// DELETE /users/me
#[utoipa::path(
    delete, path = "/users/me", operation_id = "delete_current_user", tag = "users",
    summary = "Delete your account",
    description = "Removes you, all your tasks and all your sessions; the username is free again.",
    responses(
        (status = 204, description = "Deleted"),
        Unauthorized, StorageUnavailable,
    ),
    security(("OAuth2PasswordBearer" = [], "APIKeyHeader" = [])),
)]
pub(crate) fn users_delete_me(state: &AppState) -> Route {
    warp::path!("users" / "me")
        .and(warp::delete())
        .and(api_key(&state.api_key))
        .and(jwt_user(&state.tokens))
        .and(with_db(&state.store))
        .then(delete_current_user)
        .map(respond)
        .boxed()
}

/// POST /logout
#[utoipa::path(
    post, path = "/logout", operation_id = "log_out", tag = "users",
    summary = "Log out",
    description = "Ends the session of this access token: its access tokens and its refresh token stop working at \
        once. With `all=true`, ends every session of yours (log out everywhere).",
    params(("all" = Option<bool>, Query, description = "End every session of yours, not only this one")),
    responses(
        (status = 204, description = "Logged out"),
        Unauthorized, Unprocessable, StorageUnavailable,
    ),
    security(("OAuth2PasswordBearer" = [], "APIKeyHeader" = [])),
)]
pub(crate) fn users_logout(state: &AppState) -> Route {
    warp::path!("logout")
        .and(warp::post())
        .and(api_key(&state.api_key))
        .and(jwt_user(&state.tokens))
        .and(query_fields())
        .and(with_db(&state.store))
        .then(log_out)
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

async fn read_current_user(principal: Principal, store: Store) -> Result<Response, Error> {
    let user = store::users::get(&store, principal).await?;
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

/// What `POST /token` asks for.
enum Grant {
    /// The password grant (RFC 6749 §4.3): a login, which starts a session.
    Password { username: String, password: String },
    /// The refresh grant (RFC 6749 §6).
    Refresh { token: String },
}

impl TryFrom<Fields> for Grant {
    type Error = Vec<FieldError>;

    /// `grant_type` may be left out (the password grant), as in FastAPI's OAuth2PasswordRequestForm; `scope`
    /// is ignored. An empty field counts as not sent, as in FastAPI's forms. Usernames are not checked against
    /// the signup rules: a name that breaks them simply matches no user, and the answer must not tell the two
    /// apart.
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
        match sent("grant_type") {
            None | Some("password") => {
                let (username, password) = (required("username"), required("password"));
                collect(
                    username
                        .zip(password)
                        .map(|(username, password)| Self::Password { username, password }),
                    errors,
                )
            }
            Some("refresh_token") => {
                let token = required("refresh_token");
                collect(token.map(|token| Self::Refresh { token }), errors)
            }
            Some(_) => Err(vec![FieldError::body(
                Some("grant_type"),
                Invalid::Pattern("^(password|refresh_token)$"),
            )]),
        }
    }
}

/// The answer of a successful login or refresh.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "token_type": "bearer", "expires_in": 1800, "refresh_token": "AQAAAAAAAAABGq3n..."}))]
pub struct AccessToken {
    access_token: String,
    token_type: &'static str,
    /// Seconds the access token lives.
    expires_in: u64,
    /// Spent by the refresh grant for a new pair; it expires after `REFRESH_TOKEN_TTL_DAYS`.
    refresh_token: String,
}

async fn log_in(
    address: IpAddr,
    form: Fields,
    store: Store,
    tokens: Arc<Tokens>,
    passwords: Arc<Passwords>,
    limiter: Arc<LoginLimiter>,
) -> Result<Response, Error> {
    let (username, password) = match form.try_into().map_err(Error::Validation)? {
        Grant::Password { username, password } => (username, password),
        Grant::Refresh { token } => return refresh(&token, &store, &tokens).await,
    };
    // Counted before the password is checked: a refused attempt costs no hashing, right password or not.
    let attempt = limiter
        .begin(&username, address)
        .await?
        .map_err(|RetryAfter(retry_after)| Error::TooManyAttempts { retry_after })?;
    // A name that breaks the signup rules belongs to no one, and is not looked up: a database's own case folding
    // (PostgreSQL's lower() under a UTF-8 locale folds more than ASCII) must not match it to a user, nor give
    // it a rate-limit bucket of its own.
    let credentials = match Username::parse(username) {
        Ok(name) => store::users::find_credentials(&store, name.as_str()).await?,
        Err(_) => None,
    };
    let (user_id, stored_hash) = credentials.map(|c| (c.id, c.password_hash)).unzip();
    // Unknown users are verified against a dummy hash: both failures cost one Argon2id verification.
    let valid = passwords.verify(password, stored_hash.clone()).await?;
    let (user, verified) = user_id
        .zip(stored_hash)
        .filter(|_| valid)
        .ok_or(Error::BadCredentials)?;
    let session = Principal {
        user,
        session: SessionId::random(),
    };
    let (refresh_token, refresh_hash) = tokens.issue_refresh(session, 0);
    // The session starts only if the password just verified is still the user's: a password changed (or the
    // account deleted) meanwhile turns this login down, as it would have been a moment later.
    let ttl = tokens.refresh_ttl();
    match store::sessions::start(&store, session, &verified, refresh_hash, ttl).await {
        Err(StoreError::NoSuchUser) => return Err(Error::BadCredentials),
        started => started?,
    }
    attempt.succeeded(&limiter).await;
    token_answer(&tokens, session, refresh_token)
}

/// The refresh grant: the token is spent for a new pair, if it is its session's current one.
async fn refresh(token: &str, store: &Store, tokens: &Tokens) -> Result<Response, Error> {
    let presented = tokens
        .read_refresh(token)
        .ok_or(Error::InvalidRefreshToken)?;
    let generation = presented
        .generation
        .checked_add(1)
        .ok_or(Error::InvalidRefreshToken)?;
    let (refresh_token, next) = tokens.issue_refresh(presented.session, generation);
    match store::sessions::refresh(store, presented, next, tokens.refresh_ttl()).await? {
        Rotation::Rotated => token_answer(tokens, presented.session, refresh_token),
        Rotation::Replayed => {
            log::warn!(
                "a spent refresh token of user {} was presented again: its session has ended",
                presented.session.user.0
            );
            Err(Error::InvalidRefreshToken)
        }
        Rotation::Refused => Err(Error::InvalidRefreshToken),
    }
}

/// The `200` of `POST /token`: a new access token for `session`, and its refresh token.
fn token_answer(
    tokens: &Tokens,
    session: Principal,
    refresh_token: String,
) -> Result<Response, Error> {
    let body = AccessToken {
        access_token: tokens.issue(session)?,
        token_type: "bearer",
        expires_in: tokens.ttl_secs(),
        refresh_token,
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

/// The body of `PUT /users/me/password`, as sent.
#[derive(Debug, Deserialize)]
struct PasswordChangeBody {
    #[serde(default)]
    current_password: Field,
    #[serde(default)]
    new_password: Field,
}

/// A valid password change. The current password is only compared, so any text will do.
struct PasswordChange {
    current: String,
    new: Password,
}

impl TryFrom<PasswordChangeBody> for PasswordChange {
    type Error = Vec<FieldError>;

    fn try_from(body: PasswordChangeBody) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let current = body
            .current_password
            .required("current_password", &mut errors);
        let new = body.new_password.required("new_password", &mut errors);
        collect(
            current.zip(new).map(|(current, new)| Self { current, new }),
            errors,
        )
    }
}

async fn change_password(
    principal: Principal,
    address: IpAddr,
    body: Result<PasswordChangeBody, Vec<FieldError>>,
    store: Store,
    passwords: Arc<Passwords>,
    limiter: Arc<LoginLimiter>,
) -> Result<Response, Error> {
    let change = checked(&store, principal, body.and_then(PasswordChange::try_from)).await?;
    let (username, stored_hash) = store::users::credentials(&store, principal).await?;
    // A wrong current password is a failed login: a stolen access token cannot be used to guess the password.
    let attempt = limiter
        .begin(&username, address)
        .await?
        .map_err(|RetryAfter(retry_after)| Error::TooManyAttempts { retry_after })?;
    if !passwords.verify(change.current, Some(stored_hash)).await? {
        return Err(Error::IncorrectPassword);
    }
    attempt.succeeded(&limiter).await;
    let new_hash = passwords.hash(change.new).await?;
    store::users::set_password(&store, principal, new_hash).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_current_user(principal: Principal, store: Store) -> Result<Response, Error> {
    store::users::delete(&store, principal).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn log_out(principal: Principal, query: Fields, store: Store) -> Result<Response, Error> {
    let everywhere = checked(&store, principal, logout_scope(&query)).await?;
    store::sessions::end(&store, principal, everywhere).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `?all=`: a boolean as pydantic reads one from a query string.
fn logout_scope(query: &Fields) -> Result<bool, Vec<FieldError>> {
    let Some(raw) = query.last("all") else {
        return Ok(false);
    };
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(vec![FieldError::query("all", Problem::NotABoolean)]),
    }
}
