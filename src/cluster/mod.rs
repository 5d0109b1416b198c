//! Scale-out: several Roomcast servers on one Redis server.
//!
//! Each room is owned by one server (its room task runs there; the owner
//! key in Redis names it). Other servers reach the room through requests on
//! the owner's channel and receive its events on the room's channel, which
//! they subscribe to only while they have connections in the room. Every
//! room change is written and published in one Lua step (`COMMIT`), which
//! also checks that the writer still owns the room, and goes to the
//! overview channel that every server follows to keep its room list.
//!
//! All messages a server sends leave through one ordered queue on one
//! Redis connection, and all it receives arrive on one subscriber
//! connection, so a room's events reach every server in the order the
//! owner made them (PROTOCOL.md section 3 holds across servers).
//!
//! A server announces itself with a heartbeat key that expires; the others
//! notice a missing heartbeat (`engine::remote`), drop its connections from
//! their rooms and take over the rooms it owned.

pub mod edge;
pub mod keys;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use app::error::{ErrorBody, ErrorCode};
use app::model::RoomMetadata;
use dashmap::DashMap;
use futures::StreamExt;
use rand::Rng;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use redis::{AsyncCommands, Script};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::engine::command::{Command, Outcome};
use crate::engine::connection::{Connection, Frame};
use crate::storage::StoredRoom;
use crate::storage::redis::{RedisStorage, encode_room};
use edge::Edge;
use keys::Keys;
use wire::{NodeMsg, OverviewMsg, RoomMsg, decode, encode};

pub type ClusterError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// A server whose heartbeat is older than this is taken for dead.
    pub node_ttl: Duration,
    /// How long a request to another server may take.
    pub request_timeout: Duration,
}

/// Writes a room change and publishes it, if this server still owns the
/// room. KEYS: owner, room record, room set. ARGV: node, record, room key,
/// overview channel, message.
const COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1";

/// Claims a new room key. KEYS: owner, room record, node rooms.
/// ARGV: node, room key.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1";

/// Takes a room over from a dead (or no) owner. KEYS: owner, room record,
/// old owner's rooms, new owner's rooms. ARGV: old owner ('' for none),
/// node, room key.
const TAKE_OVER: &str = r"
local current = redis.call('GET', KEYS[1]) or ''
if ARGV[1] ~= '' then redis.call('SREM', KEYS[3], ARGV[3]) end
if current ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
return 1";

/// Gives up a deleted room. KEYS: owner, node rooms, presence.
/// ARGV: node, room key.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
return 1";

/// Frees the matchmaking lock if it is still ours. KEYS: lock. ARGV: token.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// What other servers ask of this one, in arrival order.
pub enum Inbound {
    Request {
        id: u64,
        from: Arc<str>,
        room: String,
        cmd: Command,
    },
    Upsert {
        origin: Arc<str>,
        meta: Box<RoomMetadata>,
        payload: Frame,
    },
    Remove {
        key: String,
        payload: Frame,
    },
    Barrier(u64),
    /// A commit found another server owning the room.
    Lost(String),
}

enum Outgoing {
    Publish { channel: String, message: Vec<u8> },
    Commit { key: String, record: String, message: Vec<u8> },
    Cmd(redis::Cmd),
}

#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node: Arc<str>,
    keys: Keys,
    conn: ConnectionManager,
    out: mpsc::UnboundedSender<Outgoing>,
    sink: Mutex<PubSubSink>,
    edge: Edge,
    pending: DashMap<u64, oneshot::Sender<Result<Outcome, ErrorBody>>>,
    barriers: DashMap<u64, oneshot::Sender<()>>,
    next_id: AtomicU64,
    settings: ClusterSettings,
}

fn unavailable(e: impl std::fmt::Display) -> ErrorBody {
    tracing::error!(error = %e, "redis failed");
    ErrorBody::new(ErrorCode::Internal, "the shared store failed; the change was not made")
}

