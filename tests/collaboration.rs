//! Room collaboration (PROTOCOL.md 6.3-6.5): frames, the temporary lock,
//! the presenter, chat and signaling.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, Ws, assert_error, assert_reply_error, assert_reply_ok};
use serde_json::{Value, json};

async fn joined(server: &TestServer, name: &str, room: &str) -> (String, Ws) {
    let token = server.session(name).await;
    let mut ws = server.ws(&token).await;
    assert_reply_ok(&ws.request("join:room", json!({ "roomId": room })).await);
    (token, ws)
}

async fn delta_with(ws: &mut Ws, field: &str) -> Value {
    loop {
        let d = ws.event("room:update").await;
        if d["data"].get(field).is_some() {
            return d["data"].clone();
        }
    }
}

#[tokio::test]
async fn frames_are_appended_read_and_counted() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let api = server.api(Some(&token));
    api.create_room(json!({ "id": "film" })).await;
    let (_, mut viewer) = joined(&server, "bob", "film").await;

    let (status, body) = api.post("/api/rooms/film/frames", json!([{ "points": [[0, 1], [2, 3]] }, 7, "x"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["frameCount"], 3);
    assert_eq!(delta_with(&mut viewer, "frameCount").await["frameCount"], 3);
    api.post("/api/rooms/film/frames", json!([null, { "a": 1 }])).await;
    assert_eq!(delta_with(&mut viewer, "frameCount").await["frameCount"], 5);

    assert_eq!(api.get("/api/rooms/film/frames/0").await.1, json!({ "points": [[0, 1], [2, 3]] }));
    assert_eq!(api.get("/api/rooms/FILM/frames/4").await.1, json!({ "a": 1 }));
    assert_error(&api.get("/api/rooms/film/frames/5").await, 404, "not_found");
    assert_error(&api.get("/api/rooms/film/frames/x").await, 400, "bad_request");
    let (_, page) = api.get("/api/rooms/film/frames?offset=1&limit=3").await;
    assert_eq!(page, json!({ "frames": [7, "x", null], "offset": 1, "frameCount": 5 }));
    assert_error(&api.get("/api/rooms/film/frames?limit=1001").await, 400, "bad_request");
    assert_error(&api.get("/api/rooms/film/frames?offset=-1").await, 400, "bad_request");
    assert_error(&api.get("/api/rooms/nope/frames").await, 404, "not_found");

    // Bad appends change nothing.
    assert_error(&api.post("/api/rooms/film/frames", json!([])).await, 400, "bad_request");
    assert_error(&api.post("/api/rooms/film/frames", json!({ "frames": [] })).await, 400, "bad_request");
    assert_error(&api.post_raw("/api/rooms/film/frames", "[1,").await, 400, "bad_request");
    let many: Vec<u32> = (0..1001).collect();
    assert_error(&api.post("/api/rooms/film/frames", json!(many)).await, 413, "too_large");
    let huge = "x".repeat(2 * 1024 * 1024);
    assert_error(&api.post("/api/rooms/film/frames", json!([huge])).await, 413, "too_large");
    assert_error(&server.api(None).post("/api/rooms/film/frames", json!([1])).await, 401, "unauthorized");
    assert_eq!(api.get("/api/rooms/film").await.1["frameCount"], 5);

    // Frames are durable.
    let mut server = server;
    server.restart().await;
    let api = server.api(Some(&token));
    assert_eq!(api.get("/api/rooms/film").await.1["frameCount"], 5);
    assert_eq!(api.get("/api/rooms/film/frames/2").await.1, json!("x"));
}

#[tokio::test]
async fn the_temporary_lock_is_contended_refreshed_and_released() {
    let server = TestServer::start().await;
    let alice = server.session("alice").await;
    server.api(Some(&alice)).create_room(json!({ "id": "up" })).await;
    let mut a = server.ws(&alice).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "up" })).await);
    let (bob, mut b) = joined(&server, "bob", "up").await;
    let mut watcher = server.ws(&bob).await;
    assert_reply_ok(&watcher.request("join:overview", json!({})).await);

    let reply = a.request("lock:acquire", json!({ "roomId": "up", "msg": "Uploading 0/3", "ttlSeconds": 30 })).await;
    let expires = assert_reply_ok(&reply)["expiresAt"].as_f64().unwrap();
    let lock = delta_with(&mut watcher, "metadataLocked").await;
    assert_eq!(lock["metadataLocked"]["msg"], "Uploading 0/3");
    assert_eq!(lock["metadataLocked"]["userName"], "alice");

    assert_reply_error(&b.request("lock:acquire", json!({ "roomId": "up" })).await, "locked");
    assert_reply_error(&b.request("lock:release", json!({ "roomId": "up" })).await, "locked");
    assert_error(&server.api(Some(&bob)).post("/api/rooms/up/frames", json!([1])).await, 423, "locked");
    let (status, _) = server.api(Some(&alice)).post("/api/rooms/up/frames", json!([1, 2])).await;
    assert_eq!(status, 200);

    // Re-acquiring refreshes it; lock:msg changes the message.
    let again = a.request("lock:acquire", json!({ "roomId": "up", "ttlSeconds": 60 })).await;
    assert!(assert_reply_ok(&again)["expiresAt"].as_f64().unwrap() > expires);
    assert_reply_ok(&a.request("lock:msg", json!({ "roomId": "up", "msg": "Uploading 2/3" })).await);
    assert_eq!(delta_with(&mut watcher, "metadataLocked").await["metadataLocked"]["msg"], "Uploading 2/3");
    assert_reply_ok(&a.request("lock:refresh", json!({ "roomId": "up", "ttlSeconds": 10 })).await);
    assert_reply_error(&a.request("lock:refresh", json!({ "roomId": "up", "ttlSeconds": 301 })).await, "bad_request");

    assert_reply_ok(&a.request("lock:release", json!({ "roomId": "up" })).await);
    assert_eq!(delta_with(&mut watcher, "metadataLocked").await["metadataLocked"], Value::Null);
    assert_reply_error(&a.request("lock:release", json!({ "roomId": "up" })).await, "not_found");
    // Free again: bob takes it.
    assert_reply_ok(&b.request("lock:acquire", json!({ "roomId": "up" })).await);
}

