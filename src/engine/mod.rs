//! The room engine: rooms, channels, deltas. It knows nothing of HTTP or
//! WebSocket framing; transports call it with typed requests and hand it a
//! connection's outbound queue.
//!
//! Each room is owned by one task (`room.rs`) that applies its changes in
//! order; the room list (`overview:public`) is owned by the directory task
//! (`directory.rs`). The registry below maps ids to room tasks; its lock is
//! taken only to create, delete or re-point the default room, and
//! matchmaking has a lock of its own.

pub mod connection;
mod directory;
pub mod metrics;
mod room;
pub mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use app::api::{ChatPage, CreateRoom, PatchRoom};
use app::delta::RoomDelta;
use app::error::{ErrorBody, ErrorCode};
use app::ids::{CODE_ALPHABET, CODE_LEN, code_from_indices, is_valid_room_id, room_key};
use app::model::{DeleteReason, Role, RoomMetadata, RoomStatus};
use app::protocol::ServerEvent;
use dashmap::DashMap;
use rand::Rng;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

use crate::storage::{Storage, StorageError, StoredRoom};
use connection::{Connection, User, frame};
use directory::Directory;
use metrics::Metrics;
use room::{JoinMode, RoomCmd, RoomHandle, Shared, normalize_description, validate_seats};
pub use settings::EngineSettings;

/// Unix time in seconds, as a float.
pub fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    rooms: DashMap<String, RoomHandle>,
    /// Serializes creation, deletion and the default room.
    registry: Mutex<()>,
    /// Serializes matchmaking, so that concurrent matches fill one room
    /// before opening the next.
    matchmaking: Mutex<()>,
    default_room: std::sync::Mutex<Option<String>>,
    shared: Arc<Shared>,
    next_sid: AtomicU64,
}

