//! Everything Roomcast keeps in Redis when several servers share rooms:
//! the engine's `Storage` (`storage.rs`) and `Broker` (`broker.rs`) on one
//! Redis server, with their key names (`keys.rs`), Lua scripts
//! (`scripts.rs`), the message form between servers (`wire.rs`), the
//! ordered outgoing queue (`publisher.rs`), the subscriber connection
//! (`listener.rs`) and the locks shared by every server (`lock.rs`).

mod broker;
mod keys;
mod listener;
mod lock;
mod publisher;
mod scripts;
mod storage;
mod wire;

pub use broker::{RedisBroker, RedisSettings};
pub use storage::RedisStorage;

use tokio::sync::mpsc;

use crate::engine::broker::Inbound;

/// Connects to the Redis at `url`: the storage and the broker on it, and
/// what the other servers send this one.
pub async fn connect(
    url: &str,
    prefix: &str,
    settings: RedisSettings,
) -> Result<(RedisStorage, RedisBroker, mpsc::UnboundedReceiver<Inbound>), ::redis::RedisError> {
    let (broker, inbox) = RedisBroker::connect(url, prefix, settings).await?;
    let storage = RedisStorage::new(broker.connection(), broker.keys().clone());
    Ok((storage, broker, inbox))
}
