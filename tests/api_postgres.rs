//! The whole `tests/api` suite again, on PostgreSQL: each test on a fresh schema of the server that
//! `TASKY_TEST_DATABASE_URL` names (see tests/api/helpers.rs). Without it, one line says the half did not run.

#[path = "api/main.rs"]
mod api;
