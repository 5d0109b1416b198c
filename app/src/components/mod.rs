//! Pieces shared by several pages, or big enough for a file of their own.

pub mod chat;
pub mod connection;
pub mod error_text;
pub mod frames;
pub mod lock_pill;
pub mod name_picker;
pub mod presence;
pub mod room_forms;
pub mod svg;
pub mod warning;
