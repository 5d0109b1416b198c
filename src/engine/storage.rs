//! Durable state behind one trait the engine owns: rooms, the default
//! room, sessions, frames and chat. The engine holds the live state;
//! storage is what survives a restart. The engine depends on this trait
//! only; the embedded default and the shared backend implement it outside
//! the engine (see docs/architecture.md).

use std::time::Duration;

use app::model::{ChatMessage, RoomMetadata};
use async_trait::async_trait;

/// A failure of the storage backend. The engine leaves the live state
/// unchanged and answers `unavailable` (retry later) when the backend
/// could not be reached, `internal` otherwise.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage unreachable: {0}")]
    Unavailable(String),
    /// The disk (or the memory of the store) is full: nothing was written.
    #[error("storage full: {0}")]
    Full(String),
    #[error("storage: {0}")]
    Failed(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// A room as stored: its durable metadata and when it last saw activity.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRoom {
    pub meta: RoomMetadata,
    pub last_active: f64,
}

/// A user identity behind a token. Only a hash of the token is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSession {
    pub token_hash: String,
    pub user_id: String,
    pub user_name: String,
    /// When it was last used (Unix seconds), where the store keeps it.
    pub last_seen: Option<f64>,
}

/// What a write sent with an idempotency key answered, stored with the
/// write so that a retry gets it back (`engine/idempotency.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    pub user_id: String,
    pub key: String,
    /// What the write asked (its name and a digest of its body).
    pub request: String,
    /// The answer, as JSON text.
    pub answer: String,
    /// When it was written (Unix seconds).
    pub at: f64,
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Every stored room, for start-up.
    async fn load_rooms(&self) -> StorageResult<Vec<StoredRoom>>;
    /// One stored room, for a server taking over a room of one that died.
    async fn load_room(&self, id: &str) -> StorageResult<Option<StoredRoom>>;
    /// Creates or replaces a room's durable record, with the receipt of
    /// the write that made it in the same transaction.
    async fn save_room(&self, room: &StoredRoom, receipt: Option<&Receipt>) -> StorageResult<()>;
    /// Removes a room and everything stored for it.
    async fn delete_room(&self, id: &str) -> StorageResult<()>;
    async fn default_room(&self) -> StorageResult<Option<String>>;
    async fn set_default_room(&self, id: Option<&str>) -> StorageResult<()>;
    /// Creates or renames a session, marking it used now; it is kept
    /// while it is used at least once per `ttl`.
    async fn save_session(&self, session: &StoredSession, ttl: Duration) -> StorageResult<()>;
    async fn session(&self, token_hash: &str) -> StorageResult<Option<StoredSession>>;
    /// Marks a session used now.
    async fn touch_session(&self, token_hash: &str, ttl: Duration) -> StorageResult<()>;
    /// Removes sessions unused for `ttl`; returns how many (a store that
    /// expires entries by itself removes nothing here).
    async fn remove_idle_sessions(&self, ttl: Duration) -> StorageResult<u64>;

    /// Appends frames (raw JSON texts) at index `room.meta.frame_count -
    /// frames.len()` and saves the room record and the receipt, in one
    /// transaction; unless a receipt is kept for the receipt's user and
    /// key: then nothing is written and that receipt is the answer.
    async fn append_frames(
        &self,
        room: &StoredRoom,
        frames: Vec<String>,
        receipt: Option<&Receipt>,
    ) -> StorageResult<Option<Receipt>>;
    /// Up to `limit` frames from `offset`, as raw JSON texts.
    async fn frames(&self, room_id: &str, offset: u64, limit: u64) -> StorageResult<Vec<String>>;

    /// Inserts or replaces (an edit) a chat message, removes the room's
    /// messages older than the newest `keep` and stores the receipt, in one
    /// transaction; unless a receipt is kept for the receipt's user and
    /// key: then nothing is written and that receipt is the answer.
    async fn save_chat(
        &self,
        message: &ChatMessage,
        keep: u64,
        receipt: Option<&Receipt>,
    ) -> StorageResult<Option<Receipt>>;
    /// Up to `limit` messages with ids below `before` (all when `None`),
    /// the newest of them, oldest first.
    async fn chat_page(&self, room_id: &str, before: Option<u64>, limit: u64) -> StorageResult<Vec<ChatMessage>>;
    async fn chat_message(&self, room_id: &str, id: u64) -> StorageResult<Option<ChatMessage>>;
    /// The highest chat message id of the room (0 when none).
    async fn last_chat_id(&self, room_id: &str) -> StorageResult<u64>;

    /// A write's receipt by user and key, if one is kept (receipts are
    /// kept at least a day; older ones may be gone).
    async fn receipt(&self, user_id: &str, key: &str) -> StorageResult<Option<Receipt>>;
    /// Stores the receipt of a write that stores nothing else.
    async fn save_receipt(&self, receipt: &Receipt) -> StorageResult<()>;
}
