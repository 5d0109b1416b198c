//! The room model shared by the server and the browser: `RoomMetadata` and the
//! small types it is made of (PROTOCOL.md section 2 and 5.2).

use serde::{Deserialize, Serialize};

/// What happens in a room: waiting for members, running, or over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RoomStatus {
    #[default]
    Waiting,
    Active,
    Finished,
}

impl RoomStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Waiting => "waiting",
            RoomStatus::Active => "active",
            RoomStatus::Finished => "finished",
        }
    }
}

/// How a user takes part in a room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Member,
    Spectator,
}

/// The room's temporary lock, as everyone sees it (section 6.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LockMetadata {
    pub msg: Option<String>,
    pub user_name: String,
    /// When the lock was taken, Unix seconds.
    pub timestamp: f64,
}

/// Everything a viewer of the room list or a room page knows about a room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoomMetadata {
    pub id: String,
    pub description: Option<String>,
    pub frame_count: u64,
    pub locked: bool,
    pub hidden: bool,
    pub is_default: bool,
    pub metadata_locked: Option<LockMetadata>,
    pub presenter_sid: Option<String>,
    pub status: RoomStatus,
    pub host_user_id: Option<String>,
    pub host_name: Option<String>,
    pub member_count: u32,
    pub spectator_count: u32,
    pub connection_count: u32,
    pub max_members: u32,
    pub min_members: u32,
    pub allow_spectators: bool,
    pub created_at: f64,
    pub version: u64,
}

impl RoomMetadata {
    /// A fresh room at version 1 with the defaults of PROTOCOL.md.
    pub fn new(id: String, created_at: f64) -> Self {
        RoomMetadata {
            id,
            description: None,
            frame_count: 0,
            locked: false,
            hidden: false,
            is_default: false,
            metadata_locked: None,
            presenter_sid: None,
            status: RoomStatus::Waiting,
            host_user_id: None,
            host_name: None,
            member_count: 0,
            spectator_count: 0,
            connection_count: 0,
            max_members: 0,
            min_members: 1,
            allow_spectators: true,
            created_at,
            version: 1,
        }
    }
}

/// One connection present in a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    pub room_id: String,
    pub sid: String,
    pub user_id: String,
    pub user_name: String,
    pub role: Role,
}

/// One chat message; `id` increases within the room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: u64,
    pub room_id: String,
    pub user_id: String,
    pub user_name: String,
    pub text: String,
    pub timestamp: f64,
    pub edited_at: Option<f64>,
}

/// Why a room went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeleteReason {
    Deleted,
    Inactivity,
    Evicted,
}

impl DeleteReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteReason::Deleted => "deleted",
            DeleteReason::Inactivity => "inactivity",
            DeleteReason::Evicted => "evicted",
        }
    }
}
