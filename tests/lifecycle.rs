//! Room lifecycle (PROTOCOL.md 6.1, 6.2, 6.6): seats, roles, host, status,
//! matchmaking, idle cleanup, capacity and stats. Timed rules run with
//! short settings.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{TestServer, Ws, assert_error, assert_reply_error, assert_reply_ok, match_all, room_eventually};
use serde_json::{Value, json};

async fn user(server: &TestServer, name: &str) -> (String, Ws) {
    let token = server.session(name).await;
    let ws = server.ws(&token).await;
    (token, ws)
}

#[tokio::test]
async fn seats_are_per_user_and_full_rooms_refuse_or_seat_spectators() {
    let server = TestServer::start().await;
    let (alice, mut a1) = user(&server, "alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "duo", "maxMembers": 2, "allowSpectators": false })).await;
    api.create_room(json!({ "id": "show", "maxMembers": 1 })).await;

    assert_eq!(assert_reply_ok(&a1.request("join:room", json!({ "roomId": "duo" })).await)["role"], "member");
    // A second tab of the same user reuses the seat.
    let mut a2 = server.ws(&alice).await;
    let data = assert_reply_ok(&a2.request("join:room", json!({ "roomId": "duo" })).await).clone();
    assert_eq!(data["role"], "member");
    room_eventually(&server, "duo", |r| r["memberCount"] == 1 && r["connectionCount"] == 2).await;

    let (_, mut b) = user(&server, "bob").await;
    assert_reply_ok(&b.request("join:room", json!({ "roomId": "duo" })).await);
    room_eventually(&server, "duo", |r| r["memberCount"] == 2).await;
    let (_, mut c) = user(&server, "carol").await;
    assert_reply_error(&c.request("join:room", json!({ "roomId": "duo" })).await, "full");

    // With spectators allowed, a late user watches instead.
    assert_eq!(assert_reply_ok(&a1.request("join:room", json!({ "roomId": "show" })).await)["role"], "member");
    let data = assert_reply_ok(&c.request("join:room", json!({ "roomId": "show" })).await).clone();
    assert_eq!(data["role"], "spectator");
    room_eventually(&server, "show", |r| r["spectatorCount"] == 1 && r["memberCount"] == 1).await;
    let presence = data["presence"].as_array().unwrap();
    assert_eq!(presence.len(), 2);
    assert_eq!(presence[0]["userName"], "alice", "longest present first");
}

#[tokio::test]
async fn the_host_moves_to_the_longest_present_member_after_the_grace_period() {
    let server = TestServer::start_with(&["--seat-grace-seconds", "1.5"]).await;
    let (alice, mut a) = user(&server, "alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "hosted" })).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "hosted" })).await);
    let (_, mut b) = user(&server, "bob").await;
    assert_reply_ok(&b.request("join:room", json!({ "roomId": "hosted" })).await);
    let (_, mut c) = user(&server, "carol").await;
    assert_reply_ok(&c.request("join:room", json!({ "roomId": "hosted" })).await);

    let left = Instant::now();
    a.close().await;
    // Not before the grace period...
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(api.get("/api/rooms/hosted").await.1["hostName"], "alice");
    // ...but after it: bob has been present longest.
    let migrated = loop {
        let delta = b.event("room:update").await;
        if delta["data"].get("hostUserId").is_some() {
            break delta;
        }
    };
    assert!(left.elapsed() >= Duration::from_millis(1500), "{:?}", left.elapsed());
    assert_eq!(migrated["data"]["hostName"], "bob");
    assert_eq!(api.get("/api/rooms/hosted").await.1["hostName"], "bob");
    // The new host rules now.
    assert_reply_ok(&b.request("room:start", json!({ "roomId": "hosted" })).await);
    assert_reply_error(&c.request("room:finish", json!({ "roomId": "hosted" })).await, "forbidden");
}

#[tokio::test]
async fn a_reload_within_the_grace_period_keeps_seat_and_host() {
    let server = TestServer::start_with(&["--seat-grace-seconds", "2"]).await;
    let (alice, mut a) = user(&server, "alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "pair", "maxMembers": 2, "allowSpectators": false })).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "pair" })).await);
    let (_, mut b) = user(&server, "bob").await;
    assert_reply_ok(&b.request("join:room", json!({ "roomId": "pair" })).await);

    a.close().await;
    // Alice's seat is held: carol cannot take it.
    let (_, mut c) = user(&server, "carol").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_reply_error(&c.request("join:room", json!({ "roomId": "pair" })).await, "full");
    // Alice comes back (a reload) and has her seat and the host role.
    let mut a = server.ws(&alice).await;
    let data = assert_reply_ok(&a.request("join:room", json!({ "roomId": "pair" })).await).clone();
    assert_eq!(data["role"], "member");
    assert_eq!(data["room"]["hostName"], "alice");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(api.get("/api/rooms/pair").await.1["hostName"], "alice");

    // Once a seat's grace period is over, the seat is free.
    b.close().await;
    tokio::time::sleep(Duration::from_millis(2400)).await;
    assert_eq!(assert_reply_ok(&c.request("join:room", json!({ "roomId": "pair" })).await)["role"], "member");
}

#[tokio::test]
async fn start_needs_the_host_and_enough_members_and_finish_needs_active() {
    let server = TestServer::start().await;
    let (alice, mut a) = user(&server, "alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "game", "minMembers": 2, "maxMembers": 4 })).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "game" })).await);
    assert_reply_error(&a.request("room:start", json!({ "roomId": "game" })).await, "conflict");
    assert_reply_error(&a.request("room:finish", json!({ "roomId": "game" })).await, "conflict");
    let (_, mut b) = user(&server, "bob").await;
    assert_reply_ok(&b.request("join:room", json!({ "roomId": "game" })).await);
    assert_reply_error(&b.request("room:start", json!({ "roomId": "game" })).await, "forbidden");

    assert_reply_ok(&a.request("room:start", json!({ "roomId": "game" })).await);
    let delta = loop {
        let d = b.event("room:update").await;
        if d["data"].get("status").is_some() {
            break d;
        }
    };
    assert_eq!(delta["data"]["status"], "active");
    assert_reply_error(&a.request("room:start", json!({ "roomId": "game" })).await, "conflict");
    assert_reply_ok(&a.request("room:finish", json!({ "roomId": "game" })).await);
    assert_eq!(api.get("/api/rooms/game").await.1["status"], "finished");
    assert_reply_ok(&a.request("room:start", json!({ "roomId": "game" })).await);
    assert_eq!(api.get("/api/rooms/game").await.1["status"], "active");
}

#[tokio::test]
async fn fifty_concurrent_matches_fill_exactly_twenty_five_rooms() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for i in 0..50 {
        clients.push(user(&server, &format!("player{i}")).await.1);
    }
    let per_room = match_all(&mut clients, 2).await;
    assert_eq!(per_room.len(), 25, "{per_room:?}");
    assert!(per_room.values().all(|n| *n == 2), "{per_room:?}");
    // Counts are announced once per presence tick: wait for the last.
    let full = |r: &Value| r["memberCount"] == 2 && r["maxMembers"] == 2;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, list) = server.api(None).get("/api/rooms").await;
        let rooms = list["rooms"].as_array().unwrap();
        assert_eq!(rooms.len(), 25);
        if rooms.iter().all(full) {
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rest_matches_hold_seats_and_never_overfill() {
    let server = TestServer::start().await;
    let mut tokens = Vec::new();
    for i in 0..12 {
        tokens.push(server.session(&format!("p{i}")).await);
    }
    let answers = futures::future::join_all(tokens.iter().map(|t| {
        let api = server.api(Some(t));
        async move { api.post("/api/match", json!({ "maxMembers": 3 })).await }
    }))
    .await;
    let mut per_room: HashMap<String, usize> = HashMap::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        *per_room.entry(body["room"]["id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_room.len(), 4, "{per_room:?}");
    assert!(per_room.values().all(|n| *n == 3));
    assert_error(
        &server.api(Some(&tokens[0])).post("/api/match", json!({ "maxMembers": 0 })).await,
        400,
        "bad_request",
    );
    assert_error(&server.api(None).post("/api/match", json!({})).await, 401, "unauthorized");
}

async fn events_until(ws: &mut Ws, name: &str, within: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + within;
    while let Some(m) = ws.read(deadline.saturating_duration_since(Instant::now())).await {
        let done = m["event"] == name;
        seen.push(m);
        if done {
            break;
        }
    }
    seen
}

#[tokio::test]
async fn an_idle_room_is_warned_once_then_closed_and_deleted() {
    let server = TestServer::start_with(&["--room-idle-seconds", "3", "--room-warning-seconds", "2"]).await;
    let (alice, mut a) = user(&server, "alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "sleepy" })).await;
    let mut watcher = server.ws(&alice).await;
    assert_reply_ok(&watcher.request("join:overview", json!({})).await);
    let joined = Instant::now();
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "sleepy" })).await);

    let seen = events_until(&mut a, "room:delete", Duration::from_secs(6)).await;
    let names: Vec<&str> = seen.iter().map(|m| m["event"].as_str().unwrap()).collect();
    let warnings: Vec<&Value> = seen.iter().filter(|m| m["event"] == "room:warning").collect();
    assert_eq!(warnings.len(), 1, "{names:?}");
    assert!(warnings[0]["data"]["secondsRemaining"].as_u64().unwrap() <= 2);
    let closed = names.iter().position(|n| *n == "room:closed").expect("room:closed");
    let deleted = names.iter().position(|n| *n == "room:delete").expect("room:delete");
    assert!(closed < deleted);
    assert_eq!(seen[closed]["data"]["reason"], "inactivity");
    assert_eq!(seen[deleted]["data"]["reason"], "inactivity");
    assert!(joined.elapsed() >= Duration::from_millis(2900));
    let overview = watcher.event("room:delete").await;
    assert_eq!(overview["data"], json!({ "roomId": "sleepy", "reason": "inactivity" }));
    assert_error(&api.get("/api/rooms/sleepy").await, 404, "not_found");
}

#[tokio::test]
async fn activity_resets_the_idle_clock_and_default_and_locked_rooms_never_expire() {
    let server = TestServer::start_with(&["--room-idle-seconds", "3", "--room-warning-seconds", "2"]).await;
    let (alice, mut a) = user(&server, "alice").await;
    let api = server.api(Some(&alice));
    for id in ["kept", "default-one", "locked-one"] {
        api.create_room(json!({ "id": id })).await;
    }
    api.put("/api/default-room", json!({ "roomId": "default-one" })).await;
    api.patch("/api/rooms/locked-one", json!({ "locked": true })).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "kept" })).await);

    // Keep the room alive past several idle timeouts: a warning may come
    // each idle period, and keep_alive answers it.
    let until = Instant::now() + Duration::from_secs(5);
    let mut warnings = 0;
    while Instant::now() < until {
        if a.event_within("room:warning", Duration::from_millis(1500)).await.is_some() {
            warnings += 1;
        }
        assert_reply_ok(&a.request("keep_alive", json!({ "roomId": "kept" })).await);
    }
    assert!(warnings >= 1, "a warning comes before the timeout");
    assert!(a.backlog.iter().all(|m| m["event"] != "room:closed"), "{:?}", a.backlog);
    assert_eq!(api.get("/api/rooms/kept").await.0, 200);
    assert_eq!(api.get("/api/rooms/default-one").await.0, 200);
    assert_eq!(api.get("/api/rooms/locked-one").await.0, 200);
}

