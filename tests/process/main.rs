//! The `tasky` binary as a process, driven from outside: how it refuses to start, how it stops, and what it
//! keeps when killed, overloaded, or robbed of its storage. Also the serve loop's timeouts, on a real socket.

mod client;
mod faults;
mod lifecycle;
mod timeouts;
