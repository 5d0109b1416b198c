//! One room's owner: a task that holds the room's live state (metadata,
//! seats, presence, temporary lock, presenter, recent chat) and its
//! channel's connections, and applies every change to the room in order.
//! Each change is persisted when durable, turned into one delta, serialized
//! once and handed to every subscriber and to the directory. Time-based
//! rules (seat grace, host migration, lock expiry, presenter coalescing,
//! idle warning and expiry) run on the same task's timer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use app::api::{FramesAppended, PatchRoom};
use app::delta::RoomDelta;
use app::ids::MAX_DESCRIPTION_CHARS;
use app::model::{ChatMessage, DeleteReason, LockMetadata, Presence, Role, RoomMetadata, RoomStatus};
use app::protocol::{
    ChatEvent, ChatReply, ClientEvent, FrameUpdate, JoinRoomReply, LockReply, Reply, RoomClosed, RoomDeleted,
    RoomWarning, ServerEvent, SignalRelay,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::broker::{Audience, Broker};
use super::clock::now_secs;
use super::command::{Command, JoinMode, Outcome, Via};
use super::connection::{Connection, Frame, User, frame};
use super::directory::Directory;
use super::errors::{EngineError, not_found, storage_failed};
use super::idempotency::{Idempotency, or_recalled, replay};
use super::metrics::Metrics;
use super::presence::PresenceRecord;
use super::settings::EngineSettings;
use super::storage::{Storage, StoredRoom};

mod chat;
mod frames;
mod lock;
mod presenter;
mod roster;
mod seats;
mod signal;
mod takeover;
mod timers;

type Done<T> = oneshot::Sender<Result<T, EngineError>>;

/// A command for the room task and where to answer it.
pub(super) struct RoomCmd {
    /// Boxed: the channel's first block holds 32 commands per room.
    pub cmd: Box<Command>,
    pub via: Via,
    pub done: Done<Outcome>,
}

/// What every room task shares.
pub(super) struct Shared {
    pub storage: Arc<dyn Storage>,
    pub directory: Directory,
    pub settings: EngineSettings,
    pub metrics: Arc<Metrics>,
    /// The other servers (none but this one with `LocalBroker`).
    pub broker: Arc<dyn Broker>,
    /// Rooms whose idle timeout passed ask the engine to delete them here.
    pub expired: mpsc::UnboundedSender<Arc<str>>,
    /// When each user sent their recent chat messages, in any room of
    /// this server (the chat rate is per user, section 6.5).
    pub chat_rate: std::sync::Mutex<HashMap<Arc<str>, VecDeque<Instant>>>,
}

/// Facts about a room readable without asking its task: for eviction and
/// stats.
#[derive(Debug, Default)]
pub struct Pulse {
    /// Unix milliseconds of the last activity.
    pub last_active_ms: AtomicU64,
    pub connections: AtomicU32,
    /// Default or locked: never expires, never evicted.
    pub pinned: AtomicBool,
}

impl Pulse {
    pub fn last_active(&self) -> f64 {
        self.last_active_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// A handle to a room's task.
#[derive(Clone)]
pub struct RoomHandle {
    pub id: Arc<str>,
    pub pulse: Arc<Pulse>,
    tx: mpsc::Sender<RoomCmd>,
}

impl RoomHandle {
    /// Starts the task owning `meta`.
    pub(super) fn spawn(meta: RoomMetadata, last_active: f64, shared: Arc<Shared>) -> RoomHandle {
        let (tx, rx) = mpsc::channel(1024);
        let id: Arc<str> = meta.id.as_str().into();
        let pulse = Arc::new(Pulse::default());
        let idle_for = Duration::from_secs_f64((now_secs() - last_active).max(0.0));
        let actor = RoomActor {
            key: app::ids::room_key(&meta.id).into(),
            host_absent_since: Some(Instant::now()),
            meta,
            last_active: Instant::now().checked_sub(idle_for).unwrap_or_else(Instant::now),
            warned: false,
            expiry_asked: false,
            present: HashMap::new(),
            roster: roster::Roster::default(),
            seats: HashMap::new(),
            lock: None,
            presenter: Presenting::default(),
            chat: None,
            pulse: pulse.clone(),
            shared,
        };
        actor.publish_pulse();
        tokio::spawn(actor.run(rx));
        RoomHandle { id, pulse, tx }
    }

    /// Sends a command and waits for its answer; a room that went away in
    /// between answers `not_found`.
    pub(super) async fn ask(&self, cmd: Command, via: Via) -> Result<Outcome, EngineError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(RoomCmd { cmd: Box::new(cmd), via, done }).await.map_err(|_| not_found(&self.id))?;
        wait.await.map_err(|_| not_found(&self.id))?
    }
}

/// A connection in `room:<id>`: on this server, or on another one (its
/// events then travel through the room's Redis channel).
#[derive(Clone)]
pub(super) struct Member {
    pub sid: Arc<str>,
    pub user: User,
    pub link: Link,
}

#[derive(Clone)]
pub(super) enum Link {
    Local(Arc<Connection>),
    Node(Arc<str>),
}

struct Present {
    member: Member,
    place: roster::Place,
}

/// A user's place in the room: its role, its connections, and since when
/// it is present (or since when it is gone, during the grace period).
struct Seat {
    user: User,
    role: Role,
    conns: Vec<Arc<str>>,
    present_since: Instant,
    left_at: Option<Instant>,
    /// Held by `POST /api/match` for a user who has not connected yet: it
    /// counts as a member (a seat kept for the grace period does not).
    reserved: bool,
}

struct TempLock {
    user_id: Arc<str>,
    sid: Option<Arc<str>>,
    expires_at: Instant,
    expires_at_unix: f64,
}

#[derive(Default)]
struct Presenting {
    /// The shared frame, as set by the presenter.
    frame: Option<u64>,
    last_sent: Option<Instant>,
    /// A `frame_update` is owed at `last_sent + interval`.
    pending: bool,
}

struct RoomActor {
    /// The room's key (its id in lower case).
    key: Arc<str>,
    meta: RoomMetadata,
    last_active: Instant,
    warned: bool,
    expiry_asked: bool,
    /// The connections in `room:<id>`, by sid.
    present: HashMap<Arc<str>, Present>,
    /// Their presence order and what was last announced of it.
    roster: roster::Roster,
    /// Seats by user id (members and spectators).
    seats: HashMap<Arc<str>, Seat>,
    host_absent_since: Option<Instant>,
    lock: Option<TempLock>,
    presenter: Presenting,
    /// The most recent chat messages (loaded on first use) and the last id.
    chat: Option<(VecDeque<ChatMessage>, u64)>,
    /// Send times of each user's recent messages, for the rate limit.
    pulse: Arc<Pulse>,
    shared: Arc<Shared>,
}

const RECENT_CHAT: usize = 50;

impl RoomActor {
    async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>) {
        loop {
            let deadline = self.next_deadline();
            let cmd = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => return,
                },
                _ = timers::sleep_until(deadline) => {
                    Box::pin(self.on_timer()).await;
                    continue;
                }
            };
            // Boxed: an idle room's task then holds only this loop's state,
            // not room for the largest command's (memory per room).
            if Box::pin(self.handle(cmd)).await {
                return;
            }
        }
    }

    /// Handles one command; true when the room is gone.
    async fn handle(&mut self, RoomCmd { cmd, via, done }: RoomCmd) -> bool {
        let mut deleted = false;
        let result = match *cmd {
            Command::Get => Ok(Outcome::Meta(Box::new(self.meta.clone()))),
            Command::Join { sid, user, role, mode, reply_id } => {
                let link = match via {
                    Via::Local(Some(conn)) => Link::Local(conn),
                    Via::Node(node) => Link::Node(node),
                    Via::Local(None) => {
                        let _ = done.send(Err(EngineError::internal("a join needs its connection")));
                        return false;
                    }
                };
                self.join(Member { sid, user, link }, role, mode, reply_id).await.map(Outcome::Role)
            }
            Command::Reserve { user, max_members } => {
                self.reserve(user, max_members).await.map(|m| Outcome::Meta(Box::new(m)))
            }
            Command::Leave { sid } => self.leave(&sid).await.map(|()| Outcome::Done),
            Command::Patch { user, patch } => self.patch(&user, patch).await.map(|m| Outcome::Meta(Box::new(m))),
            Command::SetDefault { value } => {
                let mut next = self.meta.clone();
                next.is_default = value;
                self.commit(next, true, None).await.map(|()| Outcome::Meta(Box::new(self.meta.clone())))
            }
            Command::Event { sid, user: _, event } => self.event(&sid, event).await.map(Outcome::Value),
            Command::AppendFrames { user, frames, idempotency } => {
                self.append_frames(&user, frames, idempotency).await.map(Outcome::Count)
            }
            Command::NodeGone { node } => self.node_gone(&node).await.map(|()| Outcome::Done),
            Command::TakeOver { members, gone, is_default } => {
                self.take_over(members, gone, is_default).await.map(|()| Outcome::Done)
            }
            Command::Republish => {
                self.republish();
                Ok(Outcome::Done)
            }
            Command::Delete { user, reason } => {
                let result = self.delete(user.as_ref(), reason).await;
                deleted = result.is_ok();
                result.map(|()| Outcome::Done)
            }
        };
        let _ = done.send(result);
        deleted
    }

    fn settings(&self) -> &EngineSettings {
        &self.shared.settings
    }

    fn is_host(&self, user: &User) -> bool {
        self.meta.host_user_id.as_deref() == Some(&*user.id)
    }

    fn pinned(&self) -> bool {
        self.meta.is_default || self.meta.locked
    }

    fn publish_pulse(&self) {
        let idle = self.last_active.elapsed().as_secs_f64();
        let last_active_ms = ((now_secs() - idle) * 1000.0) as u64;
        self.pulse.last_active_ms.store(last_active_ms, Ordering::Relaxed);
        self.pulse.connections.store(self.present.len() as u32, Ordering::Relaxed);
        self.pulse.pinned.store(self.pinned(), Ordering::Relaxed);
    }

    /// Marks activity: resets the idle warning and expiry.
    fn touch(&mut self) {
        self.last_active = Instant::now();
        self.warned = false;
        self.expiry_asked = false;
        self.publish_pulse();
    }

    fn seats_taken(&self) -> usize {
        self.seats.values().filter(|s| s.role == Role::Member).count()
    }

    /// Users present with the member role, counted now (the metadata's
    /// count may wait for the presence tick).
    fn members_present(&self) -> u32 {
        self.seats.values().filter(|s| !s.conns.is_empty() && s.role == Role::Member).count() as u32
    }

    /// Counts derived from who is present, and seats reserved by a match.
    fn with_counts(&self, mut next: RoomMetadata) -> RoomMetadata {
        let present = |s: &&Seat| !s.conns.is_empty();
        let counted = |s: &&Seat| s.role == Role::Member && (!s.conns.is_empty() || s.reserved);
        next.member_count = self.seats.values().filter(counted).count() as u32;
        next.spectator_count = self.seats.values().filter(present).filter(|s| s.role == Role::Spectator).count() as u32;
        next.connection_count = self.present.len() as u32;
        next
    }

    /// Makes `next` the room's state: persists it when `durable`, then
    /// announces the delta to the channel (but `skip`) and the directory.
    async fn commit(&mut self, mut next: RoomMetadata, durable: bool, skip: Option<&str>) -> Result<(), EngineError> {
        next.version = self.meta.version;
        if next == self.meta {
            return Ok(());
        }
        next.version = self.meta.version + 1;
        if durable {
            let stored = StoredRoom { meta: next.clone(), last_active: self.last_active_unix() };
            self.shared.storage.save_room(&stored, None).await.map_err(storage_failed)?;
        }
        self.announce(next, skip).await;
        Ok(())
    }

    /// Sends the delta from the current state to `next` (already stored)
    /// and makes `next` current.
    async fn announce(&mut self, next: RoomMetadata, skip: Option<&str>) {
        let delta = RoomDelta::between(&self.meta, &next);
        self.meta = next;
        let payload = frame(ServerEvent::RoomUpdate(delta).to_json());
        let sent = self.fan_out(&payload, skip, true);
        self.shared.metrics.deltas(sent);
        self.publish_pulse();
        self.shared.broker.commit(&self.meta, self.last_active_unix(), &payload);
        self.shared.directory.upsert(self.meta.clone(), payload).await;
    }

    fn last_active_unix(&self) -> f64 {
        now_secs() - self.last_active.elapsed().as_secs_f64()
    }

    /// Queues an ordered frame on every connection in the channel but
    /// `skip`, and publishes it once for the connections on other servers;
    /// returns how many local connections took it.
    fn broadcast(&self, payload: &Frame, skip: Option<&str>) -> u64 {
        self.fan_out(payload, skip, false)
    }

    /// `broadcast`, or with `latest` a `room:update`, which a lagging
    /// connection gets merged with the room's delta it still waits for.
    fn fan_out(&self, payload: &Frame, skip: Option<&str>, latest: bool) -> u64 {
        let mut sent = 0;
        let mut remote = false;
        for (sid, p) in &self.present {
            if Some(&**sid) == skip {
                continue;
            }
            match &p.member.link {
                Link::Local(conn) if latest => sent += u64::from(conn.out.send_latest(&self.key, payload)),
                Link::Local(conn) => sent += u64::from(conn.out.send(payload)),
                Link::Node(_) => remote = true,
            }
        }
        if remote {
            self.shared.broker.publish(&self.key, Audience::All { skip }, payload);
        }
        sent
    }

    /// Queues a frame for one member.
    fn send_to(&self, member: &Member, payload: &Frame) {
        match &member.link {
            Link::Local(conn) => {
                conn.out.send(payload);
            }
            Link::Node(_) => {
                self.shared.broker.publish(&self.key, Audience::One { sid: &member.sid, admit: false }, payload);
            }
        }
    }

    fn broadcast_event(&self, event: ServerEvent, skip: Option<&str>) {
        let sent = self.broadcast(&frame(event.to_json()), skip);
        self.shared.metrics.sent(sent);
    }

    async fn patch(&mut self, user: &User, patch: PatchRoom) -> Result<RoomMetadata, EngineError> {
        if !self.is_host(user) {
            return Err(EngineError::forbidden("only the host may change the room"));
        }
        let only_hidden = patch.description.is_none()
            && patch.locked.is_none()
            && patch.max_members.is_none()
            && patch.min_members.is_none()
            && patch.allow_spectators.is_none();
        if self.meta.locked && !only_hidden {
            return Err(EngineError::locked("the room is locked; only `hidden` may change"));
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
                return Err(EngineError::bad_request("field `locked` can only be set to true"));
            }
            next.locked = true;
            // A permanent lock ends the temporary one.
            next.metadata_locked = None;
            self.lock = None;
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
        self.touch();
        self.commit(next, true, None).await?;
        Ok(self.meta.clone())
    }

    fn idle_expired(&self) -> bool {
        !self.pinned() && self.last_active.elapsed() >= self.settings().room_idle
    }

    async fn delete(&mut self, user: Option<&User>, reason: DeleteReason) -> Result<(), EngineError> {
        match (user, reason) {
            (Some(user), _) => {
                if !self.is_host(user) {
                    return Err(EngineError::forbidden("only the host may delete the room"));
                }
                if self.meta.locked {
                    return Err(EngineError::locked("the room is locked and cannot be deleted"));
                }
            }
            (None, DeleteReason::Inactivity) if !self.idle_expired() => {
                return Err(EngineError::conflict("the room saw activity"));
            }
            (None, DeleteReason::Evicted) if !self.present.is_empty() || self.pinned() => {
                return Err(EngineError::conflict("the room is in use"));
            }
            (None, _) => {}
        }
        self.shared.storage.delete_room(&self.meta.id).await.map_err(storage_failed)?;
        if reason == DeleteReason::Inactivity {
            let closed = ServerEvent::RoomClosed(RoomClosed { room_id: self.meta.id.clone(), reason });
            self.broadcast_event(closed, None);
        }
        let event = ServerEvent::RoomDelete(RoomDeleted { room_id: self.meta.id.clone(), reason });
        let payload = frame(event.to_json());
        self.broadcast(&payload, None);
        self.present.clear();
        self.shared.broker.removed(&self.key, &payload);
        self.shared.directory.remove(self.key.to_string(), payload).await;
        Ok(())
    }

    /// Room events of a connection in the channel.
    async fn event(&mut self, sid: &str, event: ClientEvent) -> Result<Value, EngineError> {
        let Some(p) = self.present.get(sid) else {
            return Err(EngineError::forbidden(format!("join room:{} first", self.meta.id)));
        };
        let member = p.member.clone();
        let conn = &member;
        self.touch();
        let user = &conn.user;
        match event {
            ClientEvent::KeepAlive(_) => Ok(json!({})),
            ClientEvent::RoomStart(_) => self.set_status(user, RoomStatus::Active).await,
            ClientEvent::RoomFinish(_) => self.set_status(user, RoomStatus::Finished).await,
            ClientEvent::LockAcquire(e) => self.lock_acquire(conn, e.msg, e.ttl_seconds).await,
            ClientEvent::LockRefresh(e) => self.lock_refresh(user, e.ttl_seconds),
            ClientEvent::LockMsg(e) => self.lock_msg(user, e.msg).await,
            ClientEvent::LockRelease(_) => self.lock_release(user).await,
            ClientEvent::PresenterRequest(_) => self.presenter_request(&conn.sid).await,
            ClientEvent::PresenterRelease(_) => self.presenter_release(&conn.sid).await,
            ClientEvent::FrameSet(e) => self.frame_set(&conn.sid, e.frame),
            ClientEvent::ChatSend(e) => self.chat_send(conn, e.text, e.key).await,
            ClientEvent::ChatEdit(e) => self.chat_edit(conn, e.message_id, e.text).await,
            ClientEvent::Signal(e) => self.signal(&conn.sid, &e.to, e.kind, e.payload),
            ClientEvent::PresencePage(e) => self.presence_page(e.offset, e.limit),
            other => Err(EngineError::bad_request(format!("`{}` is not a room event", other.name()))),
        }
    }

    async fn set_status(&mut self, user: &User, status: RoomStatus) -> Result<Value, EngineError> {
        if !self.is_host(user) {
            return Err(EngineError::forbidden("only the host may start or finish the room"));
        }
        let current = self.meta.status;
        match status {
            RoomStatus::Active if current == RoomStatus::Active => {
                return Err(EngineError::conflict("the room is already active"));
            }
            RoomStatus::Active if self.members_present() < self.meta.min_members => {
                return Err(EngineError::conflict(format!(
                    "{} members needed to start, {} present",
                    self.meta.min_members,
                    self.members_present()
                )));
            }
            RoomStatus::Finished if current != RoomStatus::Active => {
                return Err(EngineError::conflict("only an active room can finish"));
            }
            _ => {}
        }
        let mut next = self.meta.clone();
        next.status = status;
        self.commit(next, true, None).await?;
        Ok(json!({}))
    }
}

/// Trims a description; empty becomes none; over 500 characters is refused.
pub(super) fn normalize_description(d: Option<String>) -> Result<Option<String>, EngineError> {
    let Some(d) = d else { return Ok(None) };
    let d = d.trim();
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(EngineError::bad_request(format!(
            "field `description` is longer than {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok((!d.is_empty()).then(|| d.to_string()))
}

pub(super) const MAX_SEATS: u32 = 10_000;

pub(super) fn validate_seats(max: u32, min: u32) -> Result<(), EngineError> {
    if max > MAX_SEATS {
        return Err(EngineError::bad_request(format!("field `maxMembers` is over {MAX_SEATS}")));
    }
    if max > 0 && min > max {
        return Err(EngineError::bad_request("field `minMembers` is larger than `maxMembers`"));
    }
    Ok(())
}
