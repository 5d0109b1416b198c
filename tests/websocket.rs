//! The WebSocket protocol of PROTOCOL.md section 5 over real connections.

mod common;

use std::time::Duration;

use common::{Closed, TestServer, Ws, assert_reply_error, assert_reply_ok};
use serde_json::{Value, json};
use tokio_tungstenite::MaybeTlsStream;

#[tokio::test]
async fn a_socket_without_a_session_is_closed_with_4001() {
    let server = TestServer::start().await;
    let mut ws = Ws::connect(&server.ws_url(None)).await;
    assert_eq!(ws.closed().await, Closed::Code(4001));
    let mut ws = Ws::connect(&server.ws_url(Some("not-a-token"))).await;
    assert_eq!(ws.closed().await, Closed::Code(4001));
}

#[tokio::test]
async fn the_overview_gets_a_snapshot_then_every_change_as_a_delta() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let api = server.api(Some(&token));
    api.create_room(json!({ "id": "first" })).await;

    let mut ws = server.ws(&token).await;
    let reply = ws.request("join:overview", json!({})).await;
    let rooms = assert_reply_ok(&reply)["rooms"].as_array().unwrap().clone();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["id"], "first");

    // Creation: base 0, every field.
    let created = api.create_room(json!({ "id": "second", "description": "new" })).await;
    let delta = ws.event("room:update").await;
    let d = &delta["data"];
    assert_eq!(d["roomId"], "second");
    assert_eq!(d["created"], true);
    assert_eq!(d["base"], 0);
    assert_eq!(d["version"], 1);
    assert_eq!(d["description"], "new");
    assert_eq!(d["hostUserId"], created["hostUserId"]);
    assert!(d.get("metadataLocked").is_some());

    // A change: only the changed fields, with base and version.
    api.patch("/api/rooms/second", json!({ "description": "changed" })).await;
    let delta = ws.event("room:update").await;
    assert_eq!(delta["data"], json!({ "roomId": "second", "base": 1, "version": 2, "description": "changed" }));
    api.patch("/api/rooms/second", json!({ "locked": true, "hidden": true })).await;
    let delta = ws.event("room:update").await;
    assert_eq!(delta["data"], json!({ "roomId": "second", "base": 2, "version": 3, "locked": true, "hidden": true }));

    api.patch("/api/rooms/first", json!({ "hidden": true })).await;
    api.delete("/api/rooms/first").await;
    let delta = ws.event("room:update").await;
    assert_eq!(delta["data"]["roomId"], "first");
    let deleted = ws.event("room:delete").await;
    assert_eq!(deleted["data"], json!({ "roomId": "first", "reason": "deleted" }));

    // After leaving, nothing more arrives.
    assert_reply_ok(&ws.request("leave:overview", json!({})).await);
    api.create_room(json!({ "id": "third" })).await;
    ws.no_event("room:update", Duration::from_millis(300)).await;
}

