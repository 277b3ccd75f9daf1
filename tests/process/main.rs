//! The `tasky` binary as a process, driven from outside: how it refuses to start, how it stops, and what it
//! keeps when killed, overloaded, or robbed of its storage; how it serves behind a real proxy. Also the serve
//! loop's edge (timeouts, slots, malformed requests) on real sockets.

#[path = "../support/postgres.rs"]
mod pg_support;

mod client;
mod edge;
mod faults;
mod lifecycle;
mod nginx;
mod postgres;
mod replicas;
mod serving;
mod upgrade;
