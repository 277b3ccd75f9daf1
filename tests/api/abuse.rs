//! Abuse: the login rate limit, CORS, and the headers every answer carries.

use std::net::SocketAddr;

use bytes::Bytes;
use serde_json::json;
use tasky::config::CorsOrigins;
use tasky::filters::ClientAddr;
use warp::http::Response;
use warp::test::RequestBuilder;

use super::helpers::*;

const HOME: &str = "192.0.2.10:40000";
const AWAY: &str = "198.51.100.20:40000";

fn login_from(peer: &str, username: &str, password: &str) -> RequestBuilder {
    let form = format!(
        "username={username}&password={}",
        password.replace(' ', "+")
    );
    post_form("/token", &form).extension(ClientAddr(peer.parse::<SocketAddr>().unwrap().ip()))
}

/// `count` failed logins for `username` from `peer`, sent at once: all are counted as they start, before any
/// password is checked, so none of the bucket drains between them however slow the hashing is.
async fn failures_at_once(
    app: &TestApp,
    peer: &str,
    username: &str,
    count: usize,
) -> Vec<Response<Bytes>> {
    let guesses = (0..count).map(|_| app.send(login_from(peer, username, "wrong password")));
    futures_util::future::join_all(guesses).await
}

#[tokio::test]
async fn past_ten_failures_a_login_gets_429_with_retry_after_and_guesses_at_once_cannot_slip_past()
{
    let app = test_app!();
    app.signup("alice", PASSWORD).await;
    let mut answers = failures_at_once(&app, HOME, "alice", 30).await;
    answers.sort_by_key(|response| response.status());
    for response in &answers[..10] {
        assert_detail(response, 401, "Incorrect username or password");
    }
    for response in &answers[10..] {
        assert_detail(response, 429, "Too many login attempts");
        let retry: u64 = header(response, "retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&retry), "{retry}");
    }
}

#[tokio::test]
async fn past_the_limit_even_the_right_password_gets_429() {
    // A limit of 1 drains one attempt a minute: the test cannot outlast it.
    let app = test_app!(|config| config.login_rate_limit = 1);
    app.signup("alice", PASSWORD).await;
    assert_eq!(
        app.send(login_from(HOME, "alice", "wrong password"))
            .await
            .status(),
        401
    );
    let response = app.send(login_from(HOME, "alice", PASSWORD)).await;
    assert_detail(&response, 429, "Too many login attempts");
    assert!(header(&response, "retry-after").is_some());
}

#[tokio::test]
async fn the_limit_counts_per_username_and_address() {
    // A limit of 2 drains one attempt each 30 s: the test cannot outlast it.
    let app = test_app!(|config| config.login_rate_limit = 2);
    app.signup("alice", PASSWORD).await;
    app.signup("bob", PASSWORD).await;
    for _ in 0..2 {
        app.send(login_from(HOME, "alice", "wrong password")).await;
    }
    assert_eq!(
        app.send(login_from(HOME, "ALICE", "wrong password"))
            .await
            .status(),
        429,
        "case-insensitive"
    );
    assert_eq!(
        app.send(login_from(HOME, "bob", PASSWORD)).await.status(),
        200,
        "another user"
    );
    assert_eq!(
        app.send(login_from(AWAY, "alice", PASSWORD)).await.status(),
        200,
        "another address"
    );
}

#[tokio::test]
async fn one_address_gets_ten_times_the_limit_over_all_usernames() {
    let app = test_app!(|config| config.login_rate_limit = 2);
    app.signup("alice", PASSWORD).await;
    // The address's bucket holds 20 and drains one every 3 s: on a slow machine the attempts themselves take
    // long enough to earn a few more, so the refusal is looked for rather than expected at exactly the 21st.
    let started = std::time::Instant::now();
    let mut failures = 0;
    loop {
        let username = format!("nobody{}", failures / 2);
        let status = app
            .send(login_from(HOME, &username, "wrong password"))
            .await
            .status();
        if status == 429 {
            break;
        }
        assert_eq!(status, 401, "attempt {failures}");
        failures += 1;
        assert!(failures <= 60, "no refusal after {failures} failures");
    }
    let drained = started.elapsed().as_secs() / 3 + 1;
    assert!(
        (20..=20 + drained).contains(&failures),
        "refused after {failures} failures in {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.send(login_from(HOME, "alice", PASSWORD)).await.status(),
        429
    );
    assert_eq!(
        app.send(login_from(AWAY, "alice", PASSWORD)).await.status(),
        200
    );
}

#[tokio::test]
async fn successful_logins_do_not_count() {
    let app = test_app!(|config| config.login_rate_limit = 2);
    app.signup("alice", PASSWORD).await;
    for _ in 0..10 {
        assert_eq!(
            app.send(login_from(HOME, "alice", PASSWORD)).await.status(),
            200
        );
    }
    assert_eq!(
        app.send(login_from(HOME, "alice", "wrong password"))
            .await
            .status(),
        401
    );
    assert_eq!(
        app.send(login_from(HOME, "alice", PASSWORD)).await.status(),
        200
    );
}

#[tokio::test]
async fn zero_turns_the_limit_off() {
    let app = test_app!(|config| config.login_rate_limit = 0);
    app.signup("alice", PASSWORD).await;
    for _ in 0..15 {
        assert_eq!(
            app.send(login_from(HOME, "alice", "wrong password"))
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        app.send(login_from(HOME, "alice", PASSWORD)).await.status(),
        200
    );
}

#[tokio::test]
async fn a_forwarded_header_does_not_escape_the_limit_the_serve_loop_keys_it() {
    let app = test_app!(|config| config.login_rate_limit = 2);
    app.signup("alice", PASSWORD).await;
    for i in 0..2 {
        let forged = login_from(HOME, "alice", "wrong password")
            .header("x-forwarded-for", format!("203.0.113.{i}"));
        assert_eq!(app.send(forged).await.status(), 401);
    }
    let forged = login_from(HOME, "alice", PASSWORD).header("x-forwarded-for", "203.0.113.99");
    assert_eq!(app.send(forged).await.status(), 429);
}

/// A test app with `CORS_ORIGINS` set to `$origins`.
macro_rules! cors_app {
    ($origins:expr) => {{
        let origins: CorsOrigins = $origins;
        test_app!(move |config: &mut tasky::config::Config| config.cors_origins = origins)
    }};
}

const APP_ORIGIN: &str = "https://app.example.com";

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_allows_both_credentials_and_the_body_type() {
    let app = cors_app!(CorsOrigins::List(vec![APP_ORIGIN.into()]));
    for path in ["/tasks", "/tasks/7", "/token"] {
        let response = app
            .send(
                request("OPTIONS", path)
                    .header("origin", APP_ORIGIN)
                    .header("access-control-request-method", "PUT")
                    .header(
                        "access-control-request-headers",
                        "authorization, x-api-key, content-type",
                    ),
            )
            .await;
        assert_eq!(response.status(), 204, "{path}");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some(APP_ORIGIN)
        );
        let allowed = header(&response, "access-control-allow-headers")
            .unwrap()
            .to_lowercase();
        for needed in ["authorization", "x-api-key", "content-type"] {
            assert!(allowed.contains(needed), "{allowed}");
        }
        assert!(
            header(&response, "access-control-allow-methods")
                .unwrap()
                .contains("PUT")
        );
        assert_eq!(header(&response, "vary"), Some("Origin"));
    }
}

#[tokio::test]
async fn cors_headers_are_on_error_answers_too() {
    let app = cors_app!(CorsOrigins::List(vec![APP_ORIGIN.into()]));
    let alice = app.user("alice").await;
    let answers = [
        app.send(request("GET", "/tasks").header("origin", APP_ORIGIN))
            .await,
        app.send(as_user(request("GET", "/tasks/999"), &alice).header("origin", APP_ORIGIN))
            .await,
        app.send(as_user(request("GET", "/tasks?limit=0"), &alice).header("origin", APP_ORIGIN))
            .await,
        app.send(request("GET", "/nowhere").header("origin", APP_ORIGIN))
            .await,
        app.send(request("PATCH", "/tasks").header("origin", APP_ORIGIN))
            .await,
        app.send(as_user(request("GET", "/tasks"), &alice).header("origin", APP_ORIGIN))
            .await,
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [401, 404, 422, 404, 405, 200]);
    for response in &answers {
        assert_eq!(
            header(response, "access-control-allow-origin"),
            Some(APP_ORIGIN)
        );
        let exposed = header(response, "access-control-expose-headers").unwrap();
        for name in [
            "X-Total-Count",
            "Location",
            "WWW-Authenticate",
            "Retry-After",
        ] {
            assert!(exposed.contains(name), "{exposed}");
        }
    }
}

#[tokio::test]
async fn other_origins_get_no_cors_headers_but_are_not_refused() {
    let app = cors_app!(CorsOrigins::List(vec![APP_ORIGIN.into()]));
    let alice = app.user("alice").await;
    let response = app
        .send(as_user(request("GET", "/tasks"), &alice).header("origin", "https://evil.example"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    let preflight = app
        .send(
            request("OPTIONS", "/tasks")
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "POST"),
        )
        .await;
    assert_eq!(preflight.status(), 405);
    assert_eq!(header(&preflight, "access-control-allow-origin"), None);
    // The page at /docs posts with its own Origin: the server serves it whatever CORS_ORIGINS says.
    let same_origin = as_user(post_json("/tasks", &json!({"title": "from /docs"})), &alice)
        .header("origin", "http://127.0.0.1:8000");
    assert_eq!(app.send(same_origin).await.status(), 201);
}

#[tokio::test]
async fn a_star_allows_any_origin_and_no_setting_means_no_cors() {
    let any = cors_app!(CorsOrigins::Any);
    let response = any
        .send(request("GET", "/healthz").header("origin", "https://anywhere.example"))
        .await;
    assert_eq!(header(&response, "access-control-allow-origin"), Some("*"));
    let none = test_app!();
    let response = none
        .send(request("GET", "/healthz").header("origin", APP_ORIGIN))
        .await;
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    let preflight = none
        .send(
            request("OPTIONS", "/tasks")
                .header("origin", APP_ORIGIN)
                .header("access-control-request-method", "GET"),
        )
        .await;
    assert_eq!(preflight.status(), 405);
}

#[tokio::test]
async fn every_answer_forbids_sniffing_and_private_ones_forbid_caching() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let private = [
        app.login("alice", PASSWORD).await,
        app.signup("bob", PASSWORD).await,
        app.send(as_user(request("GET", "/users/me"), &alice)).await,
        app.send(as_user(post_json("/tasks", &json!({"title": "t"})), &alice))
            .await,
        app.send(as_user(request("GET", "/tasks"), &alice)).await,
        app.send(request("GET", "/tasks")).await,
        app.send(request("GET", "/nowhere")).await,
        app.send(request("DELETE", "/signup")).await,
        app.send(request("POST", "/signup").body(vec![b'x'; 70_000]))
            .await,
    ];
    for response in &private {
        assert_eq!(
            header(response, "x-content-type-options"),
            Some("nosniff"),
            "{}",
            response.status()
        );
        assert_eq!(
            header(response, "cache-control"),
            Some("no-store"),
            "{}",
            response.status()
        );
    }
    let asset = app.send(request("GET", "/docs/swagger-ui.css")).await;
    assert_eq!(header(&asset, "x-content-type-options"), Some("nosniff"));
    assert_eq!(
        header(&asset, "cache-control"),
        Some("public, max-age=3600")
    );
}
