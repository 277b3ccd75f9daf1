//! Sessions (API.md, "Sessions"): refresh tokens and their rotation, logout here and everywhere, a password
//! change, account deletion, expiry and pruning, and rotating the signing secret.

use std::net::SocketAddr;

use bytes::Bytes;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tasky::config::Secret;
use tasky::filters::ClientAddr;
use warp::http::Response;
use warp::test::RequestBuilder;

use super::helpers::*;

const HOME: &str = "192.0.2.10:40000";

/// `POST /token` with the refresh grant.
fn refresh_request(refresh_token: &str) -> RequestBuilder {
    post_form(
        "/token",
        &format!("grant_type=refresh_token&refresh_token={refresh_token}"),
    )
}

/// A request with the API key and this access token.
fn with_token(request: RequestBuilder, token: &str) -> RequestBuilder {
    request
        .header("x-api-key", API_KEY)
        .header("authorization", format!("Bearer {token}"))
}

/// The user's session works: its access token reads `/users/me` and `/tasks`.
async fn assert_live(app: &TestApp, token: &str) {
    for path in ["/users/me", "/tasks"] {
        let response = app.send(with_token(request("GET", path), token)).await;
        assert_eq!(response.status(), 200, "{path}: {:?}", response.body());
    }
}

/// The session has ended: its access token is refused everywhere with the bearer challenge.
async fn assert_ended(app: &TestApp, token: &str) {
    for (method, path) in [
        ("GET", "/users/me"),
        ("GET", "/tasks"),
        ("GET", "/tasks/1"),
        ("DELETE", "/tasks/1"),
        ("POST", "/logout"),
    ] {
        let response = app.send(with_token(request(method, path), token)).await;
        assert_detail(&response, 401, "Could not validate credentials");
        assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
    }
    let create = post_json("/tasks", &json!({"title": "after the end"}));
    let response = app.send(with_token(create, token)).await;
    assert_detail(&response, 401, "Could not validate credentials");
}

/// Every one of these sessions has ended: its access tokens and its refresh token are refused.
async fn assert_all_ended(app: &TestApp, tokens: &[&String], refreshes: &[&String]) {
    for token in tokens {
        assert_ended(app, token).await;
    }
    for refresh in refreshes {
        assert_refresh_refused(&app.send(refresh_request(refresh)).await);
    }
}

/// A refresh token is refused.
fn assert_refresh_refused(response: &Response<Bytes>) {
    assert_detail(response, 401, "Invalid refresh token");
    assert_eq!(header(response, "www-authenticate"), Some("Bearer"));
}

/// The access and refresh tokens of a successful `POST /token`.
fn pair(response: &Response<Bytes>) -> (String, String) {
    assert_eq!(response.status(), 200, "{:?}", response.body());
    let body = body(response);
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn login(app: &TestApp, username: &str, password: &str) -> (String, String) {
    pair(&app.login(username, password).await)
}

#[tokio::test]
async fn each_login_starts_a_session_its_tokens_name() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    let body = body(&response);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);
    let refresh = body["refresh_token"].as_str().unwrap();
    // At least 128 random bits, base64url.
    assert!(refresh.len() >= 22, "{refresh}");
    assert!(
        refresh
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let (first, second) = (
        claims_of(&alice.token),
        claims_of(body["access_token"].as_str().unwrap()),
    );
    assert!(first["sid"].is_string(), "{first}");
    assert_ne!(first["sid"], second["sid"], "two logins, two sessions");
    assert_ne!(alice.refresh, refresh);
    // Only a hash is stored.
    let stored = app.sql("SELECT refresh_hash FROM sessions").await;
    assert_eq!(stored.len(), 2);
    for row in stored {
        let hash = row[0].clone().unwrap();
        assert!(!hash.contains(refresh) && !refresh.contains(&hash));
    }
}

