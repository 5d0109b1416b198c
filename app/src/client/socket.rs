//! The tab's one WebSocket. It is created once above the router and shared
//! by context; pages say which channel they want (`enter`/`exit`) and the
//! socket joins and leaves as the user navigates, reconnects with backoff
//! and jitter, re-joins and feeds every reply and event to the store.
//! On the server (SSR) it does nothing.

use leptos::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::store::Store;
use crate::api::RoomQuery;
use crate::error::ErrorBody;
use crate::protocol::ClientEvent;

/// How often a keyed event is sent again once the connection is back.
const KEYED_RETRIES: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionStatus {
    Connecting,
    Connected,
    Reconnecting,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Reconnecting => "reconnecting",
        }
    }
}

/// A channel a page wants to be in: the room list (a window of a query)
/// or one room.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Overview(RoomQuery),
    Room(String),
}

impl Channel {
    /// Whether both name the same channel (room ids ignore case).
    pub fn same(&self, other: &Channel) -> bool {
        match (self, other) {
            (Channel::Overview(_), Channel::Overview(_)) => true,
            (Channel::Room(a), Channel::Room(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

#[derive(Clone, Copy)]
pub struct Socket {
    pub status: RwSignal<ConnectionStatus>,
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    store: Store,
    #[cfg(feature = "hydrate")]
    inner: StoredValue<std::rc::Rc<std::cell::RefCell<live::Inner>>, LocalStorage>,
}

pub fn use_socket() -> Socket {
    expect_context::<Socket>()
}

impl Socket {
    pub fn new(store: Store) -> Socket {
        Socket {
            status: RwSignal::new(ConnectionStatus::Connecting),
            store,
            #[cfg(feature = "hydrate")]
            inner: StoredValue::new_local(Default::default()),
        }
    }

    /// Opens the connection (browser only; once per tab).
    pub fn start(&self) {
        #[cfg(feature = "hydrate")]
        live::start(*self);
    }

    /// The current page wants to be in `channel`.
    pub fn enter(&self, channel: Channel) {
        #[cfg(feature = "hydrate")]
        live::enter(*self, channel);
        #[cfg(not(feature = "hydrate"))]
        let _ = channel;
    }

    /// The current page no longer wants `channel`.
    pub fn exit(&self, channel: Channel) {
        #[cfg(feature = "hydrate")]
        live::exit(*self, channel);
        #[cfg(not(feature = "hydrate"))]
        let _ = channel;
    }

    /// Closes the connection and opens a new one at once (after a rename:
    /// a connection carries the name it was opened with).
    pub fn reconnect(&self) {
        #[cfg(feature = "hydrate")]
        live::reconnect(*self);
    }

    /// Sends an event and waits for its reply's data, as JSON text.
    pub(super) async fn request(&self, event: ClientEvent) -> Result<Box<RawValue>, ErrorBody> {
        #[cfg(feature = "hydrate")]
        {
            live::request(*self, event).await
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = event;
            Err(ErrorBody::new(crate::error::ErrorCode::Internal, "no socket outside the browser"))
        }
    }

    /// Sends an event and reads its reply's data as a `T`.
    pub(super) async fn request_as<T: DeserializeOwned>(&self, event: ClientEvent) -> Result<T, ErrorBody> {
        let data = self.request(event).await?;
        serde_json::from_str(data.get())
            .map_err(|e| ErrorBody::new(crate::error::ErrorCode::Internal, format!("unreadable reply: {e}")))
    }

    /// Like [`Socket::request_as`] for an event with an idempotency key:
    /// after a lost connection or `unavailable` it is sent again, with the
    /// same key, once the connection is back (a repeat of what was done
    /// answers the first reply).
    pub(super) async fn request_keyed_as<T: DeserializeOwned>(&self, event: ClientEvent) -> Result<T, ErrorBody> {
        let mut attempt = 0;
        loop {
            match self.request_as(event.clone()).await {
                Err(e) if e.code == crate::error::ErrorCode::Unavailable && attempt < KEYED_RETRIES => {
                    #[cfg(feature = "hydrate")]
                    live::until_connected(*self, attempt).await;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }
}

#[cfg(feature = "hydrate")]
mod live {
    use std::collections::{HashMap, HashSet};

    use futures::channel::{mpsc, oneshot};
    use futures::{FutureExt, SinkExt, StreamExt};
    use gloo_net::websocket::futures::WebSocket;
    use gloo_net::websocket::{Message, WebSocketError};
    use leptos::prelude::*;
    use leptos::task::spawn_local;
    use serde_json::value::RawValue;

    use super::{Channel, ConnectionStatus, Socket};
    use crate::client::rest;
    use crate::delta::{Decision, RoomDelta};
    use crate::error::{ErrorBody, ErrorCode};
    use crate::model::DeleteReason;
    use crate::protocol::{
        ClientEvent, Empty, JoinOverviewReply, JoinRoom, JoinRoomReply, RoomRef, ServerEvent, ServerMessage,
    };
    use crate::request::Request;

    const UNAUTHORIZED: u16 = 4001;
    const NORMAL: u16 = 1000;

    enum Pending {
        Request(oneshot::Sender<Result<Box<RawValue>, ErrorBody>>),
        Join(Channel),
        Ignore,
    }

    #[derive(Default)]
    pub struct Inner {
        started: bool,
        out: Option<mpsc::UnboundedSender<String>>,
        next_id: u64,
        pending: HashMap<u64, Pending>,
        channels: Vec<Channel>,
        resyncing: HashSet<String>,
    }

    fn with<T>(socket: Socket, f: impl FnOnce(&mut Inner) -> T) -> T {
        let rc = socket.inner.get_value();
        let mut inner = rc.borrow_mut();
        f(&mut inner)
    }

    /// Queues `event` with a fresh id; false when not connected.
    fn send(socket: Socket, event: ClientEvent, pending: Pending) -> bool {
        with(socket, |inner| {
            let Some(out) = inner.out.clone() else {
                return false;
            };
            inner.next_id += 1;
            let id = inner.next_id;
            let text = serde_json::to_string(&Request { event, id: Some(id) }).unwrap_or_default();
            inner.pending.insert(id, pending);
            out.unbounded_send(text).is_ok()
        })
    }

    fn join_event(channel: &Channel) -> ClientEvent {
        match channel {
            Channel::Overview(query) => ClientEvent::JoinOverview(query.clone()),
            Channel::Room(id) => ClientEvent::JoinRoom(JoinRoom { room_id: id.clone(), role: None }),
        }
    }

    /// Joins `channel`; entering the overview with another query replaces
    /// the window (the server answers the new query's first page).
    pub fn enter(socket: Socket, channel: Channel) {
        let new = with(socket, |inner| {
            if inner.channels.contains(&channel) {
                return false;
            }
            inner.channels.retain(|c| !c.same(&channel));
            inner.channels.push(channel.clone());
            true
        });
        if new {
            send(socket, join_event(&channel), Pending::Join(channel));
        }
    }

    pub fn exit(socket: Socket, channel: Channel) {
        let was_in = with(socket, |inner| {
            let before = inner.channels.len();
            inner.channels.retain(|c| !c.same(&channel));
            before != inner.channels.len()
        });
        if !was_in {
            return;
        }
        let event = match &channel {
            Channel::Overview(_) => ClientEvent::LeaveOverview(Empty {}),
            Channel::Room(id) => {
                socket.store.forget_room_state(id);
                ClientEvent::LeaveRoom(RoomRef { room_id: id.clone() })
            }
        };
        send(socket, event, Pending::Ignore);
    }

    pub async fn request(socket: Socket, event: ClientEvent) -> Result<Box<RawValue>, ErrorBody> {
        let (tx, rx) = oneshot::channel();
        if !send(socket, event, Pending::Request(tx)) {
            return Err(ErrorBody::new(ErrorCode::Unavailable, "not connected"));
        }
        rx.await.unwrap_or_else(|_| Err(ErrorBody::new(ErrorCode::Unavailable, "the connection closed")))
    }

    /// Dropping the sender ends the writer, which closes the socket; the
    /// run loop then reconnects and re-joins.
    pub fn reconnect(socket: Socket) {
        with(socket, |inner| inner.out = None);
    }

    pub fn start(socket: Socket) {
        let first = with(socket, |inner| !std::mem::replace(&mut inner.started, true));
        if first {
            spawn_local(run(socket));
        }
    }

    fn url() -> Option<String> {
        let location = web_sys::window()?.location();
        let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
        Some(format!("{scheme}://{}/ws", location.host().ok()?))
    }

    /// 250 ms doubling up to 10 s, each delay drawn from its upper half.
    pub(super) fn backoff_ms(attempt: u32) -> u32 {
        let ceiling = 250f64 * 2f64.powi(attempt.min(6) as i32);
        let ceiling = ceiling.min(10_000.0);
        (ceiling * (0.5 + js_sys::Math::random() * 0.5)) as u32
    }

    /// How long a keyed event waits for the connection to come back.
    const RECONNECT_PATIENCE_MS: u32 = 30_000;

    /// Waits a moment (longer with each `attempt`), then until the socket
    /// is connected again, at most [`RECONNECT_PATIENCE_MS`].
    pub(super) async fn until_connected(socket: Socket, attempt: u32) {
        gloo_timers::future::TimeoutFuture::new(backoff_ms(attempt.min(2))).await;
        let mut waited = 0;
        while socket.status.get_untracked() != ConnectionStatus::Connected && waited < RECONNECT_PATIENCE_MS {
            gloo_timers::future::TimeoutFuture::new(100).await;
            waited += 100;
        }
    }

    /// A first visit has no session: it gets one when it first acts, by
    /// opening its socket (page views alone store nothing).
    async fn ensure_session(socket: Socket) -> bool {
        if socket.store.session.with_untracked(Option::is_some) {
            return true;
        }
        match rest::guest_session().await {
            Ok(info) => {
                socket.store.session.set(Some(info));
                true
            }
            Err(_) => false,
        }
    }

    async fn run(socket: Socket) {
        let mut attempt: u32 = 0;
        loop {
            let opened = if ensure_session(socket).await { url().and_then(|u| WebSocket::open(&u).ok()) } else { None };
            let close_code = match opened {
                Some(ws) => connection(socket, ws, &mut attempt).await,
                None => None,
            };
            with(socket, |inner| {
                inner.out = None;
                for (_, p) in inner.pending.drain() {
                    if let Pending::Request(tx) = p {
                        let _ = tx.send(Err(ErrorBody::new(ErrorCode::Unavailable, "the connection closed")));
                    }
                }
            });
            socket.status.set(ConnectionStatus::Reconnecting);
            if close_code == Some(UNAUTHORIZED) {
                // The session is gone (expired, or a wiped server): get a
                // new one before the next attempt.
                socket.store.session.set(None);
                rest::forget_guest_session();
            }
            gloo_timers::future::TimeoutFuture::new(backoff_ms(attempt)).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// Runs one connection to its end; returns its close code. The writer
    /// ends when the connection's sender is dropped (on [`reconnect`]) or a
    /// send fails; it hands the socket's sink back so the connection can
    /// really be closed (gloo's socket closes only when asked to).
    async fn connection(socket: Socket, ws: WebSocket, attempt: &mut u32) -> Option<u16> {
        let (mut write, mut read) = ws.split();
        let (tx, mut rx) = mpsc::unbounded::<String>();
        let (sink_back, sink_returned) = oneshot::channel();
        spawn_local(async move {
            if futures::future::poll_fn(|cx| write.poll_ready_unpin(cx)).await.is_ok() {
                socket.status.set(ConnectionStatus::Connected);
                while let Some(text) = rx.next().await {
                    if write.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
            }
            let _ = sink_back.send(write);
        });
        let channels = with(socket, |inner| {
            inner.out = Some(tx);
            inner.channels.clone()
        });
        for channel in channels {
            send(socket, join_event(&channel), Pending::Join(channel));
        }
        let mut sink_returned = sink_returned.fuse();
        let write = loop {
            futures::select_biased! {
                sink = sink_returned => break sink,
                msg = read.next().fuse() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        *attempt = 0;
                        on_text(socket, &text);
                    }
                    Some(Ok(Message::Bytes(_))) => {}
                    Some(Err(WebSocketError::ConnectionClose(close))) => return Some(close.code),
                    Some(Err(_)) | None => return None,
                },
            }
        };
        if let Ok(ws) = write.map_err(drop).and_then(|write| write.reunite(read).map_err(drop)) {
            let _ = ws.close(Some(NORMAL), None);
        }
        Some(NORMAL)
    }

    fn on_text(socket: Socket, text: &str) {
        match ServerMessage::decode(text) {
            Ok(ServerMessage::Reply(reply)) => {
                let pending = with(socket, |inner| inner.pending.remove(&reply.id));
                let result = match (reply.ok, reply.data, reply.error) {
                    (true, data, _) => Ok(data.unwrap_or_default()),
                    (false, _, Some(e)) => Err(e),
                    (false, _, None) => Err(ErrorBody::new(ErrorCode::Internal, "failed without a reason")),
                };
                match pending {
                    Some(Pending::Request(tx)) => {
                        let _ = tx.send(result);
                    }
                    Some(Pending::Join(channel)) => on_join_reply(socket, channel, result),
                    Some(Pending::Ignore) | None => {}
                }
            }
            Ok(ServerMessage::Event(event)) => on_event(socket, event),
            Err(e) => leptos::logging::warn!("unreadable server message: {e}"),
        }
    }

    /// Whether the page still wants exactly this channel (a reply to an
    /// overview query the page has since replaced is dropped).
    fn wanted(socket: Socket, channel: &Channel) -> bool {
        with(socket, |inner| inner.channels.contains(channel))
    }

    fn on_join_reply(socket: Socket, channel: Channel, result: Result<Box<RawValue>, ErrorBody>) {
        if !wanted(socket, &channel) {
            return;
        }
        let store = socket.store;
        match (&channel, result) {
            (Channel::Overview(query), Ok(data)) => match serde_json::from_str::<JoinOverviewReply>(data.get()) {
                Ok(reply) => store.replace_window(reply, query.sort.unwrap_or_default()),
                Err(e) => leptos::logging::warn!("bad join:overview reply: {e}"),
            },
            (Channel::Room(id), Ok(data)) => match serde_json::from_str::<JoinRoomReply>(data.get()) {
                Ok(reply) => {
                    store.set_join_error(id, None);
                    store.joined(reply.sid, reply.presence, reply.chat, reply.frame, reply.room)
                }
                Err(e) => leptos::logging::warn!("bad join:room reply for {id}: {e}"),
            },
            (Channel::Room(id), Err(e)) if e.code == ErrorCode::NotFound => {
                with(socket, |inner| inner.channels.retain(|c| !c.same(&channel)));
                store.remove(id, DeleteReason::Deleted);
            }
            (Channel::Room(id), Err(e)) => {
                // Not joined: the page says why; it may ask again.
                with(socket, |inner| inner.channels.retain(|c| !c.same(&channel)));
                store.set_join_error(id, Some(e));
            }
            (_, Err(e)) => leptos::logging::warn!("join failed: {e}"),
        }
    }

    fn on_event(socket: Socket, event: ServerEvent) {
        let store = socket.store;
        match event {
            ServerEvent::RoomUpdate(delta) => on_delta(socket, delta),
            ServerEvent::RoomDelete(d) => store.remove(&d.room_id, d.reason),
            ServerEvent::RoomClosed(d) => store.remove(&d.room_id, d.reason),
            ServerEvent::PresenceDiff(d) => store.presence_diff(d),
            ServerEvent::OverviewWindow(w) => store.apply_window(w),
            ServerEvent::ServerShutdown(_) => socket.status.set(ConnectionStatus::Reconnecting),
            ServerEvent::ChatMessageNew(e) | ServerEvent::ChatMessageUpdated(e) => store.chat_message(e.message),
            ServerEvent::FrameUpdate(f) => store.set_shared_frame(&f.room_id, f.frame),
            ServerEvent::RoomWarning(w) => store.warning.set(Some(crate::client::store::Warning {
                key: crate::ids::room_key(&w.room_id),
                until_ms: js_sys::Date::now() + w.seconds_remaining as f64 * 1000.0,
                message: w.message,
            })),
            ServerEvent::Error(e) => {
                leptos::logging::warn!("server error: {} {}", e.code, e.message)
            }
            _ => {}
        }
    }

    fn on_delta(socket: Socket, delta: RoomDelta) {
        if socket.store.apply_delta(&delta) == Decision::Resync {
            resync(socket, delta.room_id);
        }
    }

    /// Fetches a room the store fell behind on (at most one fetch per room).
    fn resync(socket: Socket, room_id: String) {
        let key = crate::ids::room_key(&room_id);
        if !with(socket, |inner| inner.resyncing.insert(key.clone())) {
            return;
        }
        spawn_local(async move {
            match rest::get_room(&room_id).await {
                Ok(Some(room)) => socket.store.seed_room(room),
                Ok(None) => socket.store.remove(&room_id, DeleteReason::Deleted),
                Err(e) => leptos::logging::warn!("re-sync of {room_id} failed: {e}"),
            }
            with(socket, |inner| inner.resyncing.remove(&key));
        });
    }
}
