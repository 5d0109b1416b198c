//! `GET /ws`: one WebSocket per browser tab. The handshake (session,
//! origin and socket limits), then the reader, which decodes frames and
//! calls the engine; the writer is `ws_writer.rs`.
//!
//! The handshake is answered here and the upgraded connection driven with
//! tokio-tungstenite directly (not axum's wrapper) so that large messages
//! can be sent as fragments: the socket's write buffer keeps the capacity
//! of the largest frame it ever wrote, and a join reply in a room of
//! thousands would otherwise leave hundreds of KiB behind per connection.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::error::{ErrorBody, ErrorCode};
use app::ids::room_key;
use app::protocol::{ClientEvent, ErrorEvent, Reply, ServerEvent, ServerShutdown};
use app::request::Request;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

use super::auth::cookie_token;
use super::error::error_body;
use super::limits::{LimitKind, Limits};
use super::rate_limit::TokenBucket;
use super::state::AppState;
use super::throttle::Peer;
use super::ws_writer::{Control, FRAGMENT, WebSocket, close, close_frame, write_loop};
use crate::engine::Engine;
use crate::engine::connection::{Connection, User, frame, outbound};

/// How long clients should wait before reconnecting after a shutdown.
const SHUTDOWN_RETRY_MS: u64 = 1000;

/// Initial read buffer of a connection (grows for larger frames).
const READ_BUFFER: usize = 4 * 1024;

/// How long bad frames are counted for the 1008 rule.
const BAD_FRAME_WINDOW: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

/// Checks an RFC 6455 upgrade request; returns its `Sec-WebSocket-Accept`.
fn accept_key(headers: &HeaderMap) -> Option<String> {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return None;
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
        return None;
    }
    headers.get(header::SEC_WEBSOCKET_KEY).map(|key| derive_accept_key(key.as_bytes()))
}

pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    mut request: axum::extract::Request,
) -> Response {
    let Some(accept) = accept_key(&headers) else {
        return (StatusCode::UPGRADE_REQUIRED, "a WebSocket upgrade (version 13) is expected").into_response();
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (StatusCode::UPGRADE_REQUIRED, "this connection cannot be upgraded").into_response();
    };
    let handshake = state.config.ws_handshake_timeout();
    let Ok(user) = tokio::time::timeout(handshake, user_of(&state, query.token, &headers)).await else {
        state.limits.hit(LimitKind::HandshakeTimeout);
        return (StatusCode::SERVICE_UNAVAILABLE, "the session could not be checked in time").into_response();
    };
    // The TCP connection's place under the connection limits goes with
    // the socket it becomes.
    let peer = request.extensions().get::<Peer>().cloned();
    let tcp_permit = peer.as_ref().map(|p| p.permit.clone());
    if let Some(wait) = user.as_ref().and_then(|u| state.limits.cooling_down(&u.id)) {
        let message = format!("this user was closed for flooding; reconnect in {} ms", wait.as_millis());
        let body = ErrorBody { code: ErrorCode::RateLimited, message, retry_after_ms: Some(wait.as_millis() as u64) };
        return super::error::ApiError(body).into_response();
    }
    let admitted = match user {
        _ if !origin_allowed(&headers, &state.config.allowed_origins) => {
            state.limits.hit(LimitKind::ForeignOrigin);
            Err(Refusal::ForeignOrigin)
        }
        Some(user) => state.limits.open_socket(&user.id).map(|permit| (user, permit)).ok_or(Refusal::TooManySockets),
        None => Err(Refusal::Unauthorized),
    };
    // Accept oversize frames up to a hard cap so that the protocol limit can
    // be answered with close 1009 rather than a dropped connection.
    let hard_cap = hard_cap(state.config.max_frame_bytes);
    // Small buffers keep an idle connection cheap.
    let config = WebSocketConfig::default()
        .max_message_size(Some(hard_cap))
        .max_frame_size(Some(hard_cap))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(FRAGMENT);
    tokio::spawn(async move {
        let upgraded = match tokio::time::timeout(handshake, on_upgrade).await {
            Ok(Ok(upgraded)) => upgraded,
            Ok(Err(e)) => return tracing::debug!(error = %e, "upgrade failed"),
            Err(_) => {
                // A client that does not take the 101 answer.
                state.limits.hit(LimitKind::HandshakeTimeout);
                if let Some(peer) = peer {
                    peer.close.notify_one();
                }
                return;
            }
        };
        let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        match admitted {
            Ok((user, _socket_permit)) => {
                let _tcp_permit = tcp_permit;
                serve(socket, state, user).await
            }
            Err(refusal) => reject(socket, refusal).await,
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The user behind the upgrade request's token or cookie.
async fn user_of(state: &AppState, token: Option<String>, headers: &HeaderMap) -> Option<User> {
    for token in [token, cookie_token(headers)].into_iter().flatten() {
        if let Ok(Some(user)) = state.sessions.resolve(&token).await {
            return Some(user);
        }
    }
    None
}

/// The close code for a frame the WebSocket layer refused: larger than
/// even the hard cap (1009 like any frame over the limit), or text that is
/// not UTF-8 (1007, RFC 6455 7.4.1).
fn protocol_violation(e: &tokio_tungstenite::tungstenite::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Capacity(_) => Some((close::TOO_BIG, "frame too large")),
        Error::Utf8(_) => Some((close::INVALID_TEXT, "text is not UTF-8")),
        _ => None,
    }
}

/// Whether a page of this `Origin` may open the socket: the server's own
/// origin (the `Origin` names the `Host` asked for) or one listed in
/// `allowed` (`*`: any). A request without `Origin` is not from a browser
/// page: let through.
pub(super) fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    let own = matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h));
    own || allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Why a socket is closed as soon as it opens.
enum Refusal {
    Unauthorized,
    TooManySockets,
    ForeignOrigin,
}

async fn reject(mut socket: WebSocket, refusal: Refusal) {
    let (code, reason) = match refusal {
        Refusal::Unauthorized => (close::UNAUTHORIZED, "unauthorized"),
        Refusal::TooManySockets => (close::TRY_AGAIN_LATER, "too many connections for this user"),
        Refusal::ForeignOrigin => (close::FOREIGN_ORIGIN, "origin not allowed"),
    };
    let _ = socket.send(close_frame(code, reason)).await;
}

async fn serve(socket: WebSocket, state: AppState, user: User) {
    let engine = state.engine.clone();
    let sid = engine.new_sid();
    let (out, out_rx) = outbound(state.config.outbound_queue, state.config.outbound_bytes);
    let conn = Arc::new(Connection { sid: sid.clone(), user, out });
    let (sink, mut stream) = socket.split();
    let (control_tx, control_rx) = mpsc::channel(4);
    tracing::debug!(%sid, user = %conn.user.id, "connected");

    engine.metrics().connected(&conn.user.id);
    let (writer_done, writer_gone) = tokio::sync::oneshot::channel::<()>();
    let ping_every = state.config.ping_interval();
    let writer = tokio::spawn(write_loop(sink, out_rx, control_rx, ping_every, writer_done));
    let mut reader = Reader {
        engine: engine.clone(),
        conn: conn.clone(),
        control: control_tx,
        rooms: HashMap::new(),
        overview: false,
        bad_frames: VecDeque::new(),
        max_bad_frames: state.config.max_bad_frames,
        max_frame_bytes: state.config.max_frame_bytes,
        max_channels: state.config.max_channels,
        rate: TokenBucket::new(state.config.rate_per_second, state.config.rate_burst),
        refused: 0,
        max_refused: (2.0 * state.config.rate_burst.max(1.0)) as u32,
        limits: state.limits.clone(),
        abuse_cooldown: state.config.abuse_cooldown(),
        too_big: false,
    };
    reader.run(&mut stream, state.config.idle_connection(), state.shutdown.clone(), writer_gone).await;

    let Reader { rooms, overview, control, too_big, .. } = reader;
    engine.disconnect(sid.clone(), rooms.into_values(), overview).await;
    engine.metrics().disconnected(&conn.user.id);
    drop(control);
    drop(conn);
    let sink = writer.await;
    if too_big && let Ok(Ok(socket)) = sink.map(|sink| stream.reunite(sink)) {
        read_what_is_left(socket, hard_cap(state.config.max_frame_bytes)).await;
    }
    tracing::debug!(%sid, "disconnected");
}

/// The largest frame read whole: larger ones are refused from their
/// header, while the client may still be sending them.
fn hard_cap(max_frame_bytes: usize) -> usize {
    (max_frame_bytes * 4).max(1 << 20)
}

/// After closing with 1009 a client still sending its frame: reads and
/// drops what it sends (up to 8 times the hard cap, for 10 s at most), so
/// that it gets the close frame rather than a reset connection.
async fn read_what_is_left(socket: WebSocket, hard_cap: usize) {
    use tokio::io::AsyncReadExt;
    let mut raw = socket.into_inner();
    let mut buf = vec![0u8; 64 * 1024];
    let drain = async {
        let mut read = 0;
        while read < 8 * hard_cap {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
}

/// The outcome of one request.
enum Outcome {
    /// The engine already queued the reply (joins: snapshot before deltas).
    Replied,
    Done(Value),
    Failed(ErrorBody),
}

struct Reader {
    engine: Engine,
    conn: Arc<Connection>,
    control: mpsc::Sender<Control>,
    /// Rooms this connection is in: key to canonical id.
    rooms: HashMap<String, Arc<str>>,
    overview: bool,
    bad_frames: VecDeque<Instant>,
    max_bad_frames: u32,
    max_frame_bytes: usize,
    max_channels: usize,
    rate: TokenBucket,
    /// Events refused for the rate since the last one accepted, and how
    /// many of those close the connection (a client that does not slow
    /// down when told to).
    refused: u32,
    max_refused: u32,
    /// A user closed for flooding waits this long before the next socket.
    limits: Arc<Limits>,
    abuse_cooldown: Duration,
    /// Closed with 1009 for a frame over the limit.
    too_big: bool,
}

impl Reader {
    async fn run(
        &mut self,
        stream: &mut futures::stream::SplitStream<WebSocket>,
        idle: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        mut writer_gone: tokio::sync::oneshot::Receiver<()>,
    ) {
        loop {
            if *shutdown.borrow_and_update() {
                self.shut_down().await;
                return;
            }
            let next = tokio::select! {
                next = tokio::time::timeout(idle, stream.next()) => next,
                _ = shutdown.changed() => continue,
                // The writer ended (slow consumer, broken socket): so does the connection.
                _ = &mut writer_gone => return,
            };
            let msg = match next {
                Err(_) => {
                    tracing::debug!(sid = %self.conn.sid, "closing a silent connection");
                    let _ = self.control.send(Control::Close(close::POLICY, "idle")).await;
                    return;
                }
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    if let Some((code, why)) = protocol_violation(&e) {
                        self.too_big = code == close::TOO_BIG;
                        let _ = self.control.send(Control::Close(code, why)).await;
                    }
                    return;
                }
                Ok(Some(Ok(msg))) => msg,
            };
            match msg {
                Message::Text(text) => {
                    if text.len() > self.max_frame_bytes {
                        let _ = self.control.send(Control::Close(close::TOO_BIG, "frame too large")).await;
                        return;
                    }
                    if !self.on_text(text.as_str()).await {
                        return;
                    }
                }
                Message::Binary(_) => {
                    let err = ErrorBody::new(ErrorCode::BadRequest, "binary frames are not supported; send JSON text");
                    if !self.bad_frame(None, None, err).await {
                        return;
                    }
                }
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Tells the client the server is going away, and closes with 1012.
    async fn shut_down(&mut self) {
        let event = ServerEvent::ServerShutdown(ServerShutdown { retry_after_ms: SHUTDOWN_RETRY_MS });
        self.conn.out.send(&frame(event.to_json()));
        let _ = self.control.send(Control::Close(close::RESTART, "server restart")).await;
    }

    /// The connection is closed for flooding: its user cools down, from
    /// now (before the client can see the close and reconnect).
    fn flooded(&self) {
        self.limits.cool_down(&self.conn.user.id, self.abuse_cooldown);
    }

    /// Handles one text frame; false when the connection must close.
    async fn on_text(&mut self, text: &str) -> bool {
        self.engine.metrics().events_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request = match Request::decode(text) {
            Ok(r) => r,
            Err(e) => {
                let body = ErrorBody::from(&e);
                return self.bad_frame(e.id, e.event, body).await;
            }
        };
        let name = request.event.name();
        if let Err(wait) = self.rate.take() {
            self.refused += 1;
            if self.refused > self.max_refused {
                self.engine.metrics().error(ErrorCode::RateLimited);
                self.flooded();
                let _ = self.control.send(Control::Close(close::POLICY, "rate limit exceeded")).await;
                return false;
            }
            let mut err = ErrorBody::new(ErrorCode::RateLimited, "too many events; slow down");
            err.retry_after_ms = Some(wait);
            self.send_error(request.id, Some(name.to_string()), err);
            return true;
        }
        self.refused = 0;
        let outcome = self.dispatch(request.event, request.id).await;
        match outcome {
            Outcome::Replied => {}
            Outcome::Done(data) => {
                if let Some(id) = request.id {
                    self.conn.out.send(&frame(Reply::ok(id, &data).to_json()));
                }
            }
            Outcome::Failed(err) => self.send_error(request.id, Some(name.to_string()), err),
        }
        true
    }

    fn send_error(&self, id: Option<u64>, event: Option<String>, err: ErrorBody) {
        self.engine.metrics().error(err.code);
        let json = match id {
            Some(id) => Reply::err(id, err).to_json(),
            None => ServerEvent::Error(ErrorEvent {
                code: err.code,
                message: err.message,
                event,
                retry_after_ms: err.retry_after_ms,
            })
            .to_json(),
        };
        self.conn.out.send(&frame(json));
    }

    /// Answers a frame that could not be read; false when there were too
    /// many of them lately (close 1008).
    async fn bad_frame(&mut self, id: Option<u64>, event: Option<String>, err: ErrorBody) -> bool {
        self.send_error(id, event, err);
        let now = Instant::now();
        self.bad_frames.push_back(now);
        while self.bad_frames.front().is_some_and(|t| now.duration_since(*t) > BAD_FRAME_WINDOW) {
            self.bad_frames.pop_front();
        }
        if self.bad_frames.len() > self.max_bad_frames as usize {
            self.flooded();
            let _ = self.control.send(Control::Close(close::POLICY, "too many bad frames")).await;
            return false;
        }
        true
    }

    fn channel_count(&self) -> usize {
        self.rooms.len() + usize::from(self.overview)
    }

    fn channel_limit(&self) -> Outcome {
        Outcome::Failed(ErrorBody::new(
            ErrorCode::TooLarge,
            format!("a connection may be in at most {} channels", self.max_channels),
        ))
    }

    async fn dispatch(&mut self, event: ClientEvent, id: Option<u64>) -> Outcome {
        let sid = self.conn.sid.clone();
        match event {
            ClientEvent::JoinOverview(query) => {
                if !self.overview && self.channel_count() >= self.max_channels {
                    return self.channel_limit();
                }
                if let Err(e) = self.engine.join_overview(self.conn.clone(), &query, id).await {
                    return Outcome::Failed(error_body(e));
                }
                self.overview = true;
                Outcome::Replied
            }
            ClientEvent::LeaveOverview(_) => {
                self.engine.leave_overview(sid).await;
                self.overview = false;
                Outcome::Done(json!({}))
            }
            ClientEvent::JoinRoom(join) => {
                let key = room_key(&join.room_id);
                if !self.rooms.contains_key(&key) && self.channel_count() >= self.max_channels {
                    return self.channel_limit();
                }
                match self.engine.join_room(self.conn.clone(), &join.room_id, join.role, id).await {
                    Ok(canonical) => {
                        self.rooms.insert(key, canonical);
                        Outcome::Replied
                    }
                    Err(e) => Outcome::Failed(error_body(e)),
                }
            }
            ClientEvent::LeaveRoom(r) => {
                let key = room_key(&r.room_id);
                if self.rooms.remove(&key).is_none() {
                    return Outcome::Failed(not_in_room(&r.room_id));
                }
                match self.engine.leave_room(sid, &r.room_id).await {
                    Ok(()) => Outcome::Done(json!({})),
                    Err(e) => Outcome::Failed(error_body(e)),
                }
            }
            ClientEvent::Match(m) => {
                if self.channel_count() >= self.max_channels {
                    return self.channel_limit();
                }
                match self.engine.match_room(self.conn.clone(), m.max_members, m.key, id).await {
                    Ok(canonical) => {
                        self.rooms.insert(room_key(&canonical), canonical);
                        Outcome::Replied
                    }
                    Err(e) => Outcome::Failed(error_body(e)),
                }
            }
            other => {
                let Some(room) = other.room_id().map(str::to_string) else {
                    return Outcome::Failed(ErrorBody::new(ErrorCode::BadRequest, "not a room event"));
                };
                let key = room_key(&room);
                if !self.rooms.contains_key(&key) {
                    return Outcome::Failed(not_in_room(&room));
                }
                match self.engine.room_event(self.conn.clone(), &room, other).await {
                    Ok(data) => Outcome::Done(data),
                    Err(e) => {
                        if e.is_not_found() && self.engine.resolve(&room).await.is_none() {
                            // The room is gone; so is this connection's place in it.
                            self.rooms.remove(&key);
                        }
                        Outcome::Failed(error_body(e))
                    }
                }
            }
        }
    }
}

fn not_in_room(room: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::Forbidden, format!("join room:{room} first"))
}
