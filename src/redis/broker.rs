//! The engine's `Broker` on Redis: several Roomcast servers on one Redis.
//!
//! Each room is owned by one server (its room task runs there; the owner
//! key names it). Other servers reach the room through requests on the
//! owner's channel and receive its events on the room's channel, which
//! they subscribe to only while they have connections in the room. Every
//! room change is written and published in one Lua step (`COMMIT`), which
//! also checks that the writer still owns the room, and goes to the
//! overview channel that every server follows to keep its room list.
//!
//! All messages a server sends leave through one ordered queue
//! (`publisher.rs`), and all it receives arrive on one subscriber
//! connection (`listener.rs`), so a room's events reach every server in
//! the order the owner made them.
//!
//! A server announces itself with a heartbeat key that expires; the others
//! notice a missing heartbeat (`engine::failover`), drop its connections
//! from their rooms and take over the rooms it owned.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use app::model::RoomMetadata;
use async_trait::async_trait;
use dashmap::DashMap;
use rand::Rng;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::{mpsc, oneshot};

use super::keys::Keys;
use super::listener::{Pending, Subscriber, listen};
use super::lock;
use super::publisher::{Outgoing, Publisher};
use super::scripts::{CLAIM, RELEASE, TAKE_OVER};
use super::storage::encode_room;
use super::wire::{NodeMsg, OverviewMsg, RoomMsg, encode};
use crate::engine::broker::{Audience, Broker, BrokerError, BrokerResult, HeldLock, Inbound, Nodes, PresenceRecord};
use crate::engine::command::{Command, Outcome};
use crate::engine::connection::Frame;
use crate::engine::errors::EngineError;
use crate::engine::storage::StoredRoom;

#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// A server whose heartbeat is older than this is taken for dead.
    pub node_ttl: Duration,
    /// How long a request to another server may take.
    pub request_timeout: Duration,
}

#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

struct Inner {
    node: Arc<str>,
    keys: Keys,
    conn: ConnectionManager,
    out: Publisher,
    subscriber: Arc<Subscriber>,
    pending: Arc<Pending>,
    barriers: DashMap<u64, oneshot::Sender<()>>,
    next_id: AtomicU64,
    settings: RedisSettings,
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    tracing::warn!(error = %e, "redis failed");
    BrokerError::Unavailable(e.to_string())
}

/// Removes a request's waiter when the request ends, answered or not.
struct PendingGuard<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.remove(&self.id);
    }
}

