//! The room engine: rooms, channels, deltas. It knows nothing of HTTP,
//! WebSocket framing or Redis; transports call it with typed requests and
//! hand it a connection's outbound queue, and it reaches what it needs
//! through the traits it owns: `Storage` (what survives a restart) and
//! `Broker` (the other servers sharing the rooms).
//!
//! Each room is owned by one task (`room/`) that applies its changes in
//! order; the room list (`overview:public`) is owned by the directory
//! task (`directory.rs`); `registry.rs` maps ids to room tasks here or to
//! the server owning them, `failover.rs` follows the other servers.

pub mod broker;
mod clock;
pub mod command;
mod conflate;
pub mod connection;
mod directory;
mod edge;
pub mod errors;
mod failover;
pub mod idempotency;
mod listing;
mod matchmaking;
pub mod metrics;
mod presence;
mod reaper;
mod registry;
mod room;
mod routing;
pub mod settings;
mod stats;
pub mod storage;
mod target;
mod window;

use std::sync::Arc;

use tokio::sync::mpsc;

pub use clock::now_secs;
pub use matchmaking::Matched;
pub use registry::{Engine, MAX_CHAT_PER_PAGE, MAX_FRAMES_PER_PAGE};
pub use settings::EngineSettings;
pub use stats::{ByStatus, RoomDetail, Stats};

/// Starts the engine on `storage` and `broker`: loads the stored rooms,
/// starts their tasks, and follows what the other servers send (`inbox`).
pub async fn start(
    storage: Arc<dyn storage::Storage>,
    broker: Arc<dyn broker::Broker>,
    inbox: mpsc::UnboundedReceiver<broker::Inbound>,
    settings: EngineSettings,
) -> Result<Engine, storage::StorageError> {
    let (expired_tx, expired_rx) = mpsc::unbounded_channel();
    let engine = Engine::load(storage, broker, settings, expired_tx).await?;
    tokio::spawn(reaper::reap_idle_rooms(engine.clone(), expired_rx));
    failover::spawn(&engine, inbox);
    Ok(engine)
}
