//! Pieces shared by several pages.

pub mod connection;
pub mod lock_pill;
pub mod room_forms;
