//! The API as clients see it: every test drives the real `tasky::api()` through `warp::test`, on its own
//! temporary database: an SQLite file here, a PostgreSQL schema when built as `api_postgres` (see helpers).

/// A fresh [`helpers::TestApp`], configured by the closure given if any; returns from the test when this run is
/// on PostgreSQL and no server was given.
macro_rules! test_app {
    () => {
        test_app!(|_: &mut tasky::config::Config| {})
    };
    ($adjust:expr) => {
        match super::helpers::TestApp::start($adjust).await {
            Some(app) => app,
            None => return,
        }
    };
}

#[path = "../support/postgres.rs"]
mod pg_support;

mod abuse;
mod auth;
mod concurrency;
mod errors;
mod helpers;
mod meta;
mod sessions;
mod tasks;
