//! The engine's side of scale-out: answers other servers' requests for
//! rooms owned here, follows their rooms' changes into the room list and
//! their room events to this server's connections, notices servers that
//! died (their connections leave this server's rooms and their rooms are
//! taken over, the first server to claim a room winning), and re-reads
//! everything followed after a broker outage.

use std::collections::HashSet;
use std::sync::Arc;

use app::delta::RoomDelta;
use app::ids::room_key;
use app::model::RoomMetadata;
use app::protocol::{RoomDeleted, ServerEvent};
use tokio::sync::mpsc;

use super::broker::{Inbound, PresenceRecord};
use super::command::{Command, Via};
use super::connection::{Frame, frame};
use super::errors::{EngineError, not_found, storage_failed};
use super::registry::Engine;
use super::room::RoomHandle;
use super::target::RemoteRoom;

/// Starts following the other servers (nothing to do alone).
pub(super) fn spawn(engine: &Engine, inbox: mpsc::UnboundedReceiver<Inbound>) {
    if !engine.broker().is_shared() {
        return;
    }
    tokio::spawn(serve(engine.clone(), inbox));
    tokio::spawn(watch_nodes(engine.clone()));
}

/// Handles what the other servers send, in order.
async fn serve(engine: Engine, mut inbox: mpsc::UnboundedReceiver<Inbound>) {
    // Rooms taken at start-up: connections of live servers come back.
    match engine.broker().nodes().await {
        Ok(nodes) => {
            let keys: Vec<String> = engine.inner.rooms.iter().map(|e| e.key().clone()).collect();
            for key in keys {
                restore_presence(&engine, &key, &nodes.live).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing servers failed; presence not restored"),
    }
    while let Some(inbound) = inbox.recv().await {
        on_inbound(&engine, inbound).await;
    }
}

async fn on_inbound(engine: &Engine, inbound: Inbound) {
    match inbound {
        Inbound::Request { id, from, room, cmd } => {
            let engine = engine.clone();
            tokio::spawn(async move {
                let result = engine.run_here(&room, cmd, Via::Node(from.clone())).await;
                engine.broker().respond(&from, id, result);
            });
        }
        Inbound::Upsert { origin, meta, payload } => follow(engine, origin, *meta, payload).await,
        Inbound::Remove { key, payload } => {
            engine.inner.remote.remove(&key);
            engine.inner.shared.directory.remove(key, payload).await;
        }
        Inbound::Room(event) => {
            engine.inner.edge.on_event(engine.broker(), event).await;
        }
        Inbound::Barrier(nonce) => engine.broker().barrier_reached(nonce),
        Inbound::Lost(key) => {
            engine.inner.rooms.remove(&key);
        }
        Inbound::Resync => resync(engine).await,
    }
}

/// A room owned elsewhere changed: the room list follows it, unless the
/// change is older than what is known.
async fn follow(engine: &Engine, origin: Arc<str>, meta: RoomMetadata, payload: Frame) {
    let key = room_key(&meta.id);
    if engine.inner.rooms.contains_key(&key) {
        return;
    }
    let stale = engine.inner.remote.get(&key).is_some_and(|r| r.owner == origin && r.version >= meta.version);
    if stale {
        return;
    }
    let room = RemoteRoom { id: meta.id.as_str().into(), owner: origin, version: meta.version };
    engine.inner.remote.insert(key, room);
    engine.inner.shared.directory.upsert(meta, payload).await;
}

impl Engine {
    /// Runs a command from another server on a room owned here.
    async fn run_here(&self, key: &str, cmd: Command, via: Via) -> Result<super::command::Outcome, EngineError> {
        let handle = self.inner.rooms.get(key).map(|h| h.clone()).ok_or_else(|| not_found(key))?;
        self.ask_local(&handle, cmd, via).await
    }
}

/// Every quarter of the heartbeat expiry: finds servers that died and
/// cleans up after them.
async fn watch_nodes(engine: Engine) {
    let mut tick = tokio::time::interval(engine.settings().node_ttl / 4);
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        tick.tick().await;
        let nodes = match engine.broker().nodes().await {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!(error = %e, "listing servers failed");
                continue;
            }
        };
        // A server another one already cleaned up is no longer listed, but
        // its connections may still be in rooms here.
        let mut gone: HashSet<String> = nodes.dead.into_iter().collect();
        gone.extend(seen.iter().filter(|n| !nodes.live.contains(n)).cloned());
        gone.remove(&**engine.broker().node());
        for node in gone {
            node_gone(&engine, &node, &nodes.live).await;
        }
        seen = nodes.live.into_iter().collect();
    }
}

