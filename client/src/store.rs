//! The client's copy of what it follows: rooms kept by the delta rule of
//! `docs/protocol.md` section 3, and each joined room's first page of
//! presence and its recent chat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use app::delta::{Decision, RoomDelta, apply_to};
use app::model::{ChatMessage, Presence, RoomMetadata};
use app::protocol::{JoinRoomReply, PresenceDiff};

#[derive(Default)]
struct State {
    /// By the id the server spells.
    rooms: HashMap<String, RoomMetadata>,
    presence: HashMap<String, Vec<Presence>>,
    chat: HashMap<String, Vec<ChatMessage>>,
}

/// Shared by the socket's task (which writes) and the program (which reads).
#[derive(Clone, Default)]
pub struct Store {
    state: Arc<Mutex<State>>,
}

fn key(id: &str) -> String {
    app::ids::room_key(id)
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A room as last known (ids ignore case).
    pub fn room(&self, id: &str) -> Option<RoomMetadata> {
        let state = self.lock();
        state.rooms.get(id).or_else(|| state.rooms.values().find(|r| r.id.eq_ignore_ascii_case(id))).cloned()
    }

    /// Every room known, in no order.
    pub fn rooms(&self) -> Vec<RoomMetadata> {
        self.lock().rooms.values().cloned().collect()
    }

    /// The first page of a joined room's presence.
    pub fn presence(&self, id: &str) -> Vec<Presence> {
        self.lock().presence.get(&key(id)).cloned().unwrap_or_default()
    }

    /// A joined room's chat since the join (and the history it came with).
    pub fn chat(&self, id: &str) -> Vec<ChatMessage> {
        self.lock().chat.get(&key(id)).cloned().unwrap_or_default()
    }

    /// Applies a delta; `Resync` means the room must be read again.
    pub(crate) fn apply(&self, delta: &RoomDelta) -> Decision {
        apply_to(&mut self.lock().rooms, delta)
    }

    /// Puts a room as read whole (a join's snapshot or a re-sync): it is
    /// the server's state now, whatever version the store held (a server
    /// restarted from storage may count versions from an older one).
    pub(crate) fn put(&self, room: RoomMetadata) {
        self.lock().rooms.insert(room.id.clone(), room);
    }

    /// The whole room list's first page: the rooms are these now (rooms
    /// deleted while disconnected go), the later pages come next.
    pub(crate) fn replace_rooms(&self, rooms: Vec<RoomMetadata>) {
        self.lock().rooms = rooms.into_iter().map(|r| (r.id.clone(), r)).collect();
    }

    /// A room read from a later page of the list, unless a delta (newer)
    /// brought it meanwhile.
    pub(crate) fn put_if_absent(&self, room: RoomMetadata) {
        self.lock().rooms.entry(room.id.clone()).or_insert(room);
    }

    pub(crate) fn remove(&self, id: &str) {
        let mut state = self.lock();
        state.rooms.retain(|_, r| !r.id.eq_ignore_ascii_case(id));
        state.presence.remove(&key(id));
        state.chat.remove(&key(id));
    }

    pub(crate) fn joined(&self, reply: &JoinRoomReply) {
        self.put(reply.room.clone());
        let mut state = self.lock();
        state.presence.insert(key(&reply.room.id), reply.presence.clone());
        state.chat.insert(key(&reply.room.id), reply.chat.clone());
    }

    pub(crate) fn left(&self, id: &str) {
        let mut state = self.lock();
        state.presence.remove(&key(id));
        state.chat.remove(&key(id));
    }

    pub(crate) fn presence_diff(&self, diff: &PresenceDiff) {
        let mut state = self.lock();
        let list = state.presence.entry(key(&diff.room_id)).or_default();
        list.retain(|p| !diff.leaves.contains(&p.sid));
        for p in &diff.joins {
            list.retain(|q| q.sid != p.sid);
            list.push(p.clone());
        }
    }

    pub(crate) fn chat_message(&self, message: &ChatMessage) {
        let mut state = self.lock();
        let list = state.chat.entry(key(&message.room_id)).or_default();
        match list.iter_mut().find(|m| m.id == message.id) {
            Some(known) => *known = message.clone(),
            None => list.push(message.clone()),
        }
    }
}
