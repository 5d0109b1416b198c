//! REST bodies of PROTOCOL.md section 4, shared by the server handlers, the
//! browser and the tests.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ChatMessage, Role, RoomMetadata, RoomStatus};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionRequest {
    pub user_name: String,
}

/// A session as `POST /api/session` returns it (with the token) and as
/// `GET/PATCH /api/session` return it (without).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub user_id: String,
    pub user_name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRoom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_members: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_spectators: Option<bool>,
}

/// `PATCH /api/rooms/{id}`. `description: null` clears the description.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchRoom {
    #[serde(default, deserialize_with = "crate::delta::present", skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_members: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_spectators: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultRoomRequest {
    pub room_id: String,
}

/// The order of the room list: by creation time, then id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RoomSort {
    #[default]
    Oldest,
    Newest,
}

/// Rooms on one page when a query names no `limit`.
pub const DEFAULT_PAGE: u32 = 100;
/// The most rooms one page may hold.
pub const MAX_PAGE: u32 = 500;
/// The longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// A query over the room list: `GET /api/rooms?…` and `join:overview`
/// (section 4.2). Every field is optional; `q` matches the id or the
/// description, ignoring case; `after` is the `next` cursor of the page
/// before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoomQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RoomStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<RoomSort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl RoomQuery {
    /// The query as URL parameters (`q=sea&limit=50`), for `GET /api/rooms`.
    pub fn to_query_string(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut add = |name: &str, value: &str| parts.push(format!("{name}={}", percent_encode(value)));
        if let Some(q) = &self.q {
            add("q", q);
        }
        if let Some(status) = self.status {
            add("status", status.as_str());
        }
        if let Some(hidden) = self.hidden {
            add("hidden", if hidden { "true" } else { "false" });
        }
        if let Some(sort) = self.sort {
            add("sort", if sort == RoomSort::Newest { "newest" } else { "oldest" });
        }
        if let Some(after) = &self.after {
            add("after", after);
        }
        if let Some(limit) = self.limit {
            add("limit", &limit.to_string());
        }
        parts.join("&")
    }
}

/// Escapes everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One page of the room list: the rooms, how many rooms match the query
/// in all, and the cursor of the next page (`None` on the last).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RoomPage {
    pub rooms: Vec<RoomMetadata>,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FramesAppended {
    pub frame_count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FramePage {
    pub frames: Vec<Value>,
    pub offset: u64,
    pub frame_count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChatPage {
    pub messages: Vec<ChatMessage>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
}

/// What `POST /api/match` answers: the room and the seat held in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Matched {
    pub room: RoomMetadata,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_string_escapes_what_a_url_cannot_hold() {
        let q = RoomQuery {
            q: Some("sea & sky/ü".into()),
            status: Some(RoomStatus::Active),
            hidden: Some(false),
            sort: Some(RoomSort::Newest),
            after: None,
            limit: Some(50),
        };
        assert_eq!(q.to_query_string(), "q=sea%20%26%20sky%2F%C3%BC&status=active&hidden=false&sort=newest&limit=50");
        assert_eq!(RoomQuery::default().to_query_string(), "");
    }
}