/// `live`: the servers alive in this pass.
async fn node_gone(engine: &Engine, node: &str, live: &[String]) {
    let first = engine.inner.dead.lock().unwrap_or_else(|e| e.into_inner()).insert(node.to_string());
    if first {
        // Requests waiting on the dead server stop waiting.
        engine.inner.deaths.send_modify(|n| *n += 1);
        tracing::warn!(node, "server gone: removing its connections and taking over its rooms");
    }
    let handles: Vec<RoomHandle> = engine.inner.rooms.iter().map(|e| e.value().clone()).collect();
    for handle in handles {
        let _ = handle.ask(Command::NodeGone { node: node.into() }, Via::Local(None)).await;
    }
    let broker = engine.broker();
    let rooms = match broker.node_rooms(node).await {
        Ok(rooms) => rooms,
        Err(e) => return tracing::warn!(error = %e, "listing a dead server's rooms failed"),
    };
    for key in rooms {
        match broker.take_over(Some(node), &key).await {
            Ok(true) => adopt(engine, &key, live).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, room = key, "take-over failed"),
        }
    }
    if let Err(e) = broker.forget_node(node).await {
        tracing::warn!(error = %e, "forgetting a dead server failed");
    }
}

/// Starts the task of a room this server just took over, as it was last
/// stored; `restore_presence` then clears what died with the old owner
/// and brings back the connections still alive, in one delta.
async fn adopt(engine: &Engine, key: &str, live: &[String]) {
    let stored = match engine.inner.shared.storage.load_room(key).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return,
        Err(e) => return drop(storage_failed(e)),
    };
    let handle = RoomHandle::spawn(stored.meta, stored.last_active, engine.inner.shared.clone());
    engine.inner.rooms.insert(key.to_string(), handle);
    engine.inner.remote.remove(key);
    tracing::info!(room = key, "room taken over");
    restore_presence(engine, key, live).await;
}

/// Brings back the connections recorded in a room taken over: those of
/// live servers rejoin as they were (this server's own only if they are
/// still connected here); the others' records are dropped.
async fn restore_presence(engine: &Engine, key: &str, live: &[String]) {
    let Some(handle) = engine.inner.rooms.get(key).map(|h| h.clone()) else { return };
    let broker = engine.broker();
    let entries = match broker.presence(key).await {
        Ok(entries) => entries,
        Err(e) => return tracing::warn!(room = key, error = %e, "reading a taken-over room's presence failed"),
    };
    let mut members: Vec<(Arc<str>, PresenceRecord)> = Vec::new();
    let mut gone = Vec::new();
    for (sid, record) in entries {
        let mine = *record.node == **broker.node();
        let alive = if mine { engine.inner.edge.holds(key, &sid) } else { live.iter().any(|n| **n == *record.node) };
        if alive {
            members.push((sid.into(), record));
        } else {
            broker.presence_del(key, &sid);
            gone.push(sid.into());
        }
    }
    let is_default = engine.inner.default_room.lock().unwrap_or_else(|e| e.into_inner()).as_deref() == Some(key);
    if let Err(e) = handle.ask(Command::TakeOver { members, gone, is_default }, Via::Local(None)).await {
        tracing::warn!(room = key, error = %e, "taking over a room's presence failed");
    }
}

/// After a broker outage: the rooms owned here are published again in
/// full, and every room followed is read again from storage, so that no
/// server or client stays on a version older than the stored one.
async fn resync(engine: &Engine) {
    let handles: Vec<RoomHandle> = engine.inner.rooms.iter().map(|e| e.value().clone()).collect();
    for handle in handles {
        let _ = handle.ask(Command::Republish, Via::Local(None)).await;
    }
    let stored = match engine.inner.shared.storage.load_rooms().await {
        Ok(stored) => stored,
        Err(e) => return tracing::warn!(error = %e, "re-reading rooms after an outage failed"),
    };
    let keys: Vec<String> = stored.iter().map(|r| room_key(&r.meta.id)).collect();
    let owners = engine.broker().owners(&keys).await.unwrap_or_else(|_| vec![None; keys.len()]);
    let mut present = HashSet::new();
    for ((room, key), owner) in stored.into_iter().zip(keys).zip(owners) {
        present.insert(key.clone());
        if engine.inner.rooms.contains_key(&key) {
            continue;
        }
        let owner: Arc<str> = owner.unwrap_or_default().into();
        let payload = frame(ServerEvent::RoomUpdate(RoomDelta::creation(&room.meta)).to_json());
        catch_up(engine, &key, &payload);
        follow(engine, owner, room.meta, payload).await;
    }
    let vanished: Vec<String> =
        engine.inner.remote.iter().map(|e| e.key().clone()).filter(|k| !present.contains(k)).collect();
    for key in vanished {
        let Some((_, room)) = engine.inner.remote.remove(&key) else { continue };
        let gone = RoomDeleted { room_id: room.id.to_string(), reason: app::model::DeleteReason::Deleted };
        let payload = frame(ServerEvent::RoomDelete(gone).to_json());
        catch_up(engine, &key, &payload);
        engine.inner.shared.directory.remove(key, payload).await;
    }
}

/// Queues a frame on this server's connections in a room owned elsewhere.
fn catch_up(engine: &Engine, key: &str, payload: &Frame) {
    for conn in engine.inner.edge.connections(key) {
        conn.out.send(payload);
    }
}
