//! The client store: every room this tab knows, each in its own signal so a
//! delta re-renders only what reads that room. Deltas are applied with the
//! shared delta rule (`crate::delta::decide`).

use std::collections::HashMap;

use leptos::prelude::*;

use super::window::RoomWindow;
use crate::api::{RoomPage, RoomSort, SessionInfo};
use crate::delta::{Decision, RoomDelta, decide};
use crate::error::ErrorBody;
use crate::ids::room_key;
use crate::model::{ChatMessage, DeleteReason, Presence, Role, RoomMetadata};
use crate::protocol::{OverviewWindow, PresenceDiff};

/// An idle warning: the room closes at `until_ms` (browser clock, ms).
#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    pub key: String,
    pub until_ms: f64,
    pub message: String,
}

/// A room's removal, as a room page sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    pub key: String,
    pub reason: DeleteReason,
}

#[derive(Clone, Copy)]
pub struct Store {
    /// Rooms by key (lower-case id). The map signal changes only when a room
    /// appears or goes; each room's signal changes with its deltas.
    rooms: RwSignal<HashMap<String, ArcRwSignal<RoomMetadata>>>,
    /// Whether an `overview:public` snapshot has been applied.
    overview_synced: RwSignal<bool>,
    /// The room list's window: which rooms, in which order, of how many.
    pub window: RoomWindow,
    /// Presence of the rooms this tab is in, by room key.
    presence: RwSignal<HashMap<String, Vec<Presence>>>,
    /// Chat of the rooms this tab is in, oldest first, by room key.
    chat: RwSignal<HashMap<String, Vec<ChatMessage>>>,
    /// The presenter's shared frame, by room key.
    shared_frame: RwSignal<HashMap<String, u64>>,
    /// This tab's connection id in each room it joined.
    my_sid: RwSignal<HashMap<String, String>>,
    /// Why joining a room failed (full, rate limited, …), by room key.
    join_errors: RwSignal<HashMap<String, ErrorBody>>,
    /// The current idle warning, if any.
    pub warning: RwSignal<Option<Warning>>,
    /// The last room that went away, for the page showing it.
    pub removed: RwSignal<Option<Removal>>,
    /// A one-line message for the room list ("Room X was deleted").
    pub notice: RwSignal<Option<String>>,
    /// This tab's user.
    pub session: RwSignal<Option<SessionInfo>>,
}

pub fn use_store() -> Store {
    expect_context::<Store>()
}

impl Store {
    pub fn new(session: Option<SessionInfo>) -> Self {
        Store {
            rooms: RwSignal::new(HashMap::new()),
            overview_synced: RwSignal::new(false),
            window: RoomWindow::new(),
            presence: RwSignal::new(HashMap::new()),
            chat: RwSignal::new(HashMap::new()),
            shared_frame: RwSignal::new(HashMap::new()),
            my_sid: RwSignal::new(HashMap::new()),
            join_errors: RwSignal::new(HashMap::new()),
            warning: RwSignal::new(None),
            removed: RwSignal::new(None),
            notice: RwSignal::new(None),
            session: RwSignal::new(session),
        }
    }

    /// The room's signal, if the store knows the room (tracks arrivals and
    /// removals, not the room's fields).
    pub fn room(&self, id: &str) -> Option<ArcRwSignal<RoomMetadata>> {
        self.rooms.with(|m| m.get(&room_key(id)).cloned())
    }

    /// The rooms of the room list's window, in its order.
    pub fn window_keys(&self) -> Vec<String> {
        self.window.keys.get()
    }

    fn insert(&self, room: RoomMetadata) {
        let key = room_key(&room.id);
        let existing = self.rooms.with_untracked(|m| m.get(&key).cloned());
        match existing {
            Some(sig) => sig.set(room),
            None => self.rooms.update(|m| {
                m.insert(key, ArcRwSignal::new(room));
            }),
        }
    }

