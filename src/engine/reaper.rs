//! Deletes the rooms whose idle timeout passed: their tasks ask here, and
//! the delete re-checks, so activity in between keeps the room.

use std::sync::Arc;

use app::model::DeleteReason;
use tokio::sync::mpsc;

use super::registry::Engine;

pub(super) async fn reap_idle_rooms(engine: Engine, mut expired: mpsc::UnboundedReceiver<Arc<str>>) {
    while let Some(id) = expired.recv().await {
        match engine.delete_room(None, &id, DeleteReason::Inactivity).await {
            Ok(()) => tracing::info!(room = %id, "room closed after inactivity"),
            Err(e) => tracing::debug!(room = %id, error = %e, "idle room kept"),
        }
    }
}
