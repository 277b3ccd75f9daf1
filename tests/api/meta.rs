//! Endpoints about the service itself.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::helpers::*;

#[tokio::test]
async fn healthz_answers_ok_without_credentials() {
    let app = test_app!();
    let response = app.send(request("GET", "/healthz")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(body(&response), json!({"status": "ok"}));
}

/// The OpenAPI document as served.
async fn document(app: &TestApp) -> Value {
    let response = app.send(request("GET", "/openapi.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    body(&response)
}

/// Every (METHOD, path template) the document lists.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_exactly_the_route_table() {
    let app = test_app!();
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let table: BTreeSet<(String, String)> = tasky::routes::ROUTES
        .iter()
        .flat_map(|(path, allow)| {
            allow
                .split(", ")
                .map(move |m| (m.to_owned(), (*path).to_owned()))
        })
        .collect();
    assert_eq!(operations(&document), table);
}

#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else_at_those_paths() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app.task(&alice, json!({"title": "t"})).await;
    let document = document(&app).await;
    let documented = operations(&document);
    let concrete = |template: &str| {
        template
            .replace("{id}", &task["id"].to_string())
            .replace("{file}", "swagger-ui.css")
    };
    for path in documented
        .iter()
        .map(|(_, path)| path)
        .collect::<BTreeSet<_>>()
    {
        let allowed: BTreeSet<&str> = documented
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        for method in METHODS {
            let response = app
                .send(as_user(request(method, &concrete(path)), &alice))
                .await;
            let status = response.status().as_u16();
            if allowed.contains(method) {
                assert!(
                    ![404, 405].contains(&status),
                    "documented {method} {path} answered {status}"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "undocumented {method} {path} answered {status}"
                );
                let allow: BTreeSet<&str> = header(&response, "allow")
                    .expect("Allow")
                    .split(", ")
                    .collect();
                assert_eq!(allow, allowed, "Allow of {path}");
            }
        }
    }
}

#[tokio::test]
async fn protected_operations_require_both_schemes_in_one_requirement_and_public_ones_none() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app.task(&alice, json!({"title": "t"})).await;
    let document = document(&app).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["OAuth2PasswordBearer"]["type"], "oauth2");
    assert_eq!(
        schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"],
        "/token"
    );
    assert_eq!(
        schemes["APIKeyHeader"],
        json!({"type": "apiKey", "in": "header", "name": "X-API-Key", "description": schemes["APIKeyHeader"]["description"]})
    );

    for (method, path) in operations(&document) {
        let operation = &document["paths"][&path][method.to_lowercase()];
        let concrete = path
            .replace("{id}", &task["id"].to_string())
            .replace("{file}", "index.css");
        let anonymous = app.send(request(&method, &concrete)).await;
        if anonymous.status() == 401 {
            assert_eq!(
                operation["security"],
                json!([{"OAuth2PasswordBearer": [], "APIKeyHeader": []}]),
                "{method} {path} needs both credentials, in ONE requirement"
            );
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path} documents its 401"
            );
        } else {
            assert!(
                operation.get("security").is_none(),
                "{method} {path} is public"
            );
        }
    }
}

#[tokio::test]
async fn the_document_never_contains_the_api_key() {
    let app = test_app!();
    let response = app.send(request("GET", "/openapi.json")).await;
    let text = String::from_utf8_lossy(response.body());
    assert!(!text.contains(API_KEY));
    assert!(!text.contains("123456"));
}