#[tokio::test]
async fn at_capacity_the_least_recently_active_unused_room_is_evicted() {
    let server = TestServer::start_with(&["--max-rooms", "3"]).await;
    let (alice, mut a) = user(&server, "alice").await;
    let api = server.api(Some(&alice));
    let mut watcher = server.ws(&alice).await;
    assert_reply_ok(&watcher.request("join:overview", json!({})).await);
    api.create_room(json!({ "id": "oldest" })).await;
    api.create_room(json!({ "id": "in-use" })).await;
    api.create_room(json!({ "id": "newer" })).await;
    // "in-use" has a connection; "oldest" gets activity later than "newer".
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "in-use" })).await);
    api.patch("/api/rooms/oldest", json!({ "description": "touched" })).await;

    api.create_room(json!({ "id": "fourth" })).await;
    let evicted = watcher.event("room:delete").await;
    assert_eq!(evicted["data"], json!({ "roomId": "newer", "reason": "evicted" }));

    api.create_room(json!({ "id": "fifth" })).await;
    let evicted = watcher.event("room:delete").await;
    assert_eq!(evicted["data"], json!({ "roomId": "oldest", "reason": "evicted" }));

    // Pin what is left: nothing can be evicted, creation fails.
    api.put("/api/default-room", json!({ "roomId": "fourth" })).await;
    api.patch("/api/rooms/fifth", json!({ "locked": true })).await;
    assert_error(&api.post("/api/rooms", json!({ "id": "sixth" })).await, 503, "capacity");
    let (_, list) = api.get("/api/rooms").await;
    assert_eq!(list["rooms"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn stats_and_metrics_report_rooms_connections_and_users() {
    let server = TestServer::start_with(&["--admin-token", "adm"]).await;
    let (alice, mut a) = user(&server, "alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "s1" })).await;
    api.create_room(json!({ "id": "s2" })).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "s1" })).await);
    let mut a2 = server.ws(&alice).await;
    assert_reply_ok(&a2.request("join:overview", json!({})).await);
    let (_, mut b) = user(&server, "bob").await;
    assert_reply_ok(&b.request("join:room", json!({ "roomId": "s1" })).await);
    assert_reply_error(&b.request("room:start", json!({ "roomId": "s1" })).await, "forbidden");
    // Counts are announced once per presence tick: wait for Bob's.
    while a2.event("room:update").await["data"]["connectionCount"] != 2 {}

    assert_error(&api.get("/api/stats").await, 401, "unauthorized");
    assert_error(&api.get("/metrics").await, 401, "unauthorized");
    let admin = server.api(Some("adm"));
    let (status, stats) = admin.get("/api/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["rooms"], 2);
    assert_eq!(stats["maxRooms"], 1000);
    assert_eq!(stats["connections"], 3);
    assert_eq!(stats["users"], 2);
    assert_eq!(stats["byStatus"], json!({ "waiting": 2, "active": 0, "finished": 0 }));
    let s1 = stats["roomDetails"].as_array().unwrap().iter().find(|r| r["id"] == "s1").unwrap();
    assert_eq!(s1["connectionCount"], 2);
    assert!(s1["inactiveSeconds"].as_f64().unwrap() < 5.0);
    assert!(s1["expiresInSeconds"].as_f64().unwrap() > 7000.0);

    let http = reqwest::Client::new();
    let text = http.get(server.url("/metrics")).bearer_auth("adm").send().await.unwrap().text().await.unwrap();
    assert!(text.contains("roomcast_rooms 2"), "{text}");
    assert!(text.contains("roomcast_connections 3"), "{text}");
    assert!(text.contains("roomcast_users 2"), "{text}");
    assert!(text.contains("roomcast_errors_total{code=\"forbidden\"} 1"), "{text}");
    assert!(text.contains("roomcast_deltas_sent_total"), "{text}");
}

