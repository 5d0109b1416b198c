//! A typed async client for Roomcast, on the same types the server and
//! the browser use (`app` without features: no Leptos).
//!
//! ```no_run
//! # async fn demo() -> roomcast_client::Result<()> {
//! use roomcast_client::{Client, Socket, Event};
//! let client = Client::sign_in("http://127.0.0.1:3000", "bot").await?;
//! let room = client.create_room(&Default::default()).await?;
//! let (socket, mut events) = Socket::open(&client);
//! socket.join_room(&room.id).await?;
//! socket.send_chat(&room.id, "hello").await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Server(e) = event { println!("{e:?}"); }
//! }
//! # Ok(()) }
//! ```

mod error;
mod rest;
mod socket;
mod store;

pub use app;
pub use error::{Error, Result};
pub use rest::{Client, new_key};
pub use socket::{Event, REQUEST_TIMEOUT, Socket};
pub use store::Store;
