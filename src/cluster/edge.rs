//! This server's connections in rooms another server owns. The owner sends
//! each room event once to the room's channel; the listener hands it here
//! and it is queued on every local connection of the room.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;

use super::wire::RoomMsg;
use crate::engine::connection::Connection;

struct EdgeConn {
    conn: Arc<Connection>,
    /// Set once the owner admitted the connection (its join reply is
    /// queued); room events reach it only from then on.
    admitted: bool,
}

#[derive(Default)]
pub struct Edge {
    rooms: DashMap<String, HashMap<Arc<str>, EdgeConn>>,
}

impl Edge {
    /// Adds a connection; true when it is the room's first here (the
    /// caller subscribes to the room's channel).
    pub fn add(&self, key: &str, conn: Arc<Connection>) -> bool {
        let mut first = false;
        let mut room = self.rooms.entry(key.to_string()).or_insert_with(|| {
            first = true;
            HashMap::new()
        });
        room.insert(conn.sid.clone(), EdgeConn { conn, admitted: false });
        first
    }

    /// Removes a connection; true when the room has none left here (the
    /// caller unsubscribes).
    pub fn remove(&self, key: &str, sid: &str) -> bool {
        let Some(mut room) = self.rooms.get_mut(key) else { return false };
        if room.remove(sid).is_none() {
            return false;
        }
        let empty = room.is_empty();
        drop(room);
        empty && self.rooms.remove_if(key, |_, r| r.is_empty()).is_some()
    }

    /// Forgets a room that was deleted; true when it had connections here.
    pub fn end(&self, key: &str) -> bool {
        self.rooms.remove(key).is_some()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.rooms.contains_key(key)
    }

    /// Queues a room event on the room's local connections; returns how
    /// many took it.
    pub fn deliver(&self, msg: &RoomMsg, payload: &Bytes) -> u64 {
        let Some(mut room) = self.rooms.get_mut(&msg.room) else { return 0 };
        if let Some(to) = &msg.to {
            let Some(c) = room.get_mut(to.as_str()) else { return 0 };
            if msg.admit {
                c.admitted = true;
            }
            return u64::from(!payload.is_empty() && c.conn.out.send(payload));
        }
        let mut sent = 0;
        for (sid, c) in room.iter() {
            if c.admitted && msg.skip.as_deref() != Some(&**sid) && c.conn.out.send(payload) {
                sent += 1;
            }
        }
        sent
    }
}
