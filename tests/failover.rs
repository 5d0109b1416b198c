//! Two servers on one Redis when things go wrong: a server killed with
//! SIGKILL (its rooms' viewers elsewhere get the take-over delta, a
//! connection closing in the failover window is not brought back,
//! requests made meanwhile wait for the new owner), and Redis itself lost
//! or restarted (servers stay up, reconnect, and every client converges;
//! with AOF on, acknowledged writes survive the restart).
//!
//! The tests that restart Redis run their own `redis-server` on a free
//! port, with `appendonly yes` and `appendfsync always`, so no other test
//! sees the outage.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{RedisTarget, TestServer, Ws, assert_reply_ok, user};
use serde_json::{Value, json};

const ARGS: [&str; 4] = ["--node-ttl-seconds", "1", "--rate-burst", "1000"];

async fn pair_on(redis: RedisTarget) -> (TestServer, TestServer) {
    let a = TestServer::start_on_redis(Some(redis.clone()), &ARGS).await;
    let b = TestServer::start_on_redis(Some(redis), &ARGS).await;
    (a, b)
}

async fn room_on(server: &TestServer, id: &str) -> (u16, Value) {
    server.api(None).get(&format!("/api/rooms/{id}")).await
}

/// Waits until `check` holds for the room as `server` reports it.
async fn eventually(server: &TestServer, id: &str, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, room) = room_on(server, id).await;
        if status == 200 && check(&room) {
            return room;
        }
        assert!(Instant::now() < deadline, "room {id} on port {} never got there: {status} {room}", server.port);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Applies every `room:update` of `room` that arrives within `within` to
/// `state` (by the delta's fields) until `done` holds; false if it never does.
async fn follow_until(
    ws: &mut Ws,
    room: &str,
    state: &mut Value,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    while !done(state) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let Some(msg) = ws.read(left).await else { return false };
        if msg["event"] == "room:update" && msg["data"]["roomId"] == room {
            for (field, value) in msg["data"].as_object().into_iter().flatten() {
                state[field] = value.clone();
            }
        }
    }
    true
}

