//! The task endpoints: what each answers, and that nobody reaches another user's tasks.

use serde_json::{Value, json};

use super::helpers::*;

fn is_rfc3339_utc_seconds(value: &Value) -> bool {
    let text = value.as_str().unwrap_or_default();
    text.len() == 20 && text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

#[tokio::test]
async fn create_answers_201_with_the_task_and_its_location() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let response = app
        .send(as_user(
            post_json(
                "/tasks",
                &json!({"title": "  Write report  ", "description": "Quarterly numbers"}),
            ),
            &alice,
        ))
        .await;
    assert_eq!(response.status(), 201);
    let task = body(&response);
    let id = task["id"].as_i64().unwrap();
    assert_eq!(
        header(&response, "location"),
        Some(format!("/tasks/{id}").as_str())
    );
    assert_eq!(task["user_id"], alice.id);
    assert_eq!(task["title"], "Write report", "the title is trimmed");
    assert_eq!(task["description"], "Quarterly numbers");
    assert_eq!(task["status"], "pending");
    assert!(
        is_rfc3339_utc_seconds(&task["created_at"]),
        "{}",
        task["created_at"]
    );
    assert_eq!(task["created_at"], task["updated_at"]);
    let keys: Vec<&str> = task
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 7, "exactly the documented fields: {keys:?}");
}

#[tokio::test]
async fn create_defaults_description_and_status_and_accepts_completed() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app.task(&alice, json!({"title": "t"})).await;
    assert_eq!(
        (task["description"].as_str(), task["status"].as_str()),
        (Some(""), Some("pending"))
    );
    let task = app
        .task(
            &alice,
            json!({"title": "t", "status": "completed", "extra": "ignored"}),
        )
        .await;
    assert_eq!(task["status"], "completed");
    assert!(task.get("extra").is_none());
}

#[tokio::test]
async fn text_round_trips_exactly_whatever_it_contains() {
    let app = test_app!();
    let alice = app.user("alice").await;
    for title in [
        "'; DROP TABLE tasks; --",
        "日本語 🦀",
        "<script>alert(1)</script>",
        "%s%n",
    ] {
        let created = app
            .task(&alice, json!({"title": title, "description": title}))
            .await;
        let fetched = body(
            &app.send(as_user(
                request("GET", &format!("/tasks/{}", created["id"])),
                &alice,
            ))
            .await,
        );
        assert_eq!(fetched["title"], title);
        assert_eq!(fetched["description"], title);
    }
}

#[tokio::test]
async fn text_with_a_nul_is_422_on_every_backend_and_stores_nothing() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app.task(&alice, json!({"title": "kept"})).await;
    let pattern = format!("String should match pattern '{}'", tasky::domain::NO_NUL);
    for (sent, field) in [
        (json!({"title": "nul\u{0}inside"}), "title"),
        (json!({"title": "t", "description": "\u{0}"}), "description"),
    ] {
        let response = app.send(as_user(post_json("/tasks", &sent), &alice)).await;
        assert_eq!(response.status(), 422, "{:?}", response.body());
        let detail = &body(&response)["detail"][0];
        assert_eq!(detail["loc"], json!(["body", field]));
        assert_eq!(detail["type"], "string_pattern_mismatch");
        assert_eq!(detail["msg"], pattern);
        let path = format!("/tasks/{}", task["id"]);
        let response = app.send(as_user(put_json(&path, &sent), &alice)).await;
        assert_eq!(response.status(), 422, "{:?}", response.body());
    }
    let list = app.send(as_user(request("GET", "/tasks"), &alice)).await;
    assert_eq!(header(&list, "x-total-count"), Some("1"));
    assert_eq!(body(&list)[0]["title"], "kept");
}

#[tokio::test]
async fn list_returns_only_the_callers_tasks_newest_first_with_the_total() {
    let app = test_app!();
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.task(&alice, json!({"title": format!("alice {i}")}))
                .await["id"]
                .as_i64()
                .unwrap(),
        );
        app.task(&bob, json!({"title": format!("bob {i}")})).await;
    }
    let response = app.send(as_user(request("GET", "/tasks"), &alice)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-total-count"), Some("5"));
    let listed: Vec<i64> = body(&response)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    assert!(
        body(&response)
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["user_id"] == alice.id)
    );
}

