//! Test harness: runs the real `roomcast` binary on a free port with its own
//! SQLite file, and talks to it over real HTTP and WebSocket connections.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub port: u16,
    pub db: PathBuf,
    /// The Redis server and key prefix, when running on Redis.
    pub redis: Option<RedisTarget>,
    args: Vec<String>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

/// A Redis server and a key prefix of its own, so that tests running at
/// the same time do not see each other's rooms.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    pub url: String,
    pub prefix: String,
}

impl RedisTarget {
    /// The Redis server named by `ROOMCAST_TEST_REDIS`, with a fresh prefix.
    pub fn from_env() -> Option<RedisTarget> {
        let url = std::env::var("ROOMCAST_TEST_REDIS").ok().filter(|u| !u.is_empty())?;
        let n: u64 = rand::random();
        Some(RedisTarget { url, prefix: format!("test-{n:016x}") })
    }

    /// Like `from_env`, for tests that only make sense on Redis.
    pub fn required() -> RedisTarget {
        Self::from_env().expect("set ROOMCAST_TEST_REDIS to a running Redis server (scripts/test.sh starts one)")
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl TestServer {
    /// Starts a server on a fresh database with extra flags.
    /// On Redis when `ROOMCAST_TEST_BACKEND=redis` (at
    /// `ROOMCAST_TEST_REDIS`), else on SQLite.
    pub async fn start_with(args: &[&str]) -> TestServer {
        let on_redis = std::env::var("ROOMCAST_TEST_BACKEND").is_ok_and(|b| b == "redis");
        Self::start_on_redis(if on_redis { Some(RedisTarget::required()) } else { None }, args).await
    }

    /// Starts a server on `redis` (or a fresh SQLite file when `None`).
    pub async fn start_on_redis(redis: Option<RedisTarget>, args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("roomcast.db");
        let mut server = TestServer {
            port: 0,
            db,
            redis,
            args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            _dir: Some(dir),
        };
        server.spawn().await;
        server
    }

    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// Starts a server on an existing database file.
    pub async fn start_on(db: &Path, args: &[&str]) -> TestServer {
        let mut server = TestServer {
            port: 0,
            db: db.to_path_buf(),
            redis: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            _dir: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        if self.port == 0 {
            self.port = free_port();
        }
        let mut redis_args = Vec::new();
        if let Some(redis) = &self.redis {
            redis_args.extend(["--redis-url".to_string(), redis.url.clone()]);
            redis_args.extend(["--redis-prefix".to_string(), redis.prefix.clone()]);
            if !self.args.iter().any(|a| a == "--node-ttl-seconds") {
                redis_args.extend(["--node-ttl-seconds".to_string(), "1".to_string()]);
            }
        }
        let child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .arg("--addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--db")
            .arg(&self.db)
            .args(&redis_args)
            .args(self.unlimited())
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start roomcast");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "server did not come up on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every test client comes from 127.0.0.1: the per-address and
    /// per-user limits are lifted unless the test sets them itself.
    fn unlimited(&self) -> Vec<String> {
        let lifted = [
            ("--rest-rate-per-second", "1000000"),
            ("--rest-rate-burst", "1000000"),
            ("--session-rate-per-minute", "1000000"),
            ("--session-rate-burst", "1000000"),
            ("--max-connections-per-address", "1000000"),
            ("--max-sockets-per-user", "1000000"),
        ];
        lifted
            .iter()
            .filter(|(flag, _)| !self.args.iter().any(|a| a == flag))
            .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
            .collect()
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process with SIGTERM and waits for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        child.wait().expect("wait")
    }

    /// Kills the server and starts it again on the same database file and
    /// port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn ws_url(&self, token: Option<&str>) -> String {
        match token {
            Some(t) => format!("ws://127.0.0.1:{}/ws?token={t}", self.port),
            None => format!("ws://127.0.0.1:{}/ws", self.port),
        }
    }

    pub fn api(&self, token: Option<&str>) -> Api {
        Api {
            base: format!("http://127.0.0.1:{}", self.port),
            token: token.map(str::to_string),
            http: reqwest::Client::new(),
        }
    }

    /// A new session's token.
    pub async fn session(&self, name: &str) -> String {
        let (status, body) = self.api(None).post("/api/session", json!({ "userName": name })).await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    pub async fn ws(&self, token: &str) -> Ws {
        Ws::connect(&self.ws_url(Some(token))).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A small JSON HTTP client that returns status and body.
pub struct Api {
    pub base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        // A dead server answers status 0 (the crash test kills it mid-request).
        let Ok(resp) = req.send().await else { return (0, Value::Null) };
        let status = resp.status().as_u16();
        let Ok(text) = resp.text().await else { return (0, Value::Null) };
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(req).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    /// Creates a room and returns its metadata.
    pub async fn create_room(&self, body: Value) -> Value {
        let (status, room) = self.post("/api/rooms", body).await;
        assert_eq!(status, 201, "{room}");
        room
    }
}

/// Asserts a REST error answer.
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(answer.1["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", answer.1);
}

/// Polls `GET /api/rooms/{id}` until `check` holds (counts, for one, are
/// announced once per presence tick); the room as it then is.
pub async fn room_eventually(server: &TestServer, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, room) = server.api(None).get(&format!("/api/rooms/{id}")).await;
        if check(&room) {
            return room;
        }
        assert!(Instant::now() < deadline, "room {id} never got there: {room}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A protocol client over a real WebSocket.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    open: bool,
    next_id: u64,
    /// Events read while waiting for something else, in order.
    pub backlog: Vec<Value>,
    /// The server's close, when a read met it.
    closed_with: Option<Closed>,
    /// Entries of `presence:diff`s read, one by one: ("join", entry) or
    /// ("leave", sid).
    presence: std::collections::VecDeque<(&'static str, Value)>,
}

/// How a connection ended.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Code(u16),
    NoFrame,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(url).await.expect("ws connect");
        Self::from_stream(stream)
    }

    pub fn from_stream(stream: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Ws {
        Ws { stream, open: true, next_id: 0, backlog: Vec::new(), closed_with: None, presence: Default::default() }
    }

    /// Whether the socket has not been seen closing.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Like [`Ws::request`], but `None` instead of a panic when the socket
    /// fails or no reply comes within the wait.
    pub async fn try_request(&mut self, event: &str, data: Value) -> Option<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let text = json!({ "event": event, "data": data, "id": id }).to_string();
        if self.stream.send(Message::Text(text.into())).await.is_err() {
            self.open = false;
            return None;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.read(left).await?;
            if msg["event"] == "reply" && msg["id"] == id {
                return Some(msg);
            }
            self.backlog.push(msg);
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::Text(text.into())).await.expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream.send(Message::Binary(bytes.into())).await.expect("send");
    }

    /// Sends an event without an id.
    pub async fn emit(&mut self, event: &str, data: Value) {
        let text = json!({ "event": event, "data": data }).to_string();
        self.send_text(&text).await;
    }

    /// Reads the next JSON message, or `None` when the socket closed.
    pub async fn read(&mut self, within: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(within, self.stream.next()).await.ok()??.ok()?;
            match msg {
                Message::Text(t) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server sent JSON"));
                }
                Message::Close(frame) => {
                    self.open = false;
                    self.closed_with = Some(frame.map_or(Closed::NoFrame, |f| Closed::Code(u16::from(f.code))));
                    return None;
                }
                _ => continue,
            }
        }
    }

    /// Sends a request and returns its reply; events read meanwhile are
    /// kept in `backlog`.
    pub async fn request(&mut self, event: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let text = json!({ "event": event, "data": data, "id": id }).to_string();
        self.send_text(&text).await;
        self.reply(id).await
    }

    pub async fn reply(&mut self, id: u64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.read(left).await.unwrap_or_else(|| panic!("no reply to request {id}"));
            if msg["event"] == "reply" && msg["id"] == id {
                return msg;
            }
            self.backlog.push(msg);
        }
    }

    /// Waits for the next event with this name (from the backlog first).
    pub async fn event(&mut self, name: &str) -> Value {
        self.event_within(name, WAIT).await.unwrap_or_else(|| panic!("no `{name}` event"))
    }

    pub async fn event_within(&mut self, name: &str, within: Duration) -> Option<Value> {
        if let Some(pos) = self.backlog.iter().position(|m| m["event"] == name) {
            return Some(self.backlog.remove(pos));
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let msg = self.read(left).await?;
            if msg["event"] == name {
                return Some(msg);
            }
            self.backlog.push(msg);
        }
    }

    /// The next connection a `presence:diff` announced as joined, as
    /// `{"data": entry}`.
    pub async fn presence_join(&mut self) -> Value {
        self.presence_change("join", WAIT).await.unwrap_or_else(|| panic!("nobody joined"))
    }

    /// The next connection a `presence:diff` announced as gone, as
    /// `{"data": {"sid": …}}`.
    pub async fn presence_leave(&mut self) -> Value {
        self.presence_leave_within(WAIT).await.unwrap_or_else(|| panic!("nobody left"))
    }

    pub async fn presence_leave_within(&mut self, within: Duration) -> Option<Value> {
        self.presence_change("leave", within).await
    }

    /// Reads `presence:diff`s into single entries until one of `kind`.
    async fn presence_change(&mut self, kind: &str, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(pos) = self.presence.iter().position(|(k, _)| *k == kind) {
                let (_, entry) = self.presence.remove(pos)?;
                return Some(json!({ "data": entry }));
            }
            let diff = self.event_within("presence:diff", deadline.saturating_duration_since(Instant::now())).await?;
            for entry in diff["data"]["joins"].as_array().into_iter().flatten() {
                self.presence.push_back(("join", entry.clone()));
            }
            for sid in diff["data"]["leaves"].as_array().into_iter().flatten() {
                self.presence.push_back(("leave", json!({ "sid": sid, "roomId": diff["data"]["roomId"] })));
            }
        }
    }

    /// Asserts that no event with this name arrives for a while.
    pub async fn no_event(&mut self, name: &str, within: Duration) {
        if let Some(m) = self.event_within(name, within).await {
            panic!("unexpected `{name}`: {m}");
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn closed(&mut self) -> Closed {
        if let Some(closed) = self.closed_with.take() {
            return closed;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => panic!("the server did not close the connection"),
                Ok(None) | Ok(Some(Err(_))) => return Closed::NoFrame,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return match frame {
                        Some(f) => Closed::Code(u16::from(f.code)),
                        None => Closed::NoFrame,
                    };
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.backlog.push(serde_json::from_str(t.as_str()).unwrap_or(Value::Null));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .stream
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// Asserts a WebSocket error reply.
pub fn assert_reply_error(reply: &Value, code: &str) {
    assert_eq!(reply["event"], "reply", "{reply}");
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
}

/// A new user's session token and a socket of theirs.
pub async fn user(server: &TestServer, name: &str) -> (String, Ws) {
    let token = server.session(name).await;
    let ws = server.ws(&token).await;
    (token, ws)
}

pub fn assert_reply_ok(reply: &Value) -> &Value {
    assert_eq!(reply["ok"], true, "{reply}");
    &reply["data"]
}

/// Sends `match` with `max_members` on every socket at once; each must be
/// seated as a member. Returns how many landed in each room.
pub async fn match_all(clients: &mut [Ws], max_members: u32) -> std::collections::HashMap<String, usize> {
    let replies = futures::future::join_all(
        clients.iter_mut().map(|ws| async move { ws.request("match", json!({ "maxMembers": max_members })).await }),
    )
    .await;
    let mut per_room = std::collections::HashMap::new();
    for reply in &replies {
        let data = assert_reply_ok(reply);
        assert_eq!(data["role"], "member");
        *per_room.entry(data["room"]["id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    per_room
}
