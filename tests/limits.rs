//! A public server meets hostile traffic: each limit and timeout, tried as
//! an attacker would, against the real binary.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{TestServer, Ws, assert_error};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A raw TCP connection to the server from `from` (any 127.x.y.z address
/// is this machine's loopback, so tests can be several clients).
async fn connect_from(server: &TestServer, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    let local: IpAddr = from.parse().expect("address");
    socket.bind(SocketAddr::new(local, 0)).expect("bind");
    socket.connect(SocketAddr::from(([127, 0, 0, 1], server.port))).await.expect("connect")
}

/// Reads until the server closes the connection or `within` passes;
/// returns what was read and whether the server closed.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut data = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&data).into_owned(), true),
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&data).into_owned(), false),
        }
    }
}

async fn limits_hit(server: &TestServer, kind: &str) -> u64 {
    let (status, stats) = server.api(None).get("/api/stats").await;
    assert_eq!(status, 200, "{stats}");
    stats["limits"]["limitsHit"][kind].as_u64().expect("a counter of that kind")
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics")).await.expect("metrics").text().await.expect("text")
}

#[tokio::test]
async fn rest_requests_beyond_the_rate_of_an_address_are_refused_with_retry_after() {
    let server = TestServer::start_with(&["--rest-rate-per-second", "0.5", "--rest-rate-burst", "5"]).await;
    let http = reqwest::Client::new();
    for i in 0..5 {
        let r = http.get(server.url("/api/rooms")).send().await.expect("get");
        assert_eq!(r.status(), 200, "request {i} is within the burst");
    }
    let r = http.get(server.url("/api/rooms")).send().await.expect("get");
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=2).contains(&retry_after), "one token every 2 s: Retry-After {retry_after}");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0 && ms <= 2000), "{body}");
    // Static files, the health check and the metrics stay reachable.
    assert_eq!(http.get(server.url("/healthz")).send().await.expect("health").status(), 200);
    assert!(metrics(&server).await.contains("roomcast_limits_hit_total{kind=\"rest_rate\"} 1"));
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let args = ["--rest-rate-per-second", "0.1", "--rest-rate-burst", "2"];
    let direct = TestServer::start_with(&args).await;
    let proxied = TestServer::start_with(&[&args[..], &["--trusted-proxies", "127.0.0.1"]].concat()).await;
    let http = reqwest::Client::new();
    let get = |server: &TestServer, client: &str| {
        http.get(server.url("/api/rooms")).header("x-forwarded-for", client.to_string()).send()
    };
    // Behind the proxy each forwarded client has a bucket of its own.
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        for _ in 0..2 {
            assert_eq!(get(&proxied, client).await.expect("get").status(), 200, "{client}");
        }
    }
    assert_eq!(get(&proxied, "198.51.100.1").await.expect("get").status(), 429);
    // From an untrusted peer the header is the client's own claim: ignored.
    for (i, client) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"].iter().enumerate() {
        let expected = if i < 2 { 200 } else { 429 };
        assert_eq!(get(&direct, client).await.expect("get").status(), expected, "{client}");
    }
}

#[tokio::test]
async fn sessions_beyond_the_stricter_session_rate_are_refused() {
    let server = TestServer::start_with(&["--session-rate-per-minute", "1", "--session-rate-burst", "3"]).await;
    let api = server.api(None);
    for i in 0..3 {
        let (status, body) = api.post("/api/session", json!({ "userName": format!("bot{i}") })).await;
        assert_eq!(status, 200, "{body}");
    }
    let answer = api.post("/api/session", json!({ "userName": "bot" })).await;
    assert_error(&answer, 429, "rate_limited");
    assert!(answer.1["error"]["retryAfterMs"].as_u64().is_some_and(|ms| ms > 30_000), "{}", answer.1);
    // Other REST requests of the address are still served.
    assert_eq!(api.get("/api/rooms").await.0, 200);
    assert_eq!(limits_hit(&server, "session_rate").await, 1);
}

