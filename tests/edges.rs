//! The edges of the contract, tried as a new user or a careless client
//! would: each answers with the protocol's codes, never silently.

mod common;

use common::{Closed, TestServer, assert_error, assert_reply_error, assert_reply_ok};
use futures::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

#[tokio::test]
async fn rest_bodies_must_be_json_objects() {
    let server = TestServer::start().await;
    let api = server.api(Some(&server.session("alice").await));
    let answer = api.post_raw("/api/rooms", r#"["pos-x","desc"]"#).await;
    assert_error(&answer, 400, "bad_request");
    assert!(answer.1["error"]["message"].as_str().is_some_and(|m| m.contains("JSON object")), "{}", answer.1);
    assert_error(&api.get("/api/rooms/pos-x").await, 404, "not_found");
    assert_error(&api.post_raw("/api/match", "[4]").await, 400, "bad_request");
    assert_error(&api.post_raw("/api/session", r#""bob""#).await, 400, "bad_request");
}

#[tokio::test]
async fn a_path_that_is_not_utf8_gets_the_json_error() {
    let server = TestServer::start().await;
    let api = server.api(Some(&server.session("alice").await));
    for path in ["/api/rooms/%FF", "/api/rooms/%FF/frames", "/api/rooms/%C3%28/chat"] {
        assert_error(&api.get(path).await, 400, "bad_request");
    }
}

#[tokio::test]
async fn a_text_frame_over_the_hard_cap_is_closed_with_1009() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let mut ws = server.ws(&token).await;
    ws.send_text(&format!("{{\"event\":\"keep_alive\",\"data\":{{\"pad\":\"{}\"}}}}", "x".repeat(2 << 20))).await;
    assert_eq!(ws.closed().await, Closed::Code(1009));
}

#[tokio::test]
async fn text_that_is_not_utf8_is_closed_with_1007() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let (mut stream, _) = tokio_tungstenite::connect_async(server.ws_url(Some(&token))).await.expect("connect");
    let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    stream.send(Message::Frame(bad)).await.expect("send");
    let mut ws = common::Ws::from_stream(stream);
    assert_eq!(ws.closed().await, Closed::Code(1007));
}

#[tokio::test]
async fn an_oversize_append_gets_its_413_while_the_client_is_still_sending() {
    let server = TestServer::start().await;
    let token = server.session("uploader").await;
    let room = server.api(Some(&token)).create_room(json!({})).await;
    // A client that sends 8 MiB at its own pace, then reads the answer.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
    let size = 8 << 20;
    let head = format!(
        "POST /api/rooms/{}/frames HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n",
        room["id"].as_str().expect("id")
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..size / chunk.len() {
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(matches!(read, Ok(Ok(_))), "the connection was reset: {read:?} after {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"too_large\""), "{answer}");
}

#[tokio::test]
async fn the_chat_limit_is_per_user_over_all_rooms() {
    let server = TestServer::start_with(&["--chat-burst", "5"]).await;
    let token = server.session("talker").await;
    let api = server.api(Some(&token));
    let (a, b) = (api.create_room(json!({})).await, api.create_room(json!({})).await);
    let mut ws = server.ws(&token).await;
    for room in [&a, &b] {
        assert_reply_ok(&ws.request("join:room", json!({ "roomId": room["id"] })).await);
    }
    for i in 0..5 {
        let room = if i % 2 == 0 { &a } else { &b };
        assert_reply_ok(&ws.request("chat:send", json!({ "roomId": room["id"], "text": format!("m{i}") })).await);
    }
    let sixth = ws.request("chat:send", json!({ "roomId": b["id"], "text": "one too many" })).await;
    assert_reply_error(&sixth, "rate_limited");
}

#[tokio::test]
async fn a_bad_event_field_is_named_in_the_reply() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let mut ws = server.ws(&token).await;
    let reply = ws.request("join:room", json!({ "roomId": 12 })).await;
    assert_reply_error(&reply, "bad_request");
    let message = reply["error"]["message"].as_str().expect("message");
    assert!(message.contains("field `roomId`"), "{message}");
}
