//! The error answers of API.md's "Errors" section, and the order in which checks happen.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::helpers::*;

fn request_get(path: &str) -> warp::test::RequestBuilder {
    request("GET", path)
}

#[tokio::test]
async fn unknown_routes_are_404_not_found() {
    let app = test_app!();
    for path in [
        "/",
        "/nope",
        "/tasks/1/extra",
        "/users",
        "/users/you",
        "/signup/x",
        "//tasks",
    ] {
        assert_detail(&app.send(request("GET", path)).await, 404, "Not Found");
    }
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let app = test_app!();
    let cases = [
        ("/signup", "POST", &["GET", "PUT", "DELETE", "PATCH"][..]),
        ("/token", "POST", &["GET", "PUT", "DELETE"][..]),
        ("/users/me", "GET, DELETE", &["POST", "PUT", "PATCH"][..]),
        ("/users/me/password", "PUT", &["GET", "POST", "DELETE"][..]),
        ("/logout", "POST", &["GET", "PUT", "DELETE"][..]),
        ("/tasks", "GET, POST", &["PUT", "DELETE", "PATCH"][..]),
        ("/tasks/1", "GET, PUT, DELETE", &["POST", "PATCH"][..]),
        ("/tasks/abc", "GET, PUT, DELETE", &["POST"][..]),
        ("/healthz", "GET", &["POST", "DELETE"][..]),
    ];
    for (path, allow, methods) in cases {
        for method in methods {
            let response = app.send(request(method, path)).await;
            assert_detail(&response, 405, "Method Not Allowed");
            assert_eq!(header(&response, "allow"), Some(allow), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn every_method_listed_in_allow_is_served() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app.task(&alice, json!({"title": "t"})).await;
    let item = format!("/tasks/{}", task["id"]);
    for path in [
        "/signup",
        "/token",
        "/users/me",
        "/tasks",
        item.as_str(),
        "/healthz",
    ] {
        let refused = app.send(request("PATCH", path)).await;
        assert_eq!(refused.status(), 405, "PATCH {path}");
        let allow = header(&refused, "allow").expect("Allow").to_owned();
        for method in allow.split(", ") {
            let response = app.send(as_user(request(method, path), &alice)).await;
            let status = response.status().as_u16();
            assert!(
                ![404, 405].contains(&status),
                "{method} {path} is in Allow but answered {status}"
            );
        }
    }
}

#[tokio::test]
async fn a_trailing_slash_is_served_as_the_path_without_it() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app.task(&alice, json!({"title": "t"})).await;
    let response = app.send(as_user(request("GET", "/tasks/"), &alice)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-total-count"), Some("1"));
    let response = app
        .send(as_user(
            request("GET", &format!("/tasks/{}/", task["id"])),
            &alice,
        ))
        .await;
    assert_eq!(body(&response), task);
    assert_eq!(app.send(request("GET", "/healthz/")).await.status(), 200);
    let response = app
        .send(post_json(
            "/signup/",
            &json!({"username": "carol", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn credentials_are_checked_before_the_body_and_the_id() {
    let app = test_app!();
    let cases = [
        request("POST", "/tasks")
            .header("content-type", "application/json")
            .body("{not json"),
        request("PUT", "/tasks/abc")
            .header("content-type", "application/json")
            .body("{}"),
        request("GET", "/tasks/-1"),
        request("DELETE", "/tasks/abc"),
        request("GET", "/tasks?limit=0"),
        request("POST", "/tasks").body(vec![b'x'; 60 * 1024]),
    ];
    for case in cases {
        assert_detail(&app.send(case).await, 401, "Invalid or missing API key");
    }
    let response = app
        .send(
            request("PUT", "/tasks/abc")
                .header("x-api-key", API_KEY)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_detail(&response, 401, "Could not validate credentials");
}

#[tokio::test]
async fn malformed_bodies_are_422_json_invalid() {
    let app = test_app!();
    let alice = app.user("alice").await;
    for raw in [
        "{not json",
        "{\"title\": }",
        "{\"title\": \"x\"",
        "{\"title\": \"\\ud800\"}",
        "\u{feff}{}",
    ] {
        let req = as_user(
            request("POST", "/tasks")
                .header("content-type", "application/json")
                .body(raw),
            &alice,
        );
        let response = app.send(req).await;
        assert_eq!(response.status(), 422, "{raw:?}");
        let detail = &body(&response)["detail"][0];
        assert_eq!(detail["type"], "json_invalid", "{raw:?}");
        assert_eq!(detail["loc"][0], "body");
        assert!(detail["loc"][1].is_u64());
    }
}

#[tokio::test]
async fn bodies_that_are_not_objects_are_422() {
    let app = test_app!();
    let alice = app.user("alice").await;
    for raw in ["[]", "[\"x\"]", "\"title\"", "42", "null", "true"] {
        let req = as_user(
            request("POST", "/tasks")
                .header("content-type", "application/json")
                .body(raw),
            &alice,
        );
        assert_invalid(
            &app.send(req).await,
            &[(json!(["body"]), "model_attributes_type")],
        );
    }
    let req = as_user(
        request("POST", "/tasks")
            .header("content-type", "text/plain")
            .body("{\"title\":\"x\"}"),
        &alice,
    );
    assert_invalid(
        &app.send(req).await,
        &[(json!(["body"]), "model_attributes_type")],
    );
    let req = as_user(request("POST", "/tasks"), &alice);
    assert_invalid(&app.send(req).await, &[(json!(["body"]), "missing")]);
}

#[tokio::test]
async fn a_repeated_member_keeps_its_last_value() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let raw = r#"{"title": "first", "title": "second", "status": "completed"}"#;
    let req = as_user(
        request("POST", "/tasks")
            .header("content-type", "application/json")
            .body(raw),
        &alice,
    );
    let response = app.send(req).await;
    assert_eq!(response.status(), 201);
    assert_eq!(body(&response)["title"], "second");
}

#[tokio::test]
async fn a_body_without_content_type_is_read_as_json() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let response = app
        .send(as_user(
            request("POST", "/tasks").body("{\"title\": \"plain\"}"),
            &alice,
        ))
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn task_fields_are_validated_one_entry_per_problem() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let response = app
        .send(as_user(
            post_json(
                "/tasks",
                &json!({"title": "   ", "description": 7, "status": "done"}),
            ),
            &alice,
        ))
        .await;
    assert_invalid(
        &response,
        &[
            (json!(["body", "title"]), "string_too_short"),
            (json!(["body", "description"]), "string_type"),
            (json!(["body", "status"]), "literal_error"),
        ],
    );
    let response = app
        .send(as_user(
            post_json(
                "/tasks",
                &json!({"title": "t".repeat(201), "description": "d".repeat(10_001)}),
            ),
            &alice,
        ))
        .await;
    assert_invalid(
        &response,
        &[
            (json!(["body", "title"]), "string_too_long"),
            (json!(["body", "description"]), "string_too_long"),
        ],
    );
    let response = app
        .send(as_user(
            post_json("/tasks", &json!({"status": "pending"})),
            &alice,
        ))
        .await;
    assert_invalid(&response, &[(json!(["body", "title"]), "missing")]);
    let msg = body(&response)["detail"][0]["msg"].clone();
    assert_eq!(msg, "Field required");
}

#[tokio::test]
async fn an_update_must_name_at_least_one_field() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app.task(&alice, json!({"title": "t"})).await;
    let path = format!("/tasks/{}", task["id"]);
    for empty in [json!({}), json!({"unknown": 1})] {
        assert_invalid(
            &app.send(as_user(put_json(&path, &empty), &alice)).await,
            &[(json!(["body"]), "value_error")],
        );
    }
    let response = app
        .send(as_user(
            put_json(&path, &json!({"status": "Completed"})),
            &alice,
        ))
        .await;
    assert_invalid(&response, &[(json!(["body", "status"]), "literal_error")]);
}

#[tokio::test]
async fn bad_ids_are_422_in_the_path() {
    let app = test_app!();
    let alice = app.user("alice").await;
    for (id, kind) in [
        ("abc", "int_parsing"),
        ("1.5", "int_parsing"),
        ("0", "greater_than_equal"),
        ("-7", "greater_than_equal"),
        ("99999999999999999999", "less_than_equal"),
    ] {
        for method in ["GET", "DELETE"] {
            let response = app
                .send(as_user(request(method, &format!("/tasks/{id}")), &alice))
                .await;
            assert_invalid(&response, &[(json!(["path", "id"]), kind)]);
        }
    }
    let response = app
        .send(as_user(
            put_json("/tasks/x", &json!({"status": "nope"})),
            &alice,
        ))
        .await;
    assert_invalid(
        &response,
        &[
            (json!(["path", "id"]), "int_parsing"),
            (json!(["body", "status"]), "literal_error"),
        ],
    );
}

#[tokio::test]
async fn bad_query_values_are_422_in_the_query() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let cases = [
        ("limit=0", "limit", "greater_than_equal"),
        ("limit=1001", "limit", "less_than_equal"),
        ("limit=ten", "limit", "int_parsing"),
        (
            "limit=999999999999999999999999999999",
            "limit",
            "less_than_equal",
        ),
        ("offset=9223372036854775808", "offset", "less_than_equal"),
        ("limit=", "limit", "int_parsing"),
        ("offset=-1", "offset", "greater_than_equal"),
        ("offset=1e3", "offset", "int_parsing"),
        ("status=done", "status", "literal_error"),
        ("status=PENDING", "status", "literal_error"),
    ];
    for (query, name, kind) in cases {
        let response = app
            .send(as_user(request("GET", &format!("/tasks?{query}")), &alice))
            .await;
        assert_invalid(&response, &[(json!(["query", name]), kind)]);
    }
    let response = app
        .send(as_user(
            request("GET", "/tasks?limit=1000&offset=0&unknown=x"),
            &alice,
        ))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_declared_body_over_64_kib_is_413_before_anything_else() {
    let app = test_app!();
    let big = vec![b'x'; 64 * 1024 + 1];
    for (method, path) in [
        ("POST", "/tasks"),
        ("GET", "/tasks"),
        ("PUT", "/tasks/abc"),
        ("POST", "/nope"),
        ("PATCH", "/signup"),
    ] {
        let response = app.send(request(method, path).body(big.clone())).await;
        assert_detail(&response, 413, "Content Too Large");
    }
    let response = app
        .send(request("POST", "/signup").body(vec![b' '; 64 * 1024]))
        .await;
    assert_eq!(response.status(), 422, "exactly 64 KiB is within the limit");
}

#[tokio::test]
async fn every_body_endpoint_refuses_a_body_over_64_kib() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let title = "x".repeat(64 * 1024);
    let response = app
        .send(as_user(
            post_json("/tasks", &json!({"title": title})),
            &alice,
        ))
        .await;
    assert_detail(&response, 413, "Content Too Large");
    let response = app
        .send(post_json(
            "/signup",
            &json!({"username": "bob", "password": title}),
        ))
        .await;
    assert_detail(&response, 413, "Content Too Large");
    let response = app
        .send(post_form(
            "/token",
            &format!("username=bob&password={title}"),
        ))
        .await;
    assert_detail(&response, 413, "Content Too Large");
    let just_under = format!(
        "{{\"title\": \"t\", \"description\": \"{}\"}}",
        " ".repeat(64 * 1024 - 40)
    );
    let req = as_user(
        request("POST", "/tasks")
            .header("content-type", "application/json")
            .body(just_under),
        &alice,
    );
    assert_eq!(
        app.send(req).await.status(),
        422,
        "under the limit, so the description's length decides"
    );
}

/// Sends raw HTTP/1.1 to the real `api()` served on a loopback port, and returns the status line and body.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(warp::serve(app.api.clone()).incoming(listener).run());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    server.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn chunked_request(user: &TestUser, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         X-API-Key: {API_KEY}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        user.token
    )
    .into_bytes();
    for chunk in body.chunks(8 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

#[tokio::test]
async fn a_chunked_body_is_measured_by_its_bytes() {
    let app = test_app!();
    let alice = app.user("alice").await;

    let small = br#"{"title": "sent in chunks"}"#;
    let (status, body) = raw_exchange(&app, &chunked_request(&alice, small)).await;
    assert!(status.starts_with("HTTP/1.1 201"), "{status}");
    assert!(body.contains("sent in chunks"), "{body}");

    let big = format!("{{\"title\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, body) = raw_exchange(&app, &chunked_request(&alice, big.as_bytes())).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert!(body.contains(r#"{"detail":"Content Too Large"}"#), "{body}");
}

#[tokio::test]
async fn a_broken_chunked_body_is_400() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let mut request = chunked_request(&alice, b"");
    request.truncate(request.len() - b"0\r\n\r\n".len());
    request.extend_from_slice(b"zz\r\n{}\r\n0\r\n\r\n");
    let (status, body) = raw_exchange(&app, &request).await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    assert!(
        body.contains(r#"{"detail":"Malformed request body"}"#),
        "{body}"
    );
    let listed = app.send(as_user(request_get("/tasks"), &alice)).await;
    assert_eq!(header(&listed, "x-total-count"), Some("0"));
}

#[tokio::test]
async fn a_request_target_that_is_not_a_path_gets_an_answer() {
    let app = test_app!();
    for target in [
        "CONNECT 127.0.0.1:80",
        "GET healthz",
        "POST example.com:80",
        "OPTIONS *",
    ] {
        let (status, _) = raw_exchange(
            &app,
            format!("{target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(status.starts_with("HTTP/1.1 4"), "{target}: {status:?}");
    }
}

#[tokio::test]
async fn no_error_answer_leaks_internals() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let probes = [
        as_user(
            post_json(
                "/tasks",
                &json!({"title": "x', 'y'); DROP TABLE tasks; --"}),
            ),
            &alice,
        ),
        as_user(request("GET", "/tasks/1%20OR%201=1"), &alice),
        as_user(request("GET", "/tasks?status=pending'--"), &alice),
        post_json(
            "/signup",
            &json!({"username": "robert'); DROP TABLE users;--", "password": PASSWORD}),
        ),
        post_form("/token", "username=alice'--&password=x"),
    ];
    for probe in probes {
        let response = app.send(probe).await;
        assert!(response.status().as_u16() < 500, "{}", response.status());
        let text = String::from_utf8_lossy(response.body()).to_lowercase();
        for leak in [
            "sqlite", "syntax", "select ", "insert ", "panicked", "argon2", "rusqlite",
        ] {
            assert!(!text.contains(leak), "{leak:?} in {text}");
        }
    }
    let response = app.send(as_user(request("GET", "/tasks"), &alice)).await;
    assert_eq!(
        header(&response, "x-total-count"),
        Some("1"),
        "the table is intact"
    );
}