#[tokio::test]
async fn joining_a_room_replies_with_its_state_and_counts_connections() {
    let server = TestServer::start().await;
    let alice = server.session("alice").await;
    let bob = server.session("bob").await;
    server.api(Some(&alice)).create_room(json!({ "id": "demo", "description": "d" })).await;

    let mut watcher = server.ws(&alice).await;
    assert_reply_ok(&watcher.request("join:overview", json!({})).await);

    let mut a = server.ws(&alice).await;
    let reply = a.request("join:room", json!({ "roomId": "DEMO" })).await;
    let data = assert_reply_ok(&reply);
    assert_eq!(data["room"]["id"], "demo");
    assert_eq!(data["room"]["connectionCount"], 1);
    assert_eq!(data["role"], "member");
    assert_eq!(data["presence"].as_array().unwrap().len(), 1);
    assert_eq!(data["presence"][0]["userName"], "alice");
    assert!(data["chat"].is_array());
    assert!(data.get("frame").is_some());
    let v1 = data["room"]["version"].as_u64().unwrap();

    // The overview sees the connection count change.
    let delta = watcher.event("room:update").await;
    assert_eq!(delta["data"]["connectionCount"], 1);
    assert_eq!(delta["data"]["version"].as_u64().unwrap(), v1);

    let mut b = server.ws(&bob).await;
    let reply = b.request("join:room", json!({ "roomId": "demo", "as": "spectator" })).await;
    let data = assert_reply_ok(&reply);
    assert_eq!(data["role"], "spectator");
    // The reply has the room as committed; B's own arrival is counted in
    // the room's next delta (within a presence tick), which B gets too.
    if data["room"]["connectionCount"] != 2 {
        let delta = b.event("room:update").await;
        assert_eq!(delta["data"]["connectionCount"], 2);
        assert_eq!(delta["data"]["spectatorCount"], 1);
    }

    // A sees B arrive: presence and the count delta.
    let joined = a.presence_join().await;
    assert_eq!(joined["data"]["userName"], "bob");
    assert_eq!(joined["data"]["role"], "spectator");
    let delta = a.event("room:update").await;
    assert_eq!(delta["data"]["connectionCount"], 2);
    assert_eq!(delta["data"]["base"].as_u64().unwrap(), v1);

    // B leaves; A sees it.
    assert_reply_ok(&b.request("leave:room", json!({ "roomId": "demo" })).await);
    let left = a.presence_leave().await;
    assert_eq!(left["data"]["roomId"], "demo");
    let delta = a.event("room:update").await;
    assert_eq!(delta["data"]["connectionCount"], 1);

    // A closes its socket; the count goes back to 0.
    a.close().await;
    loop {
        let delta = watcher.event("room:update").await;
        if delta["data"]["connectionCount"] == 0 {
            break;
        }
    }
}

#[tokio::test]
async fn room_viewers_get_deltas_and_the_deletion() {
    let server = TestServer::start().await;
    let alice = server.session("alice").await;
    let api = server.api(Some(&alice));
    api.create_room(json!({ "id": "demo" })).await;
    let bob = server.session("bob").await;
    let mut b = server.ws(&bob).await;
    assert_reply_ok(&b.request("join:room", json!({ "roomId": "demo" })).await);

    api.patch("/api/rooms/demo", json!({ "description": "live" })).await;
    let delta = b.event("room:update").await;
    assert_eq!(delta["data"]["description"], "live");

    api.delete("/api/rooms/demo").await;
    let deleted = b.event("room:delete").await;
    assert_eq!(deleted["data"]["reason"], "deleted");
    // The connection is no longer in the room: room events need a join.
    let reply = b.request("keep_alive", json!({ "roomId": "demo" })).await;
    assert!(reply["ok"] == false, "{reply}");
}

#[tokio::test]
async fn joining_an_unknown_room_fails_with_not_found() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let mut ws = server.ws(&token).await;
    assert_reply_error(&ws.request("join:room", json!({ "roomId": "nope" })).await, "not_found");
    // Without an id, the failure is an `error` event naming the event.
    ws.emit("join:room", json!({ "roomId": "nope" })).await;
    let err = ws.event("error").await;
    assert_eq!(err["data"]["code"], "not_found");
    assert_eq!(err["data"]["event"], "join:room");
}

#[tokio::test]
async fn room_events_need_the_room_channel() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    server.api(Some(&token)).create_room(json!({ "id": "demo" })).await;
    let mut ws = server.ws(&token).await;
    for (event, data) in [
        ("keep_alive", json!({ "roomId": "demo" })),
        ("lock:acquire", json!({ "roomId": "demo" })),
        ("chat:send", json!({ "roomId": "demo", "text": "hi" })),
        ("leave:room", json!({ "roomId": "demo" })),
        ("room:start", json!({ "roomId": "demo" })),
    ] {
        assert_reply_error(&ws.request(event, data).await, "forbidden");
    }
}