#[tokio::test]
async fn schemas_carry_the_contracts_limits() {
    let app = test_app!();
    let document = document(&app).await;
    let schemas = &document["components"]["schemas"];
    let signup = &schemas["SignupRequest"]["properties"];
    assert_eq!(
        (
            signup["username"]["minLength"].as_u64(),
            signup["username"]["maxLength"].as_u64()
        ),
        (Some(3), Some(32))
    );
    assert_eq!(signup["username"]["pattern"], "^[A-Za-z0-9_.-]+$");
    assert_eq!(
        (
            signup["password"]["minLength"].as_u64(),
            signup["password"]["maxLength"].as_u64()
        ),
        (Some(8), Some(128))
    );
    assert_eq!(
        schemas["TaskStatus"]["enum"],
        json!(["pending", "completed"])
    );
    assert_eq!(schemas["NewTaskRequest"]["required"], json!(["title"]));
    assert_eq!(
        schemas["NewTaskRequest"]["properties"]["description"]["maxLength"],
        10_000
    );
    assert!(
        schemas["NewTaskRequest"]["properties"]["title"]["pattern"]
            .as_str()
            .unwrap()
            .contains("{0,198}")
    );
    let anyof = schemas["TaskChangesRequest"]["anyOf"].as_array().unwrap();
    let required: Vec<&Value> = anyof
        .iter()
        .map(|alternative| &alternative["required"])
        .collect();
    assert_eq!(
        required,
        [
            &json!(["title"]),
            &json!(["description"]),
            &json!(["status"])
        ]
    );

    let list = &document["paths"]["/tasks"]["get"];
    let param = |name: &str| {
        list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            param("limit")["schema"]["minimum"].as_i64(),
            param("limit")["schema"]["maximum"].as_i64()
        ),
        (Some(1), Some(1000))
    );
    assert_eq!(param("offset")["schema"]["minimum"], 0);
    assert_eq!(
        param("status")["schema"]["$ref"]
            .as_str()
            .or(param("status")["schema"]["oneOf"][0]["$ref"].as_str()),
        Some("#/components/schemas/TaskStatus")
    );
    let id = &document["paths"]["/tasks/{id}"]["get"]["parameters"][0];
    assert_eq!(
        (
            id["name"].as_str(),
            id["in"].as_str(),
            id["schema"]["minimum"].as_i64()
        ),
        (Some("id"), Some("path"), Some(1))
    );
}

#[tokio::test]
async fn the_document_covers_the_refresh_grant_and_the_session_operations() {
    let app = test_app!();
    let document = document(&app).await;
    let schemas = &document["components"]["schemas"];
    let form = &schemas["LoginForm"]["properties"];
    assert_eq!(form["grant_type"]["pattern"], "^(password|refresh_token)?$");
    assert!(form["refresh_token"].is_object(), "{form}");
    let token = &schemas["AccessToken"];
    assert!(token["properties"]["refresh_token"].is_object(), "{token}");
    assert!(
        token["required"]
            .as_array()
            .unwrap()
            .contains(&json!("refresh_token"))
    );
    let change = &schemas["PasswordChangeRequest"];
    assert_eq!(
        change["required"],
        json!(["current_password", "new_password"])
    );
    assert_eq!(change["properties"]["new_password"]["minLength"], 8);
    let paths = &document["paths"];
    for (path, method, id) in [
        ("/logout", "post", "log_out"),
        ("/users/me/password", "put", "change_password"),
        ("/users/me", "delete", "delete_current_user"),
    ] {
        assert_eq!(paths[path][method]["operationId"], id);
    }
    let all = &paths["/logout"]["post"]["parameters"][0];
    assert_eq!((&all["name"], &all["in"]), (&json!("all"), &json!("query")));
    assert_eq!(all["schema"]["type"], "boolean");
    assert_eq!(all["required"], false);
    // Swagger UI's password flow still logs in at /token.
    let flows = &document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"];
    assert_eq!(flows["password"]["tokenUrl"], "/token");
}

