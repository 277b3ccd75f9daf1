//! Signup, login, `/users/me`, and every way a credential can be refused.

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::helpers::*;

fn sign(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .expect("sign")
}

fn with_key_and_token(path: &str, token: &str) -> warp::test::RequestBuilder {
    request("GET", path)
        .header("x-api-key", API_KEY)
        .header("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn signup_answers_201_with_id_and_username_and_never_the_hash() {
    let app = test_app!();
    let response = app.signup("alice", "s3cret-pass").await;
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let user = body(&response);
    assert_eq!(user, json!({"id": user["id"], "username": "alice"}));
    assert!(user["id"].as_i64().is_some_and(|id| id >= 1));
    assert!(!String::from_utf8_lossy(response.body()).contains("argon2"));
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_phc_strings_with_owasp_parameters() {
    let app = test_app!();
    app.signup("alice", "s3cret-pass").await;
    let rows = app
        .sql("SELECT password_hash FROM users WHERE username = 'alice'")
        .await;
    let hash = rows[0][0].clone().expect("a hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains("s3cret-pass"));
}

#[tokio::test]
async fn a_username_is_taken_whatever_its_case() {
    let app = test_app!();
    assert_eq!(app.signup("alice", PASSWORD).await.status(), 201);
    assert_detail(
        &app.signup("alice", PASSWORD).await,
        409,
        "Username already registered",
    );
    assert_detail(
        &app.signup("ALICE", "another-password").await,
        409,
        "Username already registered",
    );
}

#[tokio::test]
async fn a_refused_signup_leaves_the_first_account_as_it_was() {
    let app = test_app!();
    app.signup("alice", PASSWORD).await;
    app.signup("Alice", "a-different-password").await;
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
    assert_eq!(
        app.login("alice", "a-different-password").await.status(),
        401
    );
}

#[tokio::test]
async fn signup_lists_every_invalid_field() {
    let app = test_app!();
    let response = app
        .send(post_json(
            "/signup",
            &json!({"username": "ab", "password": "short"}),
        ))
        .await;
    assert_invalid(
        &response,
        &[
            (json!(["body", "username"]), "string_too_short"),
            (json!(["body", "password"]), "string_too_short"),
        ],
    );
    let response = app
        .send(post_json(
            "/signup",
            &json!({"username": "bad name!", "password": "x".repeat(129)}),
        ))
        .await;
    assert_invalid(
        &response,
        &[
            (json!(["body", "username"]), "string_pattern_mismatch"),
            (json!(["body", "password"]), "string_too_long"),
        ],
    );
    let response = app.send(post_json("/signup", &json!({}))).await;
    assert_invalid(
        &response,
        &[
            (json!(["body", "username"]), "missing"),
            (json!(["body", "password"]), "missing"),
        ],
    );
    let response = app
        .send(post_json(
            "/signup",
            &json!({"username": 12345, "password": ["x"]}),
        ))
        .await;
    assert_invalid(
        &response,
        &[
            (json!(["body", "username"]), "string_type"),
            (json!(["body", "password"]), "string_type"),
        ],
    );
}

#[tokio::test]
async fn an_invalid_signup_creates_nobody() {
    let app = test_app!();
    app.send(post_json(
        "/signup",
        &json!({"username": "alice", "password": "short"}),
    ))
    .await;
    assert_eq!(
        app.signup("alice", PASSWORD).await.status(),
        201,
        "the name must still be free"
    );
}

#[tokio::test]
async fn login_returns_a_bearer_token_that_must_not_be_cached() {
    let app = test_app!();
    app.signup("alice", PASSWORD).await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
    let answer = body(&response);
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(answer["expires_in"], 1800);
    let token = answer["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
}

#[tokio::test]
async fn login_also_takes_a_multipart_form() {
    let app = test_app!();
    app.signup("alice", PASSWORD).await;
    let multipart = |password: &str| {
        let body = format!(
            "--b0undary\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n\
             --b0undary\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{password}\r\n--b0undary--\r\n"
        );
        request("POST", "/token")
            .header("content-type", "multipart/form-data; boundary=b0undary")
            .body(body)
    };
    let response = app.send(multipart(PASSWORD)).await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
    assert_eq!(body(&response)["token_type"], "bearer");
    assert_detail(
        &app.send(multipart("wrong password")).await,
        401,
        "Incorrect username or password",
    );
}

#[tokio::test]
async fn the_token_is_hs256_with_sub_iat_and_exp() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let header = jsonwebtoken::decode_header(&alice.token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub", "iat"]);
    let claims = jsonwebtoken::decode::<Value>(
        &alice.token,
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], alice.id.to_string());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 1800);
    assert!((iat - Utc::now().timestamp()).abs() < 60);
}

#[tokio::test]
async fn the_token_lifetime_follows_the_configuration() {
    let app = test_app!(|config| config.token_ttl = std::time::Duration::from_secs(5 * 60));
    let alice = app.user("alice").await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(body(&response)["expires_in"], 300);
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&alice.token)
        .unwrap()
        .claims;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
}

#[tokio::test]
async fn login_matches_the_username_whatever_its_case() {
    let app = test_app!();
    app.signup("Alice", PASSWORD).await;
    assert_eq!(app.login("aLICE", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = test_app!();
    app.signup("alice", PASSWORD).await;
    for response in [
        app.login("alice", "wrong-password").await,
        app.login("nobody", PASSWORD).await,
    ] {
        assert_detail(&response, 401, "Incorrect username or password");
        assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
    }
}

#[tokio::test]
async fn login_needs_both_fields_and_accepts_only_the_password_grant() {
    let app = test_app!();
    app.signup("alice", PASSWORD).await;
    assert_invalid(
        &app.send(post_form("/token", "username=alice")).await,
        &[(json!(["body", "password"]), "missing")],
    );
    assert_invalid(
        &app.send(post_form("/token", "")).await,
        &[
            (json!(["body", "username"]), "missing"),
            (json!(["body", "password"]), "missing"),
        ],
    );
    let form = format!(
        "username=alice&password={}&grant_type=client_credentials",
        PASSWORD.replace(' ', "+")
    );
    assert_invalid(
        &app.send(post_form("/token", &form)).await,
        &[(json!(["body", "grant_type"]), "string_pattern_mismatch")],
    );
    let form = format!(
        "username=alice&password={}&grant_type=password&scope=tasks",
        PASSWORD.replace(' ', "+")
    );
    assert_eq!(app.send(post_form("/token", &form)).await.status(), 200);
}

#[tokio::test]
async fn login_reads_only_form_bodies() {
    let app = test_app!();
    app.signup("alice", PASSWORD).await;
    let as_json = post_json(
        "/token",
        &json!({"username": "alice", "password": PASSWORD}),
    );
    let no_type = request("POST", "/token").body(format!(
        "username=alice&password={}",
        PASSWORD.replace(' ', "+")
    ));
    for attempt in [as_json, no_type] {
        assert_invalid(
            &app.send(attempt).await,
            &[
                (json!(["body", "username"]), "missing"),
                (json!(["body", "password"]), "missing"),
            ],
        );
    }
}

#[tokio::test]
async fn users_me_answers_the_caller() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let response = app.send(as_user(request("GET", "/users/me"), &alice)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        body(&response),
        json!({"id": alice.id, "username": "alice"})
    );
}

#[tokio::test]
async fn a_missing_or_wrong_api_key_is_refused_before_the_token_is_looked_at() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let bearer = format!("Bearer {}", alice.token);
    let cases = [
        request("GET", "/users/me").header("authorization", &bearer),
        request("GET", "/users/me")
            .header("authorization", &bearer)
            .header("x-api-key", "wrong"),
        request("GET", "/users/me")
            .header("authorization", &bearer)
            .header("x-api-key", format!("{API_KEY}x")),
        request("GET", "/users/me")
            .header("authorization", &bearer)
            .header("x-api-key", ""),
        request("GET", "/users/me").header("x-api-key", "wrong"),
        request("GET", "/tasks"),
    ];
    for case in cases {
        let response = app.send(case).await;
        assert_detail(&response, 401, "Invalid or missing API key");
        assert_eq!(header(&response, "www-authenticate"), None);
    }
}

#[tokio::test]
async fn every_unusable_token_gets_the_same_401_with_a_bearer_challenge() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let now = Utc::now().timestamp();
    let sub = alice.id.to_string();
    let (head, rest) = alice.token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tokens = [
        "not-a-jwt".to_owned(),
        format!("{head}.{payload}.{flipped}{}", &signature[1..]),
        format!("{head}.{payload}"),
        sign(
            Algorithm::HS256,
            b"some-other-secret-of-decent-length!",
            &json!({"sub": sub, "iat": now, "exp": now + 600}),
        ),
        sign(
            Algorithm::HS256,
            JWT_SECRET,
            &json!({"sub": sub, "iat": now - 700, "exp": now - 100}),
        ),
        sign(
            Algorithm::HS256,
            JWT_SECRET,
            &json!({"sub": sub, "iat": now}),
        ),
        sign(
            Algorithm::HS512,
            JWT_SECRET,
            &json!({"sub": sub, "iat": now, "exp": now + 600}),
        ),
        sign(
            Algorithm::HS256,
            JWT_SECRET,
            &json!({"iat": now, "exp": now + 600}),
        ),
        sign(
            Algorithm::HS256,
            JWT_SECRET,
            &json!({"sub": "alice", "iat": now, "exp": now + 600}),
        ),
        sign(
            Algorithm::HS256,
            JWT_SECRET,
            &json!({"sub": "999999", "iat": now, "exp": now + 600}),
        ),
        // alg "none", unsigned.
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."),
    ];
    for token in tokens {
        let response = app.send(with_key_and_token("/users/me", &token)).await;
        assert_detail(&response, 401, "Could not validate credentials");
        assert_eq!(
            header(&response, "www-authenticate"),
            Some("Bearer"),
            "token {token}"
        );
    }
    for authorization in [
        "",
        "Bearer",
        "Bearer ",
        &format!("Basic {}", alice.token),
        &alice.token,
    ] {
        let response = app
            .send(
                request("GET", "/users/me")
                    .header("x-api-key", API_KEY)
                    .header("authorization", authorization),
            )
            .await;
        assert_detail(&response, 401, "Could not validate credentials");
    }
    let response = app
        .send(request("GET", "/users/me").header("x-api-key", API_KEY))
        .await;
    assert_detail(&response, 401, "Could not validate credentials");
    assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn a_token_stops_working_when_its_user_is_gone() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app.task(&alice, json!({"title": "left behind"})).await;
    let item = format!("/tasks/{}", task["id"]);
    // Removed behind the service's back (on SQLite with foreign keys off, as the sqlite3 shell does by default,
    // so the task stays behind and must not make its owner look alive).
    app.remove_user_underneath(alice.id).await;
    if backend() == Backend::Sqlite {
        let orphans = app
            .sql(&format!(
                "SELECT count(*) FROM tasks WHERE user_id = {}",
                alice.id
            ))
            .await;
        assert_eq!(orphans[0][0].as_deref(), Some("1"));
    }
    let attempts = [
        request("GET", "/users/me"),
        request("GET", "/tasks"),
        post_json("/tasks", &json!({"title": "valid"})),
        request("GET", &item),
        put_json(&item, &json!({"status": "completed"})),
        request("DELETE", &item),
        // Bad input too: the gone user is a 401 before any 422.
        post_json("/tasks", &json!({"title": ""})),
        request("POST", "/tasks")
            .header("content-type", "application/json")
            .body("{broken"),
        request("GET", "/tasks?limit=0"),
        request("GET", "/tasks/abc"),
        put_json("/tasks/abc", &json!({})),
        request("DELETE", "/tasks/0"),
    ];
    for attempt in attempts {
        let response = app.send(as_user(attempt, &alice)).await;
        assert_detail(&response, 401, "Could not validate credentials");
        assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
    }
}

