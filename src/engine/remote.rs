//! The engine's side of scale-out: answers other servers' requests for
//! rooms owned here, follows their rooms' changes into the room list, and
//! notices servers that died: their connections leave this server's rooms
//! and their rooms are taken over (the first server to claim a room wins).

use std::collections::HashSet;
use std::sync::Arc;

use app::delta::RoomDelta;
use app::error::ErrorBody;
use app::ids::room_key;
use app::model::RoomMetadata;
use app::protocol::{PresenceLeft, ServerEvent};
use tokio::sync::mpsc;

use super::command::{Command, JoinMode, Outcome, Via};
use super::connection::frame;
use super::room::{PresenceRecord, RoomHandle};
use super::{Engine, RemoteRoom, not_found, restarted, storage_failed};
use crate::cluster::{Cluster, Inbound};
use crate::storage::StoredRoom;

/// Splits stored rooms into those live servers own (followed, with their
/// owner) and those this server takes (no owner, or a dead one).
pub(super) async fn split_owned(
    cluster: &Cluster,
    stored: Vec<StoredRoom>,
) -> Result<(Vec<(RoomMetadata, Arc<str>)>, Vec<StoredRoom>), ErrorBody> {
    let keys: Vec<String> = stored.iter().map(|r| room_key(&r.meta.id)).collect();
    let owners = cluster.owners(&keys).await?;
    let (live, _) = cluster.nodes().await?;
    let mut elsewhere = Vec::new();
    let mut mine = Vec::new();
    for ((room, key), owner) in stored.into_iter().zip(&keys).zip(owners) {
        let owner_live = owner.as_ref().is_some_and(|o| live.contains(o));
        if owner_live && let Some(owner) = owner {
            elsewhere.push((room.meta, owner.into()));
        } else if cluster.take_over(owner.as_deref(), key).await? {
            mine.push(room);
        } else if let Some(Some(owner)) = cluster.owners(std::slice::from_ref(key)).await?.pop() {
            elsewhere.push((room.meta, owner.into()));
        }
    }
    Ok((elsewhere, mine))
}

/// Handles what the other servers send, in order.
pub(super) async fn serve(engine: Engine, mut inbox: mpsc::UnboundedReceiver<Inbound>) {
    // Rooms taken at start-up: connections of live servers come back.
    if let Some(cluster) = engine.cluster() {
        match cluster.nodes().await {
            Ok((live, _)) => {
                let keys: Vec<String> = engine.inner.rooms.iter().map(|e| e.key().clone()).collect();
                for key in keys {
                    restore_presence(&engine, &key, &live).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing servers failed; presence not restored"),
        }
    }
    while let Some(inbound) = inbox.recv().await {
        match inbound {
            Inbound::Request { id, from, room, cmd } => {
                let engine = engine.clone();
                tokio::spawn(async move {
                    let result = engine.run_here(&room, cmd, Via::Node(from.clone())).await;
                    if let Some(cluster) = engine.cluster() {
                        cluster.respond(&from, id, result);
                    }
                });
            }
            Inbound::Upsert { origin, meta, payload } => {
                let key = room_key(&meta.id);
                if engine.inner.rooms.contains_key(&key) {
                    continue;
                }
                let stale =
                    engine.inner.remote.get(&key).is_some_and(|r| r.owner == origin && r.version >= meta.version);
                if stale {
                    continue;
                }
                let room = RemoteRoom { id: meta.id.as_str().into(), owner: origin, version: meta.version };
                engine.inner.remote.insert(key, room);
                engine.inner.shared.directory.upsert(*meta, payload).await;
            }
            Inbound::Remove { key, payload } => {
                engine.inner.remote.remove(&key);
                engine.inner.shared.directory.remove(key, payload).await;
            }
            Inbound::Barrier(nonce) => {
                if let Some(cluster) = engine.cluster() {
                    cluster.barrier_reached(nonce);
                }
            }
            Inbound::Lost(key) => {
                engine.inner.rooms.remove(&key);
            }
        }
    }
}

impl Engine {
    /// Runs a command from another server on a room owned here.
    async fn run_here(&self, key: &str, cmd: Command, via: Via) -> Result<Outcome, ErrorBody> {
        let handle = self.inner.rooms.get(key).map(|h| h.clone()).ok_or_else(|| not_found(key))?;
        self.ask_local(&handle, cmd, via).await
    }
}

/// Every quarter of the heartbeat expiry: finds servers that died and
/// cleans up after them.
pub(super) async fn watch_nodes(engine: Engine, cluster: Cluster) {
    let mut tick = tokio::time::interval(cluster.settings().node_ttl / 4);
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        tick.tick().await;
        let (live, dead) = match cluster.nodes().await {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!(error = %e, "listing servers failed");
                continue;
            }
        };
        // A server another one already cleaned up is no longer listed, but
        // its connections may still be in rooms here.
        let mut gone: HashSet<String> = dead.into_iter().collect();
        gone.extend(seen.iter().filter(|n| !live.contains(n)).cloned());
        gone.remove(&**cluster.node());
        for node in gone {
            node_gone(&engine, &cluster, &node, &live).await;
        }
        seen = live.into_iter().collect();
    }
}

