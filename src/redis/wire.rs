//! The form of a message between servers: one line of JSON (the header)
//! then, after a newline, the raw payload bytes (an already serialized
//! client frame, passed on untouched). serde_json never writes a raw
//! newline, so the first newline ends the header.

use app::model::RoomMetadata;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::engine::command::{Command, Outcome};
use crate::engine::errors::EngineError;

/// On the overview channel: what every server's room list needs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum OverviewMsg {
    /// A room's state after a change; the payload is its delta.
    Upsert { origin: String, meta: Box<RoomMetadata> },
    /// A room went away; the payload is its `room:delete`.
    Remove { origin: String, key: String },
    /// Marks a point in the channel (see `Cluster::barrier`).
    Barrier { origin: String, nonce: u64 },
}

/// On a room channel: an event for the room's connections on other
/// servers; the payload is the frame to deliver.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMsg {
    pub room: String,
    /// Every connection in the room but this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<String>,
    /// Only this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `to` was admitted: deliver the room's events to it from now on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admit: bool,
    /// The room is gone: forget its connections.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
}

/// On a server's own channel: requests for rooms it owns, and replies.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum NodeMsg {
    Request { id: u64, from: String, room: String, cmd: Box<Command> },
    Reply { id: u64, result: Result<Outcome, EngineError> },
}

pub fn encode<H: Serialize>(header: &H, payload: &[u8]) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).unwrap_or_default();
    out.reserve(payload.len() + 1);
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

/// Splits a message into its header and payload.
pub fn decode<H: for<'de> Deserialize<'de>>(raw: &[u8]) -> Option<(H, Bytes)> {
    let at = raw.iter().position(|b| *b == b'\n')?;
    let header = serde_json::from_slice(&raw[..at]).ok()?;
    Some((header, Bytes::copy_from_slice(&raw[at + 1..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_payload_round_trip() {
        let msg = RoomMsg { room: "abc".into(), skip: Some("c_1\nx".into()), ..Default::default() };
        let raw = encode(&msg, b"{\"event\":\"x\"}\n");
        let (back, payload): (RoomMsg, Bytes) = decode(&raw).expect("decodes");
        assert_eq!(back.room, "abc");
        assert_eq!(back.skip.as_deref(), Some("c_1\nx"));
        assert_eq!(&payload[..], b"{\"event\":\"x\"}\n");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(decode::<RoomMsg>(b"no newline").is_none());
        assert!(decode::<RoomMsg>(b"{not json}\npayload").is_none());
    }
}