#[tokio::test]
async fn a_refresh_answers_a_new_pair_and_spends_the_token_sent() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let response = app.send(refresh_request(&alice.refresh)).await;
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    let (token, refresh) = pair(&response);
    assert_ne!(refresh, alice.refresh);
    assert_eq!(
        claims_of(&token)["sid"],
        claims_of(&alice.token)["sid"],
        "the same session"
    );
    assert_live(&app, &token).await;
    assert_live(&app, &alice.token).await;
    // The new refresh token works in turn.
    let (token, _) = pair(&app.send(refresh_request(&refresh)).await);
    assert_live(&app, &token).await;
}

#[tokio::test]
async fn a_spent_refresh_token_presented_again_ends_the_whole_session() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let (bob_token, bob_refresh) = {
        let bob = app.user("bob").await;
        (bob.token, bob.refresh)
    };
    // Two rotations, then the first token comes back: someone else had a copy.
    let (_, second) = pair(&app.send(refresh_request(&alice.refresh)).await);
    let (token, third) = pair(&app.send(refresh_request(&second)).await);
    assert_refresh_refused(&app.send(refresh_request(&alice.refresh)).await);
    // Every token of the session is dead now: the access tokens and the current refresh token.
    assert_ended(&app, &token).await;
    assert_ended(&app, &alice.token).await;
    assert_refresh_refused(&app.send(refresh_request(&third)).await);
    // Other users' sessions are untouched.
    assert_live(&app, &bob_token).await;
    pair(&app.send(refresh_request(&bob_refresh)).await);
}

#[tokio::test]
async fn of_concurrent_refreshes_with_one_token_exactly_one_succeeds() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let refreshes = (0..8).map(|_| app.send(refresh_request(&alice.refresh)));
    let answers = futures_util::future::join_all(refreshes).await;
    let succeeded: Vec<_> = answers.iter().filter(|r| r.status() == 200).collect();
    assert_eq!(succeeded.len(), 1, "{answers:?}");
    for refused in answers.iter().filter(|r| r.status() != 200) {
        assert_refresh_refused(refused);
    }
}

#[tokio::test]
async fn unknown_forged_and_malformed_refresh_tokens_are_refused_and_end_nothing() {
    let app = test_app!();
    let alice = app.user("alice").await;
    // The right session and rotation count, another secret part: a forgery naming the session.
    let mut forged = alice.refresh.clone().into_bytes();
    let last = forged.len() - 30;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for token in [forged.as_str(), "garbage", &"A".repeat(71), &alice.token] {
        assert_refresh_refused(&app.send(refresh_request(token)).await);
    }
    assert_live(&app, &alice.token).await;
    pair(&app.send(refresh_request(&alice.refresh)).await);
    // The field is required with the refresh grant; another grant type is refused.
    let missing = app
        .send(post_form("/token", "grant_type=refresh_token"))
        .await;
    assert_invalid(&missing, &[(json!(["body", "refresh_token"]), "missing")]);
    let other = app
        .send(post_form("/token", "grant_type=client_credentials"))
        .await;
    assert_invalid(
        &other,
        &[(json!(["body", "grant_type"]), "string_pattern_mismatch")],
    );
}

#[tokio::test]
async fn logout_ends_this_session_only_at_once() {
    let app = test_app!();
    let alice = app.user("alice").await;
    // A task, so that reading tasks finds rows: the session check must be in that statement itself.
    let task = app.task(&alice, json!({"title": "kept"})).await;
    let (phone, phone_refresh) = login(&app, "alice", PASSWORD).await;
    let response = app
        .send(with_token(request("POST", "/logout"), &alice.token))
        .await;
    assert_eq!(response.status(), 204);
    assert!(response.body().is_empty());
    assert_ended(&app, &alice.token).await;
    let path = format!("/tasks/{}", task["id"]);
    for request in [
        request("GET", &path),
        put_json(&path, &json!({"title": "changed"})),
    ] {
        let response = app.send(with_token(request, &alice.token)).await;
        assert_detail(&response, 401, "Could not validate credentials");
    }
    assert_refresh_refused(&app.send(refresh_request(&alice.refresh)).await);
    assert_live(&app, &phone).await;
    let kept = body(&app.send(with_token(request("GET", &path), &phone)).await);
    assert_eq!(kept["title"], "kept");
    pair(&app.send(refresh_request(&phone_refresh)).await);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user_and_no_one_elses() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (phone, phone_refresh) = login(&app, "alice", PASSWORD).await;
    let response = app
        .send(with_token(request("POST", "/logout?all=true"), &phone))
        .await;
    assert_eq!(response.status(), 204);
    assert_all_ended(
        &app,
        &[&alice.token, &phone],
        &[&alice.refresh, &phone_refresh],
    )
    .await;
    assert_live(&app, &bob.token).await;
    // A new login starts afresh.
    let (token, _) = login(&app, "alice", PASSWORD).await;
    assert_live(&app, &token).await;
}

