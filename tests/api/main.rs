//! The API as clients see it: every test drives the real `tasky::api()` through `warp::test`, on its own
//! temporary database.

mod abuse;
mod auth;
mod concurrency;
mod errors;
mod helpers;
mod meta;
mod tasks;
