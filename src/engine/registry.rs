//! The engine's front: the registry of rooms (owned here, or followed
//! from the server that owns them) and the calls the transports make.
//!
//! Each room owned here is a task (`room/`); a room owned elsewhere is
//! reached through the broker (`routing.rs` sends a room its commands).
//! The registry lock is taken only to create, delete or re-point the
//! default room.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use app::api::{ChatPage, CreateRoom, PatchRoom, RoomPage, RoomQuery};
use app::delta::RoomDelta;
use app::ids::{CODE_ALPHABET, CODE_LEN, code_from_indices, is_valid_room_id, room_key};
use app::model::{DeleteReason, Role, RoomMetadata};
use app::protocol::{RoomDeleted, ServerEvent};
use dashmap::DashMap;
use rand::Rng;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, watch};

use super::broker::{Broker, BrokerError, broker_failed};
use super::clock::now_secs;
use super::command::{Command, JoinMode, Via};
use super::connection::{Connection, User, frame};
use super::directory::Directory;
use super::edge::Edge;
use super::errors::{EngineError, not_found, storage_failed};
use super::idempotency::{Idempotency, recall};
use super::metrics::Metrics;
use super::room::{RoomHandle, Shared, normalize_description, validate_seats};
use super::settings::EngineSettings;
use super::storage::{Storage, StorageError, StoredRoom};
use super::target::{RemoteRoom, Target};

pub const MAX_FRAMES_PER_PAGE: u64 = 1000;
pub const MAX_CHAT_PER_PAGE: u64 = 100;

#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// Rooms owned here, by key.
    pub rooms: DashMap<String, RoomHandle>,
    /// Rooms owned by other servers, by key.
    pub remote: DashMap<String, RemoteRoom>,
    /// This server's connections in rooms owned elsewhere.
    pub edge: Edge,
    /// Serializes creation, deletion and the default room.
    pub registry: Mutex<()>,
    /// Serializes matchmaking on this server.
    pub matchmaking: Mutex<()>,
    pub default_room: std::sync::Mutex<Option<String>>,
    pub shared: Arc<Shared>,
    /// Servers found dead; bumped each time one is, so that requests
    /// waiting on a dead server stop waiting.
    pub dead: std::sync::Mutex<HashSet<String>>,
    pub deaths: watch::Sender<u64>,
    next_sid: AtomicU64,
}

/// A stored room as a server (re)starts it: what only lives while a
/// server runs cleared, and the default flag as the stored default says.
pub(super) fn restarted(mut meta: RoomMetadata, default_key: Option<&str>) -> RoomMetadata {
    let before = meta.clone();
    meta.connection_count = 0;
    meta.member_count = 0;
    meta.spectator_count = 0;
    meta.metadata_locked = None;
    meta.presenter_sid = None;
    meta.is_default = default_key == Some(room_key(&meta.id).as_str());
    if meta != before {
        meta.version += 1;
    }
    meta
}

