//! This server's connections in rooms another server owns. The owner
//! publishes each room event once through the broker; it arrives here and
//! is queued on every local connection of the room. The first connection
//! of a room here subscribes to the room's events, the last one out
//! unsubscribes.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::Mutex;

use super::broker::{Broker, BrokerResult, RoomEvent, Target};
use super::connection::{Connection, Frame};

struct EdgeConn {
    conn: Arc<Connection>,
    /// Set once the owner admitted the connection (its join reply is
    /// queued); room events reach it only from then on.
    admitted: bool,
}

#[derive(Default)]
pub struct Edge {
    rooms: DashMap<String, HashMap<Arc<str>, EdgeConn>>,
    /// Held while a room's subscription changes, so that a join and the
    /// last leave of a room never cross.
    subscribing: Mutex<()>,
}

impl Edge {
    /// Registers a connection before it joins a room owned elsewhere, so
    /// that no event after its join reply is missed.
    pub async fn join(&self, broker: &dyn Broker, key: &str, conn: Arc<Connection>) -> BrokerResult<()> {
        let _lock = self.subscribing.lock().await;
        let sid = conn.sid.clone();
        if self.add(key, conn)
            && let Err(e) = broker.subscribe(key).await
        {
            self.remove(key, &sid);
            return Err(e);
        }
        Ok(())
    }

    /// Takes a connection out; the room's last one here unsubscribes.
    pub async fn leave(&self, broker: &dyn Broker, key: &str, sid: &str) {
        let _lock = self.subscribing.lock().await;
        if self.remove(key, sid) {
            broker.unsubscribe(key).await;
        }
    }

    /// Whether a connection of this server is in the room.
    pub fn holds(&self, key: &str, sid: &str) -> bool {
        self.rooms.get(key).is_some_and(|room| room.contains_key(sid))
    }

    /// Every connection of this server in the room.
    pub fn connections(&self, key: &str) -> Vec<Arc<Connection>> {
        self.rooms.get(key).map(|room| room.values().map(|c| c.conn.clone()).collect()).unwrap_or_default()
    }

    /// Queues a room event from its owner; a room's end forgets the room
    /// and unsubscribes. Returns how many connections took the event.
    pub async fn on_event(&self, broker: &dyn Broker, event: RoomEvent) -> u64 {
        if event.to == Target::End {
            let _lock = self.subscribing.lock().await;
            // Joins register under the same lock, so nothing re-added it.
            if self.end(&event.room) {
                broker.unsubscribe(&event.room).await;
            }
            return 0;
        }
        self.deliver(&event.room, &event.to, &event.payload)
    }

    /// Adds a connection; true when it is the room's first here (the
    /// caller subscribes to the room's channel).
    fn add(&self, key: &str, conn: Arc<Connection>) -> bool {
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
    fn remove(&self, key: &str, sid: &str) -> bool {
        let Some(mut room) = self.rooms.get_mut(key) else { return false };
        if room.remove(sid).is_none() {
            return false;
        }
        let empty = room.is_empty();
        drop(room);
        empty && self.rooms.remove_if(key, |_, r| r.is_empty()).is_some()
    }

    /// Forgets a room that was deleted; true when it had connections here.
    fn end(&self, key: &str) -> bool {
        self.rooms.remove(key).is_some()
    }

    /// Queues a room event on the room's local connections; returns how
    /// many took it.
    fn deliver(&self, key: &str, to: &Target, payload: &Frame) -> u64 {
        let Some(mut room) = self.rooms.get_mut(key) else { return 0 };
        let skip = match to {
            Target::One { sid, admit } => {
                let Some(c) = room.get_mut(sid.as_str()) else { return 0 };
                if *admit {
                    // The join reply: the connection's own, never "slow".
                    c.admitted = true;
                    return u64::from(!payload.is_empty() && c.conn.out.reply(payload));
                }
                return u64::from(!payload.is_empty() && c.conn.out.send(payload));
            }
            Target::All { skip } => skip.as_deref(),
            Target::End => return 0,
        };
        if payload.is_empty() {
            return 0;
        }
        // A delta is merged on a lagging connection, like the owner's own.
        let latest: Option<Arc<str>> = payload.starts_with(br#"{"event":"room:update""#).then(|| key.into());
        let mut sent = 0;
        for (sid, c) in room.iter() {
            if !c.admitted || skip == Some(&**sid) {
                continue;
            }
            let took = match &latest {
                Some(room) => c.conn.out.send_latest(room, payload),
                None => c.conn.out.send(payload),
            };
            sent += u64::from(took);
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connection::{OutboundReceiver, User, outbound};
    use bytes::Bytes;

    fn conn(sid: &str) -> (Arc<Connection>, OutboundReceiver) {
        let (out, rx) = outbound(16, 1 << 20);
        let user = User { id: format!("u-{sid}").into(), name: sid.into() };
        (Arc::new(Connection { sid: sid.into(), user, out }), rx)
    }

    fn all() -> Target {
        Target::All { skip: None }
    }

    fn one(sid: &str) -> Target {
        Target::One { sid: sid.into(), admit: true }
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
        assert_eq!(edge.deliver("r", &all(), &payload), 0);
        // The join reply admits `a` and is delivered to it alone.
        assert_eq!(edge.deliver("r", &one("a"), &Bytes::from_static(b"reply")), 1);
        assert_eq!(a_rx.rx.try_recv().as_deref(), Some(&b"reply"[..]));
        assert!(b_rx.rx.try_recv().is_none());
        // An empty admission delivers nothing but admits.
        assert_eq!(edge.deliver("r", &one("b"), &Bytes::new()), 0);

        let skip_a = Target::All { skip: Some("a".into()) };
        assert_eq!(edge.deliver("r", &skip_a, &payload), 1);
        assert!(a_rx.rx.try_recv().is_none());
        assert_eq!(b_rx.rx.try_recv(), Some(payload.clone()));
        assert_eq!(edge.deliver("other", &all(), &payload), 0);
        // A room's end carries no frame: nobody gets an empty message.
        assert_eq!(edge.deliver("r", &Target::End, &Bytes::new()), 0);
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
