//! Tasky: a task-management REST API. Users sign up, log in with the OAuth2 password flow, and manage their own
//! tasks with a bearer token plus an API key. The contract is API.md; this crate is its implementation on warp
//! and SQLite.

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