#[tokio::test]
async fn page_views_store_no_session() {
    let server = TestServer::start().await;
    for path in ["/", "/rooms", "/stats"] {
        let r = reqwest::get(server.url(path)).await.expect("page");
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().get("set-cookie").is_none(), "{path} set a cookie");
    }
    let db = rusqlite::Connection::open(&server.db).expect("db");
    let sessions: i64 = db.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0)).expect("count");
    assert_eq!(sessions, 0, "page views created sessions");
}

#[tokio::test]
async fn half_open_requests_are_closed_after_the_header_timeout() {
    let server = TestServer::start_with(&["--header-timeout-seconds", "1"]).await;
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut stream = connect_from(&server, "127.0.0.1").await;
        stream.write_all(b"GET /rooms HTTP/1.1\r\nHost: x\r\n").await.expect("write");
        held.push(stream);
    }
    for stream in &mut held {
        let (_, closed) = read_to_close(stream, Duration::from_secs(20)).await;
        assert!(closed, "a half-open request was still held after {:?}", started.elapsed());
    }
    assert!(limits_hit(&server, "header_timeout").await >= 200);
    // A keep-alive connection left idle is closed the same way.
    let mut idle = connect_from(&server, "127.0.0.1").await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let (answer, closed) = read_to_close(&mut idle, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 200") && closed, "{answer}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_timeout() {
    let server = TestServer::start_with(&["--request-timeout-seconds", "1"]).await;
    let token = server.session("slow").await;
    let mut stream = connect_from(&server, "127.0.0.1").await;
    let head = format!(
        "POST /api/rooms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n{{\"name\""
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let (answer, closed) = read_to_close(&mut stream, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
    assert!(closed, "the connection is closed after the timeout");
    assert_eq!(limits_hit(&server, "request_timeout").await, 1);
    let (_, rooms) = server.api(None).get("/api/rooms").await;
    assert_eq!(rooms["rooms"].as_array().map(Vec::len), Some(0), "nothing was created");
}

#[tokio::test]
async fn connections_beyond_the_limit_of_an_address_get_503_and_others_still_connect() {
    let server =
        TestServer::start_with(&["--max-connections-per-address", "3", "--header-timeout-seconds", "60"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(&server, "127.0.0.2").await);
    }
    let mut over = connect_from(&server, "127.0.0.2").await;
    let (answer, closed) = read_to_close(&mut over, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections from your address") && closed, "{answer}");
    // Another address is not affected.
    let mut other = connect_from(&server, "127.0.0.3").await;
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let (answer, _) = read_to_close(&mut other, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A closed connection gives its place back.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect_from(&server, "127.0.0.2").await;
    again.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let (answer, _) = read_to_close(&mut again, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(limits_hit(&server, "connections_per_address").await, 1);
}

#[tokio::test]
async fn connections_beyond_the_total_get_503() {
    let server = TestServer::start_with(&["--max-connections", "4", "--header-timeout-seconds", "60"]).await;
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(connect_from(&server, &format!("127.0.1.{}", i + 1)).await);
    }
    let mut over = connect_from(&server, "127.0.1.9").await;
    let (answer, closed) = read_to_close(&mut over, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 503") && closed, "{answer}");
    assert!(answer.contains("\"code\":\"unavailable\""), "{answer}");
    drop(held);
    // Once the held connections are closed the server has room again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = metrics(&server).await;
        if text.contains("roomcast_limits_hit_total") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let refused = text.lines().find_map(|l| l.strip_prefix("roomcast_limits_hit_total{kind=\"connections\"} "));
    assert!(refused.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 1), "{text}");
}

#[tokio::test]
async fn sockets_beyond_the_limit_of_a_user_are_closed_with_1013() {
    let server = TestServer::start_with(&["--max-sockets-per-user", "2"]).await;
    let alice = server.session("alice").await;
    let first = server.ws(&alice).await;
    let _second = server.ws(&alice).await;
    let mut third = server.ws(&alice).await;
    assert!(matches!(third.closed().await, common::Closed::Code(1013)), "the third socket is closed with 1013");
    // Another user, and alice once a socket of hers is gone, may connect.
    let bob = server.session("bob").await;
    let mut bobs = server.ws(&bob).await;
    common::assert_reply_ok(&bobs.request("join:overview", json!({})).await);
    first.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = server.ws(&alice).await;
    common::assert_reply_ok(&again.request("join:overview", json!({})).await);
    assert_eq!(limits_hit(&server, "sockets_per_user").await, 1);
}

#[tokio::test]
async fn an_idle_session_expires_and_is_removed_while_a_used_one_lives() {
    let server = idle_session_expires(None).await;
    let db = rusqlite::Connection::open(&server.db).expect("db");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = db
            .prepare("SELECT user_name FROM sessions")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("names");
        if names == ["used"] {
            break;
        }
        assert!(Instant::now() < deadline, "the idle session was not removed: {names:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn chat_history_is_capped_per_room_and_ids_go_on_after_a_restart() {
    chat_is_capped(None).await;
}

#[tokio::test]
async fn chat_history_is_capped_on_redis_too() {
    chat_is_capped(Some(common::RedisTarget::required())).await;
}

async fn chat_is_capped(redis: Option<common::RedisTarget>) {
    let args = ["--max-chat-per-room", "3", "--chat-burst", "100"];
    let mut server = TestServer::start_on_redis(redis, &args).await;
    let token = server.session("talker").await;
    let room = server.api(Some(&token)).create_room(json!({ "description": "capped" })).await;
    let id = room["id"].as_str().expect("id").to_string();
    let mut ws = server.ws(&token).await;
    common::assert_reply_ok(&ws.request("join:room", json!({ "roomId": id })).await);
    for i in 1..=5 {
        common::assert_reply_ok(&ws.request("chat:send", json!({ "roomId": id, "text": format!("m{i}") })).await);
    }
    let ids = |page: &Value| -> Vec<u64> {
        page["messages"].as_array().expect("messages").iter().map(|m| m["id"].as_u64().expect("id")).collect()
    };
    let (_, page) = server.api(None).get(&format!("/api/rooms/{id}/chat")).await;
    assert_eq!(ids(&page), [3, 4, 5], "{page}");
    drop(ws);
    server.restart().await;
    let mut ws: Ws = server.ws(&token).await;
    common::assert_reply_ok(&ws.request("join:room", json!({ "roomId": id })).await);
    let reply = ws.request("chat:send", json!({ "roomId": id, "text": "after" })).await;
    assert_eq!(common::assert_reply_ok(&reply)["message"]["id"], 6, "{reply}");
    let (_, page) = server.api(None).get(&format!("/api/rooms/{id}/chat")).await;
    assert_eq!(ids(&page), [4, 5, 6], "{page}");
}

#[tokio::test]
async fn an_idle_session_expires_on_redis_while_a_used_one_lives() {
    idle_session_expires(Some(common::RedisTarget::required())).await;
}

/// Two sessions with a TTL of 3.5 s (0.00004 days): one used every half
/// second for 6 s lives, the other expires.
async fn idle_session_expires(redis: Option<common::RedisTarget>) -> TestServer {
    let server = TestServer::start_on_redis(redis, &["--session-ttl-days", "0.00004"]).await;
    let used = server.session("used").await;
    let idle = server.session("idle").await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        assert_eq!(server.api(Some(&used)).get("/api/session").await.0, 200, "a session in use expired");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_error(&server.api(Some(&idle)).get("/api/session").await, 401, "unauthorized");
    server
}

#[tokio::test]
async fn a_room_holds_at_most_the_frame_cap() {
    let server = TestServer::start_with(&["--max-frames-per-room", "10"]).await;
    let token = server.session("uploader").await;
    let api = server.api(Some(&token));
    let room = api.create_room(json!({ "description": "frames" })).await;
    let path = format!("/api/rooms/{}/frames", room["id"].as_str().expect("id"));
    assert_eq!(api.post(&path, json!([1, 2, 3, 4, 5, 6, 7, 8])).await.1["frameCount"], 8);
    let answer = api.post(&path, json!([9, 10, 11])).await;
    assert_error(&answer, 413, "too_large");
    assert!(answer.1["error"]["message"].as_str().is_some_and(|m| m.contains("at most 10 frames")), "{}", answer.1);
    let (_, frames) = api.get(&format!("{path}?offset=0&limit=100")).await;
    assert_eq!(frames["frameCount"], 8);
    assert_eq!(api.post(&path, json!([9, 10])).await.1["frameCount"], 10);
}

#[tokio::test]
async fn a_socket_upgrade_that_cannot_complete_in_time_is_refused() {
    // The session store stalls (Redis paused): without the handshake
    // timeout the upgrade would wait for as long as the stall lasts.
    let redis = common::RedisTarget::required();
    let mut server = TestServer::start_on_redis(Some(redis.clone()), &["--ws-handshake-timeout-seconds", "1"]).await;
    let token = server.session("patient").await;
    server.restart().await; // an empty session cache: the upgrade must ask Redis
    let client = redis::Client::open(redis.url.as_str()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let pause = Duration::from_secs(6);
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("ALL")
        .query_async::<()>(&mut conn)
        .await
        .expect("pause");
    let paused = Instant::now();
    let attempt = tokio_tungstenite::connect_async(server.ws_url(Some(&token))).await;
    let waited = paused.elapsed();
    match attempt {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected a 503 refusal, got {:?} after {waited:?}", other.map(|_| "an open socket")),
    }
    assert!(waited < Duration::from_secs(4), "the refusal took {waited:?}, the stall lasts {pause:?}");
    tokio::time::sleep(pause.saturating_sub(paused.elapsed()) + Duration::from_millis(500)).await;
    let mut ws = server.ws(&token).await;
    common::assert_reply_ok(&ws.request("join:overview", json!({})).await);
    assert_eq!(limits_hit(&server, "handshake_timeout").await, 1);
}

#[tokio::test]
async fn a_socket_that_keeps_flooding_is_closed_and_its_user_cools_down() {
    let server =
        TestServer::start_with(&["--rate-per-second", "0.1", "--rate-burst", "10", "--abuse-cooldown-seconds", "2"])
            .await;
    let token = server.session("flooder").await;
    let room = server.api(Some(&token)).create_room(json!({})).await;
    let mut ws = server.ws(&token).await;
    common::assert_reply_ok(&ws.request("join:room", json!({ "roomId": room["id"] })).await);
    // A burst is served, then refusals; told to slow down twice a burst's
    // worth of times and still sending, the socket is closed. (One event
    // at a time, so that the close is read, not reset by unread frames.)
    let (mut ok, mut refused) = (0, 0);
    while ok + refused < 100 {
        let Some(reply) = ws.try_request("keep_alive", json!({ "roomId": room["id"] })).await else { break };
        if reply["ok"] == true {
            ok += 1;
        } else {
            common::assert_reply_error(&reply, "rate_limited");
            refused += 1;
        }
    }
    // The join took one token of the burst of 10.
    assert_eq!((ok, refused), (9, 20), "answered before the close");
    assert!(matches!(ws.closed().await, common::Closed::Code(1008)), "a flooding socket is closed with 1008");
    let refused = tokio_tungstenite::connect_async(server.ws_url(Some(&token))).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected 429 while cooling down, got {:?}", other.map(|_| "an open socket")),
    }
    assert_eq!(limits_hit(&server, "flooding").await, 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut again = server.ws(&token).await;
    common::assert_reply_ok(&again.request("join:overview", json!({})).await);
}