impl Cluster {
    /// Connects, subscribes to the overview and this server's channel and
    /// starts the heartbeat. Returns the cluster and what other servers
    /// send this one.
    pub async fn connect(
        url: &str,
        prefix: &str,
        settings: ClusterSettings,
    ) -> Result<(Cluster, mpsc::UnboundedReceiver<Inbound>), ClusterError> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        let mut publisher = client.get_multiplexed_async_connection().await?;
        load_script(&mut publisher).await?;
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        let keys = Keys::new(prefix);
        let node: Arc<str> = {
            let mut rng = rand::rng();
            let tail: String = (0..10).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
            format!("n-{tail}").into()
        };
        sink.subscribe(keys.overview_channel()).await?;
        sink.subscribe(keys.node_channel(&node)).await?;
        let (out, out_rx) = mpsc::unbounded_channel();
        let (inbox, inbox_rx) = mpsc::unbounded_channel();
        let cluster = Cluster {
            inner: Arc::new(Inner {
                node,
                keys,
                conn,
                out,
                sink: Mutex::new(sink),
                edge: Edge::default(),
                pending: DashMap::new(),
                barriers: DashMap::new(),
                next_id: AtomicU64::new(1),
                settings,
            }),
        };
        cluster.beat().await?;
        tokio::spawn(publish_loop(cluster.clone(), publisher, out_rx, inbox.clone()));
        tokio::spawn(listen(cluster.clone(), stream, inbox));
        tokio::spawn(heartbeat(cluster.clone()));
        tracing::info!(node = %cluster.inner.node, prefix, "joined the cluster");
        Ok((cluster, inbox_rx))
    }

    /// The storage backend on the same Redis.
    pub fn storage(&self) -> RedisStorage {
        RedisStorage::new(self.inner.conn.clone(), self.inner.keys.clone())
    }

    /// This server's id.
    pub fn node(&self) -> &Arc<str> {
        &self.inner.node
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn send(&self, outgoing: Outgoing) {
        // The queue only closes with the process.
        let _ = self.inner.out.send(outgoing);
    }

    async fn beat(&self) -> Result<(), redis::RedisError> {
        let ttl = self.inner.settings.node_ttl.as_millis() as u64;
        redis::pipe()
            .set_options(
                self.keys().heartbeat(&self.inner.node),
                1,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl)),
            )
            .ignore()
            .sadd(self.keys().nodes(), &*self.inner.node)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
    }

    /// Ends the heartbeat at shutdown, so the others take over at once.
    pub async fn leave(&self) {
        let mut c = self.conn();
        let _: Result<(), _> = c.del(self.keys().heartbeat(&self.inner.node)).await;
    }

    // ---- What a room's owner sends.

    /// A room event for the room's connections on other servers, but `skip`.
    pub fn room_event(&self, key: &str, skip: Option<&str>, payload: &Frame) {
        let msg = RoomMsg { room: key.to_string(), skip: skip.map(str::to_string), ..Default::default() };
        self.send(Outgoing::Publish { channel: self.keys().room_channel(key), message: encode(&msg, payload) });
    }

    /// A frame for one connection on another server; `admit` marks the
    /// reply to its join.
    pub fn room_event_to(&self, key: &str, sid: &str, admit: bool, payload: &Frame) {
        let msg = RoomMsg { room: key.to_string(), to: Some(sid.to_string()), admit, ..Default::default() };
        self.send(Outgoing::Publish { channel: self.keys().room_channel(key), message: encode(&msg, payload) });
    }

    /// Stores a room's new state and publishes its delta to every server,
    /// as one step that fails when the room has another owner.
    pub fn commit_room(&self, room: &StoredRoom, payload: &Frame) {
        let Ok(record) = encode_room(room) else { return };
        let header = OverviewMsg::Upsert { origin: self.inner.node.to_string(), meta: Box::new(room.meta.clone()) };
        let key = app::ids::room_key(&room.meta.id);
        self.send(Outgoing::Commit { key, record, message: encode(&header, payload) });
    }

    /// A deleted room: tells every server and gives the room up.
    pub fn room_removed(&self, key: &str, payload: &Frame) {
        let header = OverviewMsg::Remove { origin: self.inner.node.to_string(), key: key.to_string() };
        let keys = self.keys();
        self.send(Outgoing::Publish { channel: keys.overview_channel(), message: encode(&header, payload) });
        let end = RoomMsg { room: key.to_string(), end: true, ..Default::default() };
        self.send(Outgoing::Publish { channel: keys.room_channel(key), message: encode(&end, b"") });
        let mut release = redis::cmd("EVAL");
        release.arg(RELEASE).arg(3).arg(keys.owner(key)).arg(keys.node_rooms(&self.inner.node)).arg(keys.presence(key));
        release.arg(&*self.inner.node).arg(key);
        self.send(Outgoing::Cmd(release));
    }

    /// Records a connection present in a room (for a server taking over).
    pub fn presence_set(&self, key: &str, sid: &str, entry: String) {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.keys().presence(key)).arg(sid).arg(entry);
        self.send(Outgoing::Cmd(cmd));
    }

    pub fn presence_del(&self, key: &str, sid: &str) {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.keys().presence(key)).arg(sid);
        self.send(Outgoing::Cmd(cmd));
    }

    /// Every recorded presence entry of a room.
    pub async fn presence_entries(&self, key: &str) -> Result<Vec<(String, String)>, ErrorBody> {
        let mut c = self.conn();
        c.hgetall(self.keys().presence(key)).await.map_err(unavailable)
    }

    // ---- Ownership.

    /// Claims a new room key for this server; false when it is taken.
    pub async fn claim(&self, key: &str) -> Result<bool, ErrorBody> {
        let keys = self.keys();
        Script::new(CLAIM)
            .key(keys.owner(key))
            .key(keys.room(key))
            .key(keys.node_rooms(&self.inner.node))
            .arg(&*self.inner.node)
            .arg(key)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    /// Takes over a room whose owner is `old` (dead) or none.
    pub async fn take_over(&self, old: Option<&str>, key: &str) -> Result<bool, ErrorBody> {
        let keys = self.keys();
        let old = old.unwrap_or("");
        Script::new(TAKE_OVER)
            .key(keys.owner(key))
            .key(keys.room(key))
            .key(keys.node_rooms(old))
            .key(keys.node_rooms(&self.inner.node))
            .arg(old)
            .arg(&*self.inner.node)
            .arg(key)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    /// The owner of each room key (None when it has none).
    pub async fn owners(&self, room_keys: &[String]) -> Result<Vec<Option<String>>, ErrorBody> {
        if room_keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = room_keys.iter().map(|k| self.keys().owner(k)).collect();
        redis::cmd("MGET").arg(&names).query_async(&mut self.conn()).await.map_err(unavailable)
    }

    /// Servers that joined and are not cleaned up: (live, dead).
    pub async fn nodes(&self) -> Result<(Vec<String>, Vec<String>), ErrorBody> {
        let mut c = self.conn();
        let members: Vec<String> = c.smembers(self.keys().nodes()).await.map_err(unavailable)?;
        if members.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let beats: Vec<String> = members.iter().map(|n| self.keys().heartbeat(n)).collect();
        let alive: Vec<Option<String>> =
            redis::cmd("MGET").arg(&beats).query_async(&mut c).await.map_err(unavailable)?;
        let (live, dead): (Vec<_>, Vec<_>) = members.into_iter().zip(alive).partition(|(_, a)| a.is_some());
        Ok((live.into_iter().map(|(n, _)| n).collect(), dead.into_iter().map(|(n, _)| n).collect()))
    }

    pub async fn node_rooms(&self, node: &str) -> Result<Vec<String>, ErrorBody> {
        let mut c = self.conn();
        c.smembers(self.keys().node_rooms(node)).await.map_err(unavailable)
    }

    /// Removes a dead server from the set once its rooms are taken over.
    pub async fn forget_node(&self, node: &str) -> Result<(), ErrorBody> {
        let mut c = self.conn();
        c.srem(self.keys().nodes(), node).await.map_err(unavailable)
    }

    // ---- Requests between servers.

    /// Asks the owner of room `key` to run `cmd`.
    pub async fn request(&self, node: &str, key: &str, cmd: Command) -> Result<Outcome, ErrorBody> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        self.inner.pending.insert(id, done);
        let msg = NodeMsg::Request { id, from: self.inner.node.to_string(), room: key.to_string(), cmd: Box::new(cmd) };
        self.send(Outgoing::Publish { channel: self.keys().node_channel(node), message: encode(&msg, b"") });
        match tokio::time::timeout(self.inner.settings.request_timeout, wait).await {
            Ok(Ok(result)) => result,
            _ => {
                self.inner.pending.remove(&id);
                Err(ErrorBody::new(ErrorCode::Internal, format!("the server owning room {key} did not answer")))
            }
        }
    }

    pub fn respond(&self, to: &str, id: u64, result: Result<Outcome, ErrorBody>) {
        let msg = NodeMsg::Reply { id, result };
        self.send(Outgoing::Publish { channel: self.keys().node_channel(to), message: encode(&msg, b"") });
    }

    // ---- Local connections in rooms owned elsewhere.

    /// Registers a connection before it joins a room owned elsewhere, so
    /// that no event after its join reply is missed.
    pub async fn edge_join(&self, key: &str, conn: Arc<Connection>) -> Result<(), ErrorBody> {
        let mut sink = self.inner.sink.lock().await;
        if self.inner.edge.add(key, conn.clone())
            && let Err(e) = sink.subscribe(self.keys().room_channel(key)).await
        {
            self.inner.edge.remove(key, &conn.sid);
            return Err(unavailable(e));
        }
        Ok(())
    }

    pub async fn edge_leave(&self, key: &str, sid: &str) {
        let mut sink = self.inner.sink.lock().await;
        if self.inner.edge.remove(key, sid)
            && let Err(e) = sink.unsubscribe(self.keys().room_channel(key)).await
        {
            tracing::warn!(error = %e, room = key, "unsubscribe failed");
        }
    }

    async fn edge_end(&self, key: &str) {
        let mut sink = self.inner.sink.lock().await;
        // Joins register under the same lock, so nothing re-added the room.
        if self.inner.edge.end(key) {
            let _ = sink.unsubscribe(self.keys().room_channel(key)).await;
        }
    }

    // ---- Ordering and matchmaking.

    /// Waits until every overview message published before this call has
    /// been applied here (the engine reports `Barrier` when it reaches it).
    pub async fn barrier(&self) {
        let nonce = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        self.inner.barriers.insert(nonce, done);
        let msg = OverviewMsg::Barrier { origin: self.inner.node.to_string(), nonce };
        self.send(Outgoing::Publish { channel: self.keys().overview_channel(), message: encode(&msg, b"") });
        if tokio::time::timeout(self.inner.settings.request_timeout, wait).await.is_err() {
            self.inner.barriers.remove(&nonce);
            tracing::warn!("overview barrier timed out");
        }
    }

    pub fn barrier_reached(&self, nonce: u64) {
        if let Some((_, done)) = self.inner.barriers.remove(&nonce) {
            let _ = done.send(());
        }
    }

    /// Takes the matchmaking lock shared by every server (it expires, so
    /// a server dying while holding it blocks matches for at most that).
    pub async fn lock_matchmaking(&self) -> Result<MatchLock, ErrorBody> {
        let token = format!("{}-{}", self.inner.node, self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let expiry = self.inner.settings.request_timeout.as_millis() as u64 * 2;
        let deadline = tokio::time::Instant::now() + self.inner.settings.request_timeout * 2;
        let mut c = self.conn();
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(self.keys().match_lock())
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(expiry)
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            if taken.is_some() {
                return Ok(MatchLock { cluster: self.clone(), token });
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ErrorBody::new(ErrorCode::Internal, "matchmaking is busy; try again"));
            }
            let pause = rand::rng().random_range(2..10);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

/// The held matchmaking lock; `release` frees it.
pub struct MatchLock {
    cluster: Cluster,
    token: String,
}

impl MatchLock {
    pub async fn release(self) {
        let result: Result<i64, _> = Script::new(UNLOCK)
            .key(self.cluster.keys().match_lock())
            .arg(&self.token)
            .invoke_async(&mut self.cluster.conn())
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "matchmaking unlock failed; the lock expires");
        }
    }
}

