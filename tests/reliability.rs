//! Limits, liveness, slow consumers and graceful shutdown (PROTOCOL.md 5, 7).

mod common;

use std::time::{Duration, Instant};

use common::{Closed, TestServer, Ws, assert_reply_error, assert_reply_ok};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn rate_limiting_answers_rate_limited_and_never_disconnects() {
    let server = TestServer::start_with(&["--rate-per-second", "20", "--rate-burst", "30"]).await;
    let token = server.session("alice").await;
    server.api(Some(&token)).create_room(json!({ "id": "busy" })).await;
    let mut ws = server.ws(&token).await;
    assert_reply_ok(&ws.request("join:room", json!({ "roomId": "busy" })).await);
    for id in 100..160u64 {
        ws.send_text(&json!({ "event": "keep_alive", "data": { "roomId": "busy" }, "id": id }).to_string()).await;
    }
    let mut limited = 0;
    let mut ok = 0;
    for id in 100..160u64 {
        let reply = ws.reply(id).await;
        if reply["ok"] == true {
            ok += 1;
        } else {
            assert_reply_error(&reply, "rate_limited");
            let wait = reply["error"]["retryAfterMs"].as_u64().unwrap();
            assert!((1..=1000).contains(&wait), "{wait}");
            limited += 1;
        }
    }
    assert!((29..=32).contains(&ok), "{ok} allowed of 60");
    assert_eq!(ok + limited, 60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_reply_ok(&ws.request("keep_alive", json!({ "roomId": "busy" })).await);
}

#[tokio::test]
async fn silent_connections_are_closed_and_leave_their_rooms() {
    let server = TestServer::start_with(&["--idle-connection-seconds", "1", "--ping-seconds", "30"]).await;
    let token = server.session("alice").await;
    server.api(Some(&token)).create_room(json!({ "id": "quiet" })).await;
    let mut watcher = server.ws(&token).await;
    assert_reply_ok(&watcher.request("join:room", json!({ "roomId": "quiet" })).await);
    let mut silent = server.ws(&token).await;
    assert_reply_ok(&silent.request("join:room", json!({ "roomId": "quiet" })).await);
    // The watcher keeps talking; the other says nothing.
    let start = Instant::now();
    let mut left = None;
    while start.elapsed() < Duration::from_secs(4) && left.is_none() {
        assert_reply_ok(&watcher.request("keep_alive", json!({ "roomId": "quiet" })).await);
        left = watcher.presence_leave_within(Duration::from_millis(300)).await;
    }
    assert!(left.is_some(), "the silent connection left the room");
    assert_eq!(silent.closed().await, Closed::Code(1008));
}

#[tokio::test]
async fn sigterm_announces_the_shutdown_and_closes_with_1012() {
    let mut server = TestServer::start().await;
    let token = server.session("alice").await;
    let mut ws = server.ws(&token).await;
    assert_reply_ok(&ws.request("join:overview", json!({})).await);
    let status = server.terminate();
    let shutdown = ws.event("server:shutdown").await;
    assert!(shutdown["data"]["retryAfterMs"].as_u64().unwrap() > 0);
    assert_eq!(ws.closed().await, Closed::Code(1012));
    assert!(status.success(), "{status:?}");
}

/// Opens a WebSocket whose receive buffer is tiny, so that not reading
/// quickly backs up into the server.
async fn stalled_client(url: &str) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let addr = url.trim_start_matches("ws://").split('/').next().unwrap().parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws
}

