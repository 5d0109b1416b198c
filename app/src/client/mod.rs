//! The browser side of Roomcast: the reactive store that pages read, the
//! one WebSocket that feeds it, and the REST calls behind user actions.

pub mod actions;
pub mod initial;
pub mod rest;
pub mod socket;
pub mod store;
pub mod window;

pub use actions::{Actions, UploadProgress, use_actions};
pub use socket::{Channel, ConnectionStatus, Socket, use_socket};
pub use store::{Store, use_store};