#[tokio::test]
async fn logout_needs_both_credentials_and_a_boolean_all() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let no_key =
        request("POST", "/logout").header("authorization", format!("Bearer {}", alice.token));
    assert_detail(&app.send(no_key).await, 401, "Invalid or missing API key");
    let no_token = request("POST", "/logout").header("x-api-key", API_KEY);
    assert_detail(
        &app.send(no_token).await,
        401,
        "Could not validate credentials",
    );
    let response = app
        .send(with_token(
            request("POST", "/logout?all=maybe"),
            &alice.token,
        ))
        .await;
    assert_invalid(&response, &[(json!(["query", "all"]), "bool_parsing")]);
    assert_live(&app, &alice.token).await;
    let response = app
        .send(with_token(
            request("POST", "/logout?all=false"),
            &alice.token,
        ))
        .await;
    assert_eq!(response.status(), 204);
    assert_ended(&app, &alice.token).await;
}

fn password_change(current: &str, new: &str) -> RequestBuilder {
    put_json(
        "/users/me/password",
        &json!({"current_password": current, "new_password": new}),
    )
    .extension(ClientAddr(HOME.parse::<SocketAddr>().unwrap().ip()))
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_and_keeps_this_one() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let (laptop, laptop_refresh) = login(&app, "alice", PASSWORD).await;
    let response = app
        .send(with_token(
            password_change(PASSWORD, "a brand new password"),
            &alice.token,
        ))
        .await;
    assert_eq!(response.status(), 204, "{:?}", response.body());
    assert_live(&app, &alice.token).await;
    pair(&app.send(refresh_request(&alice.refresh)).await);
    assert_ended(&app, &laptop).await;
    assert_refresh_refused(&app.send(refresh_request(&laptop_refresh)).await);
    assert_detail(
        &app.login("alice", PASSWORD).await,
        401,
        "Incorrect username or password",
    );
    login(&app, "alice", "a brand new password").await;
}

#[tokio::test]
async fn a_wrong_current_password_is_400_changes_nothing_and_counts_as_a_failed_login() {
    // A limit of 1: one wrong guess fills the bucket for a minute.
    let app = test_app!(|config| config.login_rate_limit = 1);
    let alice = app.user("alice").await;
    let (laptop, _) = login(&app, "alice", PASSWORD).await;
    let response = app
        .send(with_token(
            password_change("not the password", "a brand new password"),
            &alice.token,
        ))
        .await;
    assert_detail(&response, 400, "Incorrect password");
    assert_live(&app, &laptop).await;
    // The stolen-token guesser is now held back like any other, and the owner's login from there too.
    let response = app
        .send(with_token(
            password_change(PASSWORD, "a brand new password"),
            &alice.token,
        ))
        .await;
    assert_detail(&response, 429, "Too many login attempts");
    let login = post_form(
        "/token",
        &format!("username=alice&password={}", PASSWORD.replace(' ', "+")),
    )
    .extension(ClientAddr(HOME.parse::<SocketAddr>().unwrap().ip()));
    assert_detail(&app.send(login).await, 429, "Too many login attempts");
    // Nothing changed: the old password still logs in (from elsewhere).
    login_from_elsewhere_works(&app).await;
}

