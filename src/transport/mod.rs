//! Thin transports over the engine: REST, the WebSocket, and the pages.

pub mod admission;
pub mod assets;
pub mod auth;
pub mod error;
pub mod forms;
pub mod limits;
pub mod listen;
pub mod pages;
pub mod rate_limit;
pub mod rest;
pub mod state;
pub mod throttle;
pub mod ws;
pub mod ws_writer;
