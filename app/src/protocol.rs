//! The WebSocket protocol (PROTOCOL.md section 5): the envelope, every client
//! and server event with its payload, and replies. Event names are spelled
//! once, in the serde attributes below.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::api::{RoomPage, RoomQuery};
use crate::delta::RoomDelta;
use crate::error::{ErrorBody, ErrorCode};
use crate::model::{ChatMessage, DeleteReason, Presence, Role, RoomMetadata};

/// An event enum whose wire names are spelled once: each variant's name
/// gives its serde tag, [`name`](ClientEvent::name), the list of every
/// name, and `decode`, which reads a payload by name straight into its
/// type (not through serde's adjacently tagged enum code, which buffers
/// content and is large in the WASM client).
macro_rules! events {
    ($(#[$meta:meta])* pub enum $enum:ident { $($variant:ident($payload:ty) = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(tag = "event", content = "data")]
        pub enum $enum {
            $(#[serde(rename = $wire)] $variant($payload),)*
        }

        impl $enum {
            /// Every event's wire name.
            pub const NAMES: &[&str] = &[$($wire),*];

            /// The wire name of the event, as in the `event` field.
            pub fn name(&self) -> &'static str {
                match self {
                    $($enum::$variant(_) => $wire,)*
                }
            }

            /// An event from its name and its `data` as JSON text.
            pub fn decode(name: &str, data: &str) -> Result<$enum, serde_json::Error> {
                Ok(match name {
                    $($wire => $enum::$variant(serde_json::from_str(data)?),)*
                    other => {
                        let kind = stringify!($enum);
                        return Err(serde::de::Error::custom(format!("unknown {kind} `{other}`")));
                    }
                })
            }
        }
    };
}

/// Channel every room-list viewer joins.
pub const OVERVIEW_CHANNEL: &str = "overview:public";

/// The channel of one room.
pub fn room_channel(room_id: &str) -> String {
    format!("room:{room_id}")
}

/// A payload with no fields (`{}`); unknown fields are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Empty {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoomRef {
    pub room_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JoinRoom {
    pub room_id: String,
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MatchRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
    /// An idempotency key: a retry with the same key joins the room the
    /// first match joined instead of matching again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LockAcquire {
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LockRefresh {
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LockMsg {
    pub room_id: String,
    pub msg: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FrameSet {
    pub room_id: String,
    pub frame: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChatSend {
    pub room_id: String,
    pub text: String,
    /// An idempotency key: a retry with the same key gets the first send's
    /// reply, and the message is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChatEdit {
    pub room_id: String,
    pub message_id: u64,
    pub text: String,
}

/// Presence entries a join reply carries, and a `presence:diff` keeps.
pub const PRESENCE_PAGE: usize = 20;
/// The most presence entries one `presence:page` answers.
pub const MAX_PRESENCE_PAGE: u32 = 500;

/// `presence:page`: entries of a room's presence from `offset` on, in
/// presence order (members before spectators, each longest present first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PresencePageRequest {
    pub room_id: String,
    #[serde(default)]
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PresencePage {
    pub presence: Vec<Presence>,
    pub total: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    Offer,
    Answer,
    Ice,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SignalSend {
    pub room_id: String,
    pub to: String,
    pub kind: SignalKind,
    pub payload: Value,
}

events! {
    /// Every event a client may send.
    pub enum ClientEvent {
        JoinOverview(RoomQuery) = "join:overview",
        LeaveOverview(Empty) = "leave:overview",
        JoinRoom(JoinRoom) = "join:room",
        LeaveRoom(RoomRef) = "leave:room",
        Match(MatchRequest) = "match",
        RoomStart(RoomRef) = "room:start",
        RoomFinish(RoomRef) = "room:finish",
        KeepAlive(RoomRef) = "keep_alive",
        LockAcquire(LockAcquire) = "lock:acquire",
        LockRefresh(LockRefresh) = "lock:refresh",
        LockMsg(LockMsg) = "lock:msg",
        LockRelease(RoomRef) = "lock:release",
        PresenterRequest(RoomRef) = "presenter:request",
        PresenterRelease(RoomRef) = "presenter:release",
        FrameSet(FrameSet) = "frame:set",
        ChatSend(ChatSend) = "chat:send",
        ChatEdit(ChatEdit) = "chat:edit",
        Signal(SignalSend) = "signal",
        PresencePage(PresencePageRequest) = "presence:page",
    }
}

impl ClientEvent {
    /// The room an event is about, for every event but the overview ones and
    /// `match`.
    pub fn room_id(&self) -> Option<&str> {
        match self {
            ClientEvent::JoinOverview(_) | ClientEvent::LeaveOverview(_) | ClientEvent::Match(_) => None,
            ClientEvent::JoinRoom(e) => Some(&e.room_id),
            ClientEvent::LeaveRoom(e)
            | ClientEvent::RoomStart(e)
            | ClientEvent::RoomFinish(e)
            | ClientEvent::KeepAlive(e)
            | ClientEvent::LockRelease(e)
            | ClientEvent::PresenterRequest(e)
            | ClientEvent::PresenterRelease(e) => Some(&e.room_id),
            ClientEvent::LockAcquire(e) => Some(&e.room_id),
            ClientEvent::LockRefresh(e) => Some(&e.room_id),
            ClientEvent::LockMsg(e) => Some(&e.room_id),
            ClientEvent::FrameSet(e) => Some(&e.room_id),
            ClientEvent::ChatSend(e) => Some(&e.room_id),
            ClientEvent::ChatEdit(e) => Some(&e.room_id),
            ClientEvent::Signal(e) => Some(&e.room_id),
            ClientEvent::PresencePage(e) => Some(&e.room_id),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoomDeleted {
    pub room_id: String,
    pub reason: DeleteReason,
}

/// `presence:diff`: how the first page of a room's presence changed since
/// the last diff (at most one per room per presence tick). Apply: drop
/// `leaves`, append `joins`, then order members before spectators.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PresenceDiff {
    pub room_id: String,
    pub joins: Vec<Presence>,
    pub leaves: Vec<String>,
}

/// `overview:window`: rooms that entered or left a windowed overview
/// subscription, how many rooms now match its query, and the cursor after
/// the window's last room while the window is full.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct OverviewWindow {
    pub enter: Vec<RoomMetadata>,
    pub exit: Vec<String>,
    pub total: u64,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FrameUpdate {
    pub room_id: String,
    pub frame: u64,
    pub sid: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChatEvent {
    pub room_id: String,
    pub message: ChatMessage,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SignalRelay {
    pub room_id: String,
    pub from: String,
    pub kind: SignalKind,
    pub payload: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoomWarning {
    pub room_id: String,
    pub seconds_remaining: u64,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoomClosed {
    pub room_id: String,
    pub reason: DeleteReason,
}

/// `error` event: a failed request without `id`, or a frame that could not
/// be read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvent {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerShutdown {
    pub retry_after_ms: u64,
}

events! {
    /// Every event the server pushes (besides replies).
    pub enum ServerEvent {
        RoomUpdate(RoomDelta) = "room:update",
        RoomDelete(RoomDeleted) = "room:delete",
        PresenceDiff(PresenceDiff) = "presence:diff",
        OverviewWindow(OverviewWindow) = "overview:window",
        FrameUpdate(FrameUpdate) = "frame_update",
        ChatMessageNew(ChatEvent) = "chat:message:new",
        ChatMessageUpdated(ChatEvent) = "chat:message:updated",
        Signal(SignalRelay) = "signal",
        RoomWarning(RoomWarning) = "room:warning",
        RoomClosed(RoomClosed) = "room:closed",
        Error(ErrorEvent) = "error",
        ServerShutdown(ServerShutdown) = "server:shutdown",
    }
}

impl ServerEvent {
    /// Serializes the event once, to be shared by every recipient.
    pub fn to_json(&self) -> String {
        // Serializing these plain data types cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The answer to a request that carried an `id`. Its data stays JSON text
/// until the code that asked reads it into the type it expects.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Reply {
    pub event: ReplyTag,
    pub id: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Value>"))]
    pub data: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The constant `"reply"` in a reply's `event` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ReplyTag {
    #[serde(rename = "reply")]
    Reply,
}

impl PartialEq for Reply {
    fn eq(&self, other: &Reply) -> bool {
        self.id == other.id
            && self.ok == other.ok
            && self.data.as_deref().map(RawValue::get) == other.data.as_deref().map(RawValue::get)
            && self.error == other.error
    }
}

impl Reply {
    pub fn ok(id: u64, data: &impl Serialize) -> Reply {
        // Serializing the protocol's plain data types cannot fail.
        let data = serde_json::value::to_raw_value(data).unwrap_or_default();
        Reply { event: ReplyTag::Reply, id, ok: true, data: Some(data), error: None }
    }

    pub fn err(id: u64, error: ErrorBody) -> Reply {
        Reply { event: ReplyTag::Reply, id, ok: false, data: None, error: Some(error) }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Anything the server sends on a socket, as a client decodes it.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    Reply(Reply),
    Event(ServerEvent),
}

impl ServerMessage {
    /// Decodes a server frame. Events are read by name into their payload
    /// type directly (not through serde's adjacently tagged enum code, which
    /// buffers content and is large in the WASM client).
    pub fn decode(text: &str) -> Result<ServerMessage, serde_json::Error> {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            event: &'a str,
            #[serde(borrow, default)]
            data: Option<&'a RawValue>,
        }
        let envelope: Envelope = serde_json::from_str(text)?;
        if envelope.event == "reply" {
            return serde_json::from_str(text).map(ServerMessage::Reply);
        }
        let data = envelope.data.map_or("null", RawValue::get);
        ServerEvent::decode(envelope.event, data).map(ServerMessage::Event)
    }
}

/// The `join:overview` reply: the first page of the query.
pub type JoinOverviewReply = RoomPage;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JoinRoomReply {
    /// The joining connection's own id (an addition to PROTOCOL.md: a
    /// client needs it to know which presence entry and presenter is its own).
    pub sid: String,
    pub room: RoomMetadata,
    pub role: Role,
    /// The first `PRESENCE_PAGE` entries; `connectionCount` has them all.
    pub presence: Vec<Presence>,
    pub frame: Option<u64>,
    pub chat: Vec<ChatMessage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LockReply {
    pub expires_at: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChatReply {
    pub message: ChatMessage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_name_is_spelled_once_and_decodes_to_its_variant() {
        for names in [ClientEvent::NAMES, ServerEvent::NAMES] {
            let unique: std::collections::HashSet<&&str> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{names:?}");
        }
        assert_eq!(ClientEvent::NAMES.len(), 19);
        let join = ClientEvent::decode("join:room", r#"{"roomId":"a"}"#).unwrap();
        assert_eq!(join.name(), "join:room");
        assert_eq!(serde_json::to_value(&join).unwrap()["event"], "join:room", "serde uses the same name");
        let e = ServerEvent::decode("no:such", "{}").unwrap_err();
        assert!(e.to_string().contains("unknown ServerEvent `no:such`"), "{e}");
    }

    #[test]
    fn server_events_use_wire_names() {
        let ev = ServerEvent::RoomDelete(RoomDeleted { room_id: "a".into(), reason: DeleteReason::Evicted });
        assert_eq!(ev.to_json(), r#"{"event":"room:delete","data":{"roomId":"a","reason":"evicted"}}"#);
        let decoded = ServerMessage::decode(&ev.to_json()).unwrap();
        assert_eq!(decoded, ServerMessage::Event(ev));

        let reply = Reply::err(7, ErrorBody::new(ErrorCode::NotFound, "no room ROOM-7KQ2MX"));
        assert_eq!(
            reply.to_json(),
            r#"{"event":"reply","id":7,"ok":false,"error":{"code":"not_found","message":"no room ROOM-7KQ2MX"}}"#
        );
        assert_eq!(ServerMessage::decode(&reply.to_json()).unwrap(), ServerMessage::Reply(reply));
    }

    #[test]
    fn the_client_decoder_knows_every_server_event_by_its_serde_name() {
        let chat = r#"{"roomId":"a","message":{"id":1,"roomId":"a","userId":"u","userName":"n","text":"hi","timestamp":1.5,"editedAt":null}}"#;
        let samples = [
            r#"{"event":"room:update","data":{"roomId":"a","version":2,"base":1,"description":"d"}}"#.to_string(),
            r#"{"event":"room:delete","data":{"roomId":"a","reason":"deleted"}}"#.to_string(),
            r#"{"event":"presence:diff","data":{"roomId":"a","joins":[{"roomId":"a","sid":"s","userId":"u","userName":"n","role":"member"}],"leaves":["t"]}}"#
                .to_string(),
            r#"{"event":"overview:window","data":{"enter":[],"exit":["a"],"total":3}}"#.to_string(),
            r#"{"event":"frame_update","data":{"roomId":"a","frame":3,"sid":"s"}}"#.to_string(),
            format!(r#"{{"event":"chat:message:new","data":{chat}}}"#),
            format!(r#"{{"event":"chat:message:updated","data":{chat}}}"#),
            r#"{"event":"signal","data":{"roomId":"a","from":"s","kind":"ice","payload":{"x":1}}}"#.to_string(),
            r#"{"event":"room:warning","data":{"roomId":"a","secondsRemaining":60,"message":"m"}}"#.to_string(),
            r#"{"event":"room:closed","data":{"roomId":"a","reason":"inactivity"}}"#.to_string(),
            r#"{"event":"error","data":{"code":"bad_request","message":"m"}}"#.to_string(),
            r#"{"event":"server:shutdown","data":{"retryAfterMs":1000}}"#.to_string(),
        ];
        for text in &samples {
            let by_serde: ServerEvent = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let by_name = ServerMessage::decode(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(by_name, ServerMessage::Event(by_serde.clone()), "{text}");
            assert_eq!(ServerMessage::decode(&by_serde.to_json()).unwrap(), by_name);
        }
        assert!(ServerMessage::decode(r#"{"event":"nope","data":{}}"#).is_err());
        assert!(ServerMessage::decode(r#"{"event":"room:delete","data":{"roomId":1}}"#).is_err());
    }
}
