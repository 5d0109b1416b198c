//! An in-memory `Broker` for several engines in one test process: the
//! test driver of the engine's scale-out. Every node's outgoing operations
//! go through one ordered hub task (as every server's go through Redis),
//! which keeps owners, heartbeats, presence and subscriptions, stores
//! commits in the shared storage, and delivers to each node's inbox.
//!
//! The test controls delivery within the protocol's rules: a node's
//! inbound can be held (delayed) and released in order, cut (lost, as
//! when a subscriber connection drops) and restored with a re-sync, and a
//! node can be killed at any step (its heartbeat stops, everything it
//! sends is dropped, nothing reaches it).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::model::RoomMetadata;
use async_trait::async_trait;
use roomcast::engine::broker::{
    Audience, Broker, BrokerError, BrokerResult, HeldLock, Inbound, Nodes, PresenceRecord, RoomEvent, Target,
};
use roomcast::engine::command::{Command, Outcome};
use roomcast::engine::connection::Frame;
use roomcast::engine::errors::EngineError;
use roomcast::engine::storage::{Storage, StoredRoom};
use tokio::sync::{mpsc, oneshot};

type Reply = oneshot::Sender<Result<Outcome, EngineError>>;

/// How a node's inbound is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Open,
    /// The room list's messages (`Upsert`, `Remove`) queued in order
    /// until released; the rest flows.
    Held,
    /// Dropped (the node's subscription is lost).
    Cut,
}

struct NodeState {
    inbox: mpsc::UnboundedSender<Inbound>,
    alive: bool,
    flow: Flow,
    held: Vec<Inbound>,
    rooms: HashSet<String>,
    subscribed: HashSet<String>,
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, NodeState>,
    /// Nodes that joined and were not forgotten.
    listed: HashSet<String>,
    owners: HashMap<String, String>,
    presence: HashMap<String, HashMap<String, PresenceRecord>>,
    pending: HashMap<u64, Reply>,
    barriers: HashMap<u64, oneshot::Sender<()>>,
    /// Shared locks by name, with their holders' tokens.
    locks: HashMap<String, u64>,
}

enum Op {
    Commit { node: String, room: StoredRoom, payload: Frame },
    Publish { node: String, event: RoomEvent },
    Removed { node: String, room: String, payload: Frame },
    Barrier { node: String, nonce: u64 },
    Settled(oneshot::Sender<()>),
}

/// The shared "Redis" of the test.
#[derive(Clone)]
pub struct Hub {
    state: Arc<Mutex<State>>,
    ops: mpsc::UnboundedSender<Op>,
    storage: Arc<dyn Storage>,
    next: Arc<AtomicU64>,
}

impl Hub {
    pub fn new(storage: Arc<dyn Storage>) -> Hub {
        let (ops, rx) = mpsc::unbounded_channel();
        let hub = Hub { state: Arc::default(), ops, storage, next: Arc::new(AtomicU64::new(1)) };
        tokio::spawn(hub.clone().run(rx));
        hub
    }

