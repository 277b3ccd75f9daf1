//! The storage contract (`tasky::store`'s module doc), checked the same way on every backend: each case runs on
//! a fresh SQLite file and on a fresh schema of the PostgreSQL server `TASKY_TEST_DATABASE_URL` names (that half
//! is skipped, with one line saying so, when it is not set).

#[path = "../support/postgres.rs"]
mod pg_support;

use std::future::Future;

use futures_util::future::join_all;
use tasky::config::{DatabaseConfig, PostgresUrl};
use tasky::domain::{
    Limit, NewTask, Offset, PasswordHash, TaskChanges, TaskDescription, TaskId, TaskQuery,
    TaskStatus, TaskTitle, UserId, Username,
};
use tasky::domain::{Principal, RefreshHash, SessionId};
use tasky::store::{LoginKey, Store, StoreError, logins, sessions, tasks, users};

/// Runs `case` on a fresh store of each backend.
async fn on_every_backend<F, Fut>(case: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = DatabaseConfig::Sqlite(dir.path().join("tasky.db"));
    case(Store::connect(&sqlite).await.unwrap()).await;
    if let Some(server) = pg_support::url_or_skip("tests/store") {
        let schema = pg_support::Schema::create(&server).await;
        let postgres = DatabaseConfig::Postgres(PostgresUrl::new(schema.url.clone(), 8));
        case(Store::connect(&postgres).await.unwrap()).await;
    }
}

fn name(raw: &str) -> Username {
    Username::parse(raw.into()).unwrap()
}

/// A new user, in a session of theirs.
async fn user(store: &Store, raw: &str) -> Principal {
    let user = users::insert(store, name(raw), PasswordHash::from_phc(STUB_HASH.into()))
        .await
        .unwrap()
        .id;
    session(store, user).await
}

const STUB_HASH: &str = "$argon2id$stub";

/// A new session of `user`, whose password hash is [`STUB_HASH`].
async fn session(store: &Store, user: UserId) -> Principal {
    let principal = Principal {
        user,
        session: SessionId::random(),
    };
    let day = std::time::Duration::from_secs(86_400);
    let verified = PasswordHash::from_phc(STUB_HASH.into());
    sessions::start(store, principal, &verified, RefreshHash([1; 32]), day)
        .await
        .unwrap();
    principal
}

fn new_task(title: &str, status: TaskStatus) -> NewTask {
    NewTask {
        title: TaskTitle::parse(title.into()).unwrap(),
        description: TaskDescription::default(),
        status,
    }
}

fn page(status: Option<TaskStatus>, limit: i64, offset: i64) -> TaskQuery {
    TaskQuery {
        status,
        limit: Limit::parse(limit).unwrap(),
        offset: Offset::parse(offset).unwrap(),
    }
}

