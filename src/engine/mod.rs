//! The room engine: rooms, channels, deltas. It knows nothing of HTTP or
//! WebSocket framing; transports call it with typed requests and hand it a
//! connection's outbound queue.
//!
//! Each room is owned by one task (`room.rs`) that applies its changes in
//! order; the room list (`overview:public`) is owned by the directory task
//! (`directory.rs`). The registry below maps ids to room tasks; its lock is
//! taken only to create, delete or re-point the default room.

pub mod connection;
mod directory;
mod room;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use app::api::{CreateRoom, PatchRoom};
use app::delta::RoomDelta;
use app::error::{ErrorBody, ErrorCode};
use app::ids::{CODE_ALPHABET, CODE_LEN, code_from_indices, is_valid_room_id, room_key};
use app::model::{DeleteReason, Role, RoomMetadata};
use app::protocol::ServerEvent;
use dashmap::DashMap;
use rand::Rng;
use tokio::sync::Mutex;

use crate::storage::{Storage, StorageError, StoredRoom};
use connection::{Connection, User, frame};
use directory::Directory;
use room::{RoomCmd, RoomHandle, Shared, normalize_description, validate_seats};

/// Unix time in seconds, as a float.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Tunables of the engine.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    pub max_rooms: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings { max_rooms: 1000 }
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    rooms: DashMap<String, RoomHandle>,
    /// Serializes creation, deletion and the default room.
    registry: Mutex<()>,
    default_room: std::sync::Mutex<Option<String>>,
    shared: Arc<Shared>,
    settings: EngineSettings,
    next_sid: AtomicU64,
}

fn not_found(id: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no room {id}"))
}

fn storage_failed(e: StorageError) -> ErrorBody {
    tracing::error!(error = %e, "storage failed");
    ErrorBody::new(
        ErrorCode::Internal,
        "storage failed; the change was not made",
    )
}