#[tokio::test]
async fn tokens_signed_with_the_secret_need_only_sub_sid_and_exp() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let now = Utc::now().timestamp();
    let sub = alice.id.to_string();
    let sid = claims_of(&alice.token)["sid"].clone();
    for claims in [
        json!({"sub": sub, "sid": sid, "exp": now + 600}),
        json!({"sub": sub, "sid": sid, "iat": now, "exp": now as f64 + 600.5}),
    ] {
        let token = sign(Algorithm::HS256, JWT_SECRET, &claims);
        assert_eq!(
            app.send(with_key_and_token("/users/me", &token))
                .await
                .status(),
            200,
            "{claims}"
        );
    }
}

#[tokio::test]
async fn the_bearer_scheme_name_is_case_insensitive() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let response = app
        .send(
            request("GET", "/users/me")
                .header("x-api-key", API_KEY)
                .header("authorization", format!("bearer {}", alice.token)),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_name_outside_the_signup_rules_logs_no_one_in_whatever_it_folds_to() {
    let app = test_app!();
    app.user("alice").await;
    // U+0130 and the Kelvin sign fold to ASCII letters under some databases' Unicode case folding.
    for name in ["al\u{130}ce", "\u{212a}ate", "alice ", "ALICE\u{0}"] {
        let response = app.login(name, PASSWORD).await;
        assert_detail(&response, 401, "Incorrect username or password");
    }
    assert_eq!(app.login("ALICE", PASSWORD).await.status(), 200);
}