#[tokio::test]
async fn the_lock_ends_at_its_ttl_and_when_its_connection_closes() {
    let server = TestServer::start().await;
    let alice = server.session("alice").await;
    server.api(Some(&alice)).create_room(json!({ "id": "ttl" })).await;
    let (_, mut b) = joined(&server, "bob", "ttl").await;
    let mut a = server.ws(&alice).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "ttl" })).await);

    let taken = Instant::now();
    assert_reply_ok(&a.request("lock:acquire", json!({ "roomId": "ttl", "ttlSeconds": 1 })).await);
    assert!(delta_with(&mut b, "metadataLocked").await["metadataLocked"].is_object());
    assert_eq!(delta_with(&mut b, "metadataLocked").await["metadataLocked"], Value::Null);
    let held = taken.elapsed();
    assert!(held >= Duration::from_millis(950) && held < Duration::from_millis(2500), "{held:?}");

    assert_reply_ok(&a.request("lock:acquire", json!({ "roomId": "ttl", "ttlSeconds": 60 })).await);
    assert!(delta_with(&mut b, "metadataLocked").await["metadataLocked"].is_object());
    a.close().await;
    assert_eq!(delta_with(&mut b, "metadataLocked").await["metadataLocked"], Value::Null);
}

#[tokio::test]
async fn a_locked_room_refuses_temporary_locks_and_appends() {
    let server = TestServer::start().await;
    let alice = server.session("alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "sealed" })).await;
    api.patch("/api/rooms/sealed", json!({ "locked": true })).await;
    let mut a = server.ws(&alice).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "sealed" })).await);
    assert_reply_error(&a.request("lock:acquire", json!({ "roomId": "sealed" })).await, "locked");
    assert_error(&api.post("/api/rooms/sealed/frames", json!([1])).await, 423, "locked");
}

