//! One module per route. Pages read the store and tell the socket which
//! channel they want; they never touch the socket's messages.

pub mod lobby;
pub mod not_found;
pub mod room;
pub mod rooms;
pub mod stats;
