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

/// Channel every room-list viewer joins.
pub const OVERVIEW_CHANNEL: &str = "overview:public";

/// The channel of one room.
pub fn room_channel(room_id: &str) -> String {
    format!("room:{room_id}")
}

/// A payload with no fields (`{}`); unknown fields are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRef {
    pub room_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRoom {
    pub room_id: String,
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockAcquire {
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRefresh {
    pub room_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockMsg {
    pub room_id: String,
    pub msg: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameSet {
    pub room_id: String,
    pub frame: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSend {
    pub room_id: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[serde(rename_all = "camelCase")]
pub struct PresencePageRequest {
    pub room_id: String,
    #[serde(default)]
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresencePage {
    pub presence: Vec<Presence>,
    pub total: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    Offer,
    Answer,
    Ice,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalSend {
    pub room_id: String,
    pub to: String,
    pub kind: SignalKind,
    pub payload: Value,
}

/// Every event a client may send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data")]
pub enum ClientEvent {
    #[serde(rename = "join:overview")]
    JoinOverview(RoomQuery),
    #[serde(rename = "leave:overview")]
    LeaveOverview(Empty),
    #[serde(rename = "join:room")]
    JoinRoom(JoinRoom),
    #[serde(rename = "leave:room")]
    LeaveRoom(RoomRef),
    #[serde(rename = "match")]
    Match(MatchRequest),
    #[serde(rename = "room:start")]
    RoomStart(RoomRef),
    #[serde(rename = "room:finish")]
    RoomFinish(RoomRef),
    #[serde(rename = "keep_alive")]
    KeepAlive(RoomRef),
    #[serde(rename = "lock:acquire")]
    LockAcquire(LockAcquire),
    #[serde(rename = "lock:refresh")]
    LockRefresh(LockRefresh),
    #[serde(rename = "lock:msg")]
    LockMsg(LockMsg),
    #[serde(rename = "lock:release")]
    LockRelease(RoomRef),
    #[serde(rename = "presenter:request")]
    PresenterRequest(RoomRef),
    #[serde(rename = "presenter:release")]
    PresenterRelease(RoomRef),
    #[serde(rename = "frame:set")]
    FrameSet(FrameSet),
    #[serde(rename = "chat:send")]
    ChatSend(ChatSend),
    #[serde(rename = "chat:edit")]
    ChatEdit(ChatEdit),
    #[serde(rename = "signal")]
    Signal(SignalSend),
    #[serde(rename = "presence:page")]
    PresencePage(PresencePageRequest),
}

impl ClientEvent {
    /// The wire name of the event, as in the `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            ClientEvent::JoinOverview(_) => "join:overview",
            ClientEvent::LeaveOverview(_) => "leave:overview",
            ClientEvent::JoinRoom(_) => "join:room",
            ClientEvent::LeaveRoom(_) => "leave:room",
            ClientEvent::Match(_) => "match",
            ClientEvent::RoomStart(_) => "room:start",
            ClientEvent::RoomFinish(_) => "room:finish",
            ClientEvent::KeepAlive(_) => "keep_alive",
            ClientEvent::LockAcquire(_) => "lock:acquire",
            ClientEvent::LockRefresh(_) => "lock:refresh",
            ClientEvent::LockMsg(_) => "lock:msg",
            ClientEvent::LockRelease(_) => "lock:release",
            ClientEvent::PresenterRequest(_) => "presenter:request",
            ClientEvent::PresenterRelease(_) => "presenter:release",
            ClientEvent::FrameSet(_) => "frame:set",
            ClientEvent::ChatSend(_) => "chat:send",
            ClientEvent::ChatEdit(_) => "chat:edit",
            ClientEvent::Signal(_) => "signal",
            ClientEvent::PresencePage(_) => "presence:page",
        }
    }

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
#[serde(rename_all = "camelCase")]
pub struct RoomDeleted {
    pub room_id: String,
    pub reason: DeleteReason,
}

/// `presence:diff`: how the first page of a room's presence changed since
/// the last diff (at most one per room per presence tick). Apply: drop
/// `leaves`, append `joins`, then order members before spectators.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[serde(rename_all = "camelCase")]
pub struct OverviewWindow {
    pub enter: Vec<RoomMetadata>,
    pub exit: Vec<String>,
    pub total: u64,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameUpdate {
    pub room_id: String,
    pub frame: u64,
    pub sid: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatEvent {
    pub room_id: String,
    pub message: ChatMessage,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalRelay {
    pub room_id: String,
    pub from: String,
    pub kind: SignalKind,
    pub payload: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomWarning {
    pub room_id: String,
    pub seconds_remaining: u64,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomClosed {
    pub room_id: String,
    pub reason: DeleteReason,
}

/// `error` event: a failed request without `id`, or a frame that could not
/// be read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[serde(rename_all = "camelCase")]
pub struct ServerShutdown {
    pub retry_after_ms: u64,
}

/// Every event the server pushes (besides replies).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data")]
pub enum ServerEvent {
    #[serde(rename = "room:update")]
    RoomUpdate(RoomDelta),
    #[serde(rename = "room:delete")]
    RoomDelete(RoomDeleted),
    #[serde(rename = "presence:diff")]
    PresenceDiff(PresenceDiff),
    #[serde(rename = "overview:window")]
    OverviewWindow(OverviewWindow),
    #[serde(rename = "frame_update")]
    FrameUpdate(FrameUpdate),
    #[serde(rename = "chat:message:new")]
    ChatMessageNew(ChatEvent),
    #[serde(rename = "chat:message:updated")]
    ChatMessageUpdated(ChatEvent),
    #[serde(rename = "signal")]
    Signal(SignalRelay),
    #[serde(rename = "room:warning")]
    RoomWarning(RoomWarning),
    #[serde(rename = "room:closed")]
    RoomClosed(RoomClosed),
    #[serde(rename = "error")]
    Error(ErrorEvent),
    #[serde(rename = "server:shutdown")]
    ServerShutdown(ServerShutdown),
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
pub struct Reply {
    pub event: ReplyTag,
    pub id: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The constant `"reply"` in a reply's `event` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl ServerEvent {
    /// An event from its name and its `data` as JSON text.
    pub fn decode(name: &str, data: &str) -> Result<ServerEvent, serde_json::Error> {
        use serde_json::from_str as read;
        Ok(match name {
            "room:update" => ServerEvent::RoomUpdate(read(data)?),
            "room:delete" => ServerEvent::RoomDelete(read(data)?),
            "presence:diff" => ServerEvent::PresenceDiff(read(data)?),
            "overview:window" => ServerEvent::OverviewWindow(read(data)?),
            "frame_update" => ServerEvent::FrameUpdate(read(data)?),
            "chat:message:new" => ServerEvent::ChatMessageNew(read(data)?),
            "chat:message:updated" => ServerEvent::ChatMessageUpdated(read(data)?),
            "signal" => ServerEvent::Signal(read(data)?),
            "room:warning" => ServerEvent::RoomWarning(read(data)?),
            "room:closed" => ServerEvent::RoomClosed(read(data)?),
            "error" => ServerEvent::Error(read(data)?),
            "server:shutdown" => ServerEvent::ServerShutdown(read(data)?),
            other => return Err(serde::de::Error::custom(format!("unknown server event `{other}`"))),
        })
    }
}

/// The `join:overview` reply: the first page of the query.
pub type JoinOverviewReply = RoomPage;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[serde(rename_all = "camelCase")]
pub struct LockReply {
    pub expires_at: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatReply {
    pub message: ChatMessage,
}

#[cfg(test)]
mod tests {
    use super::*;

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
