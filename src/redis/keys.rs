//! Names of every Redis key and pub/sub channel, under one prefix so that
//! several deployments (or test runs) can share a Redis server.

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys { prefix: prefix.to_string() }
    }

    // Storage.

    /// A room's record (JSON: metadata with version, last activity).
    pub fn room(&self, key: &str) -> String {
        format!("{}:room:{key}", self.prefix)
    }
    /// The set of every room key.
    pub fn rooms(&self) -> String {
        format!("{}:rooms", self.prefix)
    }
    pub fn frames(&self, key: &str) -> String {
        format!("{}:frames:{key}", self.prefix)
    }
    pub fn chat(&self, key: &str) -> String {
        format!("{}:chat:{key}", self.prefix)
    }
    pub fn default_room(&self) -> String {
        format!("{}:default-room", self.prefix)
    }
    pub fn session(&self, token_hash: &str) -> String {
        format!("{}:session:{token_hash}", self.prefix)
    }
    /// A write's receipt by user and idempotency key, with a day's expiry.
    pub fn receipt(&self, user_id: &str, key: &str) -> String {
        format!("{}:receipt:{user_id}:{key}", self.prefix)
    }

    // Servers and ownership.

    /// The server owning a room (its id); no expiry: it is valid while the
    /// server's heartbeat lives.
    pub fn owner(&self, key: &str) -> String {
        format!("{}:owner:{key}", self.prefix)
    }
    /// A server's heartbeat, with an expiry.
    pub fn heartbeat(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }
    /// The set of servers that joined and were not yet cleaned up.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    /// The set of room keys a server owns.
    pub fn node_rooms(&self, node: &str) -> String {
        format!("{}:node-rooms:{node}", self.prefix)
    }
    /// Who is present in a room, by connection id (JSON entries with the
    /// server of each connection), so that a server taking the room over
    /// knows them.
    pub fn presence(&self, key: &str) -> String {
        format!("{}:presence:{key}", self.prefix)
    }
    /// A lock that makes one step across servers (matchmaking, a keyed
    /// creation).
    pub fn lock(&self, name: &str) -> String {
        format!("{}:lock:{name}", self.prefix)
    }

    // Channels.

    /// Every room's deltas and removals: all servers keep the room list.
    pub fn overview_channel(&self) -> String {
        format!("{}:ch:overview", self.prefix)
    }
    /// A room's events for servers with clients in it.
    pub fn room_channel(&self, key: &str) -> String {
        format!("{}:ch:room:{key}", self.prefix)
    }
    /// Requests to and replies from one server.
    pub fn node_channel(&self, node: &str) -> String {
        format!("{}:ch:node:{node}", self.prefix)
    }
}