    /// Applies one `room:update` with the delta rule. On `Resync` nothing
    /// changes and the caller fetches the room.
    pub fn apply_delta(&self, delta: &RoomDelta) -> Decision {
        let key = room_key(&delta.room_id);
        let existing = self.rooms.with_untracked(|m| m.get(&key).cloned());
        let local = existing.as_ref().map(|r| r.with_untracked(|r| r.version));
        let decision = decide(local, delta);
        match decision {
            Decision::Apply => {
                if let Some(sig) = existing {
                    sig.update(|room| delta.apply_fields(room));
                }
            }
            Decision::Create => match delta.to_metadata() {
                Some(room) => self.insert(room),
                None => return Decision::Resync,
            },
            Decision::Ignore | Decision::Resync => {}
        }
        decision
    }

    /// Takes the first page of the room list's window (a `join:overview`
    /// reply), replacing the window.
    pub fn replace_window(&self, page: RoomPage, sort: RoomSort) {
        self.take_page(page, sort);
        self.overview_synced.set(true);
    }

    fn take_page(&self, page: RoomPage, sort: RoomSort) {
        let keys: Vec<String> = page.rooms.iter().map(|r| room_key(&r.id)).collect();
        let gone: Vec<String> =
            self.window.keys.with_untracked(|k| k.iter().filter(|k| !keys.contains(k)).cloned().collect());
        for room in page.rooms {
            self.insert(room);
        }
        self.window.replace(keys, page.total, page.next, sort);
        for key in gone {
            self.forget_unless_joined(&key);
        }
    }

    /// Applies an `overview:window` event: rooms entering and leaving the
    /// window, and the new total.
    pub fn apply_window(&self, event: OverviewWindow) {
        let entering: Vec<(String, (bool, f64))> =
            event.enter.iter().map(|r| (room_key(&r.id), (r.is_default, r.created_at))).collect();
        let entering_keys: Vec<String> = entering.iter().map(|(k, _)| k.clone()).collect();
        for room in event.enter {
            self.insert(room);
        }
        let exits: Vec<String> = event.exit.iter().map(|id| room_key(id)).collect();
        let rooms = self.rooms;
        let place = move |key: &str| {
            entering.iter().find(|(k, _)| k == key).map(|(_, place)| *place).unwrap_or_else(|| {
                let known =
                    rooms.with_untracked(|m| m.get(key).map(|r| r.with_untracked(|r| (r.is_default, r.created_at))));
                known.unwrap_or((false, 0.0))
            })
        };
        self.window.change(&exits, entering_keys, event.total, event.next, place);
        for key in exits {
            self.forget_unless_joined(&key);
        }
    }

    /// Drops a room that left the window, unless a page of this tab is in it.
    fn forget_unless_joined(&self, key: &str) {
        let joined = self.my_sid.with_untracked(|m| m.contains_key(key));
        let listed = self.window.keys.with_untracked(|k| k.iter().any(|k| k == key));
        if !joined && !listed {
            self.rooms.update(|m| {
                m.remove(key);
            });
        }
    }

    /// Takes the authoritative state of one room (a join reply or a fetch).
    pub fn replace_room(&self, room: RoomMetadata) {
        self.insert(room);
    }

    /// Takes the first page rendered by the server (or fetched), unless the
    /// live overview has already replaced it.
    pub fn seed(&self, page: RoomPage, sort: RoomSort) {
        if !self.overview_synced.get_untracked() {
            self.take_page(page, sort);
        }
    }

    /// Takes one room rendered by the server if it is newer than ours.
    pub fn seed_room(&self, room: RoomMetadata) {
        let newer = self.room_untracked(&room.id).is_none_or(|r| r.with_untracked(|r| r.version) < room.version);
        if newer {
            self.insert(room);
        }
    }

    fn room_untracked(&self, id: &str) -> Option<ArcRwSignal<RoomMetadata>> {
        self.rooms.with_untracked(|m| m.get(&room_key(id)).cloned())
    }

    /// Drops a room (`room:delete`, or a re-sync that found it gone). A room
    /// the store never knew is not reported as removed.
    pub fn remove(&self, id: &str, reason: DeleteReason) {
        let key = room_key(id);
        if !self.rooms.with_untracked(|m| m.contains_key(&key)) {
            return;
        }
        self.rooms.update(|m| {
            m.remove(&key);
        });
        self.presence.update(|p| {
            p.remove(&key);
        });
        self.window.drop_key(&key);
        self.removed.set(Some(Removal { key, reason }));
    }

