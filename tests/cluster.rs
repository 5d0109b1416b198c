//! Two server processes on one Redis (`ROOMCAST_TEST_REDIS`): changes,
//! presence and counts cross servers; matches spread over both never
//! overfill a room; a server killed with SIGKILL is cleaned up by the other
//! within the heartbeat expiry.

mod common;

use std::time::{Duration, Instant};

use common::{RedisTarget, TestServer, assert_reply_ok, match_all, user};
use serde_json::{Value, json};

/// Heartbeat expiry used here; a dead server is noticed within it and a
/// quarter more.
const NODE_TTL: &str = "1";

async fn pair() -> (TestServer, TestServer) {
    let redis = RedisTarget::required();
    let args = ["--node-ttl-seconds", NODE_TTL, "--rate-burst", "1000"];
    let a = TestServer::start_on_redis(Some(redis.clone()), &args).await;
    let b = TestServer::start_on_redis(Some(redis), &args).await;
    (a, b)
}

async fn room_on(server: &TestServer, id: &str) -> Value {
    let (status, room) = server.api(None).get(&format!("/api/rooms/{id}")).await;
    assert_eq!(status, 200, "{room}");
    room
}

/// Waits until `check` holds for the room as `server` reports it.
async fn eventually(server: &TestServer, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let room = room_on(server, id).await;
        if check(&room) {
            return room;
        }
        assert!(Instant::now() < deadline, "room {id} on port {} never got there: {room}", server.port);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_change_through_one_server_reaches_clients_of_the_other_as_a_delta() {
    let (a, b) = pair().await;
    let (alice, _) = user(&a, "alice").await;
    let (_, mut watcher) = user(&b, "bob").await;
    assert_reply_ok(&watcher.request("join:overview", json!({})).await);

    // Created through A: B's overview gets the creation.
    a.api(Some(&alice)).create_room(json!({ "id": "film", "description": "one" })).await;
    let created = watcher.event("room:update").await;
    assert_eq!(created["data"]["roomId"], "film");
    assert_eq!(created["data"]["description"], "one");
    let v1 = created["data"]["version"].as_u64().unwrap();

    // A viewer on B joins the room (owned by A) and gets its state.
    let reply = watcher.request("join:room", json!({ "roomId": "film" })).await;
    let joined = assert_reply_ok(&reply);
    assert_eq!(joined["room"]["description"], "one");

    // Changed through A: B's clients get a delta with only what changed.
    let (status, _) = a.api(Some(&alice)).patch("/api/rooms/film", json!({ "description": "two" })).await;
    assert_eq!(status, 200);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let delta = watcher.event("room:update").await;
        if delta["data"]["description"] == "two" {
            seen.push(delta["data"].clone());
        }
    }
    for d in &seen {
        assert!(d["version"].as_u64().unwrap() > v1);
        assert_eq!(d["base"].as_u64().unwrap() + 1, d["version"].as_u64().unwrap(), "{d}");
        let fields: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert!(fields.iter().all(|f| ["roomId", "version", "base", "description"].contains(&f.as_str())), "{d}");
    }

    // Changed through B (the request travels to A): A's clients see it.
    let (_, mut viewer_a) = user(&a, "carol").await;
    assert_reply_ok(&viewer_a.request("join:room", json!({ "roomId": "film" })).await);
    let (status, body) = b.api(Some(&alice)).patch("/api/rooms/film", json!({ "hidden": true })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hidden"], true);
    loop {
        let d = viewer_a.event("room:update").await;
        if d["data"]["hidden"] == true {
            break;
        }
    }
    // Both servers answer the same state.
    let on_a = room_on(&a, "film").await;
    let on_b = eventually(&b, "film", |r| r["version"] == on_a["version"]).await;
    assert_eq!(on_a, on_b);

    // Room events cross too: chat from A reaches B.
    assert_reply_ok(&viewer_a.request("chat:send", json!({ "roomId": "film", "text": "hello from A" })).await);
    let chat = watcher.event("chat:message:new").await;
    assert_eq!(chat["data"]["message"]["text"], "hello from A");

    // Deleted through B: B's viewer and overview learn it.
    let (status, _) = b.api(Some(&alice)).delete("/api/rooms/film").await;
    assert_eq!(status, 204);
    let gone = watcher.event("room:delete").await;
    assert_eq!(gone["data"]["roomId"], "film");
    // Nothing else follows (the room's end is a control message between
    // servers, never an empty frame to clients: `read` would fail on it).
    watcher.no_event("not-an-event", Duration::from_millis(300)).await;
    assert_eq!(a.api(None).get("/api/rooms/film").await.0, 404);
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.api(None).get("/api/rooms/film").await.0 != 404 {
        assert!(Instant::now() < deadline, "B still lists the deleted room");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn presence_and_counts_agree_on_both_servers() {
    let (a, b) = pair().await;
    let (alice, mut on_a) = user(&a, "alice").await;
    a.api(Some(&alice)).create_room(json!({ "id": "meet", "maxMembers": 3 })).await;
    let reply = on_a.request("join:room", json!({ "roomId": "meet" })).await;
    let alice_sid = assert_reply_ok(&reply)["sid"].as_str().unwrap().to_string();

    let (_, mut on_b) = user(&b, "bob").await;
    let reply = on_b.request("join:room", json!({ "roomId": "meet" })).await;
    let joined = assert_reply_ok(&reply);
    let bob_sid = joined["sid"].as_str().unwrap().to_string();
    let sids: Vec<&str> = joined["presence"].as_array().unwrap().iter().map(|p| p["sid"].as_str().unwrap()).collect();
    assert_eq!(sids, [alice_sid.as_str(), bob_sid.as_str()]);
    let seen = on_a.presence_join().await;
    assert_eq!(seen["data"]["sid"], bob_sid);
    assert_eq!(seen["data"]["userName"], "bob");

    // A spectator on A: two members, one spectator, three connections,
    // the same on both servers.
    let dave = b.session("dave").await;
    let mut dave_ws = a.ws(&dave).await;
    assert_reply_ok(&dave_ws.request("join:room", json!({ "roomId": "meet", "as": "spectator" })).await);
    let expect = |r: &Value| r["connectionCount"] == 3 && r["memberCount"] == 2 && r["spectatorCount"] == 1;
    let on_a_room = eventually(&a, "meet", expect).await;
    let on_b_room = eventually(&b, "meet", expect).await;
    assert_eq!(on_a_room, on_b_room);

    // Bob on B leaves: A's client sees it, counts agree again.
    assert_reply_ok(&on_b.request("leave:room", json!({ "roomId": "meet" })).await);
    let left = on_a.presence_leave().await;
    assert_eq!(left["data"]["sid"], bob_sid);
    let expect = |r: &Value| r["connectionCount"] == 2 && r["memberCount"] == 1;
    let on_a_room = eventually(&a, "meet", expect).await;
    let on_b_room = eventually(&b, "meet", expect).await;
    assert_eq!(on_a_room, on_b_room);

    // A closed socket on B counts as leaving too.
    let reply = on_b.request("join:room", json!({ "roomId": "meet" })).await;
    let bob_sid = assert_reply_ok(&reply)["sid"].as_str().unwrap().to_string();
    // Presence changes within one tick are announced together: see Bob
    // back before he goes again.
    while on_a.presence_join().await["data"]["sid"] != bob_sid {}
    on_b.close().await;
    loop {
        let left = on_a.presence_leave().await;
        if left["data"]["sid"] == bob_sid {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_matches_over_two_servers_never_overfill_a_room() {
    let (a, b) = pair().await;
    let mut clients = Vec::new();
    for i in 0..50 {
        let server = if i % 2 == 0 { &a } else { &b };
        clients.push(user(server, &format!("player{i}")).await.1);
    }
    let per_room = match_all(&mut clients, 2).await;
    assert!(per_room.values().all(|n| *n <= 2), "a room was overfilled: {per_room:?}");
    assert_eq!(per_room.len(), 25, "matches filled a room before opening the next: {per_room:?}");
    for server in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (_, list) = server.api(None).get("/api/rooms").await;
            let rooms = list["rooms"].as_array().unwrap();
            let full = rooms.len() == 25 && rooms.iter().all(|r| r["memberCount"] == 2 && r["maxMembers"] == 2);
            if full {
                break;
            }
            assert!(Instant::now() < deadline, "port {}: {list}", server.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_its_presence_locks_and_presenter_and_its_rooms_move() {
    let (mut a, b) = pair().await;
    let (bob, mut watcher) = user(&b, "bob").await;
    // A room B owns, with a client of A holding the lock and presenting.
    b.api(Some(&bob)).create_room(json!({ "id": "on-b" })).await;
    assert_reply_ok(&watcher.request("join:room", json!({ "roomId": "on-b" })).await);
    let (alice, mut doomed) = user(&a, "alice").await;
    let reply = doomed.request("join:room", json!({ "roomId": "on-b" })).await;
    let alice_sid = assert_reply_ok(&reply)["sid"].as_str().unwrap().to_string();
    assert_reply_ok(&doomed.request("lock:acquire", json!({ "roomId": "on-b", "msg": "Uploading 1/3" })).await);
    assert_reply_ok(&doomed.request("presenter:request", json!({ "roomId": "on-b" })).await);
    let held = |r: &Value| r["metadataLocked"].is_object() && r["presenterSid"] == alice_sid;
    let room = eventually(&b, "on-b", |r| held(r) && r["connectionCount"] == 2).await;
    assert_eq!(room["memberCount"], 2);

    // A room A owns, with a client of B in it.
    a.api(Some(&alice)).create_room(json!({ "id": "on-a" })).await;
    let (_, mut stays) = user(&b, "carol").await;
    let reply = stays.request("join:room", json!({ "roomId": "on-a" })).await;
    let carol_sid = assert_reply_ok(&reply)["sid"].as_str().unwrap().to_string();
    let mut alice_in_a = a.ws(&alice).await;
    let reply = alice_in_a.request("join:room", json!({ "roomId": "on-a" })).await;
    let alice_sid_2 = assert_reply_ok(&reply)["sid"].as_str().unwrap().to_string();
    eventually(&b, "on-a", |r| r["connectionCount"] == 2).await;

    let killed = Instant::now();
    a.kill();

    // B's viewer sees A's client leave with its lock and its presenter.
    let left = watcher.presence_leave_within(Duration::from_secs(4)).await.expect("presence:leave");
    assert_eq!(left["data"]["sid"], alice_sid);
    let noticed = killed.elapsed();
    let room = eventually(&b, "on-b", |r| r["connectionCount"] == 1).await;
    assert!(room["metadataLocked"].is_null(), "{room}");
    assert!(room["presenterSid"].is_null(), "{room}");
    assert_eq!(room["memberCount"], 1);
    // Within the heartbeat expiry and a quarter more (plus scheduling).
    assert!(noticed <= Duration::from_millis(2000), "took {noticed:?}");

    // B took over A's room: A's client is gone, B's client stays and the
    // room works (a change and a room event through B).
    let left = stays.presence_leave_within(Duration::from_secs(4)).await.expect("presence:leave in on-a");
    assert_eq!(left["data"]["sid"], alice_sid_2);
    let room = eventually(&b, "on-a", |r| r["connectionCount"] == 1).await;
    assert_eq!(room["memberCount"], 1, "{room}");
    let chat = stays.request("chat:send", json!({ "roomId": "on-a", "text": "still here" })).await;
    assert_reply_ok(&chat);
    let (status, body) = b.api(Some(&alice)).patch("/api/rooms/on-a", json!({ "description": "moved" })).await;
    assert_eq!(status, 200, "{body}");
    let stats = b.api(None).get("/api/stats").await.1;
    assert_eq!(stats["rooms"], 2, "{stats}");
    println!("dead server noticed after {noticed:?}; carol {carol_sid} kept her place");
}