#[tokio::test]
async fn responses_document_every_status_header_and_an_example() {
    let app = test_app!();
    let document = document(&app).await;
    let responses = |method: &str, path: &str| document["paths"][path][method]["responses"].clone();
    let codes = |method: &str, path: &str| -> Vec<String> {
        responses(method, path)
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let expected: [(&str, &str, &[&str]); 8] = [
        (
            "post",
            "/signup",
            &["201", "400", "408", "409", "413", "422", "503"],
        ),
        (
            "post",
            "/token",
            &["200", "400", "401", "408", "413", "422", "429", "503"],
        ),
        ("get", "/users/me", &["200", "401", "503"]),
        (
            "post",
            "/tasks",
            &["201", "400", "401", "408", "413", "422", "503"],
        ),
        ("get", "/tasks", &["200", "401", "422", "503"]),
        ("get", "/tasks/{id}", &["200", "401", "404", "422", "503"]),
        (
            "put",
            "/tasks/{id}",
            &["200", "400", "401", "404", "408", "413", "422", "503"],
        ),
        (
            "delete",
            "/tasks/{id}",
            &["204", "401", "404", "422", "503"],
        ),
    ];
    for (method, path, statuses) in expected {
        assert_eq!(codes(method, path), statuses, "{method} {path}");
    }
    assert_eq!(codes("get", "/healthz"), ["200", "503"]);

    assert!(responses("post", "/tasks")["201"]["headers"]["Location"].is_object());
    assert!(responses("get", "/tasks")["200"]["headers"]["X-Total-Count"].is_object());
    assert!(responses("get", "/tasks")["401"]["headers"]["WWW-Authenticate"].is_object());
    assert!(responses("post", "/token")["401"]["headers"]["WWW-Authenticate"].is_object());
    assert!(responses("post", "/token")["200"]["headers"]["Cache-Control"].is_object());
    assert!(responses("post", "/token")["429"]["headers"]["Retry-After"].is_object());
    assert_eq!(
        responses("put", "/tasks/{id}")["422"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ValidationError"
    );

    // An example for every body: on the media type, or on the schema it points to.
    let schemas = &document["components"]["schemas"];
    let has_example = |media: &Value| {
        let schema = &media["schema"];
        let named = schema["$ref"]
            .as_str()
            .or(schema["items"]["$ref"].as_str())
            .map(|r| &schemas[r.rsplit('/').next().unwrap()]);
        media.get("example").is_some()
            || media.get("examples").is_some()
            || named.is_some_and(|s| s.get("examples").is_some() || s.get("example").is_some())
    };
    for (method, path) in operations(&document) {
        let operation = &document["paths"][&path][method.to_lowercase()];
        for media in operation["requestBody"]["content"]
            .as_object()
            .into_iter()
            .flat_map(|c| c.values())
        {
            assert!(has_example(media), "request body of {method} {path}");
        }
        for (status, response) in operation["responses"].as_object().unwrap() {
            for media in response["content"]
                .as_object()
                .into_iter()
                .flat_map(|c| c.values())
            {
                assert!(has_example(media), "{status} of {method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn docs_serve_swagger_ui_from_the_binary_with_and_without_the_slash() {
    let app = test_app!();
    for path in ["/docs", "/docs/"] {
        let response = app.send(request("GET", path)).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(
            header(&response, "content-security-policy")
                .is_some_and(|csp| csp.contains("script-src 'self'"))
        );
        let page = String::from_utf8_lossy(response.body()).into_owned();
        assert!(page.contains("<div id=\"swagger-ui\">"));
        // Every asset the page loads is served, from this binary.
        let assets: Vec<&str> = page
            .split(['"', '\''])
            .filter(|part| part.starts_with("/docs/"))
            .collect();
        assert!(assets.len() >= 5, "{assets:?}");
        for asset in assets {
            let file = app.send(request("GET", asset)).await;
            assert_eq!(file.status(), 200, "{asset}");
            assert!(!file.body().is_empty());
        }
    }
    let bundle = app.send(request("GET", "/docs/swagger-ui-bundle.js")).await;
    assert_eq!(
        header(&bundle, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(bundle.body().len() > 100_000);
    let initializer = app
        .send(request("GET", "/docs/swagger-initializer.js"))
        .await;
    assert!(String::from_utf8_lossy(initializer.body()).contains("\"/openapi.json\""));
    assert_detail(
        &app.send(request("GET", "/docs/nope.js")).await,
        404,
        "Not Found",
    );
}
