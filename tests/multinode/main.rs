//! Several engines in one process over the in-memory broker of `hub.rs`,
//! with delivery held, cut and nodes killed at chosen steps: each test is
//! one of the scale-out defects found with real servers, replayed
//! step by step.

mod hub;

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::api::{CreateRoom, PatchRoom};
use app::protocol::{ClientEvent, LockAcquire, RoomRef};
use hub::Hub;
use roomcast::engine::connection::{Connection, OutboundReceiver, User, outbound};
use roomcast::engine::errors::EngineError;
use roomcast::engine::storage::Storage;
use roomcast::engine::{self, Engine, EngineSettings};
use roomcast::sqlite::SqliteStorage;
use serde_json::Value;

const NODE_TTL: Duration = Duration::from_millis(400);

struct Cluster {
    hub: Hub,
    nodes: Vec<(String, Engine)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(names: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("dir");
        let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&dir.path().join("db")).expect("storage"));
        let hub = Hub::new(storage.clone());
        let mut nodes = Vec::new();
        for name in names {
            let (broker, inbox) = hub.join(name);
            let settings = EngineSettings { node_ttl: NODE_TTL, ..Default::default() };
            let engine = engine::start(storage.clone(), broker, inbox, settings).await.expect("engine");
            nodes.push((name.to_string(), engine));
        }
        Cluster { hub, nodes, _dir: dir }
    }

    fn node(&self, name: &str) -> &Engine {
        &self.nodes.iter().find(|(n, _)| n == name).expect("node").1
    }
}

/// A connection of a test client and what the engine queued for it.
struct Client {
    conn: Arc<Connection>,
    rx: OutboundReceiver,
}

fn client(engine: &Engine, name: &str) -> Client {
    let (out, rx) = outbound(4096, 16 << 20);
    let user = User { id: format!("u-{name}").into(), name: name.into() };
    Client { conn: Arc::new(Connection { sid: engine.new_sid(), user, out }), rx }
}

impl Client {
    fn user(&self) -> &User {
        &self.conn.user
    }

