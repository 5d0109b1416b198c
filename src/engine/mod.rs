//! The room engine: rooms, channels, deltas. It knows nothing of HTTP or
//! WebSocket framing; transports call it with typed requests and hand it a
//! connection's outbound queue.
//!
//! Each room is owned by one task (`room.rs`) that applies its changes in
//! order; the room list (`overview:public`) is owned by the directory task
//! (`directory.rs`). The registry below maps ids to room tasks; its lock is
//! taken only to create, delete or re-point the default room, and
//! matchmaking has a lock of its own.
//!
//! With Redis (`cluster`), a room may be owned by another server: the
//! engine then sends the room's commands there (`remote.rs` answers the
//! other servers' requests, follows their room changes and takes over the
//! rooms of a server that died).

pub mod command;
pub mod connection;
mod directory;
pub mod metrics;
mod remote;
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

use crate::cluster::{Cluster, Inbound};
use crate::storage::{Storage, StorageError, StoredRoom};
use command::{Command, JoinMode, Outcome, Via};
use connection::{Connection, User, frame};
use directory::Directory;
use metrics::Metrics;
use room::{RoomHandle, Shared, normalize_description, validate_seats};
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
    /// Rooms owned here, by key.
    rooms: DashMap<String, RoomHandle>,
    /// Rooms owned by other servers, by key.
    remote: DashMap<String, RemoteRoom>,
    /// Serializes creation, deletion and the default room.
    registry: Mutex<()>,
    /// Serializes matchmaking, so that concurrent matches fill one room
    /// before opening the next.
    matchmaking: Mutex<()>,
    default_room: std::sync::Mutex<Option<String>>,
    shared: Arc<Shared>,
    next_sid: AtomicU64,
}

/// A room another server owns, as last announced.
#[derive(Clone, Debug)]
struct RemoteRoom {
    id: Arc<str>,
    owner: Arc<str>,
    version: u64,
}

/// Where a room's commands go.
enum Target {
    Local(RoomHandle),
    Remote(RemoteRoom),
}

impl Target {
    fn id(&self) -> &Arc<str> {
        match self {
            Target::Local(h) => &h.id,
            Target::Remote(r) => &r.id,
        }
    }
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

/// Stored rooms as this server starts them: live state cleared, the
/// default flag as stored.
fn stored_rooms_into(
    stored: Vec<StoredRoom>,
    default_key: &Option<String>,
    metas: &mut Vec<RoomMetadata>,
    actives: &mut Vec<f64>,
) {
    for StoredRoom { meta, last_active } in stored {
        actives.push(last_active);
        metas.push(restarted(meta, default_key.as_deref()));
    }
}

/// A stored room as a server (re)starts it: live state cleared, and the
/// default flag as the stored default room says.
fn restarted(meta: RoomMetadata, default_key: Option<&str>) -> RoomMetadata {
    let mut meta = fresh_after_restart(meta);
    let is_default = default_key == Some(room_key(&meta.id).as_str());
    if meta.is_default != is_default {
        meta.is_default = is_default;
        meta.version += 1;
    }
    meta
}

pub const MAX_FRAMES_PER_PAGE: u64 = 1000;
pub const MAX_CHAT_PER_PAGE: u64 = 100;

impl Engine {
    /// Loads every stored room and starts their tasks. With a cluster,
    /// rooms that live servers own are only followed, and `inbox` brings
    /// what the other servers send.
    pub async fn start(
        storage: Arc<dyn Storage>,
        settings: EngineSettings,
        cluster: Option<(Cluster, mpsc::UnboundedReceiver<Inbound>)>,
    ) -> Result<Engine, StorageError> {
        let (cluster, inbox) = cluster.unzip();
        let stored = storage.load_rooms().await?;
        let default_key = storage.default_room().await?.map(|id| room_key(&id));
        let mut metas = Vec::with_capacity(stored.len());
        let mut actives = Vec::with_capacity(stored.len());
        let remote = DashMap::new();
        let mut followed = Vec::new();
        if let Some(cluster) = &cluster {
            let (owned_elsewhere, rest) =
                remote::split_owned(cluster, stored).await.map_err(|e| StorageError(e.message))?;
            for (meta, owner) in owned_elsewhere {
                let key = room_key(&meta.id);
                remote.insert(key, RemoteRoom { id: meta.id.as_str().into(), owner, version: meta.version });
                followed.push(meta);
            }
            stored_rooms_into(rest, &default_key, &mut metas, &mut actives);
        } else {
            stored_rooms_into(stored, &default_key, &mut metas, &mut actives);
        }
        let directory = Directory::start(metas.iter().cloned().chain(followed).collect());
        let (expired_tx, expired_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            storage,
            directory,
            settings,
            metrics: Arc::new(Metrics::default()),
            cluster: cluster.clone(),
            expired: expired_tx,
        });
        let rooms = DashMap::new();
        for (meta, last_active) in metas.into_iter().zip(actives) {
            let key = room_key(&meta.id);
            if let Some(cluster) = &cluster {
                let stored = StoredRoom { meta: meta.clone(), last_active };
                cluster.commit_room(&stored, &frame(ServerEvent::RoomUpdate(RoomDelta::creation(&meta)).to_json()));
            }
            rooms.insert(key, RoomHandle::spawn(meta, last_active, shared.clone()));
        }
        tracing::info!(rooms = rooms.len(), followed = remote.len(), "engine started");
        let engine = Engine {
            inner: Arc::new(Inner {
                rooms,
                remote,
                registry: Mutex::new(()),
                matchmaking: Mutex::new(()),
                default_room: std::sync::Mutex::new(default_key),
                shared,
                next_sid: AtomicU64::new(1),
            }),
        };
        tokio::spawn(reap_idle_rooms(engine.clone(), expired_rx));
        if let (Some(cluster), Some(inbox)) = (cluster, inbox) {
            tokio::spawn(remote::serve(engine.clone(), inbox));
            tokio::spawn(remote::watch_nodes(engine.clone(), cluster));
        }
        Ok(engine)
    }

