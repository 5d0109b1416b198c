//! What can be asked of a room, in a form that crosses servers: the room
//! task runs these whether they come from this server or from another one.

use std::sync::Arc;

use app::api::PatchRoom;
use app::model::{DeleteReason, Role, RoomMetadata};
use app::protocol::ClientEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connection::{Connection, User};
use super::errors::EngineError;
use super::idempotency::Idempotency;
use super::presence::PresenceRecord;

/// How a join is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JoinMode {
    /// `join:room`: a seat if one is free, else spectator if allowed.
    Normal,
    /// `match`: only a free member seat in a waiting, open, listed room
    /// with this many seats.
    Match { max_members: u32 },
    /// A connection of a live server coming back into a room this server
    /// took over: it keeps its recorded role, and nobody is told again.
    Restore,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Command {
    Get,
    /// A connection joins the room's channel.
    Join {
        sid: Arc<str>,
        user: User,
        role: Option<Role>,
        mode: JoinMode,
        reply_id: Option<u64>,
    },
    /// Holds a member seat for `user` without a connection (REST match):
    /// the seat lasts the grace period unless the user joins.
    Reserve {
        user: User,
        max_members: u32,
    },
    Leave {
        sid: Arc<str>,
    },
    Patch {
        user: User,
        patch: PatchRoom,
    },
    /// `user` must be the host; `None` is the server itself.
    Delete {
        user: Option<User>,
        reason: DeleteReason,
    },
    SetDefault {
        value: bool,
    },
    /// A room event of a connection in the channel.
    Event {
        sid: Arc<str>,
        user: User,
        event: ClientEvent,
    },
    AppendFrames {
        user: User,
        frames: Vec<String>,
        idempotency: Option<Idempotency>,
    },
    /// A server died: its connections leave the room.
    NodeGone {
        node: Arc<str>,
    },
    /// This server took the room over: live-only state is cleared, the
    /// connections still alive (`members`) come back, the others (`gone`)
    /// are announced as left.
    TakeOver {
        members: Vec<(Arc<str>, PresenceRecord)>,
        gone: Vec<Arc<str>>,
        is_default: bool,
    },
    /// After a broker outage: publish the room's whole state again.
    Republish,
}

impl Command {
    /// Whether running the command twice has the effect of running it
    /// once, so that a request lost with its server may be sent again to
    /// the room's next owner. Appending frames and sending a chat message
    /// would happen twice, unless they carry an idempotency key; a signal
    /// would.
    pub fn is_repeatable(&self) -> bool {
        match self {
            Command::AppendFrames { idempotency, .. } => idempotency.is_some(),
            Command::Event { event: ClientEvent::ChatSend(send), .. } => send.key.is_some(),
            Command::Event { event, .. } => !matches!(event, ClientEvent::Signal(_)),
            _ => true,
        }
    }
}

/// What a command answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Meta(Box<RoomMetadata>),
    Role(Role),
    Value(Value),
    Count(u64),
    Done,
}

/// Where a command comes from: a connection of this server (for a join,
/// the connection itself) or another server.
#[derive(Clone)]
pub enum Via {
    Local(Option<Arc<Connection>>),
    Node(Arc<str>),
}

fn mismatch() -> EngineError {
    EngineError::internal("unexpected answer from the room")
}

impl Outcome {
    pub fn meta(self) -> Result<RoomMetadata, EngineError> {
        match self {
            Outcome::Meta(m) => Ok(*m),
            _ => Err(mismatch()),
        }
    }

    pub fn role(self) -> Result<Role, EngineError> {
        match self {
            Outcome::Role(r) => Ok(r),
            _ => Err(mismatch()),
        }
    }

    pub fn value(self) -> Result<Value, EngineError> {
        match self {
            Outcome::Value(v) => Ok(v),
            _ => Err(mismatch()),
        }
    }

    pub fn count(self) -> Result<u64, EngineError> {
        match self {
            Outcome::Count(n) => Ok(n),
            _ => Err(mismatch()),
        }
    }
}