#[tokio::test]
async fn the_presenter_drives_a_coalesced_shared_frame() {
    // 200 events in a second is over the default 50/s per connection.
    let server = TestServer::start_with(&["--rate-per-second", "1000", "--rate-burst", "1000"]).await;
    let alice = server.session("alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "talk" })).await;
    let frames: Vec<u32> = (0..300).collect();
    api.post("/api/rooms/talk/frames", json!(frames)).await;
    let mut a = server.ws(&alice).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "talk" })).await);
    let (_, mut b) = joined(&server, "bob", "talk").await;

    assert_reply_error(&b.request("frame:set", json!({ "roomId": "talk", "frame": 1 })).await, "forbidden");
    assert_reply_ok(&a.request("presenter:request", json!({ "roomId": "talk" })).await);
    let presenter = delta_with(&mut b, "presenterSid").await;
    assert!(presenter["presenterSid"].as_str().unwrap().starts_with("c_"));
    assert_reply_error(&b.request("presenter:request", json!({ "roomId": "talk" })).await, "conflict");
    assert_reply_error(&a.request("frame:set", json!({ "roomId": "talk", "frame": 300 })).await, "not_found");

    // 200 frame:set within one second: the others get at most ~20 updates,
    // and the last one carries the last frame set.
    let start = Instant::now();
    for i in 0..200u64 {
        a.emit("frame:set", json!({ "roomId": "talk", "frame": i })).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent_in = start.elapsed();
    let mut updates = Vec::new();
    while let Some(u) = b.event_within("frame_update", Duration::from_millis(400)).await {
        updates.push(u["data"]["frame"].as_u64().unwrap());
    }
    let allowed = (sent_in.as_secs_f64() * 20.0).ceil() as usize + 2;
    assert!(updates.len() <= allowed && updates.len() >= 5, "{} updates in {sent_in:?}", updates.len());
    assert_eq!(*updates.last().unwrap(), 199);
    assert!(updates.windows(2).all(|w| w[0] < w[1]), "{updates:?}");
    assert!(a.backlog.iter().all(|m| m["event"] != "frame_update"), "the presenter gets none");

    // A late joiner gets the shared frame in its join reply.
    let (_, mut c) = (String::new(), server.ws(&server.session("carol").await).await);
    let reply = c.request("join:room", json!({ "roomId": "talk" })).await;
    assert_eq!(assert_reply_ok(&reply)["frame"], 199);

    // The presenter leaving clears it.
    a.close().await;
    assert_eq!(delta_with(&mut b, "presenterSid").await["presenterSid"], Value::Null);
    assert_reply_ok(&b.request("presenter:request", json!({ "roomId": "talk" })).await);
    assert_reply_ok(&b.request("presenter:release", json!({ "roomId": "talk" })).await);
}

#[tokio::test]
async fn chat_is_broadcast_edited_limited_and_paged() {
    let server = TestServer::start().await;
    let alice = server.session("alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "chatty" })).await;
    let mut a = server.ws(&alice).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "chatty" })).await);
    let (_, mut b) = joined(&server, "bob", "chatty").await;

    let reply = a.request("chat:send", json!({ "roomId": "chatty", "text": "  hello <b>bob</b>  " })).await;
    let message = assert_reply_ok(&reply)["message"].clone();
    assert_eq!(message["text"], "hello <b>bob</b>");
    assert_eq!(message["userName"], "alice");
    assert_eq!(message["id"], 1);
    assert_eq!(message["editedAt"], Value::Null);
    let got = b.event("chat:message:new").await;
    assert_eq!(got["data"]["message"], message);
    a.no_event("chat:message:new", Duration::from_millis(200)).await;

    assert_reply_error(&a.request("chat:send", json!({ "roomId": "chatty", "text": "   " })).await, "bad_request");
    let long = "y".repeat(2001);
    assert_reply_error(&a.request("chat:send", json!({ "roomId": "chatty", "text": long })).await, "too_large");

    let edited = a.request("chat:edit", json!({ "roomId": "chatty", "messageId": 1, "text": "hello bob" })).await;
    assert!(assert_reply_ok(&edited)["message"]["editedAt"].as_f64().is_some());
    assert_eq!(b.event("chat:message:updated").await["data"]["message"]["text"], "hello bob");
    assert_reply_error(
        &b.request("chat:edit", json!({ "roomId": "chatty", "messageId": 1, "text": "mine now" })).await,
        "forbidden",
    );
    assert_reply_error(
        &a.request("chat:edit", json!({ "roomId": "chatty", "messageId": 99, "text": "?" })).await,
        "not_found",
    );

    // Five per five seconds per user: the sixth is refused with a wait.
    for i in 0..4 {
        assert_reply_ok(&a.request("chat:send", json!({ "roomId": "chatty", "text": format!("m{i}") })).await);
    }
    let limited = a.request("chat:send", json!({ "roomId": "chatty", "text": "one too many" })).await;
    assert_reply_error(&limited, "rate_limited");
    let wait = limited["error"]["retryAfterMs"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 5000, "{wait}");
    // Another user is not limited by alice's messages.
    assert_reply_ok(&b.request("chat:send", json!({ "roomId": "chatty", "text": "from bob" })).await);

    // History: paging endpoint and the join reply.
    let (_, page) = api.get("/api/rooms/chatty/chat?limit=3").await;
    let texts: Vec<&str> = page["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["m2", "m3", "from bob"]);
    let (_, older) = api.get("/api/rooms/chatty/chat?before=3&limit=10").await;
    let ids: Vec<u64> = older["messages"].as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2]);
    assert_error(&api.get("/api/rooms/chatty/chat?limit=101").await, 400, "bad_request");
    let mut c = server.ws(&server.session("carol").await).await;
    let reply = c.request("join:room", json!({ "roomId": "chatty" })).await;
    let chat = assert_reply_ok(&reply)["chat"].as_array().unwrap().clone();
    assert_eq!(chat.len(), 6);
    assert_eq!(chat[0]["text"], "hello bob");
}