/// Sends the queued messages in order, many per round trip.
async fn publish_loop(
    cluster: Cluster,
    mut conn: redis::aio::MultiplexedConnection,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    inbox: mpsc::UnboundedSender<Inbound>,
) {
    let commit = Script::new(COMMIT);
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut pipe = redis::pipe();
        for item in &batch {
            match item {
                Outgoing::Publish { channel, message } => {
                    pipe.publish(channel, message);
                }
                Outgoing::Commit { key, record, message } => {
                    let keys = cluster.keys();
                    pipe.cmd("EVALSHA")
                        .arg(commit.get_hash())
                        .arg(3)
                        .arg(keys.owner(key))
                        .arg(keys.room(key))
                        .arg(keys.rooms())
                        .arg(&*cluster.inner.node)
                        .arg(record)
                        .arg(key)
                        .arg(keys.overview_channel())
                        .arg(message);
                }
                Outgoing::Cmd(cmd) => {
                    pipe.add_command(cmd.clone());
                }
            }
        }
        match pipe.query_async::<Vec<redis::Value>>(&mut conn).await {
            Ok(values) => {
                for (item, value) in batch.iter().zip(values) {
                    if let Outgoing::Commit { key, .. } = item
                        && value == redis::Value::Int(0)
                    {
                        tracing::warn!(room = %key, "another server owns the room now; its task here stops");
                        let _ = inbox.send(Inbound::Lost(key.clone()));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), "publishing to redis failed");
                if e.kind() == redis::ErrorKind::NoScriptError {
                    // Redis restarted and forgot the script: load it again.
                    let _ = load_script(&mut conn).await;
                }
            }
        }
        batch.clear();
    }
}

