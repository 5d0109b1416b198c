//! What the engine needs from the other servers that share its rooms, as a
//! trait the engine owns. A room has one owner (the server running its
//! task); the broker records owners and presence, carries a room's deltas
//! and events to the servers following it, and carries requests to a
//! room's owner. `LocalBroker` is the single-server default (every room is
//! owned here and nothing crosses a process); the shared implementation
//! lives outside the engine and depends on it, never the reverse.
//!
//! What the broker receives arrives as [`Inbound`] on one queue, in the
//! order the other servers sent it.

use std::sync::Arc;

use app::model::RoomMetadata;
use async_trait::async_trait;
use tokio::sync::mpsc;

use super::command::{Command, Outcome};
use super::connection::Frame;
use super::errors::EngineError;
pub use super::presence::PresenceRecord;

/// Why the broker could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The shared store cannot be reached right now; the caller may retry.
    #[error("the shared store is unreachable: {0}")]
    Unavailable(String),
    /// A request reached no server (nobody listens on its channel now):
    /// it did not run, and may be sent again.
    #[error("server {0} is not listening")]
    NotDelivered(String),
    /// A request reached no owner that answered in time.
    #[error("no answer from server {0}")]
    NoAnswer(String),
}

pub type BrokerResult<T> = Result<T, BrokerError>;

/// A broker failure as the engine answers it: retry later.
pub fn broker_failed(e: BrokerError) -> EngineError {
    tracing::warn!(error = %e, "broker failed");
    EngineError::unavailable(format!("{e}; retry"))
}

/// Which connections of a room's channel on other servers get a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Every admitted connection but `skip`.
    All { skip: Option<&'a str> },
    /// One connection; `admit` marks its join reply, after which the
    /// room's other events reach it too.
    One { sid: &'a str, admit: bool },
}

/// A room event from its owner for this server's connections in the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEvent {
    pub room: String,
    pub to: Target,
    pub payload: Frame,
}

/// The owned form of [`Audience`], plus the room's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    All {
        skip: Option<String>,
    },
    One {
        sid: String,
        admit: bool,
    },
    /// The room is gone: forget its connections here.
    End,
}

/// The servers that joined: alive (heartbeat current) and dead (silent,
/// not yet cleaned up).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nodes {
    pub live: Vec<String>,
    pub dead: Vec<String>,
}

/// What other servers send this one, in arrival order.
pub enum Inbound {
    /// Run `cmd` on room `room` (owned here) and answer `from`.
    Request { id: u64, from: Arc<str>, room: String, cmd: Command },
    /// A room owned elsewhere changed; `payload` is its delta.
    Upsert { origin: Arc<str>, meta: Box<RoomMetadata>, payload: Frame },
    /// A room owned elsewhere went away; `payload` is its `room:delete`.
    Remove { key: String, payload: Frame },
    /// An event for this server's connections in a room owned elsewhere.
    Room(RoomEvent),
    /// Everything published before this server's barrier `nonce` has
    /// arrived (see [`Broker::barrier`]).
    Barrier(u64),
    /// A commit found another server owning the room: its task here stops.
    Lost(String),
    /// The broker reconnected after an outage: messages may have been
    /// missed, so every followed room is read again.
    Resync,
}

/// A lock shared by every server, held until released (it also expires).
#[async_trait]
pub trait HeldLock: Send {
    async fn release(self: Box<Self>);
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// This server's id among the servers.
    fn node(&self) -> &Arc<str>;
    /// Whether other servers may share the rooms (false: every room is
    /// owned here and the methods below that reach others do nothing).
    fn is_shared(&self) -> bool;

    // ---- Ownership.

    /// Claims a new room for this server; false when it is taken.
    async fn claim(&self, room: &str) -> BrokerResult<bool>;
    /// Takes over a room whose owner `old` died (or that has none).
    async fn take_over(&self, old: Option<&str>, room: &str) -> BrokerResult<bool>;
    /// The owner of each room (none when it has none).
    async fn owners(&self, rooms: &[String]) -> BrokerResult<Vec<Option<String>>>;
    async fn nodes(&self) -> BrokerResult<Nodes>;
    /// The rooms a server owns.
    async fn node_rooms(&self, node: &str) -> BrokerResult<Vec<String>>;
    /// Forgets a dead server once its rooms are taken over.
    async fn forget_node(&self, node: &str) -> BrokerResult<()>;
    /// At shutdown: lets the other servers take over at once.
    async fn leave(&self);

    // ---- What a room's owner publishes.

