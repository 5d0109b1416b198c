//! One room's owner: a task that holds the room's live state and its
//! channel's connections, and applies every change to the room in order.
//! Each change is persisted (when durable), turned into one delta,
//! serialized once and handed to every subscriber and to the directory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use app::api::PatchRoom;
use app::delta::RoomDelta;
use app::error::{ErrorBody, ErrorCode};
use app::ids::MAX_DESCRIPTION_CHARS;
use app::model::{DeleteReason, Presence, Role, RoomMetadata};
use app::protocol::{JoinRoomReply, PresenceLeft, Reply, RoomDeleted, ServerEvent};
use tokio::sync::{mpsc, oneshot};

use super::connection::{Connection, Frame, User, frame};
use super::directory::Directory;
use super::now_secs;
use crate::storage::{Storage, StoredRoom};

type Done<T> = oneshot::Sender<Result<T, ErrorBody>>;

pub(super) enum RoomCmd {
    Get {
        done: oneshot::Sender<RoomMetadata>,
    },
    Join {
        conn: Arc<Connection>,
        role: Option<Role>,
        reply_id: Option<u64>,
        done: Done<RoomMetadata>,
    },
    Leave {
        sid: Arc<str>,
        done: Done<()>,
    },
    Patch {
        user: User,
        patch: PatchRoom,
        done: Done<RoomMetadata>,
    },
    Delete {
        user: Option<User>,
        reason: DeleteReason,
        done: Done<()>,
    },
    SetDefault {
        value: bool,
        done: Done<RoomMetadata>,
    },
}

/// What every room task shares.
pub(super) struct Shared {
    pub storage: Arc<dyn Storage>,
    pub directory: Directory,
}

/// A handle to a room's task.
#[derive(Clone)]
pub struct RoomHandle {
    pub id: Arc<str>,
    tx: mpsc::Sender<RoomCmd>,
}

fn gone(id: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no room {id}"))
}

impl RoomHandle {
    /// Starts the task owning `meta`.
    pub(super) fn spawn(meta: RoomMetadata, last_active: f64, shared: Arc<Shared>) -> RoomHandle {
        let (tx, rx) = mpsc::channel(256);
        let id: Arc<str> = meta.id.as_str().into();
        let actor = RoomActor {
            meta,
            last_active,
            present: HashMap::new(),
            shared,
        };
        tokio::spawn(actor.run(rx));
        RoomHandle { id, tx }
    }

    /// Sends a command and waits for its answer; a room that went away in
    /// between answers `not_found`.
    pub(super) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ErrorBody>>) -> RoomCmd,
    ) -> Result<T, ErrorBody> {
        let (done, wait) = oneshot::channel();
        self.tx.send(make(done)).await.map_err(|_| gone(&self.id))?;
        wait.await.map_err(|_| gone(&self.id))?
    }

    pub(super) async fn get(&self) -> Option<RoomMetadata> {
        let (done, wait) = oneshot::channel();
        self.tx.send(RoomCmd::Get { done }).await.ok()?;
        wait.await.ok()
    }
}

struct Present {
    conn: Arc<Connection>,
    role: Role,
    #[allow(dead_code)]
    since: Instant,
}

struct RoomActor {
    meta: RoomMetadata,
    last_active: f64,
    /// The connections in `room:<id>`, by sid.
    present: HashMap<Arc<str>, Present>,
    shared: Arc<Shared>,
}

fn internal(e: impl std::fmt::Display) -> ErrorBody {
    tracing::error!(error = %e, "room storage failed");
    ErrorBody::new(
        ErrorCode::Internal,
        "storage failed; the change was not made",
    )
}

