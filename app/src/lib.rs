//! Shared by the Roomcast server, its browser client and scripts: the room
//! model, the wire protocol, the delta rule and the REST bodies (no
//! features: the protocol library alone, without Leptos), and the Leptos
//! app (store, socket, pages) with feature `ui`. Build the app with exactly
//! one of `ssr` or `hydrate`, never both.
#![recursion_limit = "512"]

pub mod api;
pub mod delta;
pub mod error;
pub mod ids;
pub mod model;
pub mod protocol;
pub mod request;
#[cfg(feature = "schema")]
pub mod schema;

#[cfg(feature = "ui")]
pub mod client;
#[cfg(feature = "ui")]
pub mod components;
#[cfg(feature = "ui")]
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

#[cfg(feature = "ui")]
mod app;
#[cfg(feature = "ui")]
pub use app::{App, shell};