    /// Stores a room's new state and publishes its delta to every server,
    /// as one step that fails when the room has another owner (then
    /// [`Inbound::Lost`] follows).
    fn commit(&self, meta: &RoomMetadata, last_active: f64, payload: &Frame);
    /// A room event for the room's connections on other servers.
    fn publish(&self, room: &str, to: Audience<'_>, payload: &Frame);
    /// A deleted room: tells every server and gives the room up.
    fn removed(&self, room: &str, payload: &Frame);
    fn presence_set(&self, room: &str, sid: &str, record: &PresenceRecord);
    fn presence_del(&self, room: &str, sid: &str);
    /// Every recorded presence entry of a room, by connection id.
    async fn presence(&self, room: &str) -> BrokerResult<Vec<(String, PresenceRecord)>>;

    // ---- Requests to a room's owner.

    /// Asks server `node` to run `cmd` on `room`: the owner's answer, or
    /// why no answer came.
    async fn request(&self, node: &str, room: &str, cmd: Command) -> BrokerResult<Result<Outcome, EngineError>>;
    fn respond(&self, to: &str, id: u64, result: Result<Outcome, EngineError>);

    // ---- Following rooms owned elsewhere.

    /// Starts receiving a room's events ([`Inbound::Room`]); returns once
    /// every event published after it will arrive.
    async fn subscribe(&self, room: &str) -> BrokerResult<()>;
    async fn unsubscribe(&self, room: &str);

    // ---- One step across servers (matchmaking, a keyed creation).

    /// Takes the lock `name` shared by every server, waiting while another
    /// server holds it.
    async fn lock(&self, name: &str) -> BrokerResult<Box<dyn HeldLock>>;
    /// Publishes a barrier and waits until it comes back as
    /// [`Inbound::Barrier`] and the engine reports it with
    /// [`Broker::barrier_reached`]: every room change published before is
    /// then applied here.
    async fn barrier(&self);
    fn barrier_reached(&self, nonce: u64);
}

/// One server alone: every room is owned here, nothing is published.
pub struct LocalBroker {
    node: Arc<str>,
    /// Kept so that the engine's inbox stays open (it never receives).
    _inbox: mpsc::UnboundedSender<Inbound>,
}

impl LocalBroker {
    pub fn new() -> (LocalBroker, mpsc::UnboundedReceiver<Inbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (LocalBroker { node: "local".into(), _inbox: tx }, rx)
    }
}

struct NoLock;

#[async_trait]
impl HeldLock for NoLock {
    async fn release(self: Box<Self>) {}
}

#[async_trait]
impl Broker for LocalBroker {
    fn node(&self) -> &Arc<str> {
        &self.node
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn claim(&self, _room: &str) -> BrokerResult<bool> {
        Ok(true)
    }

    async fn take_over(&self, _old: Option<&str>, _room: &str) -> BrokerResult<bool> {
        Ok(true)
    }

    async fn owners(&self, rooms: &[String]) -> BrokerResult<Vec<Option<String>>> {
        Ok(vec![None; rooms.len()])
    }

    async fn nodes(&self) -> BrokerResult<Nodes> {
        Ok(Nodes { live: vec![self.node.to_string()], dead: Vec::new() })
    }

    async fn node_rooms(&self, _node: &str) -> BrokerResult<Vec<String>> {
        Ok(Vec::new())
    }

    async fn forget_node(&self, _node: &str) -> BrokerResult<()> {
        Ok(())
    }

    async fn leave(&self) {}

    fn commit(&self, _meta: &RoomMetadata, _last_active: f64, _payload: &Frame) {}

    fn publish(&self, _room: &str, _to: Audience<'_>, _payload: &Frame) {}

    fn removed(&self, _room: &str, _payload: &Frame) {}

    fn presence_set(&self, _room: &str, _sid: &str, _record: &PresenceRecord) {}

    fn presence_del(&self, _room: &str, _sid: &str) {}

    async fn presence(&self, _room: &str) -> BrokerResult<Vec<(String, PresenceRecord)>> {
        Ok(Vec::new())
    }

    async fn request(&self, node: &str, _room: &str, _cmd: Command) -> BrokerResult<Result<Outcome, EngineError>> {
        Err(BrokerError::NoAnswer(node.to_string()))
    }

    fn respond(&self, _to: &str, _id: u64, _result: Result<Outcome, EngineError>) {}

    async fn subscribe(&self, _room: &str) -> BrokerResult<()> {
        Ok(())
    }

    async fn unsubscribe(&self, _room: &str) {}

    async fn lock(&self, _name: &str) -> BrokerResult<Box<dyn HeldLock>> {
        Ok(Box::new(NoLock))
    }

    async fn barrier(&self) {}

    fn barrier_reached(&self, _nonce: u64) {}
}