#[tokio::test]
async fn list_pages_with_limit_and_offset_and_counts_before_paging() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            app.task(&alice, json!({"title": format!("task {i}")}))
                .await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    ids.reverse();
    let response = app
        .send(as_user(request("GET", "/tasks?limit=3&offset=2"), &alice))
        .await;
    assert_eq!(header(&response, "x-total-count"), Some("7"));
    let page: Vec<i64> = body(&response)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(page, ids[2..5]);
    let response = app
        .send(as_user(request("GET", "/tasks?offset=100"), &alice))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(&response), json!([]));
    assert_eq!(header(&response, "x-total-count"), Some("7"));
}

#[tokio::test]
async fn list_filters_by_status() {
    let app = test_app!();
    let alice = app.user("alice").await;
    for (i, status) in ["pending", "completed", "pending", "completed", "completed"]
        .iter()
        .enumerate()
    {
        app.task(
            &alice,
            json!({"title": format!("task {i}"), "status": status}),
        )
        .await;
    }
    for (status, count) in [("completed", 3), ("pending", 2)] {
        let response = app
            .send(as_user(
                request("GET", &format!("/tasks?status={status}&limit=2")),
                &alice,
            ))
            .await;
        assert_eq!(
            header(&response, "x-total-count"),
            Some(count.to_string().as_str())
        );
        let tasks = body(&response);
        assert_eq!(tasks.as_array().unwrap().len(), 2);
        assert!(
            tasks
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["status"] == status)
        );
    }
}

#[tokio::test]
async fn an_empty_list_is_an_empty_array_with_a_zero_total() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let response = app.send(as_user(request("GET", "/tasks"), &alice)).await;
    assert_eq!(body(&response), json!([]));
    assert_eq!(header(&response, "x-total-count"), Some("0"));
}

#[tokio::test]
async fn get_answers_the_task() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let created = app
        .task(&alice, json!({"title": "read me", "description": "d"}))
        .await;
    let response = app
        .send(as_user(
            request("GET", &format!("/tasks/{}", created["id"])),
            &alice,
        ))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(&response), created);
}

#[tokio::test]
async fn update_changes_only_the_fields_sent_and_stamps_updated_at() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let created = app
        .task(&alice, json!({"title": "before", "description": "keep me"}))
        .await;
    // Move the task into the past, so a fresh updated_at is told apart from the original one.
    let past = "2020-01-02T03:04:05Z";
    app.sql(&format!(
        "UPDATE tasks SET created_at = '{past}', updated_at = '{past}' WHERE id = {}",
        created["id"]
    ))
    .await;
    let path = format!("/tasks/{}", created["id"]);
    let response = app
        .send(as_user(
            put_json(&path, &json!({"status": "completed", "title": " after "})),
            &alice,
        ))
        .await;
    assert_eq!(response.status(), 200);
    let updated = body(&response);
    assert_eq!(updated["title"], "after");
    assert_eq!(updated["status"], "completed");
    assert_eq!(updated["description"], "keep me");
    assert_eq!(updated["created_at"], past, "created_at never changes");
    assert!(is_rfc3339_utc_seconds(&updated["updated_at"]));
    assert!(
        updated["updated_at"].as_str() > Some(past),
        "updated_at is stamped: {}",
        updated["updated_at"]
    );
    let fetched = body(&app.send(as_user(request("GET", &path), &alice)).await);
    assert_eq!(fetched, updated);
}

#[tokio::test]
async fn delete_answers_204_then_the_task_is_gone() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let created = app.task(&alice, json!({"title": "doomed"})).await;
    let path = format!("/tasks/{}", created["id"]);
    let response = app.send(as_user(request("DELETE", &path), &alice)).await;
    assert_eq!(response.status(), 204);
    assert!(response.body().is_empty());
    assert_detail(
        &app.send(as_user(request("GET", &path), &alice)).await,
        404,
        "Task not found",
    );
    assert_detail(
        &app.send(as_user(request("DELETE", &path), &alice)).await,
        404,
        "Task not found",
    );
}

#[tokio::test]
async fn a_missing_task_is_404_for_every_method() {
    let app = test_app!();
    let alice = app.user("alice").await;
    for req in [
        request("GET", "/tasks/424242"),
        put_json("/tasks/424242", &json!({"title": "x"})),
        request("DELETE", "/tasks/424242"),
    ] {
        assert_detail(&app.send(as_user(req, &alice)).await, 404, "Task not found");
    }
}