/// A room owned by `a` (created there), with alice on `a` in it.
async fn room_owned_by(a: &TestServer, id: &str) -> (String, Ws, String) {
    let (alice, mut ws) = user(a, "alice").await;
    a.api(Some(&alice)).create_room(json!({ "id": id })).await;
    let reply = ws.request("join:room", json!({ "roomId": id })).await;
    let sid = assert_reply_ok(&reply)["sid"].as_str().expect("sid").to_string();
    (alice, ws, sid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_on_the_survivor_gets_the_take_over_delta() {
    let (mut a, b) = pair_on(RedisTarget::required()).await;
    let (_, mut alice, alice_sid) = room_owned_by(&a, "doomed").await;
    assert_reply_ok(&alice.request("lock:acquire", json!({ "roomId": "doomed", "msg": "Uploading 1/3" })).await);
    assert_reply_ok(&alice.request("presenter:request", json!({ "roomId": "doomed" })).await);

    // A viewer on B follows the room channel only (no overview).
    let (_, mut viewer) = user(&b, "bob").await;
    let reply = viewer.request("join:room", json!({ "roomId": "doomed" })).await;
    let mut state = assert_reply_ok(&reply)["room"].clone();
    assert!(state["metadataLocked"].is_object(), "{state}");
    assert_eq!(state["presenterSid"], alice_sid);

    let killed = Instant::now();
    a.kill();
    let cleared = follow_until(&mut viewer, "doomed", &mut state, Duration::from_secs(6), |s| {
        s["metadataLocked"].is_null() && s["presenterSid"].is_null() && s["connectionCount"] == 1
    })
    .await;
    assert!(cleared, "the viewer still shows the dead server's lock or presenter: {state}");
    let took = killed.elapsed();
    // The viewer's state is the server's.
    let room = eventually(&b, "doomed", Duration::from_secs(2), |r| r["version"] == state["version"]).await;
    for field in ["metadataLocked", "presenterSid", "connectionCount", "memberCount", "spectatorCount"] {
        assert_eq!(room[field], state[field], "{field}: {room} vs {state}");
    }
    println!("take-over delta reached the viewer {took:?} after SIGKILL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closing_during_failover_is_not_brought_back() {
    let (mut a, b) = pair_on(RedisTarget::required()).await;
    let (_, _alice, _) = room_owned_by(&a, "window").await;
    let (_, mut stays) = user(&b, "carol").await;
    assert_reply_ok(&stays.request("join:room", json!({ "roomId": "window" })).await);
    let (_, mut leaves) = user(&b, "dave").await;
    assert_reply_ok(&leaves.request("join:room", json!({ "roomId": "window" })).await);
    eventually(&b, "window", Duration::from_secs(5), |r| r["connectionCount"] == 3).await;

    a.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    leaves.close().await;

    // B takes the room over with carol alone, and it stays that way.
    let room = eventually(&b, "window", Duration::from_secs(8), |r| r["connectionCount"] == 1).await;
    assert_eq!(room["memberCount"], 1, "{room}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, room) = room_on(&b, "window").await;
    assert_eq!(room["connectionCount"], 1, "a ghost came back: {room}");
    // A newcomer sees carol and itself, nobody else.
    let (_, mut newcomer) = user(&b, "erin").await;
    let reply = newcomer.request("join:room", json!({ "roomId": "window" })).await;
    let names: Vec<&str> = assert_reply_ok(&reply)["presence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol", "erin"], "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_failover_wait_for_the_new_owner() {
    let (mut a, b) = pair_on(RedisTarget::required()).await;
    let (alice, _alice_ws, _) = room_owned_by(&a, "busy").await;
    let (_, mut carol) = user(&b, "carol").await;
    assert_reply_ok(&carol.request("join:room", json!({ "roomId": "busy" })).await);

    let killed = Instant::now();
    a.kill();
    // Straight away, through B: a change waits for the new owner and is
    // made there, never answered `internal`.
    let (status, body) = b.api(Some(&alice)).patch("/api/rooms/busy", json!({ "description": "still here" })).await;
    let answered = killed.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["description"], "still here");
    // A room event meanwhile: answered, by the new owner or as retryable.
    let reply = carol.request("lock:acquire", json!({ "roomId": "busy", "msg": "after" })).await;
    if reply["ok"] != true {
        assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
        assert!(reply["error"]["retryAfterMs"].as_u64().is_some(), "{reply}");
    }
    // Within the heartbeat expiry, a quarter more and the take-over.
    assert!(answered < Duration::from_secs(3), "took {answered:?}");
    println!("PATCH during failover answered 200 after {answered:?}");
}

/// A `redis-server` of this test's own, with AOF, that can be restarted.
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = OwnRedis { port, dir: tempfile::tempdir().expect("dir"), child: None };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let dir: PathBuf = self.dir.path().to_path_buf();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn target(&self) -> RedisTarget {
        RedisTarget { url: format!("redis://127.0.0.1:{}/0", self.port), prefix: "own".into() }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops Redis (SIGKILL: what is on disk is what an fsync'd AOF holds).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// PATCHes until the answer is not `unavailable` (the server reconnects).
async fn patch_retrying(server: &TestServer, token: &str, id: &str, body: Value) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = server.api(Some(token)).patch(&format!("/api/rooms/{id}"), body.clone()).await;
        if answer.0 != 503 || Instant::now() > deadline {
            return answer;
        }
        assert_eq!(answer.1["error"]["code"], "unavailable", "{}", answer.1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_loses_its_subscription_reconnects_and_still_finds_new_rooms() {
    let redis = OwnRedis::start();
    let (a, b) = pair_on(redis.target()).await;
    let (alice, _) = user(&a, "alice").await;
    let (_, mut bob) = user(&b, "bob").await;

    // Every subscriber connection is cut, then a room is made on A at once:
    // B has not heard of it when bob joins through B.
    let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(killed.trim().parse::<u32>().unwrap_or(0) >= 2, "killed {killed}");
    a.api(Some(&alice)).create_room(json!({ "id": "fresh" })).await;
    let reply = bob.request("join:room", json!({ "roomId": "fresh" })).await;
    assert_reply_ok(&reply);

    // Both servers are still up and follow each other again: a change on
    // A reaches bob on B.
    let mut state = reply["data"]["room"].clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let (status, body) = patch_retrying(&a, &alice, "fresh", json!({ "description": format!("d{n}") })).await;
        assert_eq!(status, 200, "{body}");
        let want = format!("d{n}");
        if follow_until(&mut bob, "fresh", &mut state, Duration::from_millis(500), |s| s["description"] == want).await {
            break;
        }
        assert!(Instant::now() < deadline, "B never followed A again: {state}");
    }
    let (status, _) = room_on(&b, "fresh").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_keeps_acknowledged_writes_and_every_client_converges() {
    let mut redis = OwnRedis::start();
    let (a, b) = pair_on(redis.target()).await;
    // The host stays connected, so the room keeps its host throughout.
    let (alice, mut on_a) = user(&a, "alice").await;
    a.api(Some(&alice)).create_room(json!({ "id": "durable" })).await;
    let (_, mut on_b) = user(&b, "dave").await;
    let mut state_a = assert_reply_ok(&on_a.request("join:room", json!({ "roomId": "durable" })).await)["room"].clone();
    let mut state_b = assert_reply_ok(&on_b.request("join:room", json!({ "roomId": "durable" })).await)["room"].clone();
    let mut acknowledged = None;
    for i in 0..20 {
        let (status, body) =
            a.api(Some(&alice)).patch("/api/rooms/durable", json!({ "description": format!("v{i}") })).await;
        assert_eq!(status, 200, "{body}");
        acknowledged = Some(format!("v{i}"));
    }

    redis.kill();
    // While Redis is down: writes are refused as retryable, reads answer.
    let (status, body) = a.api(Some(&alice)).patch("/api/rooms/durable", json!({ "description": "lost" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("unavailable")), "{body}");
    assert!(body["error"]["retryAfterMs"].as_u64().is_some(), "{body}");
    assert_eq!(room_on(&b, "durable").await.0, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.spawn();

    // The acknowledged write survived the restart.
    let stored = redis.cli(&["GET", "own:room:durable"]);
    let want = acknowledged.expect("writes");
    assert!(stored.contains(&format!("\"description\":\"{want}\"")), "{stored}");
    // Both servers serve again, and both clients converge on one state.
    let (status, body) = patch_retrying(&a, &alice, "durable", json!({ "description": "after" })).await;
    assert_eq!(status, 200, "{body}");
    let converged = |s: &Value| s["description"] == "after";
    assert!(follow_until(&mut on_a, "durable", &mut state_a, Duration::from_secs(8), converged).await, "{state_a}");
    assert!(follow_until(&mut on_b, "durable", &mut state_b, Duration::from_secs(8), converged).await, "{state_b}");
    let on_a_room = eventually(&a, "durable", Duration::from_secs(5), |r| r["description"] == "after").await;
    let on_b_room = eventually(&b, "durable", Duration::from_secs(5), |r| r["version"] == on_a_room["version"]).await;
    assert_eq!(on_a_room, on_b_room);
}