/// A loaded room with what only lives while the server runs cleared.
fn fresh_after_restart(mut meta: RoomMetadata) -> RoomMetadata {
    let live = (
        meta.connection_count,
        meta.member_count,
        meta.spectator_count,
    );
    let had_live =
        live != (0, 0, 0) || meta.metadata_locked.is_some() || meta.presenter_sid.is_some();
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

impl Engine {
    /// Loads every stored room and starts their tasks.
    pub async fn start(
        storage: Arc<dyn Storage>,
        settings: EngineSettings,
    ) -> Result<Engine, StorageError> {
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
        let shared = Arc::new(Shared { storage, directory });
        let rooms = DashMap::new();
        for (meta, last_active) in metas.into_iter().zip(actives) {
            let key = room_key(&meta.id);
            rooms.insert(key, RoomHandle::spawn(meta, last_active, shared.clone()));
        }
        tracing::info!(rooms = rooms.len(), "engine started");
        Ok(Engine {
            inner: Arc::new(Inner {
                rooms,
                registry: Mutex::new(()),
                default_room: std::sync::Mutex::new(default_key),
                shared,
                settings,
                next_sid: AtomicU64::new(1),
            }),
        })
    }

    /// A new connection id, unique for the server's lifetime.
    pub fn new_sid(&self) -> Arc<str> {
        let n = self.inner.next_sid.fetch_add(1, Ordering::Relaxed);
        let mut rng = rand::rng();
        let tail: String = (0..4)
            .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
            .collect();
        format!("c_{n:x}{}", tail.to_ascii_lowercase()).into()
    }

    fn handle(&self, id: &str) -> Result<RoomHandle, ErrorBody> {
        self.inner
            .rooms
            .get(&room_key(id))
            .map(|h| h.clone())
            .ok_or_else(|| not_found(id))
    }

    /// The canonical id of a room, if it exists.
    pub fn resolve(&self, id: &str) -> Option<Arc<str>> {
        self.inner.rooms.get(&room_key(id)).map(|h| h.id.clone())
    }

    pub fn room_count(&self) -> usize {
        self.inner.rooms.len()
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

    /// Creates a room with `user` as host.
    pub async fn create_room(
        &self,
        user: &User,
        req: CreateRoom,
    ) -> Result<RoomMetadata, ErrorBody> {
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
                    return Err(ErrorBody::new(
                        ErrorCode::Conflict,
                        format!("room {existing} exists"),
                    ));
                }
                id
            }
            None => self.generate_id(),
        };
        if self.inner.rooms.len() >= self.inner.settings.max_rooms {
            return Err(ErrorBody::new(
                ErrorCode::Capacity,
                "the server holds as many rooms as it may",
            ));
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
        shared
            .storage
            .save_room(&StoredRoom {
                meta: meta.clone(),
                last_active: now,
            })
            .await
            .map_err(storage_failed)?;
        let handle = RoomHandle::spawn(meta.clone(), now, shared.clone());
        self.inner.rooms.insert(room_key(&meta.id), handle);
        let payload = frame(ServerEvent::RoomUpdate(RoomDelta::creation(&meta)).to_json());
        shared.directory.upsert(meta.clone(), payload).await;
        tracing::info!(room = %meta.id, host = %user.id, "room created");
        Ok(meta)
    }

    pub async fn patch_room(
        &self,
        user: &User,
        id: &str,
        patch: PatchRoom,
    ) -> Result<RoomMetadata, ErrorBody> {
        let handle = self.handle(id)?;
        let user = user.clone();
        handle
            .ask(|done| RoomCmd::Patch { user, patch, done })
            .await
    }

    /// Deletes a room: `user` must be its host; `None` is the server itself.
    pub async fn delete_room(
        &self,
        user: Option<&User>,
        id: &str,
        reason: DeleteReason,
    ) -> Result<(), ErrorBody> {
        let _registry = self.inner.registry.lock().await;
        let handle = self.handle(id)?;
        let user = user.cloned();
        handle
            .ask(|done| RoomCmd::Delete { user, reason, done })
            .await?;
        let key = room_key(&handle.id);
        self.inner.rooms.remove(&key);
        let mut default = self
            .inner
            .default_room
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if default.as_deref() == Some(key.as_str()) {
            *default = None;
        }
        tracing::info!(room = %handle.id, reason = reason.as_str(), "room deleted");
        Ok(())
    }

    /// Makes `id` the default room (or none), moving the flag off the old one.
    pub async fn set_default_room(
        &self,
        id: Option<&str>,
    ) -> Result<Option<RoomMetadata>, ErrorBody> {
        let _registry = self.inner.registry.lock().await;
        let new = id.map(|id| self.handle(id)).transpose()?;
        let new_key = new.as_ref().map(|h| room_key(&h.id));
        let old_key = self
            .inner
            .default_room
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.inner
            .shared
            .storage
            .set_default_room(new.as_ref().map(|h| &*h.id))
            .await
            .map_err(storage_failed)?;
        *self
            .inner
            .default_room
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = new_key.clone();
        if let Some(old) = old_key.filter(|k| Some(k) != new_key.as_ref())
            && let Some(h) = self.inner.rooms.get(&old).map(|h| h.clone())
        {
            h.ask(|done| RoomCmd::SetDefault { value: false, done })
                .await?;
        }
        match new {
            Some(h) => h
                .ask(|done| RoomCmd::SetDefault { value: true, done })
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// The default room's id, if any.
    pub fn default_room(&self) -> Option<Arc<str>> {
        let key = self
            .inner
            .default_room
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        self.resolve(&key)
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
        handle
            .ask(|done| RoomCmd::Join {
                conn,
                role,
                reply_id,
                done,
            })
            .await?;
        Ok(handle.id)
    }

    pub async fn leave_room(&self, sid: Arc<str>, id: &str) -> Result<(), ErrorBody> {
        let handle = self.handle(id)?;
        handle.ask(|done| RoomCmd::Leave { sid, done }).await
    }

    /// Takes a closed connection out of every channel it was in.
    pub async fn disconnect(
        &self,
        sid: Arc<str>,
        rooms: impl IntoIterator<Item = Arc<str>>,
        overview: bool,
    ) {
        if overview {
            self.leave_overview(sid.clone()).await;
        }
        for room in rooms {
            let _ = self.leave_room(sid.clone(), &room).await;
        }
    }
}