impl Engine {
    /// Loads every stored room: those live servers own are followed, the
    /// others are taken here and their tasks started.
    pub(super) async fn load(
        storage: Arc<dyn Storage>,
        broker: Arc<dyn Broker>,
        settings: EngineSettings,
        expired: mpsc::UnboundedSender<Arc<str>>,
    ) -> Result<Engine, StorageError> {
        let stored = storage.load_rooms().await?;
        let default_key = storage.default_room().await?.map(|id| room_key(&id));
        let (elsewhere, mine) =
            split_owned(&*broker, stored).await.map_err(|e| StorageError::Unavailable(e.to_string()))?;
        let remote = DashMap::new();
        let mut metas: Vec<(RoomMetadata, f64)> = Vec::with_capacity(mine.len());
        for room in mine {
            metas.push((restarted(room.meta, default_key.as_deref()), room.last_active));
        }
        let mut listed: Vec<RoomMetadata> = metas.iter().map(|(m, _)| m.clone()).collect();
        for (meta, owner) in elsewhere {
            remote.insert(room_key(&meta.id), RemoteRoom { id: meta.id.as_str().into(), owner, version: meta.version });
            listed.push(meta);
        }
        let directory = Directory::start(listed);
        let shared = Arc::new(Shared {
            storage,
            directory,
            settings,
            metrics: Arc::new(Metrics::default()),
            broker,
            expired,
            chat_rate: Default::default(),
        });
        let rooms = DashMap::new();
        for (meta, last_active) in metas {
            // Other servers learn of the rooms taken here (alone, nobody does).
            if shared.broker.is_shared() {
                let payload = frame(ServerEvent::RoomUpdate(RoomDelta::creation(&meta)).to_json());
                shared.broker.commit(&meta, last_active, &payload);
            }
            rooms.insert(room_key(&meta.id), RoomHandle::spawn(meta, last_active, shared.clone()));
        }
        tracing::info!(rooms = rooms.len(), followed = remote.len(), "engine started");
        Ok(Engine {
            inner: Arc::new(Inner {
                rooms,
                remote,
                edge: Edge::default(),
                registry: Mutex::new(()),
                matchmaking: Mutex::new(()),
                default_room: std::sync::Mutex::new(default_key),
                shared,
                dead: std::sync::Mutex::new(HashSet::new()),
                deaths: watch::channel(0).0,
                next_sid: AtomicU64::new(1),
            }),
        })
    }

    /// At shutdown: lets the other servers take over at once.
    pub async fn leave_cluster(&self) {
        self.broker().leave().await;
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.shared.metrics
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.shared.settings
    }

    pub(super) fn broker(&self) -> &dyn Broker {
        &*self.inner.shared.broker
    }

