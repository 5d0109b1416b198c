//! A typed async client for Roomcast, on the same types the server and
//! the browser use (`app` without features: no Leptos).
//!
//! ```no_run
//! # async fn demo() -> roomcast_client::Result<()> {
//! use roomcast_client::{app::api::CreateRoom, Client, Event, Socket};
//!
//! let client = Client::sign_in("http://127.0.0.1:3000", "bot").await?;
//! let room = client.create_room(&CreateRoom::default()).await?;  // exactly once, retried; typed errors
//! let (socket, mut events) = Socket::open(&client);               // one WebSocket; reconnects by itself
//! socket.join_room(&room.id).await?;                              // and joins again after each reconnect
//! socket.send_chat(&room.id, "hello").await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Server(e) = event { println!("{e:?}"); }
//!     println!("{:?}", socket.store().room(&room.id));            // kept by the delta rule
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

#[cfg(test)]
mod tests {
    /// The README's client example is the crate's doc example above, which
    /// `cargo test` compiles: the README shows code that builds.
    #[test]
    fn the_readme_example_is_the_compiled_one() {
        let doc: Vec<&str> = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .skip_while(|l| *l != "```no_run")
            .skip(1)
            .take_while(|l| *l != "```")
            .filter(|l| !l.starts_with("# "))
            .collect();
        let readme = include_str!("../../README.md");
        let block = readme.split("```rust\n").nth(1).and_then(|b| b.split("\n```").next()).expect("a rust block");
        assert_eq!(doc, block.lines().collect::<Vec<_>>());
    }
}
