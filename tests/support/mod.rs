//! Helpers shared by the integration tests, kept once here. Each test binary includes this
//! with `mod support;` (or `#[path = "../support/mod.rs"] mod support;` from a
//! `tests/<area>/main.rs`) and uses only some of it, hence the `dead_code` allowance for the
//! whole tree. Its items are `pub` for the test files that use them, which are the crate
//! root's children, so `unreachable_pub` has nothing to say here either.
#![allow(dead_code, unreachable_pub)]

pub mod cli;
pub mod db;
pub mod newsroom;
pub mod postgres;
pub mod sink;
pub mod smtp_server;
pub mod tools;

/// A TCP port on 127.0.0.1 that was free a moment ago: the listener is closed again, so a
/// child process (the daemon, aiosmtpd) can bind it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
