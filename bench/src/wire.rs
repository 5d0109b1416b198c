//! The protocol messages the load tool sends, built from the shared types
//! (`app::protocol`) rather than spelled by hand; the tool only reads
//! replies and events by their leading bytes, to stay cheap per message.

use roomcast_client::app::api::RoomQuery;
use roomcast_client::app::model::Role;
use roomcast_client::app::protocol::{ChatSend, ClientEvent, JoinRoom, LockAcquire, LockMsg, RoomRef};
use roomcast_client::app::request::Request;

/// A request frame: the event and its id (`None`: no reply wanted).
pub fn frame(event: ClientEvent, id: Option<u64>) -> String {
    serde_json::to_string(&Request { event, id }).unwrap_or_default()
}

pub fn join_room(room_id: &str, role: Option<Role>) -> ClientEvent {
    ClientEvent::JoinRoom(JoinRoom { room_id: room_id.to_string(), role })
}

pub fn leave_room(room_id: &str) -> ClientEvent {
    ClientEvent::LeaveRoom(RoomRef { room_id: room_id.to_string() })
}

pub fn join_overview(query: RoomQuery) -> ClientEvent {
    ClientEvent::JoinOverview(query)
}

pub fn lock(room_id: &str, msg: &str, ttl_seconds: u32) -> ClientEvent {
    ClientEvent::LockAcquire(LockAcquire {
        room_id: room_id.to_string(),
        msg: Some(msg.to_string()),
        ttl_seconds: Some(ttl_seconds),
    })
}

pub fn lock_msg(room_id: &str, msg: &str) -> ClientEvent {
    ClientEvent::LockMsg(LockMsg { room_id: room_id.to_string(), msg: msg.to_string() })
}

pub fn chat(room_id: &str, text: &str) -> ClientEvent {
    ClientEvent::ChatSend(ChatSend { room_id: room_id.to_string(), text: text.to_string(), key: None })
}