impl RoomActor {
    async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                RoomCmd::Get { done } => {
                    let _ = done.send(self.meta.clone());
                }
                RoomCmd::Join {
                    conn,
                    role,
                    reply_id,
                    done,
                } => {
                    let result = self.join(conn, role, reply_id).await;
                    let _ = done.send(result);
                }
                RoomCmd::Leave { sid, done } => {
                    let result = self.leave(&sid).await;
                    let _ = done.send(result);
                }
                RoomCmd::Patch { user, patch, done } => {
                    let result = self.patch(&user, patch).await;
                    let _ = done.send(result);
                }
                RoomCmd::SetDefault { value, done } => {
                    let mut next = self.meta.clone();
                    next.is_default = value;
                    let result = self
                        .commit(next, true, None)
                        .await
                        .map(|()| self.meta.clone());
                    let _ = done.send(result);
                }
                RoomCmd::Delete { user, reason, done } => {
                    let result = self.delete(user.as_ref(), reason).await;
                    let deleted = result.is_ok();
                    let _ = done.send(result);
                    if deleted {
                        return;
                    }
                }
            }
        }
    }

    fn is_host(&self, user: &User) -> bool {
        self.meta.host_user_id.as_deref() == Some(&*user.id)
    }

    /// Counts derived from who is present.
    fn with_counts(&self, mut next: RoomMetadata) -> RoomMetadata {
        let mut members: Vec<&str> = Vec::new();
        let mut spectators: Vec<&str> = Vec::new();
        for p in self.present.values() {
            let list = if p.role == Role::Member {
                &mut members
            } else {
                &mut spectators
            };
            list.push(&p.conn.user.id);
        }
        members.sort_unstable();
        members.dedup();
        spectators.sort_unstable();
        spectators.dedup();
        spectators.retain(|u| members.binary_search(u).is_err());
        next.member_count = members.len() as u32;
        next.spectator_count = spectators.len() as u32;
        next.connection_count = self.present.len() as u32;
        next
    }

    /// Makes `next` the room's state: persists it when `durable`, then
    /// announces the delta to the channel (but `skip`) and the directory.
    async fn commit(
        &mut self,
        mut next: RoomMetadata,
        durable: bool,
        skip: Option<&str>,
    ) -> Result<(), ErrorBody> {
        next.version = self.meta.version;
        if next == self.meta {
            return Ok(());
        }
        next.version = self.meta.version + 1;
        self.last_active = now_secs();
        if durable {
            let stored = StoredRoom {
                meta: next.clone(),
                last_active: self.last_active,
            };
            self.shared
                .storage
                .save_room(&stored)
                .await
                .map_err(internal)?;
        }
        let delta = RoomDelta::between(&self.meta, &next);
        self.meta = next;
        let payload = frame(ServerEvent::RoomUpdate(delta).to_json());
        self.broadcast(&payload, skip);
        self.shared
            .directory
            .upsert(self.meta.clone(), payload)
            .await;
        Ok(())
    }

    fn broadcast(&self, payload: &Frame, skip: Option<&str>) {
        for (sid, p) in &self.present {
            if Some(&**sid) != skip {
                p.conn.out.send(payload);
            }
        }
    }

    fn presence(&self, sid: &Arc<str>, p: &Present) -> Presence {
        Presence {
            room_id: self.meta.id.clone(),
            sid: sid.to_string(),
            user_id: p.conn.user.id.to_string(),
            user_name: p.conn.user.name.to_string(),
            role: p.role,
        }
    }

    async fn join(
        &mut self,
        conn: Arc<Connection>,
        role: Option<Role>,
        reply_id: Option<u64>,
    ) -> Result<RoomMetadata, ErrorBody> {
        let sid = conn.sid.clone();
        let role = role.unwrap_or(Role::Member);
        let fresh = !self.present.contains_key(&sid);
        self.present.insert(
            sid.clone(),
            Present {
                conn: conn.clone(),
                role,
                since: Instant::now(),
            },
        );
        if fresh {
            let mut next = self.with_counts(self.meta.clone());
            if next.host_user_id.is_none() && role == Role::Member {
                next.host_user_id = Some(conn.user.id.to_string());
                next.host_name = Some(conn.user.name.to_string());
            }
            let durable = next.host_user_id != self.meta.host_user_id;
            if let Err(e) = self.commit(next, durable, Some(&sid)).await {
                self.present.remove(&sid);
                return Err(e);
            }
            if let Some(p) = self.present.get(&sid) {
                let event = ServerEvent::PresenceJoin(self.presence(&sid, p));
                self.broadcast(&frame(event.to_json()), Some(&sid));
            }
        }
        if let Some(id) = reply_id {
            let presence = self
                .present
                .iter()
                .map(|(s, p)| self.presence(s, p))
                .collect();
            let data = JoinRoomReply {
                room: self.meta.clone(),
                role,
                presence,
                frame: None,
                chat: Vec::new(),
            };
            let reply = Reply::ok(id, serde_json::to_value(data).unwrap_or_default());
            conn.out.send(&frame(reply.to_json()));
        }
        Ok(self.meta.clone())
    }

    async fn leave(&mut self, sid: &Arc<str>) -> Result<(), ErrorBody> {
        if self.present.remove(sid).is_none() {
            return Ok(());
        }
        let next = self.with_counts(self.meta.clone());
        self.commit(next, false, None).await?;
        let event = ServerEvent::PresenceLeave(PresenceLeft {
            room_id: self.meta.id.clone(),
            sid: sid.to_string(),
        });
        self.broadcast(&frame(event.to_json()), None);
        Ok(())
    }

    async fn patch(&mut self, user: &User, patch: PatchRoom) -> Result<RoomMetadata, ErrorBody> {
        if !self.is_host(user) {
            return Err(ErrorBody::new(
                ErrorCode::Forbidden,
                "only the host may change the room",
            ));
        }
        let only_hidden = patch.description.is_none()
            && patch.locked.is_none()
            && patch.max_members.is_none()
            && patch.min_members.is_none()
            && patch.allow_spectators.is_none();
        if self.meta.locked && !only_hidden {
            return Err(ErrorBody::new(
                ErrorCode::Locked,
                "the room is locked; only `hidden` may change",
            ));
        }
        let mut next = self.meta.clone();
        if let Some(description) = patch.description {
            next.description = normalize_description(description)?;
        }
        if let Some(hidden) = patch.hidden {
            next.hidden = hidden;
        }
        if let Some(locked) = patch.locked {
            if !locked {
                return Err(ErrorBody::new(
                    ErrorCode::BadRequest,
                    "field `locked` can only be set to true",
                ));
            }
            next.locked = true;
        }
        if let Some(max) = patch.max_members {
            next.max_members = max;
        }
        if let Some(min) = patch.min_members {
            next.min_members = min;
        }
        if let Some(allow) = patch.allow_spectators {
            next.allow_spectators = allow;
        }
        validate_seats(next.max_members, next.min_members)?;
        self.commit(next, true, None).await?;
        Ok(self.meta.clone())
    }

    async fn delete(&mut self, user: Option<&User>, reason: DeleteReason) -> Result<(), ErrorBody> {
        if let Some(user) = user {
            if !self.is_host(user) {
                return Err(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "only the host may delete the room",
                ));
            }
            if self.meta.locked {
                return Err(ErrorBody::new(
                    ErrorCode::Locked,
                    "the room is locked and cannot be deleted",
                ));
            }
        }
        self.shared
            .storage
            .delete_room(&self.meta.id)
            .await
            .map_err(internal)?;
        let event = ServerEvent::RoomDelete(RoomDeleted {
            room_id: self.meta.id.clone(),
            reason,
        });
        let payload = frame(event.to_json());
        self.broadcast(&payload, None);
        self.present.clear();
        self.shared
            .directory
            .remove(app::ids::room_key(&self.meta.id), payload)
            .await;
        Ok(())
    }
}

/// Trims a description; empty becomes none; over 500 characters is refused.
pub(super) fn normalize_description(d: Option<String>) -> Result<Option<String>, ErrorBody> {
    let Some(d) = d else { return Ok(None) };
    let d = d.trim();
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("field `description` is longer than {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok((!d.is_empty()).then(|| d.to_string()))
}

pub(super) const MAX_SEATS: u32 = 10_000;

pub(super) fn validate_seats(max: u32, min: u32) -> Result<(), ErrorBody> {
    if max > MAX_SEATS {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("field `maxMembers` is over {MAX_SEATS}"),
        ));
    }
    if max > 0 && min > max {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            "field `minMembers` is larger than `maxMembers`",
        ));
    }
    Ok(())
}
