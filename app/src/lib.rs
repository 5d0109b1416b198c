//! Shared by the Roomcast server and its browser client: the room model,
//! the wire protocol, the delta rule, and the Leptos app (store, socket,
//! pages). Build with exactly one of the `ssr` or `hydrate` features.
#![recursion_limit = "512"]

pub mod api;
pub mod client;
pub mod components;
pub mod delta;
pub mod error;
pub mod ids;
pub mod model;
pub mod pages;
pub mod protocol;
pub mod request;
#[cfg(feature = "ssr")]
pub mod ssr;

mod app;
pub use app::{App, shell};