    /// A new node's broker and inbox.
    pub fn join(&self, name: &str) -> (Arc<dyn Broker>, mpsc::UnboundedReceiver<Inbound>) {
        let (inbox, rx) = mpsc::unbounded_channel();
        let node = NodeState {
            inbox,
            alive: true,
            flow: Flow::Open,
            held: Vec::new(),
            rooms: HashSet::new(),
            subscribed: HashSet::new(),
        };
        let mut state = self.lock();
        state.nodes.insert(name.to_string(), node);
        state.listed.insert(name.to_string());
        drop(state);
        (Arc::new(MemoryBroker { hub: self.clone(), node: name.into() }), rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// SIGKILL: the node's heartbeat stops; nothing it sends arrives and
    /// nothing reaches it.
    pub fn kill(&self, name: &str) {
        if let Some(n) = self.lock().nodes.get_mut(name) {
            n.alive = false;
            n.held.clear();
        }
    }

    /// Holds the room list's messages to the node until `release` (a
    /// creation or change still on its way).
    pub fn hold(&self, name: &str) {
        if let Some(n) = self.lock().nodes.get_mut(name) {
            n.flow = Flow::Held;
        }
    }

    /// Delivers what was held, in order, and opens the flow again.
    pub fn release(&self, name: &str) {
        let mut state = self.lock();
        let Some(n) = state.nodes.get_mut(name) else { return };
        n.flow = Flow::Open;
        for inbound in std::mem::take(&mut n.held) {
            let _ = n.inbox.send(inbound);
        }
    }

    /// Loses everything sent to the node (its subscription dropped).
    pub fn cut(&self, name: &str) {
        if let Some(n) = self.lock().nodes.get_mut(name) {
            n.flow = Flow::Cut;
        }
    }

    /// Waits until the hub has passed on everything sent before this call.
    pub async fn settle(&self) {
        let (done, wait) = oneshot::channel();
        let _ = self.ops.send(Op::Settled(done));
        let _ = wait.await;
    }

    /// The subscription is back: the node is told to re-sync.
    pub fn restore(&self, name: &str) {
        let mut state = self.lock();
        let Some(n) = state.nodes.get_mut(name) else { return };
        n.flow = Flow::Open;
        let _ = n.inbox.send(Inbound::Resync);
    }

    /// Sends to a live node as its flow says; false when it is dead.
    fn deliver(state: &mut State, name: &str, inbound: Inbound) -> bool {
        let Some(n) = state.nodes.get_mut(name).filter(|n| n.alive) else { return false };
        match n.flow {
            Flow::Open => {
                let _ = n.inbox.send(inbound);
            }
            Flow::Held if matches!(inbound, Inbound::Upsert { .. } | Inbound::Remove { .. }) => n.held.push(inbound),
            Flow::Held => {
                let _ = n.inbox.send(inbound);
            }
            Flow::Cut => {}
        }
        true
    }

    fn alive(&self, name: &str) -> bool {
        self.lock().nodes.get(name).is_some_and(|n| n.alive)
    }

    /// The hub's one ordered loop: commits are stored before their delta
    /// goes out, as Redis runs the commit script.
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Op>) {
        while let Some(op) = rx.recv().await {
            match op {
                Op::Commit { node, room, payload } => self.commit(&node, room, payload).await,
                Op::Publish { node, event } => {
                    let mut state = self.lock();
                    if !state.nodes.get(&node).is_some_and(|n| n.alive) {
                        continue;
                    }
                    // Like a Redis channel, the sender hears itself too.
                    let to: Vec<String> = state
                        .nodes
                        .iter()
                        .filter(|(_, n)| n.subscribed.contains(&event.room))
                        .map(|(name, _)| name.clone())
                        .collect();
                    for name in to {
                        Self::deliver(&mut state, &name, Inbound::Room(event.clone()));
                    }
                }
                Op::Settled(done) => {
                    let _ = done.send(());
                }
                Op::Barrier { node, nonce } => {
                    Self::deliver(&mut self.lock(), &node, Inbound::Barrier(nonce));
                }
                Op::Removed { node, room, payload } => {
                    let mut state = self.lock();
                    if !state.nodes.get(&node).is_some_and(|n| n.alive) {
                        continue;
                    }
                    if state.owners.get(&room) == Some(&node) {
                        state.owners.remove(&room);
                    }
                    state.presence.remove(&room);
                    let names: Vec<String> = state.nodes.keys().cloned().collect();
                    for name in names {
                        if name != node {
                            let remove = Inbound::Remove { key: room.clone(), payload: payload.clone() };
                            Self::deliver(&mut state, &name, remove);
                        }
                        let end = RoomEvent { room: room.clone(), to: Target::End, payload: Frame::new() };
                        if state.nodes.get(&name).is_some_and(|n| n.subscribed.contains(&room)) {
                            Self::deliver(&mut state, &name, Inbound::Room(end));
                        }
                    }
                }
            }
        }
    }

    async fn commit(&self, node: &str, room: StoredRoom, payload: Frame) {
        let key = app::ids::room_key(&room.meta.id);
        let owns = {
            let state = self.lock();
            state.nodes.get(node).is_some_and(|n| n.alive) && state.owners.get(&key).map(String::as_str) == Some(node)
        };
        if !owns {
            let mut state = self.lock();
            Self::deliver(&mut state, node, Inbound::Lost(key));
            return;
        }
        if self.storage.save_room(&room, None).await.is_err() {
            // Only when the test's runtime is shutting down (its blocking
            // tasks are cancelled): the commit goes nowhere, as it would.
            return;
        }
        let mut state = self.lock();
        let others: Vec<String> = state.nodes.keys().filter(|n| *n != node).cloned().collect();
        for name in others {
            let upsert =
                Inbound::Upsert { origin: node.into(), meta: Box::new(room.meta.clone()), payload: payload.clone() };
            Self::deliver(&mut state, &name, upsert);
        }
    }
}

pub struct MemoryBroker {
    hub: Hub,
    node: Arc<str>,
}

struct HubLock {
    hub: Hub,
    name: String,
    token: u64,
}

#[async_trait]
impl HeldLock for HubLock {
    async fn release(self: Box<Self>) {
        let mut state = self.hub.lock();
        if state.locks.get(&self.name) == Some(&self.token) {
            state.locks.remove(&self.name);
        }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn node(&self) -> &Arc<str> {
        &self.node
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn claim(&self, room: &str) -> BrokerResult<bool> {
        let stored = self.hub.storage.load_room(room).await.ok().flatten().is_some();
        let mut state = self.hub.lock();
        if stored || state.owners.contains_key(room) {
            return Ok(false);
        }
        state.owners.insert(room.to_string(), self.node.to_string());
        if let Some(n) = state.nodes.get_mut(&*self.node) {
            n.rooms.insert(room.to_string());
        }
        Ok(true)
    }

    async fn take_over(&self, old: Option<&str>, room: &str) -> BrokerResult<bool> {
        let stored = self.hub.storage.load_room(room).await.ok().flatten().is_some();
        let mut state = self.hub.lock();
        if let Some(old) = old
            && let Some(n) = state.nodes.get_mut(old)
        {
            n.rooms.remove(room);
        }
        if state.owners.get(room).map(String::as_str) != old || !stored {
            return Ok(false);
        }
        state.owners.insert(room.to_string(), self.node.to_string());
        if let Some(n) = state.nodes.get_mut(&*self.node) {
            n.rooms.insert(room.to_string());
        }
        Ok(true)
    }

    async fn owners(&self, rooms: &[String]) -> BrokerResult<Vec<Option<String>>> {
        let state = self.hub.lock();
        Ok(rooms.iter().map(|r| state.owners.get(r).cloned()).collect())
    }

    async fn nodes(&self) -> BrokerResult<Nodes> {
        let state = self.hub.lock();
        let (live, dead) = state.listed.iter().cloned().partition(|n| state.nodes.get(n).is_some_and(|s| s.alive));
        Ok(Nodes { live, dead })
    }

    async fn node_rooms(&self, node: &str) -> BrokerResult<Vec<String>> {
        Ok(self.hub.lock().nodes.get(node).map(|n| n.rooms.iter().cloned().collect()).unwrap_or_default())
    }

    async fn forget_node(&self, node: &str) -> BrokerResult<()> {
        self.hub.lock().listed.remove(node);
        Ok(())
    }

    async fn leave(&self) {
        self.hub.kill(&self.node);
    }

    fn commit(&self, meta: &RoomMetadata, last_active: f64, payload: &Frame) {
        let room = StoredRoom { meta: meta.clone(), last_active };
        let op = Op::Commit { node: self.node.to_string(), room, payload: payload.clone() };
        let _ = self.hub.ops.send(op);
    }

    fn publish(&self, room: &str, to: Audience<'_>, payload: &Frame) {
        let to = match to {
            Audience::All { skip } => Target::All { skip: skip.map(str::to_string) },
            Audience::One { sid, admit } => Target::One { sid: sid.to_string(), admit },
        };
        let event = RoomEvent { room: room.to_string(), to, payload: payload.clone() };
        let _ = self.hub.ops.send(Op::Publish { node: self.node.to_string(), event });
    }

    fn removed(&self, room: &str, payload: &Frame) {
        let op = Op::Removed { node: self.node.to_string(), room: room.to_string(), payload: payload.clone() };
        let _ = self.hub.ops.send(op);
    }

    fn presence_set(&self, room: &str, sid: &str, record: &PresenceRecord) {
        if self.hub.alive(&self.node) {
            self.hub.lock().presence.entry(room.to_string()).or_default().insert(sid.to_string(), record.clone());
        }
    }

    fn presence_del(&self, room: &str, sid: &str) {
        if self.hub.alive(&self.node)
            && let Some(p) = self.hub.lock().presence.get_mut(room)
        {
            p.remove(sid);
        }
    }

    async fn presence(&self, room: &str) -> BrokerResult<Vec<(String, PresenceRecord)>> {
        let state = self.hub.lock();
        Ok(state
            .presence
            .get(room)
            .map(|p| p.iter().map(|(s, r)| (s.clone(), r.clone())).collect())
            .unwrap_or_default())
    }

    async fn request(&self, node: &str, room: &str, cmd: Command) -> BrokerResult<Result<Outcome, EngineError>> {
        let id = self.hub.next.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        {
            let mut state = self.hub.lock();
            if !state.nodes.get(&*self.node).is_some_and(|n| n.alive) {
                return Err(BrokerError::Unavailable("this node is dead".into()));
            }
            let inbound = Inbound::Request { id, from: self.node.clone(), room: room.to_string(), cmd };
            if !Hub::deliver(&mut state, node, inbound) {
                // A dead node's channel has no listener: the request is lost
                // unanswered, as a publish to a dead server is.
                drop(done);
            } else {
                state.pending.insert(id, done);
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), wait).await {
            Ok(Ok(result)) => Ok(result),
            _ => {
                self.hub.lock().pending.remove(&id);
                Err(BrokerError::NoAnswer(node.to_string()))
            }
        }
    }

    fn respond(&self, _to: &str, id: u64, result: Result<Outcome, EngineError>) {
        let mut state = self.hub.lock();
        if !state.nodes.get(&*self.node).is_some_and(|n| n.alive) {
            return;
        }
        if let Some(done) = state.pending.remove(&id) {
            let _ = done.send(result);
        }
    }

    async fn subscribe(&self, room: &str) -> BrokerResult<()> {
        if let Some(n) = self.hub.lock().nodes.get_mut(&*self.node) {
            n.subscribed.insert(room.to_string());
        }
        Ok(())
    }

    async fn unsubscribe(&self, room: &str) {
        if let Some(n) = self.hub.lock().nodes.get_mut(&*self.node) {
            n.subscribed.remove(room);
        }
    }

    async fn lock(&self, name: &str) -> BrokerResult<Box<dyn HeldLock>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let token = self.hub.next.fetch_add(1, Ordering::Relaxed);
            {
                let mut state = self.hub.lock();
                if !state.locks.contains_key(name) {
                    state.locks.insert(name.to_string(), token);
                    return Ok(Box::new(HubLock { hub: self.hub.clone(), name: name.to_string(), token }));
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(BrokerError::Unavailable(format!("the lock `{name}` stays taken")));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn barrier(&self) {
        // A marker through the hub's ordered loop: it comes back after
        // every commit sent before it.
        let nonce = self.hub.next.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        self.hub.lock().barriers.insert(nonce, done);
        let _ = self.hub.ops.send(Op::Barrier { node: self.node.to_string(), nonce });
        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
    }

    fn barrier_reached(&self, nonce: u64) {
        if let Some(done) = self.hub.lock().barriers.remove(&nonce) {
            let _ = done.send(());
        }
    }
}
