//! The Roomcast server: configuration, the room engine with its storage
//! and broker traits, their embedded (`sqlite`, `engine::broker::LocalBroker`)
//! and Redis (`redis`) implementations, sessions and the transports.
//! `server.rs` assembles them; `main.rs` only parses flags and calls
//! [`server::run`].
#![recursion_limit = "512"]

pub mod config;
pub mod engine;
pub mod redis;
pub mod server;
pub mod sessions;
pub mod sqlite;
pub mod transport;
