//! The Roomcast server: configuration, storage, the room engine and its
//! transports. `main.rs` only parses flags and calls [`server::run`].
#![recursion_limit = "512"]

pub mod cluster;
pub mod config;
pub mod engine;
pub mod server;
pub mod sessions;
pub mod storage;
pub mod transport;