#[tokio::test]
async fn a_renamed_user_reconnects_under_the_new_name_and_a_host_keeps_the_room() {
    let server = TestServer::start().await;
    let (alice, mut a) = user(&server, "alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "names" })).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "names" })).await);
    room_eventually(&server, "names", |r| r["hostName"] == "alice").await;
    let (_, mut b) = user(&server, "bob").await;
    assert_reply_ok(&b.request("join:room", json!({ "roomId": "names" })).await);
    room_eventually(&server, "names", |r| r["memberCount"] == 2).await;

    let (status, renamed) = api.patch("/api/session", json!({ "userName": "Alice Liddell" })).await;
    assert_eq!((status, renamed["userName"].as_str()), (200, Some("Alice Liddell")));
    // A connection keeps the name it opened with; the browser reconnects.
    a.close().await;
    let mut a = server.ws(&alice).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "names" })).await);
    let mut joined = b.presence_join().await;
    while joined["data"]["userName"] == "bob" {
        joined = b.presence_join().await;
    }
    assert_eq!(joined["data"]["userName"], "Alice Liddell");
    let room = room_eventually(&server, "names", |r| r["hostName"] == "Alice Liddell").await;
    assert_eq!(room["hostUserId"], renamed["userId"], "the seat and the host stay the user's");
    let reply = a.request("chat:send", json!({ "roomId": "names", "text": "new name" })).await;
    assert_eq!(assert_reply_ok(&reply)["message"]["userName"], "Alice Liddell");
}