    /// Presence of a room, in join order.
    pub fn presence(&self, id: &str) -> Vec<Presence> {
        self.presence.with(|p| p.get(&room_key(id)).cloned().unwrap_or_default())
    }

    pub fn set_presence(&self, id: &str, list: Vec<Presence>) {
        self.presence.update(|p| {
            p.insert(room_key(id), list);
        });
    }

    /// How many connections of a room's presence the store holds.
    pub fn presence_len(&self, id: &str) -> usize {
        self.presence.with(|p| p.get(&room_key(id)).map_or(0, Vec::len))
    }

    /// Applies a `presence:diff` to the first page of a room's presence:
    /// leaves go, joins are appended, members stay before spectators.
    pub fn presence_diff(&self, diff: PresenceDiff) {
        self.presence.update(|p| {
            let Some(list) = p.get_mut(&room_key(&diff.room_id)) else { return };
            list.retain(|x| !diff.leaves.contains(&x.sid) && !diff.joins.iter().any(|j| j.sid == x.sid));
            list.extend(diff.joins);
            list.sort_by_key(|x| x.role == Role::Spectator);
        });
    }

    /// Forgets the live state of a room this tab left.
    pub fn forget_room_state(&self, id: &str) {
        let key = room_key(id);
        self.presence.update(|p| {
            p.remove(&key);
        });
        self.chat.update(|c| {
            c.remove(&key);
        });
        self.my_sid.update(|m| {
            m.remove(&key);
        });
        if self.warning.with_untracked(|w| w.as_ref().is_some_and(|w| w.key == key)) {
            self.warning.set(None);
        }
    }

    /// Takes a `join:room` reply: who is there, the chat, the shared frame
    /// and this tab's own connection id.
    pub fn joined(
        &self,
        sid: String,
        presence: Vec<Presence>,
        chat: Vec<ChatMessage>,
        frame: Option<u64>,
        room: RoomMetadata,
    ) {
        let key = room_key(&room.id);
        self.set_presence(&room.id, presence);
        self.chat.update(|c| {
            c.insert(key.clone(), chat);
        });
        self.shared_frame.update(|f| match frame {
            Some(n) => {
                f.insert(key.clone(), n);
            }
            None => {
                f.remove(&key);
            }
        });
        self.my_sid.update(|m| {
            m.insert(key, sid);
        });
        self.replace_room(room);
    }

    /// Why this tab could not join the room, if it could not.
    pub fn join_error(&self, id: &str) -> Option<ErrorBody> {
        self.join_errors.with(|e| e.get(&room_key(id)).cloned())
    }

    pub fn set_join_error(&self, id: &str, error: Option<ErrorBody>) {
        let key = room_key(id);
        if self.join_errors.with_untracked(|e| e.get(&key) == error.as_ref()) {
            return;
        }
        self.join_errors.update(|e| match error {
            Some(error) => {
                e.insert(key, error);
            }
            None => {
                e.remove(&key);
            }
        });
    }

    pub fn my_sid(&self, id: &str) -> Option<String> {
        self.my_sid.with(|m| m.get(&room_key(id)).cloned())
    }

    pub fn chat(&self, id: &str) -> Vec<ChatMessage> {
        self.chat.with(|c| c.get(&room_key(id)).cloned().unwrap_or_default())
    }

    /// Adds or replaces (an edit) a chat message, keeping id order.
    pub fn chat_message(&self, message: ChatMessage) {
        self.chat.update(|c| {
            let list = c.entry(room_key(&message.room_id)).or_default();
            match list.binary_search_by_key(&message.id, |m| m.id) {
                Ok(i) => list[i] = message,
                Err(i) => list.insert(i, message),
            }
        });
    }

    /// Puts older messages (a page from the history) in front.
    pub fn older_chat(&self, id: &str, older: Vec<ChatMessage>) {
        for m in older {
            if m.room_id.eq_ignore_ascii_case(id) {
                self.chat_message(m);
            }
        }
    }

    pub fn shared_frame(&self, id: &str) -> Option<u64> {
        self.shared_frame.with(|f| f.get(&room_key(id)).copied())
    }

    pub fn set_shared_frame(&self, id: &str, frame: u64) {
        self.shared_frame.update(|f| {
            f.insert(room_key(id), frame);
        });
    }
}