/// `live`: the servers alive in this pass.
async fn node_gone(engine: &Engine, cluster: &Cluster, node: &str, live: &[String]) {
    tracing::warn!(node, "server gone: removing its connections and taking over its rooms");
    let handles: Vec<RoomHandle> = engine.inner.rooms.iter().map(|e| e.value().clone()).collect();
    for handle in handles {
        let _ = handle.ask(Command::NodeGone { node: node.into() }, Via::Local(None)).await;
    }
    let rooms = match cluster.node_rooms(node).await {
        Ok(rooms) => rooms,
        Err(e) => return tracing::warn!(error = %e, "listing a dead server's rooms failed"),
    };
    for key in rooms {
        match cluster.take_over(Some(node), &key).await {
            Ok(true) => adopt(engine, &key, live).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, room = key, "take-over failed"),
        }
    }
    if let Err(e) = cluster.forget_node(node).await {
        tracing::warn!(error = %e, "forgetting a dead server failed");
    }
}

/// Starts the task of a room this server just took over.
async fn adopt(engine: &Engine, key: &str, live: &[String]) {
    let stored = match engine.inner.shared.storage.load_room(key).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return,
        Err(e) => return drop(storage_failed(e)),
    };
    let default_key = engine.inner.default_room.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let meta = restarted(stored.meta.clone(), default_key.as_deref());
    let payload = frame(ServerEvent::RoomUpdate(RoomDelta::between(&stored.meta, &meta)).to_json());
    let handle = RoomHandle::spawn(meta.clone(), stored.last_active, engine.inner.shared.clone());
    engine.inner.rooms.insert(key.to_string(), handle);
    engine.inner.remote.remove(key);
    if let Some(cluster) = engine.cluster() {
        cluster.commit_room(&StoredRoom { meta: meta.clone(), last_active: stored.last_active }, &payload);
    }
    engine.inner.shared.directory.upsert(meta, payload).await;
    tracing::info!(room = key, "room taken over");
    restore_presence(engine, key, live).await;
}

/// Brings back the connections recorded in a room taken over: those of
/// live servers (`live`) rejoin as they were; those of dead servers leave.
async fn restore_presence(engine: &Engine, key: &str, live: &[String]) {
    let Some(cluster) = engine.cluster() else { return };
    let Some(handle) = engine.inner.rooms.get(key).map(|h| h.clone()) else { return };
    let entries = match cluster.presence_entries(key).await {
        Ok(entries) => entries,
        Err(e) => return tracing::warn!(room = key, error = %e, "reading a taken-over room's presence failed"),
    };
    for (sid, entry) in entries {
        let Ok(record) = serde_json::from_str::<PresenceRecord>(&entry) else { continue };
        if live.iter().any(|n| **n == *record.node) {
            let cmd = Command::Join {
                sid: sid.as_str().into(),
                user: record.user,
                role: Some(record.role),
                mode: JoinMode::Restore,
                reply_id: None,
            };
            if let Err(e) = handle.ask(cmd, Via::Node(record.node)).await {
                tracing::warn!(room = key, error = %e, "restoring a connection failed");
            }
        } else {
            cluster.presence_del(key, &sid);
            let left = ServerEvent::PresenceLeave(PresenceLeft { room_id: handle.id.to_string(), sid });
            cluster.room_event(key, None, &frame(left.to_json()));
        }
    }
}