    /// A new connection id, unique for the server's lifetime.
    pub fn new_sid(&self) -> Arc<str> {
        let n = self.inner.next_sid.fetch_add(1, Ordering::Relaxed);
        let mut rng = rand::rng();
        let tail: String = (0..4).map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char).collect();
        format!("c_{n:x}{}", tail.to_ascii_lowercase()).into()
    }

    /// The canonical id of a room, if it exists.
    pub async fn resolve(&self, id: &str) -> Option<Arc<str>> {
        self.target(id).await.ok().map(|t| t.id().clone())
    }

    /// Every room, oldest first.
    /// Every room, oldest first (for the engine's own scans).
    pub async fn list_rooms(&self) -> Vec<RoomMetadata> {
        self.inner.shared.directory.list().await
    }

    /// One page of the room list.
    pub async fn query_rooms(&self, query: &RoomQuery) -> Result<RoomPage, EngineError> {
        self.inner.shared.directory.page(query).await
    }

    /// A room's metadata: from its task when owned here, else as the
    /// owner last announced it (no request to the owner).
    pub async fn get_room(&self, id: &str) -> Result<RoomMetadata, EngineError> {
        match self.target(id).await? {
            Target::Local(h) => h.ask(Command::Get, Via::Local(None)).await?.meta(),
            Target::Remote(_) => self.inner.shared.directory.get(room_key(id)).await.ok_or_else(|| not_found(id)),
        }
    }

    /// A fresh room code no room here has (the claim settles races with
    /// other servers).
    fn generate_id(&self) -> String {
        let mut rng = rand::rng();
        loop {
            let mut indices = [0u8; CODE_LEN];
            for i in &mut indices {
                *i = rng.random_range(0..CODE_ALPHABET.len()) as u8;
            }
            let id = code_from_indices(indices);
            if self.known(&room_key(&id)).is_none() {
                return id;
            }
        }
    }

    /// Makes space for one more room: evicts the least recently active room
    /// this server owns that has no connections and is neither default nor
    /// locked.
    async fn make_space(&self) -> Result<(), EngineError> {
        if self.inner.rooms.len() + self.inner.remote.len() < self.settings().max_rooms {
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
            let evict = Command::Delete { user: None, reason: DeleteReason::Evicted };
            if self.ask_local(&handle, evict, Via::Local(None)).await.is_ok() {
                tracing::info!(room = %handle.id, "room evicted to make space");
                return Ok(());
            }
        }
        Err(EngineError::capacity("the server holds as many rooms as it may and none can be evicted"))
    }

    /// Drops a deleted room from the registry.
    pub(super) fn forget(&self, handle: &RoomHandle) {
        let key = room_key(&handle.id);
        self.inner.rooms.remove(&key);
        let mut default = self.inner.default_room.lock().unwrap_or_else(|e| e.into_inner());
        if default.as_deref() == Some(key.as_str()) {
            *default = None;
        }
    }

    /// Creates a room with `user` as host. With an idempotency key, a
    /// retry answers the room the first request created, also when both
    /// reach two servers at once (the key's shared lock makes them one
    /// after the other). Runs to its end even when the caller stops waiting
    /// (a client gone, a deadline): a room stored with its receipt is
    /// always started too.
    pub async fn create_room(
        &self,
        user: &User,
        req: CreateRoom,
        idempotency: Option<Idempotency>,
    ) -> Result<RoomMetadata, EngineError> {
        let req = checked(req)?;
        let lock_name = idempotency.as_ref().map(|i| i.lock_name(&user.id));
        let (engine, user) = (self.clone(), user.clone());
        tokio::spawn(async move {
            let lock = match lock_name {
                Some(name) => Some(engine.broker().lock(&name).await.map_err(broker_failed)?),
                None => None,
            };
            let created = engine.create_now(&user, req, idempotency).await;
            if let Some(lock) = lock {
                lock.release().await;
            }
            created
        })
        .await
        .map_err(|e| EngineError::internal(format!("room creation failed: {e}")))?
    }

    /// Creates a room from a [`checked`] request.
    async fn create_now(
        &self,
        user: &User,
        req: CreateRoom,
        idempotency: Option<Idempotency>,
    ) -> Result<RoomMetadata, EngineError> {
        let max_members = req.max_members.unwrap_or(0);
        let min_members = req.min_members.unwrap_or(1);
        let _registry = self.inner.registry.lock().await;
        let shared = &self.inner.shared;
        if let Some(first) = recall(&*shared.storage, &user.id, idempotency.as_ref()).await? {
            return Ok(first);
        }
        let id = match req.id {
            Some(id) => {
                if let Some(existing) = self.resolve(&id).await {
                    return Err(EngineError::conflict(format!("room {existing} exists")));
                }
                id
            }
            None => self.generate_id(),
        };
        self.make_space().await?;
        if !self.broker().claim(&room_key(&id)).await.map_err(broker_failed)? {
            return Err(EngineError::conflict(format!("room {id} exists")));
        }
        let now = now_secs();
        let mut meta = RoomMetadata::new(id, now);
        meta.description = req.description;
        meta.hidden = req.hidden.unwrap_or(false);
        meta.max_members = max_members;
        meta.min_members = min_members;
        meta.allow_spectators = req.allow_spectators.unwrap_or(true);
        meta.host_user_id = Some(user.id.to_string());
        meta.host_name = Some(user.name.to_string());
        let stored = StoredRoom { meta: meta.clone(), last_active: now };
        let receipt = idempotency.map(|i| i.receipt(&user.id, &meta)).transpose()?;
        if let Err(e) = shared.storage.save_room(&stored, receipt.as_ref()).await {
            // Not created: the id is free again for a retry.
            let gone = RoomDeleted { room_id: meta.id.clone(), reason: DeleteReason::Deleted };
            shared.broker.removed(&room_key(&meta.id), &frame(ServerEvent::RoomDelete(gone).to_json()));
            return Err(storage_failed(e));
        }
        let handle = RoomHandle::spawn(meta.clone(), now, shared.clone());
        self.inner.rooms.insert(room_key(&meta.id), handle);
        let payload = frame(ServerEvent::RoomUpdate(RoomDelta::creation(&meta)).to_json());
        shared.broker.commit(&meta, now, &payload);
        shared.directory.upsert(meta.clone(), payload).await;
        tracing::info!(room = %meta.id, host = %user.id, "room created");
        Ok(meta)
    }

    pub async fn patch_room(&self, user: &User, id: &str, patch: PatchRoom) -> Result<RoomMetadata, EngineError> {
        self.ask(id, Command::Patch { user: user.clone(), patch }, Via::Local(None)).await?.1.meta()
    }

    /// Deletes a room: `user` must be its host; `None` is the server itself.
    pub async fn delete_room(&self, user: Option<&User>, id: &str, reason: DeleteReason) -> Result<(), EngineError> {
        let _registry = self.inner.registry.lock().await;
        let (id, _) = self.ask(id, Command::Delete { user: user.cloned(), reason }, Via::Local(None)).await?;
        tracing::info!(room = %id, reason = reason.as_str(), "room deleted");
        Ok(())
    }

    /// Makes `id` the default room (or none), moving the flag off the old one.
    pub async fn set_default_room(&self, id: Option<&str>) -> Result<Option<RoomMetadata>, EngineError> {
        let _registry = self.inner.registry.lock().await;
        let new = match id {
            Some(id) => Some(self.target(id).await?.id().clone()),
            None => None,
        };
        let new_key = new.as_ref().map(|id| room_key(id));
        // Another server may have moved it: the stored default is the truth.
        let storage = &self.inner.shared.storage;
        let old_key = storage.default_room().await.map_err(storage_failed)?.map(|id| room_key(&id));
        storage.set_default_room(new.as_deref()).await.map_err(storage_failed)?;
        *self.inner.default_room.lock().unwrap_or_else(|e| e.into_inner()) = new_key.clone();
        if let Some(old) = old_key.filter(|k| Some(k) != new_key.as_ref())
            && self.known(&old).is_some()
        {
            self.ask(&old, Command::SetDefault { value: false }, Via::Local(None)).await?;
        }
        match new {
            Some(id) => self.ask(&id, Command::SetDefault { value: true }, Via::Local(None)).await?.1.meta().map(Some),
            None => Ok(None),
        }
    }

    /// Subscribes `conn` to `overview:public`; with `reply_id` its snapshot
    /// reply is queued before any later delta.
    pub async fn join_overview(
        &self,
        conn: Arc<Connection>,
        query: &RoomQuery,
        reply_id: Option<u64>,
    ) -> Result<(), EngineError> {
        self.inner.shared.directory.join(conn, query, reply_id).await
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
    ) -> Result<Arc<str>, EngineError> {
        self.join_with(conn, id, role, JoinMode::Normal, reply_id).await.map(|(id, _)| id)
    }

    /// Joins `conn` to a room here or on its owner. A connection joining a
    /// room owned elsewhere is registered for the room's events first.
    pub(super) async fn join_with(
        &self,
        conn: Arc<Connection>,
        id: &str,
        role: Option<Role>,
        mode: JoinMode,
        reply_id: Option<u64>,
    ) -> Result<(Arc<str>, Role), EngineError> {
        let cmd = Command::Join { sid: conn.sid.clone(), user: conn.user.clone(), role, mode, reply_id };
        let key = room_key(id);
        let remote = matches!(self.target(id).await?, Target::Remote(_));
        if remote {
            self.inner.edge.join(self.broker(), &key, conn.clone()).await.map_err(broker_failed)?;
        }
        let joined = self.ask(id, cmd, Via::Local(Some(conn.clone()))).await;
        if remote && joined.is_err() {
            self.inner.edge.leave(self.broker(), &key, &conn.sid).await;
        }
        let (id, outcome) = joined?;
        Ok((id, outcome.role()?))
    }

    /// Takes a connection out of a room. A connection in a room owned
    /// elsewhere stops receiving its events and its presence record goes
    /// first, so that a server taking the room over meanwhile does not
    /// bring it back.
    pub async fn leave_room(&self, sid: Arc<str>, id: &str) -> Result<(), EngineError> {
        let key = room_key(id);
        if self.inner.edge.holds(&key, &sid) {
            self.inner.edge.leave(self.broker(), &key, &sid).await;
            self.broker().presence_del(&key, &sid);
        }
        self.ask(id, Command::Leave { sid }, Via::Local(None)).await.map(|_| ())
    }

    /// A room event (`keep_alive`, locks, presenter, chat, signal, start,
    /// finish) of a connection in the room.
    pub async fn room_event(
        &self,
        conn: Arc<Connection>,
        id: &str,
        event: app::protocol::ClientEvent,
    ) -> Result<Value, EngineError> {
        let cmd = Command::Event { sid: conn.sid.clone(), user: conn.user.clone(), event };
        self.ask(id, cmd, Via::Local(None)).await?.1.value()
    }

    /// Appends frames (raw JSON texts) to a room; returns the frame count
    /// (with an idempotency key, a retry returns the first answer's).
    pub async fn append_frames(
        &self,
        user: &User,
        id: &str,
        frames: Vec<String>,
        idempotency: Option<Idempotency>,
    ) -> Result<u64, EngineError> {
        let cmd = Command::AppendFrames { user: user.clone(), frames, idempotency };
        self.ask(id, cmd, Via::Local(None)).await?.1.count()
    }

    /// A page of frames as raw JSON texts.
    pub async fn frames(&self, id: &str, offset: u64, limit: u64) -> Result<(Vec<String>, u64), EngineError> {
        let room = self.get_room(id).await?;
        let limit = limit.min(MAX_FRAMES_PER_PAGE);
        let frames = self.inner.shared.storage.frames(&room.id, offset, limit).await.map_err(storage_failed)?;
        Ok((frames, room.frame_count))
    }

    pub async fn chat_page(&self, id: &str, before: Option<u64>, limit: u64) -> Result<ChatPage, EngineError> {
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
}