async fn load_script(conn: &mut redis::aio::MultiplexedConnection) -> Result<(), redis::RedisError> {
    redis::cmd("SCRIPT").arg("LOAD").arg(COMMIT).query_async::<String>(conn).await.map(|_| ())
}

/// Receives every subscribed message, in order.
async fn listen(cluster: Cluster, mut stream: PubSubStream, inbox: mpsc::UnboundedSender<Inbound>) {
    let keys = cluster.keys().clone();
    let overview = keys.overview_channel();
    let own = keys.node_channel(&cluster.inner.node);
    while let Some(msg) = stream.next().await {
        let channel = msg.get_channel_name();
        let raw = msg.get_payload_bytes();
        if channel == overview {
            on_overview(&cluster, raw, &inbox);
        } else if channel == own {
            on_node_message(&cluster, raw, &inbox);
        } else if let Some((room, payload)) = decode::<RoomMsg>(raw) {
            cluster.inner.edge.deliver(&room, &payload);
            if room.end {
                let c = cluster.clone();
                tokio::spawn(async move { c.edge_end(&room.room).await });
            }
        } else {
            tracing::warn!(channel, "undecodable message from redis");
        }
    }
    tracing::error!("the redis subscription ended; this server cannot follow the others and stops");
    std::process::exit(1);
}

