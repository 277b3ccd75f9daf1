//! The `tasky` binary as a process, driven from outside: how it refuses to start and how it stops. Also the
//! serve loop's timeouts, on a real socket.

mod client;
mod lifecycle;
mod timeouts;