    /// At shutdown: lets the other servers take over at once.
    pub async fn leave_cluster(&self) {
        if let Some(cluster) = self.cluster() {
            cluster.leave().await;
        }
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

    fn cluster(&self) -> Option<&Cluster> {
        self.inner.shared.cluster.as_ref()
    }

    fn target(&self, id: &str) -> Result<Target, ErrorBody> {
        let key = room_key(id);
        if let Some(h) = self.inner.rooms.get(&key) {
            return Ok(Target::Local(h.clone()));
        }
        self.inner.remote.get(&key).map(|r| Target::Remote(r.clone())).ok_or_else(|| not_found(id))
    }

    /// Runs a command on a room, here or on the server owning it; returns
    /// the room's canonical id and the answer.
    async fn ask(&self, id: &str, cmd: Command, via: Via) -> Result<(Arc<str>, Outcome), ErrorBody> {
        let target = self.target(id)?;
        let outcome = match &target {
            Target::Local(h) => self.ask_local(h, cmd, via).await?,
            Target::Remote(r) => match self.cluster() {
                Some(cluster) => cluster.request(&r.owner, &room_key(id), cmd).await?,
                None => return Err(not_found(id)),
            },
        };
        Ok((target.id().clone(), outcome))
    }

    /// Runs a command on a room task of this server; a room it deletes
    /// leaves the registry.
    async fn ask_local(&self, handle: &RoomHandle, cmd: Command, via: Via) -> Result<Outcome, ErrorBody> {
        let deleting = matches!(cmd, Command::Delete { .. });
        let outcome = handle.ask(cmd, via).await?;
        if deleting {
            self.forget(handle);
        }
        Ok(outcome)
    }

    /// The canonical id of a room, if it exists.
    pub fn resolve(&self, id: &str) -> Option<Arc<str>> {
        self.target(id).ok().map(|t| t.id().clone())
    }

    /// Every room, oldest first.
    pub async fn list_rooms(&self) -> Vec<RoomMetadata> {
        self.inner.shared.directory.list().await
    }

    /// A room's metadata: from its task when owned here, else as the
    /// owner last announced it (no request to the owner).
    pub async fn get_room(&self, id: &str) -> Result<RoomMetadata, ErrorBody> {
        match self.target(id)? {
            Target::Local(h) => h.ask(Command::Get, Via::Local(None)).await?.meta(),
            Target::Remote(_) => self.inner.shared.directory.get(room_key(id)).await.ok_or_else(|| not_found(id)),
        }
    }

    fn generate_id(&self) -> String {
        let mut rng = rand::rng();
        loop {
            let mut indices = [0u8; CODE_LEN];
            for i in &mut indices {
                *i = rng.random_range(0..CODE_ALPHABET.len()) as u8;
            }
            let id = code_from_indices(indices);
            if self.target(&id).is_err() {
                return id;
            }
        }
    }

    /// Makes space for one more room: evicts the least recently active room
    /// that has no connections and is neither default nor locked (with a
    /// cluster: of the rooms this server owns).
    async fn make_space(&self) -> Result<(), ErrorBody> {
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
        if let Some(cluster) = self.cluster()
            && !cluster.claim(&room_key(&id)).await?
        {
            return Err(ErrorBody::new(ErrorCode::Conflict, format!("room {id} exists")));
        }
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
        if let Some(cluster) = self.cluster() {
            cluster.commit_room(&StoredRoom { meta: meta.clone(), last_active: now }, &payload);
        }
        shared.directory.upsert(meta.clone(), payload).await;
        tracing::info!(room = %meta.id, host = %user.id, "room created");
        Ok(meta)
    }

    pub async fn patch_room(&self, user: &User, id: &str, patch: PatchRoom) -> Result<RoomMetadata, ErrorBody> {
        self.ask(id, Command::Patch { user: user.clone(), patch }, Via::Local(None)).await?.1.meta()
    }

    /// Deletes a room: `user` must be its host; `None` is the server itself.
    pub async fn delete_room(&self, user: Option<&User>, id: &str, reason: DeleteReason) -> Result<(), ErrorBody> {
        let _registry = self.inner.registry.lock().await;
        let (id, _) = self.ask(id, Command::Delete { user: user.cloned(), reason }, Via::Local(None)).await?;
        tracing::info!(room = %id, reason = reason.as_str(), "room deleted");
        Ok(())
    }

    /// Makes `id` the default room (or none), moving the flag off the old one.
    pub async fn set_default_room(&self, id: Option<&str>) -> Result<Option<RoomMetadata>, ErrorBody> {
        let _registry = self.inner.registry.lock().await;
        let new = id.map(|id| self.target(id).map(|t| t.id().clone())).transpose()?;
        let new_key = new.as_ref().map(|id| room_key(id));
        let old_key = match self.cluster() {
            // Another server may have moved it.
            Some(_) => self.inner.shared.storage.default_room().await.map_err(storage_failed)?.map(|id| room_key(&id)),
            None => self.inner.default_room.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        self.inner.shared.storage.set_default_room(new.as_deref()).await.map_err(storage_failed)?;
        *self.inner.default_room.lock().unwrap_or_else(|e| e.into_inner()) = new_key.clone();
        if let Some(old) = old_key.filter(|k| Some(k) != new_key.as_ref())
            && self.target(&old).is_ok()
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
        self.join_with(conn, id, role, JoinMode::Normal, reply_id).await.map(|(id, _)| id)
    }

    /// Joins `conn` to a room here or on its owner. A connection joining a
    /// room owned elsewhere is registered for the room's events first.
    async fn join_with(
        &self,
        conn: Arc<Connection>,
        id: &str,
        role: Option<Role>,
        mode: JoinMode,
        reply_id: Option<u64>,
    ) -> Result<(Arc<str>, Role), ErrorBody> {
        let cmd = Command::Join { sid: conn.sid.clone(), user: conn.user.clone(), role, mode, reply_id };
        let key = room_key(id);
        let remote = matches!(self.target(id)?, Target::Remote(_));
        if remote && let Some(cluster) = self.cluster() {
            cluster.edge_join(&key, conn.clone()).await?;
        }
        let joined = self.ask(id, cmd, Via::Local(Some(conn.clone()))).await;
        if remote
            && joined.is_err()
            && let Some(cluster) = self.cluster()
        {
            cluster.edge_leave(&key, &conn.sid).await;
        }
        let (id, outcome) = joined?;
        Ok((id, outcome.role()?))
    }

    pub async fn leave_room(&self, sid: Arc<str>, id: &str) -> Result<(), ErrorBody> {
        let left = self.ask(id, Command::Leave { sid: sid.clone() }, Via::Local(None)).await;
        if let Some(cluster) = self.cluster() {
            cluster.edge_leave(&room_key(id), &sid).await;
        }
        left.map(|_| ())
    }

    /// A room event (`keep_alive`, locks, presenter, chat, signal, start,
    /// finish) of a connection in the room.
    pub async fn room_event(
        &self,
        conn: Arc<Connection>,
        id: &str,
        event: app::protocol::ClientEvent,
    ) -> Result<Value, ErrorBody> {
        let cmd = Command::Event { sid: conn.sid.clone(), user: conn.user.clone(), event };
        self.ask(id, cmd, Via::Local(None)).await?.1.value()
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

    /// Serializes matchmaking: on one server with a lock, across servers
    /// with the shared lock, after which this server's room list has every
    /// room the previous holder opened.
    async fn lock_matchmaking(&self) -> Result<MatchmakingGuard<'_>, ErrorBody> {
        let local = self.inner.matchmaking.lock().await;
        let shared = match self.cluster() {
            Some(cluster) => {
                let lock = cluster.lock_matchmaking().await?;
                cluster.barrier().await;
                Some(lock)
            }
            None => None,
        };
        Ok(MatchmakingGuard { _local: local, shared })
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
        let guard = self.lock_matchmaking().await?;
        let result = self.match_room_locked(conn, n, reply_id).await;
        guard.release().await;
        result
    }

    async fn match_room_locked(
        &self,
        conn: Arc<Connection>,
        n: u32,
        reply_id: Option<u64>,
    ) -> Result<Arc<str>, ErrorBody> {
        let mode = JoinMode::Match { max_members: n };
        for candidate in self.match_candidates(n).await {
            if let Ok((id, _)) = self.join_with(conn.clone(), &candidate.id, Some(Role::Member), mode, reply_id).await {
                return Ok(id);
            }
        }
        let room = self.create_room(&conn.user, CreateRoom { max_members: Some(n), ..Default::default() }).await?;
        self.join_with(conn, &room.id, Some(Role::Member), mode, reply_id).await.map(|(id, _)| id)
    }

    /// `POST /api/match`: like `match`, but holds the seat for the grace
    /// period until the user joins over a socket.
    pub async fn match_reserve(&self, user: &User, max_members: Option<u32>) -> Result<Matched, ErrorBody> {
        let n = Self::match_size(max_members)?;
        let guard = self.lock_matchmaking().await?;
        let result = self.match_reserve_locked(user, n).await;
        guard.release().await;
        result
    }

    async fn match_reserve_locked(&self, user: &User, n: u32) -> Result<Matched, ErrorBody> {
        let reserve = || Command::Reserve { user: user.clone(), max_members: n };
        for candidate in self.match_candidates(n).await {
            if let Ok((_, outcome)) = self.ask(&candidate.id, reserve(), Via::Local(None)).await {
                return Ok(Matched { room: outcome.meta()?, role: Role::Member });
            }
        }
        let room = self.create_room(user, CreateRoom { max_members: Some(n), ..Default::default() }).await?;
        let room = self.ask(&room.id, reserve(), Via::Local(None)).await?.1.meta()?;
        Ok(Matched { room, role: Role::Member })
    }

    /// Appends frames (raw JSON texts) to a room; returns the frame count.
    pub async fn append_frames(&self, user: &User, id: &str, frames: Vec<String>) -> Result<u64, ErrorBody> {
        self.ask(id, Command::AppendFrames { user: user.clone(), frames }, Via::Local(None)).await?.1.count()
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

/// The matchmaking locks; `release` frees them.
struct MatchmakingGuard<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    shared: Option<crate::cluster::MatchLock>,
}

impl MatchmakingGuard<'_> {
    async fn release(self) {
        if let Some(lock) = self.shared {
            lock.release().await;
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
