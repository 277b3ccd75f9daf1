//! API.md's "Concurrency and durability": each write is atomic, however many race.

use serde_json::json;
use tokio::task::JoinSet;
use warp::test::RequestBuilder;

use super::helpers::*;

/// Sends every request at once (on a multi-threaded runtime) and collects the statuses and bodies.
async fn race(app: &TestApp, requests: Vec<RequestBuilder>) -> Vec<(u16, serde_json::Value)> {
    let mut set = JoinSet::new();
    for request in requests {
        let api = app.api.clone();
        set.spawn(async move {
            let response = request.reply(&api).await;
            let value = serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null);
            (response.status().as_u16(), value)
        });
    }
    set.join_all().await
}

fn count(results: &[(u16, serde_json::Value)], status: u16) -> usize {
    results.iter().filter(|(s, _)| *s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_deletes_exactly_one_succeeds() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app.task(&alice, json!({"title": "contested"})).await;
    let path = format!("/tasks/{}", task["id"]);
    let results = race(
        &app,
        (0..20)
            .map(|_| as_user(request("DELETE", &path), &alice))
            .collect(),
    )
    .await;
    assert_eq!(count(&results, 204), 1, "{results:?}");
    assert_eq!(count(&results, 404), 19, "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_signups_for_one_name_exactly_one_succeeds() {
    let app = test_app!();
    let names = ["carol", "CAROL", "Carol", "cArOl"];
    let requests = (0..12)
        .map(|i| {
            post_json(
                "/signup",
                &json!({"username": names[i % 4], "password": PASSWORD}),
            )
        })
        .collect();
    let results = race(&app, requests).await;
    assert_eq!(count(&results, 201), 1, "{results:?}");
    assert_eq!(count(&results, 409), 11, "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_never_mix_fields_of_different_requests() {
    let app = test_app!();
    let alice = app.user("alice").await;
    let task = app
        .task(&alice, json!({"title": "start", "description": "start"}))
        .await;
    let path = format!("/tasks/{}", task["id"]);
    let requests = (0..30)
        .map(|i| {
            let status = if i % 2 == 0 { "pending" } else { "completed" };
            let tag = format!("writer {i} {status}");
            as_user(
                put_json(
                    &path,
                    &json!({"title": tag, "description": tag, "status": status}),
                ),
                &alice,
            )
        })
        .collect();
    let results = race(&app, requests).await;
    assert_eq!(count(&results, 200), 30, "{results:?}");
    for (_, answer) in &results {
        assert_eq!(
            answer["title"], answer["description"],
            "each answer is one request's whole write"
        );
        assert!(
            answer["title"]
                .as_str()
                .unwrap()
                .ends_with(answer["status"].as_str().unwrap())
        );
    }
    let last = body(&app.send(as_user(request("GET", &path), &alice)).await);
    assert_eq!(last["title"], last["description"]);
    assert!(
        last["title"]
            .as_str()
            .unwrap()
            .ends_with(last["status"].as_str().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_writers_all_succeed_and_all_writes_are_kept() {
    let app = test_app!();
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let requests = (0..100)
        .map(|i| {
            let user = if i % 2 == 0 { &alice } else { &bob };
            as_user(
                post_json("/tasks", &json!({"title": format!("task {i}")})),
                user,
            )
        })
        .collect();
    let results = race(&app, requests).await;
    assert_eq!(
        count(&results, 201),
        100,
        "no write may fail: {:?}",
        results.iter().find(|(s, _)| *s != 201)
    );
    for user in [&alice, &bob] {
        let response = app.send(as_user(request("GET", "/tasks"), user)).await;
        assert_eq!(header(&response, "x-total-count"), Some("50"));
    }
}