/// Splits stored rooms into those live servers own (followed, with their
/// owner) and those this server takes (no owner, or a dead one).
async fn split_owned(
    broker: &dyn Broker,
    stored: Vec<StoredRoom>,
) -> Result<(Vec<(RoomMetadata, Arc<str>)>, Vec<StoredRoom>), BrokerError> {
    let keys: Vec<String> = stored.iter().map(|r| room_key(&r.meta.id)).collect();
    let owners = broker.owners(&keys).await?;
    let live = broker.nodes().await?.live;
    let mut elsewhere = Vec::new();
    let mut mine = Vec::new();
    for ((room, key), owner) in stored.into_iter().zip(&keys).zip(owners) {
        let owner_live = owner.as_ref().is_some_and(|o| live.contains(o));
        if owner_live && let Some(owner) = owner {
            elsewhere.push((room.meta, owner.into()));
        } else if broker.take_over(owner.as_deref(), key).await? {
            mine.push(room);
        } else if let Some(Some(owner)) = broker.owners(std::slice::from_ref(key)).await?.pop() {
            elsewhere.push((room.meta, owner.into()));
        }
    }
    Ok((elsewhere, mine))
}

/// A creation's request as it will be made: its id checked, its
/// description normalized, its seats consistent.
fn checked(mut req: CreateRoom) -> Result<CreateRoom, EngineError> {
    if let Some(id) = &req.id
        && !is_valid_room_id(id)
    {
        return Err(EngineError::bad_request("field `id` must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"));
    }
    req.description = normalize_description(req.description)?;
    validate_seats(req.max_members.unwrap_or(0), req.min_members.unwrap_or(1))?;
    Ok(req)
}
