//! The engine's tunables (PROTOCOL.md sections 6 and 7), with the
//! protocol's defaults.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Rooms held at most.
    pub max_rooms: usize,
    /// How long a seat (and the host role) outlives its last connection.
    pub seat_grace: Duration,
    /// A room idle this long is deleted.
    pub room_idle: Duration,
    /// How long before the idle deletion the room is warned.
    pub room_warning: Duration,
    /// Temporary lock TTL when `ttlSeconds` is not given.
    pub default_lock_ttl: u32,
    /// Shortest time between two `frame_update`s of a room (20 per second).
    pub frame_update_interval: Duration,
    /// Chat messages a user may send per `chat_window`.
    pub chat_burst: usize,
    pub chat_window: Duration,
    pub max_signal_bytes: usize,
    /// A server silent this long is taken for dead (with other servers):
    /// its rooms move, and requests to them wait up to twice this and a
    /// second for the new owner.
    pub node_ttl: Duration,
    /// Chat messages kept per room (older ones are removed).
    pub max_chat_per_room: u64,
    /// Frames one room may hold.
    pub max_frames_per_room: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_rooms: 1000,
            seat_grace: Duration::from_secs(10),
            room_idle: Duration::from_secs(2 * 60 * 60),
            room_warning: Duration::from_secs(10 * 60),
            default_lock_ttl: 60,
            frame_update_interval: Duration::from_millis(50),
            chat_burst: 5,
            chat_window: Duration::from_secs(5),
            max_signal_bytes: 16 * 1024,
            node_ttl: Duration::from_secs(5),
            max_chat_per_room: 10_000,
            max_frames_per_room: 100_000,
        }
    }
}
