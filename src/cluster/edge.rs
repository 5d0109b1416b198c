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
        // Control messages (a room's end) carry no frame.
        if payload.is_empty() {
            return 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connection::{OutboundReceiver, User, outbound};

    fn conn(sid: &str) -> (Arc<Connection>, OutboundReceiver) {
        let (out, rx) = outbound(16, 1 << 20);
        let user = User { id: format!("u-{sid}").into(), name: sid.into() };
        (Arc::new(Connection { sid: sid.into(), user, out }), rx)
    }

    fn to_room(room: &str) -> RoomMsg {
        RoomMsg { room: room.into(), ..Default::default() }
    }

    #[test]
    fn events_reach_admitted_connections_but_the_skipped_one() {
        let edge = Edge::default();
        let (a, mut a_rx) = conn("a");
        let (b, mut b_rx) = conn("b");
        assert!(edge.add("r", a), "first connection of the room subscribes");
        assert!(!edge.add("r", b));
        let payload = Bytes::from_static(b"{\"event\":\"x\"}");

        // Not admitted yet: nothing is delivered.
        assert_eq!(edge.deliver(&to_room("r"), &payload), 0);
        // The join reply admits `a` and is delivered to it alone.
        let admit = RoomMsg { to: Some("a".into()), admit: true, ..to_room("r") };
        assert_eq!(edge.deliver(&admit, &Bytes::from_static(b"reply")), 1);
        assert_eq!(a_rx.rx.try_recv().as_deref(), Some(&b"reply"[..]));
        assert!(b_rx.rx.try_recv().is_none());
        // An empty admission delivers nothing but admits.
        let admit_b = RoomMsg { to: Some("b".into()), admit: true, ..to_room("r") };
        assert_eq!(edge.deliver(&admit_b, &Bytes::new()), 0);

        let skip_a = RoomMsg { skip: Some("a".into()), ..to_room("r") };
        assert_eq!(edge.deliver(&skip_a, &payload), 1);
        assert!(a_rx.rx.try_recv().is_none());
        assert_eq!(b_rx.rx.try_recv(), Some(payload.clone()));
        assert_eq!(edge.deliver(&to_room("other"), &payload), 0);
        // A room's end carries no frame: nobody gets an empty message.
        let end = RoomMsg { end: true, ..to_room("r") };
        assert_eq!(edge.deliver(&end, &Bytes::new()), 0);
        assert!(a_rx.rx.try_recv().is_none());
        assert!(b_rx.rx.try_recv().is_none());
    }

    #[test]
    fn the_last_connection_out_unsubscribes_and_an_ended_room_is_forgotten() {
        let edge = Edge::default();
        let (a, _a_rx) = conn("a");
        let (b, _b_rx) = conn("b");
        edge.add("r", a);
        edge.add("r", b);
        assert!(!edge.remove("r", "a"));
        assert!(!edge.remove("r", "unknown"));
        assert!(edge.remove("r", "b"), "the room is empty here now");
        assert!(!edge.end("r"), "an emptied room is no longer held");
        let (c, _c_rx) = conn("c");
        edge.add("s", c);
        assert!(edge.end("s"));
        assert!(!edge.end("s"));
    }
}
