//! A database written by the first release opens in this one, keeps its data and serves it. The schema that
//! release laid down is frozen in tests/fixtures/sqlite-schema-0.1 (the migrations as they were, byte for byte:
//! refinery checks every applied migration against the embedded one, so editing a shipped migration would
//! refuse every existing database, and this test with it).

use argon2::password_hash::PasswordHasher as _;
use rusqlite::params;

use crate::client::{PASSWORD, Server, all_tasks, authorized, login, workdir};

mod first_release {
    refinery::embed_migrations!("tests/fixtures/sqlite-schema-0.1");
}

#[test]
fn a_database_of_the_first_release_opens_keeps_its_data_and_serves() {
    let (_dir, path) = workdir();
    {
        let mut conn = rusqlite::Connection::open(path.join("tasky.db")).unwrap();
        first_release::migrations::runner().run(&mut conn).unwrap();
        let hash = argon2::Argon2::default()
            .hash_password(PASSWORD.as_bytes())
            .unwrap()
            .to_string();
        conn.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES ('veteran', ?1, '2026-11-01T08:00:00Z')",
            [hash],
        )
        .unwrap();
        for (title, status) in [
            ("one", "pending"),
            ("two", "completed"),
            ("three", "pending"),
        ] {
            conn.execute(
                "INSERT INTO tasks (user_id, title, status, created_at, updated_at) \
                 VALUES (1, ?1, ?2, '2026-11-02T09:30:00Z', '2026-11-02T09:30:00Z')",
                params![title, status],
            )
            .unwrap();
        }
    }
    let server = Server::start(&path, &[]);
    let token = login(&server.address, "veteran");
    let tasks = all_tasks(&server.address, &token);
    let titles: Vec<&str> = tasks.iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["three", "two", "one"]);
    assert_eq!(tasks[0]["created_at"], "2026-11-02T09:30:00Z");
    let pending = authorized(
        &server.address,
        &token,
        "GET",
        "/tasks?status=pending",
        None,
    )
    .unwrap();
    assert_eq!(pending.header("x-total-count"), Some("2"));
    let created = authorized(
        &server.address,
        &token,
        "POST",
        "/tasks",
        Some(r#"{"title": "four"}"#),
    )
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["id"], 4);
    assert_eq!(all_tasks(&server.address, &token).len(), 4);
}