fn on_overview(cluster: &Cluster, raw: &[u8], inbox: &mpsc::UnboundedSender<Inbound>) {
    let Some((header, payload)) = decode::<OverviewMsg>(raw) else {
        tracing::warn!("undecodable overview message");
        return;
    };
    let me = &*cluster.inner.node;
    let inbound = match header {
        OverviewMsg::Barrier { origin, nonce } if origin == me => Inbound::Barrier(nonce),
        OverviewMsg::Barrier { .. } => return,
        OverviewMsg::Upsert { origin, .. } | OverviewMsg::Remove { origin, .. } if origin == me => return,
        OverviewMsg::Upsert { origin, meta } => Inbound::Upsert { origin: origin.into(), meta, payload },
        OverviewMsg::Remove { key, .. } => Inbound::Remove { key, payload },
    };
    let _ = inbox.send(inbound);
}

fn on_node_message(cluster: &Cluster, raw: &[u8], inbox: &mpsc::UnboundedSender<Inbound>) {
    let Some((msg, _)) = decode::<NodeMsg>(raw) else {
        tracing::warn!("undecodable request or reply");
        return;
    };
    match msg {
        NodeMsg::Request { id, from, room, cmd } => {
            let _ = inbox.send(Inbound::Request { id, from: from.into(), room, cmd: *cmd });
        }
        NodeMsg::Reply { id, result } => {
            if let Some((_, done)) = cluster.inner.pending.remove(&id) {
                let _ = done.send(result);
            }
        }
    }
}

async fn heartbeat(cluster: Cluster) {
    let mut tick = tokio::time::interval(cluster.inner.settings.node_ttl / 4);
    loop {
        tick.tick().await;
        if let Err(e) = cluster.beat().await {
            tracing::error!(error = %e, "heartbeat failed");
        }
    }
}