    /// The next message queued within `within`.
    async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(frame) = self.rx.rx.try_recv() {
                return serde_json::from_slice(&frame).ok();
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Joins a room; returns the room's metadata from the join reply.
    async fn join(&mut self, engine: &Engine, room: &str) -> Value {
        engine.join_room(self.conn.clone(), room, None, Some(1)).await.expect("join");
        loop {
            let msg = self.next(Duration::from_secs(5)).await.expect("a join reply");
            if msg["event"] == "reply" && msg["id"] == 1 {
                assert_eq!(msg["ok"], true, "{msg}");
                return msg["data"]["room"].clone();
            }
        }
    }

    /// Applies the room's deltas to `state` until `done` holds.
    async fn follow(&mut self, room: &str, state: &mut Value, within: Duration, done: impl Fn(&Value) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while !done(state) {
            let Some(msg) = self.next(deadline.saturating_duration_since(Instant::now())).await else { return false };
            if msg["event"] == "room:update" && msg["data"]["roomId"] == room {
                for (field, value) in msg["data"].as_object().into_iter().flatten() {
                    state[field] = value.clone();
                }
            }
        }
        true
    }
}

async fn create(engine: &Engine, host: &User, id: &str) {
    let req = CreateRoom { id: Some(id.into()), ..Default::default() };
    engine.create_room(host, req, None).await.expect("create");
}

async fn describe(engine: &Engine, host: &User, id: &str, text: &str) -> Result<(), EngineError> {
    let patch = PatchRoom { description: Some(Some(text.into())), ..Default::default() };
    engine.patch_room(host, id, patch).await.map(|_| ())
}

/// Waits until `check` holds for the room as `engine` reports it.
async fn eventually(engine: &Engine, id: &str, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let room = engine.get_room(id).await.map(|r| serde_json::to_value(r).expect("json"));
        if let Ok(room) = &room
            && check(room)
        {
            return room.clone();
        }
        assert!(Instant::now() < deadline, "room {id} never got there: {room:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_has_not_heard_of_a_room_yet_still_joins_it() {
    let c = Cluster::start(&["a", "b"]).await;
    let (a, b) = (c.node("a"), c.node("b"));
    let host = client(a, "alice");
    // B's room list hears nothing of A's changes for now: the creation is
    // still on its way when bob joins through B.
    c.hub.hold("b");
    create(a, host.user(), "fresh").await;
    c.hub.settle().await;
    let mut bob = client(b, "bob");
    let mut state = bob.join(b, "fresh").await;
    c.hub.release("b");
    describe(a, host.user(), "fresh", "after").await.expect("patch");
    assert!(bob.follow("fresh", &mut state, Duration::from_secs(3), |s| s["description"] == "after").await, "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_lost_while_a_node_was_cut_off_are_caught_up_on_restore() {
    let c = Cluster::start(&["a", "b"]).await;
    let (a, b) = (c.node("a"), c.node("b"));
    let host = client(a, "alice");
    create(a, host.user(), "burst").await;
    let mut bob = client(b, "bob");
    let mut state = bob.join(b, "burst").await;
    // A burst while B's subscription is gone: nothing later reveals a gap.
    c.hub.cut("b");
    for i in 0..5 {
        describe(a, host.user(), "burst", &format!("d{i}")).await.expect("patch");
    }
    c.hub.settle().await;
    c.hub.restore("b");
    let want = a.get_room("burst").await.expect("room").version;
    assert!(bob.follow("burst", &mut state, Duration::from_secs(3), |s| s["version"] == want).await, "{state}");
    assert_eq!(state["description"], "d4");
    let on_b = eventually(b, "burst", Duration::from_secs(3), |r| r["version"] == want).await;
    assert_eq!(on_b["description"], "d4");
    let listed = b.list_rooms().await;
    assert_eq!(listed.iter().find(|r| r.id == "burst").map(|r| r.version), Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_viewers_on_a_survivor_get_the_take_over_delta() {
    let c = Cluster::start(&["a", "b"]).await;
    let (a, b) = (c.node("a"), c.node("b"));
    let mut alice = client(a, "alice");
    create(a, alice.user(), "doomed").await;
    alice.join(a, "doomed").await;
    let lock =
        ClientEvent::LockAcquire(LockAcquire { room_id: "doomed".into(), msg: Some("1/3".into()), ttl_seconds: None });
    a.room_event(alice.conn.clone(), "doomed", lock).await.expect("lock");
    let present = ClientEvent::PresenterRequest(RoomRef { room_id: "doomed".into() });
    a.room_event(alice.conn.clone(), "doomed", present).await.expect("presenter");
    let mut bob = client(b, "bob");
    let mut state = bob.join(b, "doomed").await;
    assert!(state["metadataLocked"].is_object() && state["presenterSid"].is_string(), "{state}");

    c.hub.kill("a");
    let clean = |s: &Value| s["metadataLocked"].is_null() && s["presenterSid"].is_null() && s["connectionCount"] == 1;
    assert!(bob.follow("doomed", &mut state, Duration::from_secs(5), clean).await, "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closing_in_the_failover_window_leaves_no_ghost_on_any_survivor() {
    let c = Cluster::start(&["a", "b", "c"]).await;
    let (a, b, cc) = (c.node("a"), c.node("b"), c.node("c"));
    let mut alice = client(a, "alice");
    create(a, alice.user(), "window").await;
    alice.join(a, "window").await;
    let mut stays = client(b, "carol");
    stays.join(b, "window").await;
    let mut leaves_b = client(b, "dave");
    leaves_b.join(b, "window").await;
    let mut leaves_c = client(cc, "erin");
    leaves_c.join(cc, "window").await;
    let mut watcher = client(cc, "frank");
    watcher.join(cc, "window").await;
    eventually(b, "window", Duration::from_secs(3), |r| r["connectionCount"] == 5).await;

    c.hub.kill("a");
    tokio::time::sleep(NODE_TTL / 2).await;
    b.disconnect(leaves_b.conn.sid.clone(), ["window".into()], false).await;
    cc.disconnect(leaves_c.conn.sid.clone(), ["window".into()], false).await;

    let expect = |r: &Value| r["connectionCount"] == 2 && r["memberCount"] == 2;
    let on_b = eventually(b, "window", Duration::from_secs(5), expect).await;
    let on_c = eventually(cc, "window", Duration::from_secs(5), |r| r["version"] == on_b["version"]).await;
    assert_eq!(on_b, on_c);
    tokio::time::sleep(NODE_TTL * 2).await;
    let later = serde_json::to_value(b.get_room("window").await.expect("room")).expect("json");
    assert_eq!(later["connectionCount"], 2, "a ghost came back: {later}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_the_failover_window_reach_the_new_owner_or_answer_unavailable() {
    let c = Cluster::start(&["a", "b"]).await;
    let (a, b) = (c.node("a"), c.node("b"));
    let host = client(a, "alice");
    create(a, host.user(), "busy").await;
    let mut bob = client(b, "bob");
    bob.join(b, "busy").await;

    // An append already on its way to A when A dies may have run there: it
    // is not sent again (that could append twice) and answers `unavailable`.
    c.hub.cut("a");
    let append = {
        let (b, user) = (b.clone(), host.user().clone());
        tokio::spawn(async move { b.append_frames(&user, "busy", vec!["{}".into()], None).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.hub.kill("a");
    let answer = append.await.expect("task");
    let err = answer.expect_err("a request lost with its server is not answered ok");
    assert!(matches!(err, EngineError::Unavailable { retry_after_ms, .. } if retry_after_ms > 0), "{err:?}");

    // A change asked now waits for the new owner and is made there.
    let started = Instant::now();
    describe(b, host.user(), "busy", "moved").await.expect("the change reaches the new owner");
    assert!(started.elapsed() < NODE_TTL * 2 + Duration::from_secs(1), "{:?}", started.elapsed());
    let room = b.get_room("busy").await.expect("room");
    assert_eq!(room.description.as_deref(), Some("moved"));
    assert_eq!(room.frame_count, 0, "the lost append did not run twice");
    // And an append now goes through once.
    assert_eq!(b.append_frames(host.user(), "busy", vec!["{}".into()], None).await.expect("append"), 1);
}