/// Sends `n` description changes and returns how long `fast` took to see
/// every one of them, in order.
async fn burst(server: &TestServer, token: &str, fast: &mut Ws, n: usize) -> Duration {
    let api = server.api(Some(token));
    let start = Instant::now();
    let big = "d".repeat(400);
    let sender = async {
        for i in 0..n {
            let (status, _) = api.patch("/api/rooms/fanout", json!({ "description": format!("{i} {big}") })).await;
            assert_eq!(status, 200);
        }
    };
    let receiver = async {
        let mut last_version = 0;
        let mut seen = 0;
        while seen < n {
            let delta = fast.event("room:update").await;
            if delta["data"].get("description").is_none() {
                continue;
            }
            let v = delta["data"]["version"].as_u64().unwrap();
            assert!(v > last_version, "in order");
            last_version = v;
            let text = delta["data"]["description"].as_str().unwrap();
            assert!(text.starts_with(&format!("{seen} ")), "delta {seen} arrived as {text}");
            seen += 1;
        }
    };
    tokio::join!(sender, receiver);
    start.elapsed()
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_nobody_else_waits() {
    slow_consumer(&["--outbound-queue", "100", "--tcp-send-buffer", "16384"]).await;
}

#[tokio::test]
async fn a_consumer_behind_by_too_many_bytes_is_closed_with_4008() {
    slow_consumer(&["--outbound-bytes", "65536", "--tcp-send-buffer", "16384"]).await;
}

/// Sends signals (ordered events, never merged) to `to`: 8 MB in 2,000
/// frames, far more than either limit and every buffer on the way.
async fn flood_with_signals(fast: &mut Ws, to: &str) {
    let payload = "s".repeat(4000);
    for _ in 0..2000 {
        let data = json!({ "roomId": "fanout", "to": to, "kind": "offer", "payload": payload });
        fast.emit("signal", data).await;
    }
}

/// A stalled client in a room: the room's deltas are merged for it (it
/// stays, and the fast client's pace does not change), but ordered events
/// it cannot take close it with 4008.
async fn slow_consumer(args: &[&str]) {
    let mut args = args.to_vec();
    args.extend(["--rate-burst", "100000", "--rate-per-second", "100000"]);
    let server = TestServer::start_with(&args).await;
    let token = server.session("alice").await;
    server.api(Some(&token)).create_room(json!({ "id": "fanout" })).await;
    let mut fast = server.ws(&token).await;
    assert_reply_ok(&fast.request("join:room", json!({ "roomId": "fanout" })).await);

    let baseline = burst(&server, &token, &mut fast, 1000).await;

    let mut slow = stalled_client(&server.ws_url(Some(&token))).await;
    let join = json!({ "event": "join:room", "data": { "roomId": "fanout" }, "id": 1 }).to_string();
    slow.send(Message::Text(join.into())).await.unwrap();
    let slow_sid = fast.presence_join().await["data"]["sid"].as_str().unwrap().to_string();
    let with_slow = burst(&server, &token, &mut fast, 1000).await;
    flood_with_signals(&mut fast, &slow_sid).await;

    // Now read what the slow client got: its backlog, then close 4008.
    let code = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(msg) = slow.next().await {
            match msg {
                Ok(Message::Close(Some(frame))) => return Some(u16::from(frame.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the slow client is closed");
    assert_eq!(code, Some(4008));
    println!(
        "slow consumer ({args:?}): 1000 deltas to the fast client took {:?} without and {:?} with a stalled client",
        baseline, with_slow
    );
    assert!(with_slow < baseline * 3 + Duration::from_secs(1), "{with_slow:?} vs {baseline:?}");
}

#[tokio::test]
async fn an_evicted_slow_consumer_leaves_its_room_at_once() {
    let args = [
        "--outbound-bytes",
        "65536",
        "--tcp-send-buffer",
        "16384",
        "--rate-burst",
        "100000",
        "--rate-per-second",
        "100000",
    ];
    let server = TestServer::start_with(&args).await;
    let token = server.session("alice").await;
    server.api(Some(&token)).create_room(json!({ "id": "fanout" })).await;
    let mut fast = server.ws(&token).await;
    assert_reply_ok(&fast.request("join:room", json!({ "roomId": "fanout" })).await);
    let mut slow = stalled_client(&server.ws_url(Some(&token))).await;
    let join = json!({ "event": "join:room", "data": { "roomId": "fanout" }, "id": 1 }).to_string();
    slow.send(Message::Text(join.into())).await.unwrap();
    let slow_sid = fast.presence_join().await["data"]["sid"].as_str().unwrap().to_string();
    flood_with_signals(&mut fast, &slow_sid).await;
    // The stalled client never reads its close frame: it must be gone from
    // the room well before the 10 s that frame may take.
    let left = fast.presence_leave_within(Duration::from_secs(5)).await.expect("left the room at once");
    assert_eq!(left["data"]["sid"], slow_sid.as_str());
    let data = json!({ "roomId": "fanout", "to": slow_sid, "kind": "offer", "payload": 1 });
    assert_reply_error(&fast.request("signal", data).await, "not_found");
    drop(slow);
}