async fn login_from_elsewhere_works(app: &TestApp) {
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_password_change_validates_its_body_after_the_credentials() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let response = app
        .send(with_token(password_change(PASSWORD, "short"), &alice.token))
        .await;
    assert_invalid(
        &response,
        &[(json!(["body", "new_password"]), "string_too_short")],
    );
    let response = app
        .send(with_token(
            put_json("/users/me/password", &json!({})),
            &alice.token,
        ))
        .await;
    assert_invalid(
        &response,
        &[
            (json!(["body", "current_password"]), "missing"),
            (json!(["body", "new_password"]), "missing"),
        ],
    );
    let anonymous = password_change(PASSWORD, "short").header("x-api-key", API_KEY);
    assert_detail(
        &app.send(anonymous).await,
        401,
        "Could not validate credentials",
    );
    login(&app, "alice", PASSWORD).await;
}

#[tokio::test]
async fn deleting_the_account_removes_the_user_their_tasks_and_sessions_and_frees_the_name() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.task(&alice, json!({"title": "mine"})).await;
    app.task(&bob, json!({"title": "bob's"})).await;
    let (phone, phone_refresh) = login(&app, "alice", PASSWORD).await;
    let response = app
        .send(with_token(request("DELETE", "/users/me"), &alice.token))
        .await;
    assert_eq!(response.status(), 204);
    assert_all_ended(
        &app,
        &[&alice.token, &phone],
        &[&alice.refresh, &phone_refresh],
    )
    .await;
    let left = |table: &str| format!("SELECT count(*) FROM {table} WHERE user_id = {}", alice.id);
    for table in ["tasks", "sessions"] {
        assert_eq!(
            app.sql(&left(table)).await[0][0].as_deref(),
            Some("0"),
            "{table}"
        );
    }
    assert_detail(
        &app.login("alice", PASSWORD).await,
        401,
        "Incorrect username or password",
    );
    assert_live(&app, &bob.token).await;
    assert_eq!(
        body(&app.send(as_user(request("GET", "/tasks"), &bob)).await)[0]["title"],
        "bob's"
    );
    // The name is free again, and the new alice is someone else.
    let again = app.user("alice").await;
    assert_ne!(again.id, alice.id);
    assert_ended(&app, &alice.token).await;
}

/// Moves every session's expiry `seconds` from now, underneath the service.
async fn expire_sessions_in(app: &TestApp, seconds: i64) {
    let statement = match backend() {
        Backend::Sqlite => format!("UPDATE sessions SET expires_at = unixepoch() + {seconds}"),
        Backend::Postgres => {
            format!("UPDATE sessions SET expires_at = now() + {seconds} * interval '1 second'")
        }
    };
    app.sql(&statement).await;
}

#[tokio::test]
async fn a_session_ends_when_its_refresh_token_expires() {
    let app = test_app!(|config| config.refresh_ttl = std::time::Duration::from_secs(86_400));
    let alice = app.user("alice").await;
    let (token, refresh) = pair(&app.send(refresh_request(&alice.refresh)).await);
    let expiry = app
        .sql(match backend() {
            Backend::Sqlite => "SELECT expires_at - unixepoch() FROM sessions",
            Backend::Postgres => {
                "SELECT round(extract(epoch FROM expires_at - now()))::bigint FROM sessions"
            }
        })
        .await;
    let left: i64 = expiry[0][0].as_deref().unwrap().parse().unwrap();
    assert!(
        (86_390..=86_400).contains(&left),
        "REFRESH_TOKEN_TTL_DAYS: {left}"
    );
    expire_sessions_in(&app, -1).await;
    assert_ended(&app, &token).await;
    assert_refresh_refused(&app.send(refresh_request(&refresh)).await);
}