#[tokio::test]
async fn another_users_task_is_404_for_read_update_and_delete_and_stays_unchanged() {
    let app = test_app!();
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let task = app
        .task(
            &alice,
            json!({"title": "alice's secret", "description": "private"}),
        )
        .await;
    let path = format!("/tasks/{}", task["id"]);

    assert_detail(
        &app.send(as_user(request("GET", &path), &bob)).await,
        404,
        "Task not found",
    );
    let attempt = put_json(&path, &json!({"title": "pwned", "status": "completed"}));
    assert_detail(
        &app.send(as_user(attempt, &bob)).await,
        404,
        "Task not found",
    );
    assert_detail(
        &app.send(as_user(request("DELETE", &path), &bob)).await,
        404,
        "Task not found",
    );
    let listed = app.send(as_user(request("GET", "/tasks"), &bob)).await;
    assert_eq!(body(&listed), json!([]));

    let after = app.send(as_user(request("GET", &path), &alice)).await;
    assert_eq!(after.status(), 200);
    assert_eq!(body(&after), task, "alice's task is exactly as she left it");
}

#[tokio::test]
async fn a_refused_update_changes_nothing() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app
        .task(
            &alice,
            json!({"title": "original", "description": "as created"}),
        )
        .await;
    let path = format!("/tasks/{}", task["id"]);
    for bad in [
        json!({"title": "valid", "status": "archived"}),
        json!({"title": "", "description": "valid"}),
        json!({"description": "x".repeat(10_001), "status": "completed"}),
        json!({"title": null}),
        json!({}),
    ] {
        assert_eq!(
            app.send(as_user(put_json(&path, &bad), &alice))
                .await
                .status(),
            422,
            "{bad}"
        );
    }
    assert_eq!(
        body(&app.send(as_user(request("GET", &path), &alice)).await),
        task
    );
}

#[tokio::test]
async fn a_refused_create_adds_nothing() {
    let app = test_app!();
    let alice = app.user("alice").await;
    for bad in [
        json!({"title": "ok", "status": "nope"}),
        json!({"title": "t".repeat(201)}),
        json!({"description": "no title"}),
    ] {
        assert_eq!(
            app.send(as_user(post_json("/tasks", &bad), &alice))
                .await
                .status(),
            422,
            "{bad}"
        );
    }
    let response = app.send(as_user(request("GET", "/tasks"), &alice)).await;
    assert_eq!(header(&response, "x-total-count"), Some("0"));
}

#[tokio::test]
async fn titles_and_descriptions_at_their_limits_are_accepted() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let title = "é".repeat(200);
    let description = "ü".repeat(10_000);
    let task = app
        .task(&alice, json!({"title": title, "description": description}))
        .await;
    assert_eq!(task["title"], title);
    assert_eq!(task["description"], description);
}

#[tokio::test]
async fn the_total_follows_status_changes_and_deletes() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let ids: Vec<i64> = create_tasks(&app, &alice, 4).await;
    let total = |query: &'static str| {
        let app = &app;
        let alice = &alice;
        async move {
            let response = app
                .send(as_user(request("GET", &format!("/tasks{query}")), alice))
                .await;
            header(&response, "x-total-count").unwrap().to_owned()
        }
    };
    let changes = [
        (ids[0], "completed"),
        (ids[1], "completed"),
        (ids[1], "pending"),
    ];
    for (id, status) in changes {
        let response = app
            .send(as_user(
                put_json(&format!("/tasks/{id}"), &json!({ "status": status })),
                &alice,
            ))
            .await;
        assert_eq!(response.status(), 200, "{id} -> {status}");
    }
    let deleted = app
        .send(as_user(
            request("DELETE", &format!("/tasks/{}", ids[2])),
            &alice,
        ))
        .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(total("").await, "3");
    assert_eq!(total("?status=completed").await, "1");
    assert_eq!(total("?status=pending").await, "2");
    assert_eq!(
        total("?status=pending&offset=50").await,
        "2",
        "past the last page the total still counts"
    );
}

async fn create_tasks(app: &TestApp, user: &TestUser, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            app.task(user, json!({"title": format!("task {i}")})).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    ids
}