#[tokio::test]
async fn chat_history_keeps_hundreds_of_messages_across_a_restart() {
    let mut server =
        TestServer::start_with(&["--chat-burst", "1000", "--rate-per-second", "1000", "--rate-burst", "1000"]).await;
    let alice = server.session("alice").await;
    server.api(Some(&alice)).create_room(json!({ "id": "log" })).await;
    let mut a = server.ws(&alice).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "log" })).await);
    for i in 0..520 {
        a.emit("chat:send", json!({ "roomId": "log", "text": format!("line {i}") })).await;
    }
    assert_reply_ok(&a.request("keep_alive", json!({ "roomId": "log" })).await);
    server.restart().await;
    let api = server.api(Some(&alice));
    let mut before = None;
    let mut total = 0;
    loop {
        let path = match before {
            Some(b) => format!("/api/rooms/log/chat?limit=100&before={b}"),
            None => "/api/rooms/log/chat?limit=100".to_string(),
        };
        let (_, page) = api.get(&path).await;
        let messages = page["messages"].as_array().unwrap();
        if messages.is_empty() {
            break;
        }
        total += messages.len();
        before = messages[0]["id"].as_u64();
    }
    assert_eq!(total, 520);
}

#[tokio::test]
async fn signals_reach_a_connection_in_the_same_room_only() {
    let server = TestServer::start().await;
    let alice = server.session("alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "rtc" })).await;
    api.create_room(json!({ "id": "elsewhere" })).await;
    let mut a = server.ws(&alice).await;
    assert_reply_ok(&a.request("join:room", json!({ "roomId": "rtc" })).await);
    let (_, mut b) = joined(&server, "bob", "rtc").await;
    let (_, mut c) = joined(&server, "carol", "elsewhere").await;
    let b_sid = a.presence_join().await["data"]["sid"].as_str().unwrap().to_string();
    let reply = c.request("join:room", json!({ "roomId": "rtc" })).await;
    let c_sid = assert_reply_ok(&reply)["presence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["userName"] == "carol")
        .unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_reply_ok(&c.request("leave:room", json!({ "roomId": "rtc" })).await);

    let offer = json!({ "sdp": "v=0..." });
    let reply = a.request("signal", json!({ "roomId": "rtc", "to": b_sid, "kind": "offer", "payload": offer })).await;
    assert_reply_ok(&reply);
    let got = b.event("signal").await;
    assert_eq!(got["data"]["kind"], "offer");
    assert_eq!(got["data"]["payload"], offer);
    assert_eq!(got["data"]["roomId"], "rtc");
    assert!(got["data"]["from"].as_str().unwrap().starts_with("c_"));

    // Carol is only in another room now.
    let reply = a.request("signal", json!({ "roomId": "rtc", "to": c_sid, "kind": "ice", "payload": {} })).await;
    assert_reply_error(&reply, "not_found");
    let big = json!({ "blob": "z".repeat(17 * 1024) });
    let reply = a.request("signal", json!({ "roomId": "rtc", "to": b_sid, "kind": "answer", "payload": big })).await;
    assert_reply_error(&reply, "too_large");
    let reply = a.request("signal", json!({ "roomId": "rtc", "to": b_sid, "kind": "shout", "payload": {} })).await;
    assert_reply_error(&reply, "bad_request");
    c.no_event("signal", Duration::from_millis(200)).await;
}
