//! Thin transports over the engine: REST, the WebSocket, and the pages.

pub mod auth;
pub mod error;
pub mod pages;
pub mod rate_limit;
pub mod rest;
pub mod state;
pub mod ws;