/// `GET /api/stats`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub rooms: usize,
    pub max_rooms: usize,
    pub connections: u64,
    pub users: usize,
    pub by_status: ByStatus,
    pub room_details: Vec<RoomDetail>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ByStatus {
    pub waiting: usize,
    pub active: usize,
    pub finished: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomDetail {
    pub id: String,
    pub connection_count: u32,
    pub inactive_seconds: f64,
    /// `None` for rooms that never expire (default or locked).
    pub expires_in_seconds: Option<f64>,
}

/// What `match` and `POST /api/match` answer over REST.
#[derive(Clone, Debug, Serialize)]
pub struct Matched {
    pub room: RoomMetadata,
    pub role: Role,
}

fn not_found(id: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no room {id}"))
}

fn storage_failed(e: StorageError) -> ErrorBody {
    tracing::error!(error = %e, "storage failed");
    ErrorBody::new(ErrorCode::Internal, "storage failed; the change was not made")
}

/// A loaded room with what only lives while the server runs cleared.
fn fresh_after_restart(mut meta: RoomMetadata) -> RoomMetadata {
    let live = (meta.connection_count, meta.member_count, meta.spectator_count);
    let had_live = live != (0, 0, 0) || meta.metadata_locked.is_some() || meta.presenter_sid.is_some();
    meta.connection_count = 0;
    meta.member_count = 0;
    meta.spectator_count = 0;
    meta.metadata_locked = None;
    meta.presenter_sid = None;
    if had_live {
        meta.version += 1;
    }
    meta
}

pub const MAX_FRAMES_PER_PAGE: u64 = 1000;
pub const MAX_CHAT_PER_PAGE: u64 = 100;

impl Engine {
    /// Loads every stored room and starts their tasks.
    pub async fn start(storage: Arc<dyn Storage>, settings: EngineSettings) -> Result<Engine, StorageError> {
        let stored = storage.load_rooms().await?;
        let default_key = storage.default_room().await?.map(|id| room_key(&id));
        let mut metas = Vec::with_capacity(stored.len());
        let mut actives = Vec::with_capacity(stored.len());
        for StoredRoom { meta, last_active } in stored {
            let mut meta = fresh_after_restart(meta);
            let is_default = default_key.as_deref() == Some(room_key(&meta.id).as_str());
            if meta.is_default != is_default {
                meta.is_default = is_default;
                meta.version += 1;
            }
            actives.push(last_active);
            metas.push(meta);
        }
        let directory = Directory::start(metas.clone());
        let (expired_tx, expired_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            storage,
            directory,
            settings,
            metrics: Arc::new(Metrics::default()),
            expired: expired_tx,
        });
        let rooms = DashMap::new();
        for (meta, last_active) in metas.into_iter().zip(actives) {
            let key = room_key(&meta.id);
            rooms.insert(key, RoomHandle::spawn(meta, last_active, shared.clone()));
        }
        tracing::info!(rooms = rooms.len(), "engine started");
        let engine = Engine {
            inner: Arc::new(Inner {
                rooms,
                registry: Mutex::new(()),
                matchmaking: Mutex::new(()),
                default_room: std::sync::Mutex::new(default_key),
                shared,
                next_sid: AtomicU64::new(1),
            }),
        };
        tokio::spawn(reap_idle_rooms(engine.clone(), expired_rx));
        Ok(engine)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.shared.metrics
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.shared.settings
    }

    /// A new connection id, unique for the server's lifetime.
    pub fn new_sid(&self) -> Arc<str> {
        let n = self.inner.next_sid.fetch_add(1, Ordering::Relaxed);
        let mut rng = rand::rng();
        let tail: String = (0..4).map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char).collect();
        format!("c_{n:x}{}", tail.to_ascii_lowercase()).into()
    }

    fn handle(&self, id: &str) -> Result<RoomHandle, ErrorBody> {
        self.inner.rooms.get(&room_key(id)).map(|h| h.clone()).ok_or_else(|| not_found(id))
    }

    /// The canonical id of a room, if it exists.
    pub fn resolve(&self, id: &str) -> Option<Arc<str>> {
        self.inner.rooms.get(&room_key(id)).map(|h| h.id.clone())
    }

    /// Every room, oldest first.
    pub async fn list_rooms(&self) -> Vec<RoomMetadata> {
        self.inner.shared.directory.list().await
    }

    pub async fn get_room(&self, id: &str) -> Result<RoomMetadata, ErrorBody> {
        self.handle(id)?.get().await.ok_or_else(|| not_found(id))
    }

    fn generate_id(&self) -> String {
        let mut rng = rand::rng();
        loop {
            let mut indices = [0u8; CODE_LEN];
            for i in &mut indices {
                *i = rng.random_range(0..CODE_ALPHABET.len()) as u8;
            }
            let id = code_from_indices(indices);
            if !self.inner.rooms.contains_key(&room_key(&id)) {
                return id;
            }
        }
    }

    /// Makes space for one more room: evicts the least recently active room
    /// that has no connections and is neither default nor locked.
    async fn make_space(&self) -> Result<(), ErrorBody> {
        if self.inner.rooms.len() < self.settings().max_rooms {
            return Ok(());
        }
        let mut candidates: Vec<(f64, RoomHandle)> = self
            .inner
            .rooms
            .iter()
            .map(|e| e.value().clone())
            .filter(|h| h.pulse.connections.load(Ordering::Relaxed) == 0 && !h.pulse.pinned.load(Ordering::Relaxed))
            .map(|h| (h.pulse.last_active(), h))
            .collect();
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, handle) in candidates {
            let evicted = handle.ask(|done| RoomCmd::Delete { user: None, reason: DeleteReason::Evicted, done }).await;
            if evicted.is_ok() {
                self.forget(&handle);
                tracing::info!(room = %handle.id, "room evicted to make space");
                return Ok(());
            }
        }
        Err(ErrorBody::new(ErrorCode::Capacity, "the server holds as many rooms as it may and none can be evicted"))
    }

    /// Drops a deleted room from the registry.
    fn forget(&self, handle: &RoomHandle) {
        let key = room_key(&handle.id);
        self.inner.rooms.remove(&key);
        let mut default = self.inner.default_room.lock().unwrap_or_else(|e| e.into_inner());
        if default.as_deref() == Some(key.as_str()) {
            *default = None;
        }
    }

    /// Creates a room with `user` as host.
    pub async fn create_room(&self, user: &User, req: CreateRoom) -> Result<RoomMetadata, ErrorBody> {
        if let Some(id) = &req.id
            && !is_valid_room_id(id)
        {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "field `id` must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
            ));
        }
        let description = normalize_description(req.description)?;
        let max_members = req.max_members.unwrap_or(0);
        let min_members = req.min_members.unwrap_or(1);
        validate_seats(max_members, min_members)?;

        let _registry = self.inner.registry.lock().await;
        let id = match req.id {
            Some(id) => {
                if let Some(existing) = self.resolve(&id) {
                    return Err(ErrorBody::new(ErrorCode::Conflict, format!("room {existing} exists")));
                }
                id
            }
            None => self.generate_id(),
        };
        self.make_space().await?;
        let now = now_secs();
        let mut meta = RoomMetadata::new(id, now);
        meta.description = description;
        meta.hidden = req.hidden.unwrap_or(false);
        meta.max_members = max_members;
        meta.min_members = min_members;
        meta.allow_spectators = req.allow_spectators.unwrap_or(true);
        meta.host_user_id = Some(user.id.to_string());
        meta.host_name = Some(user.name.to_string());
        let shared = &self.inner.shared;
        shared.storage.save_room(&StoredRoom { meta: meta.clone(), last_active: now }).await.map_err(storage_failed)?;
        let handle = RoomHandle::spawn(meta.clone(), now, shared.clone());
        self.inner.rooms.insert(room_key(&meta.id), handle);
        let payload = frame(ServerEvent::RoomUpdate(RoomDelta::creation(&meta)).to_json());
        shared.directory.upsert(meta.clone(), payload).await;
        tracing::info!(room = %meta.id, host = %user.id, "room created");
        Ok(meta)
    }

    pub async fn patch_room(&self, user: &User, id: &str, patch: PatchRoom) -> Result<RoomMetadata, ErrorBody> {
        let handle = self.handle(id)?;
        let user = user.clone();
        handle.ask(|done| RoomCmd::Patch { user, patch, done }).await
    }

    /// Deletes a room: `user` must be its host; `None` is the server itself.
    pub async fn delete_room(&self, user: Option<&User>, id: &str, reason: DeleteReason) -> Result<(), ErrorBody> {
        let _registry = self.inner.registry.lock().await;
        let handle = self.handle(id)?;
        let user = user.cloned();
        handle.ask(|done| RoomCmd::Delete { user, reason, done }).await?;
        self.forget(&handle);
        tracing::info!(room = %handle.id, reason = reason.as_str(), "room deleted");
        Ok(())
    }

    /// Makes `id` the default room (or none), moving the flag off the old one.
    pub async fn set_default_room(&self, id: Option<&str>) -> Result<Option<RoomMetadata>, ErrorBody> {
        let _registry = self.inner.registry.lock().await;
        let new = id.map(|id| self.handle(id)).transpose()?;
        let new_key = new.as_ref().map(|h| room_key(&h.id));
        let old_key = self.inner.default_room.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.inner.shared.storage.set_default_room(new.as_ref().map(|h| &*h.id)).await.map_err(storage_failed)?;
        *self.inner.default_room.lock().unwrap_or_else(|e| e.into_inner()) = new_key.clone();
        if let Some(old) = old_key.filter(|k| Some(k) != new_key.as_ref())
            && let Some(h) = self.inner.rooms.get(&old).map(|h| h.clone())
        {
            h.ask(|done| RoomCmd::SetDefault { value: false, done }).await?;
        }
        match new {
            Some(h) => h.ask(|done| RoomCmd::SetDefault { value: true, done }).await.map(Some),
            None => Ok(None),
        }
    }

    /// Subscribes `conn` to `overview:public`; with `reply_id` its snapshot
    /// reply is queued before any later delta.
    pub async fn join_overview(&self, conn: Arc<Connection>, reply_id: Option<u64>) {
        self.inner.shared.directory.join(conn, reply_id).await;
    }

    pub async fn leave_overview(&self, sid: Arc<str>) {
        self.inner.shared.directory.leave(sid).await;
    }

    /// Subscribes `conn` to `room:<id>`; with `reply_id` the snapshot reply
    /// is queued before any later event of the room. Returns the room's
    /// canonical id.
    pub async fn join_room(
        &self,
        conn: Arc<Connection>,
        id: &str,
        role: Option<Role>,
        reply_id: Option<u64>,
    ) -> Result<Arc<str>, ErrorBody> {
        let handle = self.handle(id)?;
        handle.ask(|done| RoomCmd::Join { conn, role, mode: JoinMode::Normal, reply_id, done }).await?;
        Ok(handle.id)
    }

    pub async fn leave_room(&self, sid: Arc<str>, id: &str) -> Result<(), ErrorBody> {
        let handle = self.handle(id)?;
        handle.ask(|done| RoomCmd::Leave { sid, done }).await
    }

    /// A room event (`keep_alive`, locks, presenter, chat, signal, start,
    /// finish) of a connection in the room.
    pub async fn room_event(
        &self,
        conn: Arc<Connection>,
        id: &str,
        event: app::protocol::ClientEvent,
    ) -> Result<Value, ErrorBody> {
        let handle = self.handle(id)?;
        handle.ask(|done| RoomCmd::Event { conn, event, done }).await
    }

    /// Candidate rooms for a match, oldest first.
    async fn match_candidates(&self, max_members: u32) -> Vec<RoomMetadata> {
        let mut rooms = self.list_rooms().await;
        rooms.retain(|r| r.status == RoomStatus::Waiting && !r.locked && !r.hidden && r.max_members == max_members);
        rooms
    }

    fn match_size(max_members: Option<u32>) -> Result<u32, ErrorBody> {
        let n = max_members.unwrap_or(2);
        if !(1..=room::MAX_SEATS).contains(&n) {
            return Err(ErrorBody::new(ErrorCode::BadRequest, "field `maxMembers` must be 1 to 10000"));
        }
        Ok(n)
    }

    /// `match`: joins a waiting room with a free seat and `maxMembers`
    /// seats, or creates one, as one step. Returns the canonical room id.
    pub async fn match_room(
        &self,
        conn: Arc<Connection>,
        max_members: Option<u32>,
        reply_id: Option<u64>,
    ) -> Result<Arc<str>, ErrorBody> {
        let n = Self::match_size(max_members)?;
        let _matching = self.inner.matchmaking.lock().await;
        for candidate in self.match_candidates(n).await {
            let Ok(handle) = self.handle(&candidate.id) else { continue };
            let conn = conn.clone();
            let mode = JoinMode::Match { max_members: n };
            let joined =
                handle.ask(|done| RoomCmd::Join { conn, role: Some(Role::Member), mode, reply_id, done }).await;
            if joined.is_ok() {
                return Ok(handle.id);
            }
        }
        let room = self.create_room(&conn.user, CreateRoom { max_members: Some(n), ..Default::default() }).await?;
        let handle = self.handle(&room.id)?;
        let mode = JoinMode::Match { max_members: n };
        handle.ask(|done| RoomCmd::Join { conn, role: Some(Role::Member), mode, reply_id, done }).await?;
        Ok(handle.id)
    }

    /// `POST /api/match`: like `match`, but holds the seat for the grace
    /// period until the user joins over a socket.
    pub async fn match_reserve(&self, user: &User, max_members: Option<u32>) -> Result<Matched, ErrorBody> {
        let n = Self::match_size(max_members)?;
        let _matching = self.inner.matchmaking.lock().await;
        for candidate in self.match_candidates(n).await {
            let Ok(handle) = self.handle(&candidate.id) else { continue };
            let u = user.clone();
            if let Ok(room) = handle.ask(|done| RoomCmd::Reserve { user: u, max_members: n, done }).await {
                return Ok(Matched { room, role: Role::Member });
            }
        }
        let room = self.create_room(user, CreateRoom { max_members: Some(n), ..Default::default() }).await?;
        let handle = self.handle(&room.id)?;
        let u = user.clone();
        let room = handle.ask(|done| RoomCmd::Reserve { user: u, max_members: n, done }).await?;
        Ok(Matched { room, role: Role::Member })
    }

    /// Appends frames (raw JSON texts) to a room; returns the frame count.
    pub async fn append_frames(&self, user: &User, id: &str, frames: Vec<String>) -> Result<u64, ErrorBody> {
        let handle = self.handle(id)?;
        let user = user.clone();
        handle.ask(|done| RoomCmd::AppendFrames { user, frames, done }).await
    }

    /// A page of frames as raw JSON texts.
    pub async fn frames(&self, id: &str, offset: u64, limit: u64) -> Result<(Vec<String>, u64), ErrorBody> {
        let room = self.get_room(id).await?;
        let limit = limit.min(MAX_FRAMES_PER_PAGE);
        let frames = self.inner.shared.storage.frames(&room.id, offset, limit).await.map_err(storage_failed)?;
        Ok((frames, room.frame_count))
    }

    pub async fn chat_page(&self, id: &str, before: Option<u64>, limit: u64) -> Result<ChatPage, ErrorBody> {
        let room = self.get_room(id).await?;
        let limit = limit.min(MAX_CHAT_PER_PAGE);
        let messages = self.inner.shared.storage.chat_page(&room.id, before, limit).await.map_err(storage_failed)?;
        Ok(ChatPage { messages })
    }

    /// Takes a closed connection out of every channel it was in.
    pub async fn disconnect(&self, sid: Arc<str>, rooms: impl IntoIterator<Item = Arc<str>>, overview: bool) {
        if overview {
            self.leave_overview(sid.clone()).await;
        }
        for room in rooms {
            let _ = self.leave_room(sid.clone(), &room).await;
        }
    }

    pub async fn stats(&self) -> Stats {
        let rooms = self.list_rooms().await;
        let mut by_status = ByStatus::default();
        for r in &rooms {
            match r.status {
                RoomStatus::Waiting => by_status.waiting += 1,
                RoomStatus::Active => by_status.active += 1,
                RoomStatus::Finished => by_status.finished += 1,
            }
        }
        let now = now_secs();
        let idle = self.settings().room_idle.as_secs_f64();
        let room_details = rooms
            .iter()
            .filter_map(|r| {
                let h = self.inner.rooms.get(&room_key(&r.id))?;
                let inactive = (now - h.pulse.last_active()).max(0.0);
                let pinned = h.pulse.pinned.load(Ordering::Relaxed);
                Some(RoomDetail {
                    id: r.id.clone(),
                    connection_count: r.connection_count,
                    inactive_seconds: (inactive * 10.0).round() / 10.0,
                    expires_in_seconds: (!pinned).then(|| ((idle - inactive).max(0.0) * 10.0).round() / 10.0),
                })
            })
            .collect();
        let metrics = self.metrics();
        Stats {
            rooms: rooms.len(),
            max_rooms: self.settings().max_rooms,
            connections: metrics.connections.load(Ordering::Relaxed),
            users: metrics.users(),
            by_status,
            room_details,
        }
    }
}

/// Deletes the rooms whose idle timeout passed (they ask here; the delete
/// re-checks, so activity in between keeps the room).
async fn reap_idle_rooms(engine: Engine, mut expired: mpsc::UnboundedReceiver<Arc<str>>) {
    while let Some(id) = expired.recv().await {
        match engine.delete_room(None, &id, DeleteReason::Inactivity).await {
            Ok(()) => tracing::info!(room = %id, "room closed after inactivity"),
            Err(e) => tracing::debug!(room = %id, error = %e, "idle room kept"),
        }
    }
}