#[tokio::test]
async fn ended_and_expired_sessions_are_removed_so_storage_holds_live_sessions_only() {
    let app = test_app!();
    app.user("alice").await;
    let count = || async {
        app.sql("SELECT count(*) FROM sessions").await[0][0]
            .as_deref()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    // Ended sessions are deleted at once.
    for _ in 0..20 {
        let (token, _) = login(&app, "alice", PASSWORD).await;
        let out = app
            .send(with_token(request("POST", "/logout"), &token))
            .await;
        assert_eq!(out.status(), 204);
    }
    assert_eq!(count().await, 1);
    // Expired sessions go, up to 16 with each login, whoever logs in.
    for _ in 0..39 {
        login(&app, "alice", PASSWORD).await;
    }
    assert_eq!(count().await, 40);
    expire_sessions_in(&app, -1).await;
    app.user("bob").await;
    assert_eq!(count().await, 40 - 16 + 1);
    for _ in 0..2 {
        login(&app, "bob", PASSWORD).await;
    }
    assert_eq!(count().await, 3, "only bob's three live sessions are left");
}

#[tokio::test]
async fn a_token_without_a_session_from_before_sessions_is_refused() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let now = Utc::now().timestamp();
    let claims = json!({"sub": alice.id.to_string(), "iat": now, "exp": now + 600});
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET),
    )
    .unwrap();
    let response = app
        .send(with_token(request("GET", "/users/me"), &token))
        .await;
    assert_detail(&response, 401, "Could not validate credentials");
}

#[tokio::test]
async fn the_previous_secret_verifies_so_a_rotation_logs_no_one_out_and_an_unrelated_one_is_refused()
 {
    let app = test_app!();
    let alice = app.user("alice").await;
    const NEW: &[u8] = b"the next signing secret, also long enough for hs256";
    let rotated = app
        .another_process(|config| {
            config.jwt_secret = Some(Secret::from(NEW.to_vec()));
            config.jwt_secret_previous = Some(Secret::from(JWT_SECRET.to_vec()));
        })
        .await;
    // Tokens of the old secret: the access token works, the refresh token refreshes.
    let me = TestApp::send_to(
        &rotated,
        with_token(request("GET", "/users/me"), &alice.token),
    )
    .await;
    assert_eq!(me.status(), 200);
    let (token, refresh) = pair(&TestApp::send_to(&rotated, refresh_request(&alice.refresh)).await);
    // What the rotated service issues is signed with the new secret only.
    let old_only = app.another_process(|_| {}).await;
    let refused =
        TestApp::send_to(&old_only, with_token(request("GET", "/users/me"), &token)).await;
    assert_detail(&refused, 401, "Could not validate credentials");
    let new_only = app
        .another_process(|config| config.jwt_secret = Some(Secret::from(NEW.to_vec())))
        .await;
    let me = TestApp::send_to(&new_only, with_token(request("GET", "/users/me"), &token)).await;
    assert_eq!(me.status(), 200);
    // Once the previous secret is dropped, its tokens stop working.
    let me = TestApp::send_to(
        &new_only,
        with_token(request("GET", "/users/me"), &alice.token),
    )
    .await;
    assert_detail(&me, 401, "Could not validate credentials");
    // A token signed with an unrelated secret never passes.
    let now = Utc::now().timestamp();
    let sid = claims_of(&token)["sid"].clone();
    let claims = json!({"sub": alice.id.to_string(), "sid": sid, "iat": now, "exp": now + 600});
    let stranger = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"an unrelated secret that is long enough, too"),
    )
    .unwrap();
    let response =
        TestApp::send_to(&rotated, with_token(request("GET", "/users/me"), &stranger)).await;
    assert_detail(&response, 401, "Could not validate credentials");
    pair(&TestApp::send_to(&new_only, refresh_request(&refresh)).await);
}

#[tokio::test]
async fn the_answers_bodies_follow_the_contract() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let me = body(
        &app.send(with_token(request("GET", "/users/me"), &alice.token))
            .await,
    );
    assert_eq!(me, json!({"id": alice.id, "username": "alice"}));
    let response = app.send(refresh_request(&alice.refresh)).await;
    let mut keys: Vec<String> = body(&response)
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"],
        "{}",
        Value::from(keys.clone())
    );
}