impl RedisBroker {
    /// Connects, subscribes to the overview and this server's channel and
    /// starts the heartbeat. Returns the broker and what other servers
    /// send this one.
    pub async fn connect(
        url: &str,
        prefix: &str,
        settings: RedisSettings,
    ) -> Result<(RedisBroker, mpsc::UnboundedReceiver<Inbound>), redis::RedisError> {
        let client = redis::Client::open(url)?;
        // Reconnect quickly and never wait forever: while Redis is away,
        // commands fail fast (writes answer `unavailable`).
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_factor(50)
            .set_max_delay(500)
            .set_number_of_retries(3)
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_secs(5));
        let conn = client.get_connection_manager_with_config(config).await?;
        let keys = Keys::new(prefix);
        let node: Arc<str> = {
            let mut rng = rand::rng();
            let tail: String = (0..10).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
            format!("n-{tail}").into()
        };
        let (inbox, inbox_rx) = mpsc::unbounded_channel();
        let out = Publisher::start(conn.clone(), keys.clone(), node.clone(), inbox.clone());
        let subscriber = Arc::new(Subscriber::new(client, keys.clone(), node.clone()));
        let stream = subscriber.connect().await?;
        let pending = Arc::new(Pending::new());
        tokio::spawn(listen(subscriber.clone(), pending.clone(), stream, inbox));
        let broker = RedisBroker {
            inner: Arc::new(Inner {
                node,
                keys,
                conn,
                out,
                subscriber,
                pending,
                barriers: DashMap::new(),
                next_id: AtomicU64::new(1),
                settings,
            }),
        };
        broker.beat().await?;
        tokio::spawn(heartbeat(broker.clone()));
        tracing::info!(node = %broker.inner.node, prefix, "joined the servers on redis");
        Ok((broker, inbox_rx))
    }

    pub(super) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The connection that storage on the same Redis uses.
    pub(super) fn connection(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn send(&self, outgoing: Outgoing) {
        self.inner.out.send(outgoing);
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

    fn publish_room(&self, msg: &RoomMsg, payload: &[u8]) {
        let channel = self.keys().room_channel(&msg.room);
        self.send(Outgoing::Publish { channel, message: encode(msg, payload) });
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn node(&self) -> &Arc<str> {
        &self.inner.node
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn claim(&self, room: &str) -> BrokerResult<bool> {
        let keys = self.keys();
        Script::new(CLAIM)
            .key(keys.owner(room))
            .key(keys.room(room))
            .key(keys.node_rooms(&self.inner.node))
            .arg(&*self.inner.node)
            .arg(room)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn take_over(&self, old: Option<&str>, room: &str) -> BrokerResult<bool> {
        let keys = self.keys();
        let old = old.unwrap_or("");
        Script::new(TAKE_OVER)
            .key(keys.owner(room))
            .key(keys.room(room))
            .key(keys.node_rooms(old))
            .key(keys.node_rooms(&self.inner.node))
            .arg(old)
            .arg(&*self.inner.node)
            .arg(room)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn owners(&self, rooms: &[String]) -> BrokerResult<Vec<Option<String>>> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = rooms.iter().map(|k| self.keys().owner(k)).collect();
        redis::cmd("MGET").arg(&names).query_async(&mut self.conn()).await.map_err(unavailable)
    }

    async fn nodes(&self) -> BrokerResult<Nodes> {
        let mut c = self.conn();
        let members: Vec<String> = c.smembers(self.keys().nodes()).await.map_err(unavailable)?;
        if members.is_empty() {
            return Ok(Nodes::default());
        }
        let beats: Vec<String> = members.iter().map(|n| self.keys().heartbeat(n)).collect();
        let alive: Vec<Option<String>> =
            redis::cmd("MGET").arg(&beats).query_async(&mut c).await.map_err(unavailable)?;
        let (live, dead): (Vec<_>, Vec<_>) = members.into_iter().zip(alive).partition(|(_, a)| a.is_some());
        Ok(Nodes { live: live.into_iter().map(|(n, _)| n).collect(), dead: dead.into_iter().map(|(n, _)| n).collect() })
    }

    async fn node_rooms(&self, node: &str) -> BrokerResult<Vec<String>> {
        let mut c = self.conn();
        c.smembers(self.keys().node_rooms(node)).await.map_err(unavailable)
    }

    async fn forget_node(&self, node: &str) -> BrokerResult<()> {
        let mut c = self.conn();
        c.srem(self.keys().nodes(), node).await.map_err(unavailable)
    }

    async fn leave(&self) {
        let mut c = self.conn();
        let _: Result<(), _> = c.del(self.keys().heartbeat(&self.inner.node)).await;
    }

    fn commit(&self, meta: &RoomMetadata, last_active: f64, payload: &Frame) {
        let Ok(record) = encode_room(&StoredRoom { meta: meta.clone(), last_active }) else { return };
        let header = OverviewMsg::Upsert { origin: self.inner.node.to_string(), meta: Box::new(meta.clone()) };
        let key = app::ids::room_key(&meta.id);
        self.send(Outgoing::Commit { key, record, message: encode(&header, payload) });
    }

    fn publish(&self, room: &str, to: Audience<'_>, payload: &Frame) {
        let msg = match to {
            Audience::All { skip } => {
                RoomMsg { room: room.to_string(), skip: skip.map(str::to_string), ..Default::default() }
            }
            Audience::One { sid, admit } => {
                RoomMsg { room: room.to_string(), to: Some(sid.to_string()), admit, ..Default::default() }
            }
        };
        self.publish_room(&msg, payload);
    }

    fn removed(&self, room: &str, payload: &Frame) {
        let header = OverviewMsg::Remove { origin: self.inner.node.to_string(), key: room.to_string() };
        let keys = self.keys();
        self.send(Outgoing::Publish { channel: keys.overview_channel(), message: encode(&header, payload) });
        self.publish_room(&RoomMsg { room: room.to_string(), end: true, ..Default::default() }, b"");
        let mut release = redis::cmd("EVAL");
        release
            .arg(RELEASE)
            .arg(3)
            .arg(keys.owner(room))
            .arg(keys.node_rooms(&self.inner.node))
            .arg(keys.presence(room));
        release.arg(&*self.inner.node).arg(room);
        self.send(Outgoing::Cmd(release));
    }

    fn presence_set(&self, room: &str, sid: &str, record: &PresenceRecord) {
        let Ok(entry) = serde_json::to_string(record) else { return };
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.keys().presence(room)).arg(sid).arg(entry);
        self.send(Outgoing::Cmd(cmd));
    }

    fn presence_del(&self, room: &str, sid: &str) {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.keys().presence(room)).arg(sid);
        self.send(Outgoing::Cmd(cmd));
    }

    async fn presence(&self, room: &str) -> BrokerResult<Vec<(String, PresenceRecord)>> {
        let mut c = self.conn();
        let entries: Vec<(String, String)> = c.hgetall(self.keys().presence(room)).await.map_err(unavailable)?;
        Ok(entries.into_iter().filter_map(|(sid, e)| Some((sid, serde_json::from_str(&e).ok()?))).collect())
    }

    async fn request(&self, node: &str, room: &str, cmd: Command) -> BrokerResult<Result<Outcome, EngineError>> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        self.inner.pending.insert(id, done);
        let _guard = PendingGuard { pending: &self.inner.pending, id };
        let msg =
            NodeMsg::Request { id, from: self.inner.node.to_string(), room: room.to_string(), cmd: Box::new(cmd) };
        // Published directly, so that a request nobody received (its server
        // is re-making its subscription) is known not to have run.
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(self.keys().node_channel(node))
            .arg(encode(&msg, b""))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        if receivers == 0 {
            return Err(BrokerError::NotDelivered(node.to_string()));
        }
        match tokio::time::timeout(self.inner.settings.request_timeout, wait).await {
            Ok(Ok(result)) => Ok(result),
            _ => Err(BrokerError::NoAnswer(node.to_string())),
        }
    }

    fn respond(&self, to: &str, id: u64, result: Result<Outcome, EngineError>) {
        let msg = NodeMsg::Reply { id, result };
        self.send(Outgoing::Publish { channel: self.keys().node_channel(to), message: encode(&msg, b"") });
    }

    async fn subscribe(&self, room: &str) -> BrokerResult<()> {
        self.inner.subscriber.subscribe(room).await.map_err(unavailable)
    }

    async fn unsubscribe(&self, room: &str) {
        self.inner.subscriber.unsubscribe(room).await;
    }

    async fn lock(&self, name: &str) -> BrokerResult<Box<dyn HeldLock>> {
        let token = format!("{}-{}", self.inner.node, self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let patience = self.inner.settings.request_timeout * 2;
        let held = lock::Lock { key: self.keys().lock(name), token, lease: lock::LEASE };
        lock::take(self.conn(), held, patience).await
    }

    async fn barrier(&self) {
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

    fn barrier_reached(&self, nonce: u64) {
        if let Some((_, done)) = self.inner.barriers.remove(&nonce) {
            let _ = done.send(());
        }
    }
}

async fn heartbeat(broker: RedisBroker) {
    let mut tick = tokio::time::interval(broker.inner.settings.node_ttl / 4);
    loop {
        tick.tick().await;
        if let Err(e) = broker.beat().await {
            tracing::error!(error = %e, "heartbeat failed");
        }
    }
}