#[tokio::test]
async fn bad_frames_get_bad_request_and_the_connection_survives() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    server.api(Some(&token)).create_room(json!({ "id": "demo" })).await;
    let mut ws = server.ws(&token).await;

    ws.send_text("this is not json").await;
    let err = ws.event("error").await;
    assert_eq!(err["data"]["code"], "bad_request");

    ws.send_text(r#"{"event":"dance","data":{}}"#).await;
    let err = ws.event("error").await;
    assert_eq!(err["data"]["code"], "bad_request");
    assert!(err["data"]["message"].as_str().unwrap().contains("dance"));

    ws.send_text(r#"{"event":"join:room","data":{"roomId":42},"id":9}"#).await;
    let reply = ws.reply(9).await;
    assert_reply_error(&reply, "bad_request");
    assert!(reply["error"]["message"].as_str().unwrap().contains("join:room"));

    ws.send_text(r#"{"event":"join:room","data":{},"id":10}"#).await;
    let reply = ws.reply(10).await;
    assert_reply_error(&reply, "bad_request");
    assert!(reply["error"]["message"].as_str().unwrap().contains("roomId"));

    ws.send_text(r#"{"event":"join:room","data":"demo","id":11}"#).await;
    assert_reply_error(&ws.reply(11).await, "bad_request");

    ws.send_binary(vec![1, 2, 3]).await;
    let err = ws.event("error").await;
    assert_eq!(err["data"]["code"], "bad_request");

    // Still open and working.
    let reply = ws.request("join:room", json!({ "roomId": "demo" })).await;
    assert_reply_ok(&reply);
}

#[tokio::test]
async fn too_many_bad_frames_close_with_1008() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let mut ws = server.ws(&token).await;
    for _ in 0..20 {
        ws.send_text("{").await;
    }
    for _ in 0..20 {
        assert_eq!(ws.event("error").await["data"]["code"], "bad_request");
    }
    ws.send_text("{").await;
    assert_eq!(ws.closed().await, Closed::Code(1008));
}

#[tokio::test]
async fn an_oversize_frame_closes_with_1009() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let mut ws = server.ws(&token).await;
    let big = format!(r#"{{"event":"keep_alive","data":{{"roomId":"{}"}}}}"#, "x".repeat(70 * 1024));
    ws.send_text(&big).await;
    assert_eq!(ws.closed().await, Closed::Code(1009));
}

#[tokio::test]
async fn a_frame_just_under_the_limit_is_read() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let mut ws = server.ws(&token).await;
    let pad = "x".repeat(60 * 1024);
    ws.send_text(&format!(r#"{{"event":"join:room","data":{{"roomId":"nope","pad":"{pad}"}},"id":1}}"#)).await;
    assert_reply_error(&ws.reply(1).await, "not_found");
}

#[tokio::test]
async fn the_channel_limit_is_enforced() {
    let server = TestServer::start_with(&["--max-channels", "2"]).await;
    let token = server.session("alice").await;
    let api = server.api(Some(&token));
    for id in ["r1", "r2"] {
        api.create_room(json!({ "id": id })).await;
    }
    let mut ws = server.ws(&token).await;
    assert_reply_ok(&ws.request("join:overview", json!({})).await);
    assert_reply_ok(&ws.request("join:room", json!({ "roomId": "r1" })).await);
    assert_reply_error(&ws.request("join:room", json!({ "roomId": "r2" })).await, "too_large");
    assert_reply_ok(&ws.request("leave:overview", json!({})).await);
    assert_reply_ok(&ws.request("join:room", json!({ "roomId": "r2" })).await);
}

#[tokio::test]
async fn a_join_reply_larger_than_one_fragment_arrives_whole() {
    let server = TestServer::start_with(&["--chat-burst", "100", "--rate-burst", "1000"]).await;
    let token = server.session("writer").await;
    server.api(Some(&token)).create_room(json!({ "id": "long" })).await;
    let mut writer = server.ws(&token).await;
    assert_reply_ok(&writer.request("join:room", json!({ "roomId": "long" })).await);
    // 50 messages of 1,900 characters: the join reply is ~100 KB, sent as
    // 8 KiB fragments.
    let texts: Vec<String> = (0..50).map(|i| format!("{i:02}{}", "é".repeat(949))).collect();
    for text in &texts {
        assert_reply_ok(&writer.request("chat:send", json!({ "roomId": "long", "text": text })).await);
    }
    let reader_token = server.session("reader").await;
    let mut reader = server.ws(&reader_token).await;
    let reply = reader.request("join:room", json!({ "roomId": "long" })).await;
    let data = assert_reply_ok(&reply);
    assert!(reply.to_string().len() > 64 * 1024, "the reply is large: {} bytes", reply.to_string().len());
    let got: Vec<&str> = data["chat"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(got, texts.iter().map(String::as_str).collect::<Vec<_>>());
    // The connection keeps working after the fragments.
    assert_reply_ok(&reader.request("keep_alive", json!({ "roomId": "long" })).await);
}

#[tokio::test]
async fn a_snapshot_larger_than_the_lag_limit_is_delivered_and_the_connection_stays() {
    // 4 KiB of lag allowed; the room list's snapshot is ten times that.
    let server = TestServer::start_with(&["--outbound-bytes", "4096"]).await;
    let token = server.session("alice").await;
    let api = server.api(Some(&token));
    for i in 0..80 {
        api.create_room(json!({ "id": format!("big-{i}"), "description": "d".repeat(400) })).await;
    }
    let mut ws = server.ws(&token).await;
    let reply = ws.request("join:overview", json!({})).await;
    assert!(reply.to_string().len() > 10 * 4096, "the snapshot is large");
    assert_eq!(assert_reply_ok(&reply)["rooms"].as_array().unwrap().len(), 80);
    // Still connected, and deltas still flow.
    api.patch("/api/rooms/big-3", json!({ "description": "changed" })).await;
    let delta = ws.event("room:update").await;
    assert_eq!(delta["data"]["description"], "changed");
    // A join of a room is a reply of its own too.
    assert_reply_ok(&ws.request("join:room", json!({ "roomId": "big-4" })).await);
    assert!(ws.is_open());
}

/// A socket whose reader has a small kernel buffer, so that not reading
/// soon backs the server's queue up.
async fn small_buffer_ws(server: &TestServer, token: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer");
    let tcp = socket.connect(([127, 0, 0, 1], server.port).into()).await.expect("connect");
    let (stream, _) = tokio_tungstenite::client_async(server.ws_url(Some(token)), MaybeTlsStream::Plain(tcp))
        .await
        .expect("handshake");
    Ws::from_stream(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stalls_through_a_thousand_deltas_stays_and_catches_up_in_a_few() {
    // 16 KiB of lag allowed and small kernel buffers on both sides: the
    // thousand deltas below are 500 KiB.
    let server = TestServer::start_with(&["--outbound-bytes", "16384", "--tcp-send-buffer", "4096"]).await;
    let token = server.session("alice").await;
    let api = server.api(Some(&token));
    api.create_room(json!({ "id": "busy" })).await;
    let mut ws = small_buffer_ws(&server, &token).await;
    let joined = ws.request("join:room", json!({ "roomId": "busy" })).await;
    let mut version = assert_reply_ok(&joined)["room"]["version"].as_u64().unwrap();

    // The reader stops reading while the room changes a thousand times.
    let pad = "x".repeat(480);
    let mut last = String::new();
    for i in 0..1000 {
        last = format!("{i} {pad}");
        let (status, body) = api.patch("/api/rooms/busy", json!({ "description": last })).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, room) = api.get("/api/rooms/busy").await;
    let want = room["version"].as_u64().unwrap();

    // Reading again: still connected, current after a few merged deltas.
    let mut deltas = 0;
    let mut description = Value::Null;
    while version < want {
        let event = ws.event_within("room:update", Duration::from_secs(5)).await.expect("a delta");
        let d = &event["data"];
        assert!(d["base"].as_u64().unwrap() <= version, "no gap: {d}");
        version = d["version"].as_u64().unwrap();
        if d.get("description").is_some() {
            description = d["description"].clone();
        }
        deltas += 1;
    }
    assert_eq!(description, json!(last));
    assert!(deltas < 100, "{deltas} deltas for 1000 changes: merged while the reader stalled");
    assert!(ws.is_open(), "the laggard was kept");
    println!("1000 changes reached the stalled reader as {deltas} deltas");
}