#[tokio::test]
async fn member_count_counts_a_seat_reserved_by_a_match_but_not_one_kept_in_grace() {
    let server = TestServer::start_with(&["--seat-grace-seconds", "30"]).await;
    let alice = server.session("alice").await;
    let (status, matched) = server.api(Some(&alice)).post("/api/match", json!({ "maxMembers": 4 })).await;
    assert_eq!(status, 200, "{matched}");
    let id = matched["room"]["id"].as_str().expect("id").to_string();
    assert_eq!(matched["room"]["memberCount"], 1, "the answer counts the reserved seat");
    let (_, page) = server.api(None).get("/api/rooms").await;
    let listed = page["rooms"].as_array().expect("rooms").iter().find(|r| r["id"] == id.as_str()).cloned();
    assert_eq!(listed.expect("listed")["memberCount"], 1, "and so does the list");

    // Connecting takes the reserved seat: still one member.
    let mut a = server.ws(&alice).await;
    let joined = assert_reply_ok(&a.request("join:room", json!({ "roomId": id })).await).clone();
    assert_eq!(joined["room"]["memberCount"], 1);
    let (_, mut b) = user(&server, "bob").await;
    assert_reply_ok(&b.request("join:room", json!({ "roomId": id })).await);
    room_eventually(&server, &id, |r| r["memberCount"] == 2).await;

    // A seat kept for the grace period after its last connection leaves
    // still blocks the seat but is not counted.
    a.close().await;
    let room = room_eventually(&server, &id, |r| r["connectionCount"] == 1).await;
    assert_eq!(room["memberCount"], 1);
}