#[tokio::test]
async fn usernames_are_unique_ignoring_case_and_found_ignoring_case() {
    on_every_backend(|store| async move {
        let id = user(&store, "Alice").await;
        let again = users::insert(&store, name("aLICE"), PasswordHash::from_phc("x".into())).await;
        assert_eq!(again.unwrap_err(), StoreError::Conflict);
        let found = users::find_credentials(&store, "ALICE")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, id.user);
        assert_eq!(users::get(&store, id).await.unwrap().username, "Alice");
        assert!(
            users::find_credentials(&store, "nobody")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            users::find_credentials(&store, "nul\0name")
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn an_owner_that_does_not_exist_is_no_such_user_everywhere() {
    on_every_backend(|store| async move {
        let gone = Principal {
            user: UserId(987_654),
            session: SessionId(1),
        };
        let id = TaskId(1);
        let changes = TaskChanges::new(None, None, Some(TaskStatus::Completed)).unwrap();
        assert_eq!(
            users::require(&store, gone).await,
            Err(StoreError::NoSuchUser)
        );
        assert_eq!(
            tasks::insert(&store, gone, new_task("t", TaskStatus::Pending)).await,
            Err(StoreError::NoSuchUser)
        );
        assert_eq!(
            tasks::list(&store, gone, page(None, 10, 0)).await,
            Err(StoreError::NoSuchUser)
        );
        assert_eq!(
            tasks::get(&store, gone, id).await,
            Err(StoreError::NoSuchUser)
        );
        assert_eq!(
            tasks::update(&store, gone, id, changes).await,
            Err(StoreError::NoSuchUser)
        );
        assert_eq!(
            tasks::delete(&store, gone, id).await,
            Err(StoreError::NoSuchUser)
        );
        assert_eq!(users::get(&store, gone).await, Err(StoreError::NoSuchUser));
    })
    .await;
}

#[tokio::test]
async fn another_users_task_looks_like_no_task_at_all() {
    on_every_backend(|store| async move {
        let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);
        let task = tasks::insert(&store, alice, new_task("mine", TaskStatus::Pending))
            .await
            .unwrap();
        let changes = TaskChanges::new(None, None, Some(TaskStatus::Completed)).unwrap();
        assert_eq!(tasks::get(&store, bob, task.id).await, Ok(None));
        assert_eq!(tasks::update(&store, bob, task.id, changes).await, Ok(None));
        assert_eq!(tasks::delete(&store, bob, task.id).await, Ok(false));
        let listed = tasks::list(&store, bob, page(None, 10, 0)).await.unwrap();
        assert_eq!((listed.tasks.len(), listed.total), (0, 0));
        assert_eq!(
            tasks::get(&store, alice, task.id).await.unwrap().unwrap(),
            task
        );
        // Every id the API accepts can be asked for.
        assert_eq!(tasks::get(&store, alice, TaskId(i64::MAX)).await, Ok(None));
    })
    .await;
}

#[tokio::test]
async fn pages_come_newest_first_with_the_total_before_paging() {
    on_every_backend(|store| async move {
        let alice = user(&store, "alice").await;
        let mut ids = Vec::new();
        for i in 0..25 {
            let status = if i % 5 == 0 {
                TaskStatus::Completed
            } else {
                TaskStatus::Pending
            };
            ids.push(
                tasks::insert(&store, alice, new_task(&format!("t{i}"), status))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let first = tasks::list(&store, alice, page(None, 10, 0)).await.unwrap();
        assert_eq!(first.total, 25);
        let newest: Vec<TaskId> = ids.iter().rev().take(10).copied().collect();
        assert_eq!(first.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), newest);
        let last = tasks::list(&store, alice, page(None, 10, 20))
            .await
            .unwrap();
        assert_eq!((last.tasks.len(), last.total), (5, 25));
        let past = tasks::list(&store, alice, page(None, 10, 40))
            .await
            .unwrap();
        assert_eq!((past.tasks.len(), past.total), (0, 25));
        let done = tasks::list(&store, alice, page(Some(TaskStatus::Completed), 100, 0))
            .await
            .unwrap();
        assert_eq!((done.tasks.len(), done.total), (5, 5));
        assert!(done.tasks.iter().all(|t| t.status == TaskStatus::Completed));
    })
    .await;
}

#[tokio::test]
async fn totals_follow_every_write() {
    on_every_backend(|store| async move {
        let alice = user(&store, "alice").await;
        let a = tasks::insert(&store, alice, new_task("a", TaskStatus::Pending))
            .await
            .unwrap();
        let b = tasks::insert(&store, alice, new_task("b", TaskStatus::Pending))
            .await
            .unwrap();
        let complete = TaskChanges::new(None, None, Some(TaskStatus::Completed)).unwrap();
        tasks::update(&store, alice, a.id, complete)
            .await
            .unwrap()
            .unwrap();
        assert!(tasks::delete(&store, alice, b.id).await.unwrap());
        let total = |status| {
            let store = store.clone();
            async move {
                tasks::list(&store, alice, page(status, 1, 0))
                    .await
                    .unwrap()
                    .total
            }
        };
        assert_eq!(total(None).await, 1);
        assert_eq!(total(Some(TaskStatus::Completed)).await, 1);
        assert_eq!(total(Some(TaskStatus::Pending)).await, 0);
    })
    .await;
}

#[tokio::test]
async fn of_concurrent_signups_of_one_name_exactly_one_succeeds() {
    on_every_backend(|store| async move {
        let attempts =
            join_all(
                (0..16).map(|i| {
                    let store = store.clone();
                    let raw = if i % 2 == 0 { "racer" } else { "RACER" };
                    async move {
                        users::insert(&store, name(raw), PasswordHash::from_phc("x".into())).await
                    }
                }),
            )
            .await;
        assert_eq!(attempts.iter().filter(|a| a.is_ok()).count(), 1);
        assert!(
            attempts
                .iter()
                .filter(|a| a.is_err())
                .all(|a| *a == Err(StoreError::Conflict))
        );
    })
    .await;
}

#[tokio::test]
async fn of_concurrent_deletes_of_one_task_exactly_one_removes_it() {
    on_every_backend(|store| async move {
        let alice = user(&store, "alice").await;
        let task = tasks::insert(&store, alice, new_task("once", TaskStatus::Pending))
            .await
            .unwrap();
        let deletes = join_all((0..16).map(|_| {
            let store = store.clone();
            async move { tasks::delete(&store, alice, task.id).await.unwrap() }
        }))
        .await;
        assert_eq!(deletes.iter().filter(|removed| **removed).count(), 1);
        assert_eq!(
            tasks::list(&store, alice, page(None, 10, 0))
                .await
                .unwrap()
                .total,
            0
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_updates_each_land_whole_and_opposite_moves_keep_the_counts() {
    on_every_backend(|store| async move {
        let alice = user(&store, "alice").await;
        let pending = tasks::insert(&store, alice, new_task("p", TaskStatus::Pending))
            .await
            .unwrap();
        let completed = tasks::insert(&store, alice, new_task("c", TaskStatus::Completed))
            .await
            .unwrap();
        // Sixteen updates of one task, each setting title and description to the same number, while two tasks
        // move between the statuses in opposite directions (on PostgreSQL, the moves lock count rows).
        let updates = join_all((0..16).map(|i| {
            let store = store.clone();
            async move {
                let changes = TaskChanges::new(
                    Some(TaskTitle::parse(format!("n{i}")).unwrap()),
                    Some(TaskDescription::parse(format!("n{i}")).unwrap()),
                    None,
                )
                .unwrap();
                tasks::update(&store, alice, pending.id, changes)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }));
        let moves = join_all((0..16).map(|i| {
            let store = store.clone();
            async move {
                let (id, to) = if i % 2 == 0 {
                    (pending.id, TaskStatus::Completed)
                } else {
                    (completed.id, TaskStatus::Pending)
                };
                let changes = TaskChanges::new(None, None, Some(to)).unwrap();
                tasks::update(&store, alice, id, changes)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }));
        futures_util::future::join(updates, moves).await;
        let task = tasks::get(&store, alice, pending.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task.title, task.description, "fields of two updates mixed");
        let all = tasks::list(&store, alice, page(None, 10, 0)).await.unwrap();
        let count = |status| all.tasks.iter().filter(|t| t.status == status).count() as u64;
        for status in [TaskStatus::Pending, TaskStatus::Completed] {
            let listed = tasks::list(&store, alice, page(Some(status), 10, 0))
                .await
                .unwrap();
            assert_eq!(listed.total, count(status), "{status:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn sslmode_means_what_it_means_to_libpq() {
    use std::io::Write as _;
    let Some(server) = pg_support::url_or_skip("tests/store") else {
        return;
    };
    let settings = pg_support::query(
        &server,
        "SELECT current_setting('ssl'), current_setting('ssl_cert_file')",
    )
    .await;
    let (ssl, cert) = (
        settings[0][0].clone().unwrap(),
        settings[0][1].clone().unwrap(),
    );
    if ssl != "on" || !std::path::Path::new(&cert).exists() {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: the TLS case of tests/store: the test server has no TLS"
        );
        return;
    }
    let schema = pg_support::Schema::create(&server).await;
    // require: encrypted, whatever certificate the server shows (a self-signed one here, as on Railway);
    // verify-ca: the chain must lead to sslrootcert.
    for (i, mode) in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-ca&sslrootcert={cert}"),
    ]
    .iter()
    .enumerate()
    {
        let app = format!("tasky_tls_{}_{i}", std::process::id());
        let url = format!("{}&{mode}&application_name={app}", schema.url);
        let store = Store::connect(&DatabaseConfig::Postgres(PostgresUrl::new(url, 1)))
            .await
            .unwrap();
        store.ping().await.unwrap();
        let encrypted = pg_support::query(
            &server,
            &format!(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '{app}'"
            ),
        )
        .await;
        assert_eq!(encrypted, vec![vec![Some("t".to_owned())]], "{mode}");
    }
}

/// A fresh PostgreSQL store and its schema's URL, or `None` (skipped, with a line) without a server.
async fn postgres_store(pool_size: usize) -> Option<(Store, pg_support::Schema)> {
    let server = pg_support::url_or_skip("tests/store")?;
    let schema = pg_support::Schema::create(&server).await;
    let config = DatabaseConfig::Postgres(PostgresUrl::new(schema.url.clone(), pool_size));
    Some((Store::connect(&config).await.unwrap(), schema))
}

fn key(n: u8) -> LoginKey {
    LoginKey([n; 16])
}

#[tokio::test]
async fn shared_login_buckets_let_no_concurrent_attempt_past_a_full_one() {
    let Some((store, _schema)) = postgres_store(8).await else {
        return;
    };
    assert!(store.is_shared());
    // 24 attempts at once on one (pair, address) with room for 5: exactly 5 are counted.
    let buckets = [(key(1), 5.0), (key(2), 50.0)];
    let outcomes = join_all((0..24).map(|_| logins::count(&store, &buckets))).await;
    let counted = outcomes
        .iter()
        .filter(|outcome| outcome.as_ref().unwrap().is_none())
        .count();
    assert_eq!(counted, 5);
    let wait = outcomes.iter().find_map(|o| *o.as_ref().unwrap()).unwrap();
    assert!(
        wait > 0.0 && wait <= 12.0,
        "one attempt drains in 60/5 s: {wait}"
    );
    // Forgiving empties the pair and gives the address one back.
    logins::forgive(&store, key(1), key(2)).await.unwrap();
    assert_eq!(
        logins::count(&store, &[(key(1), 5.0), (key(2), 50.0)])
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_refused_attempt_counts_nowhere_and_stores_nothing() {
    let Some((store, schema)) = postgres_store(2).await else {
        return;
    };
    // The address bucket (key 9) full after two attempts under two names.
    for pair in [1, 2] {
        let counted = logins::count(&store, &[(key(pair), 3.0), (key(9), 2.0)]).await;
        assert_eq!(counted.unwrap(), None);
    }
    // Fresh names from that address are refused, and leave no row behind: a flood of names from a refused
    // address cannot grow the table.
    for pair in 10..60 {
        let refused = logins::count(&store, &[(key(pair), 3.0), (key(9), 2.0)]).await;
        assert!(refused.unwrap().is_some());
    }
    let rows = pg_support::query(&schema.url, "SELECT count(*) FROM login_attempts").await;
    assert_eq!(rows, vec![vec![Some("3".to_owned())]]);
    // Nor did the refusals touch the pairs that were counted: key 1 still has room for two more.
    let levels = pg_support::query(
        &schema.url,
        "SELECT level FROM login_attempts WHERE key = decode(repeat('01', 16), 'hex')",
    )
    .await;
    assert_eq!(levels, vec![vec![Some("1".to_owned())]]);
}

#[tokio::test]
async fn idle_login_buckets_are_pruned_by_the_attempts_that_follow() {
    let Some((store, schema)) = postgres_store(2).await else {
        return;
    };
    // 40 buckets whose last attempt was two minutes ago (empty by now), and 3 live ones.
    pg_support::execute(
        &schema.url,
        "INSERT INTO login_attempts (key, level, capacity, at) \
         SELECT int8send(n) || int8send(n), 3, 3, now() - interval '2 minutes' FROM generate_series(1, 40) AS n; \
         INSERT INTO login_attempts (key, level, capacity, at) \
         SELECT int8send(n) || int8send(n), 3, 3, now() FROM generate_series(101, 103) AS n",
    )
    .await;
    let count = || async {
        let rows = pg_support::query(&schema.url, "SELECT count(*) FROM login_attempts").await;
        rows[0][0].clone().unwrap()
    };
    // Each counted attempt adds its two buckets and removes up to 16 idle ones.
    logins::count(&store, &[(key(1), 3.0), (key(2), 30.0)])
        .await
        .unwrap();
    assert_eq!(count().await, (43 + 2 - 16).to_string());
    logins::count(&store, &[(key(3), 3.0), (key(2), 30.0)])
        .await
        .unwrap();
    logins::count(&store, &[(key(4), 3.0), (key(2), 30.0)])
        .await
        .unwrap();
    // The idle ones are gone; the live ones and the new ones stay.
    assert_eq!(count().await, (3 + 4).to_string());
}

#[tokio::test]
async fn attempts_and_successes_at_once_on_one_bucket_never_deadlock() {
    let Some((store, _schema)) = postgres_store(8).await else {
        return;
    };
    // Logins of one user from one address, some failing and some succeeding, all at once: counting locks
    // both buckets in key order, and so must forgiving, or the two wait for each other.
    for round in 0..5u8 {
        let (pair, address) = if round % 2 == 0 {
            (key(200), key(100))
        } else {
            (key(100), key(200))
        };
        let buckets = [(pair, 1000.0), (address, 10_000.0)];
        let calls = (0..64).map(|i| {
            let store = store.clone();
            async move {
                if i % 2 == 0 {
                    logins::count(&store, &buckets).await.map(|_| ())
                } else {
                    logins::forgive(&store, pair, address).await
                }
            }
        });
        for outcome in join_all(calls).await {
            assert_eq!(outcome, Ok(()), "round {round}");
        }
    }
}

#[tokio::test]
async fn a_session_starts_only_while_the_password_verified_is_still_the_users() {
    on_every_backend(|store| async move {
        let alice = user(&store, "alice").await;
        let day = std::time::Duration::from_secs(86_400);
        let fresh = |user| Principal {
            user,
            session: SessionId::random(),
        };
        // A login that verified the old password, ending after the password changed: no session.
        let new_hash = PasswordHash::from_phc("$argon2id$new".into());
        users::set_password(&store, alice, new_hash.clone())
            .await
            .unwrap();
        let stale = PasswordHash::from_phc(STUB_HASH.into());
        let late = fresh(alice.user);
        assert_eq!(
            sessions::start(&store, late, &stale, RefreshHash([2; 32]), day).await,
            Err(StoreError::NoSuchUser)
        );
        assert_eq!(
            users::require(&store, late).await,
            Err(StoreError::NoSuchUser)
        );
        let current = fresh(alice.user);
        sessions::start(&store, current, &new_hash, RefreshHash([3; 32]), day)
            .await
            .unwrap();
        users::require(&store, current).await.unwrap();
        // Nor for a user who is gone.
        users::delete(&store, current).await.unwrap();
        assert_eq!(
            sessions::start(
                &store,
                fresh(alice.user),
                &new_hash,
                RefreshHash([4; 32]),
                day
            )
            .await,
            Err(StoreError::NoSuchUser)
        );
    })
    .await;
}
