//! One WebSocket for the program's whole life: it reconnects with backoff
//! and jitter, joins again every channel the program is in (each join
//! reply is a fresh snapshot), keeps the [`Store`] by the delta rule
//! (re-reading a room over REST on a gap), answers requests with their
//! replies or a timeout, and hands every event to the program in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::api::RoomQuery;
use app::delta::Decision;
use app::error::ErrorCode;
use app::protocol::{
    ChatReply, ChatSend, ClientEvent, Empty, FrameSet, JoinOverviewReply, JoinRoom, JoinRoomReply, LockAcquire,
    LockMsg, RoomRef, ServerEvent, ServerMessage,
};
use app::request::Request;
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::error::{Error, Result};
use crate::rest::{Client, backoff, new_key};
use crate::store::Store;

/// How long a request waits for its reply unless told otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a chat message is sent again after a retryable failure.
const CHAT_RETRIES: u32 = 3;
/// The close code of a session the server does not know (reconnecting
/// cannot help).
const UNAUTHORIZED: u16 = 4001;

/// What the program hears from its socket, in order. Not boxed: nearly
/// every event is a server event, and boxing would allocate for each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Connected (again), before the channels are joined again.
    Connected,
    /// The connection ended (with the server's close code, if any); the
    /// socket reconnects unless the session is gone (4001).
    Disconnected { code: Option<u16> },
    /// A room the store fell behind on was read again over REST.
    Resynced { room_id: String },
    /// Anything the server sent.
    Server(ServerEvent),
}

/// A channel to be in, joined again on every connection.
#[derive(Clone, Debug, PartialEq)]
enum Channel {
    Overview(RoomQuery),
    Room(String),
}

type Replier = oneshot::Sender<Result<Box<RawValue>>>;

enum Command {
    Request {
        event: ClientEvent,
        reply: Replier,
    },
    /// Joins a channel: its snapshot is applied to the store before any
    /// later event of the connection.
    Join {
        channel: Channel,
        reply: Replier,
    },
    /// Ends the current connection (the socket connects again).
    Drop,
}

/// The program's handle on its socket; cheap to clone.
#[derive(Clone)]
pub struct Socket {
    commands: mpsc::UnboundedSender<Command>,
    channels: Arc<Mutex<Vec<Channel>>>,
    store: Store,
}

impl Socket {
    /// Opens the socket of `client`'s session; events arrive on the
    /// receiver (drop it to ignore them).
    pub fn open(client: &Client) -> (Socket, mpsc::UnboundedReceiver<Event>) {
        let (commands, rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let socket = Socket { commands, channels: Arc::default(), store: Store::default() };
        let task = Task {
            client: client.clone(),
            store: socket.store.clone(),
            channels: socket.channels.clone(),
            events,
            pending: HashMap::new(),
            next_id: 0,
        };
        tokio::spawn(task.run(rx));
        (socket, events_rx)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Sends an event and waits for its reply's data, as JSON text.
    pub async fn request(&self, event: ClientEvent, timeout: Duration) -> Result<Box<RawValue>> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Request { event, reply }).map_err(|_| closed())?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(closed()),
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// Sends an event and reads its reply as a `T`.
    pub async fn request_as<T: DeserializeOwned>(&self, event: ClientEvent) -> Result<T> {
        let data = self.request(event, REQUEST_TIMEOUT).await?;
        Ok(serde_json::from_str(data.get())?)
    }

    /// Joins `room:<id>` (and again after every reconnect, once joined).
    pub async fn join_room(&self, room_id: &str) -> Result<JoinRoomReply> {
        self.join(Channel::Room(room_id.to_string())).await
    }

    /// Joins a channel and remembers it; the task has applied the
    /// snapshot to the store when this returns.
    async fn join<T: DeserializeOwned>(&self, channel: Channel) -> Result<T> {
        self.remember(channel.clone());
        let (reply, answer) = oneshot::channel();
        let joined = async {
            self.commands.send(Command::Join { channel: channel.clone(), reply }).map_err(|_| closed())?;
            match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
                Ok(Ok(result)) => Ok(serde_json::from_str(result?.get())?),
                Ok(Err(_)) => Err(closed()),
                Err(_) => Err(Error::Timeout(REQUEST_TIMEOUT)),
            }
        };
        let joined = joined.await;
        // Refused: not a channel to be in. Lost or late: the server may have
        // joined it, and the next connection joins it again.
        if let Err(Error::Api(_)) = joined {
            self.forget(|c| *c == channel);
        }
        joined
    }

    pub async fn leave_room(&self, room_id: &str) -> Result<()> {
        self.forget(|c| matches!(c, Channel::Room(id) if id.eq_ignore_ascii_case(room_id)));
        self.store.left(room_id);
        self.request_as::<serde_json::Value>(ClientEvent::LeaveRoom(room(room_id))).await.map(drop)
    }

    /// Joins the room list with `query` (a window when it has a `limit`).
    /// Joined without any filter or limit, the store holds every room:
    /// the reply's first page, the rest read over REST, then every delta.
    pub async fn join_overview(&self, query: RoomQuery) -> Result<JoinOverviewReply> {
        self.forget(|c| matches!(c, Channel::Overview(_)));
        self.join(Channel::Overview(query)).await
    }

    pub async fn leave_overview(&self) -> Result<()> {
        self.forget(|c| matches!(c, Channel::Overview(_)));
        self.request_as::<serde_json::Value>(ClientEvent::LeaveOverview(Empty {})).await.map(drop)
    }

    /// Sends a chat message exactly once: it is sent again (same key)
    /// after a lost connection or `unavailable`.
    pub async fn send_chat(&self, room_id: &str, text: &str) -> Result<app::model::ChatMessage> {
        self.send_chat_keyed(room_id, text, &new_key()).await
    }

    /// Sends a chat message with a chosen idempotency key.
    pub async fn send_chat_keyed(&self, room_id: &str, text: &str, key: &str) -> Result<app::model::ChatMessage> {
        let send = ChatSend { room_id: room_id.to_string(), text: text.to_string(), key: Some(key.to_string()) };
        let mut attempt = 0;
        let reply: ChatReply = loop {
            match self.request_as(ClientEvent::ChatSend(send.clone())).await {
                Err(e) if e.is_retryable() && attempt < CHAT_RETRIES => {
                    tokio::time::sleep(backoff(attempt, CHAT_BACKOFF)).await;
                    attempt += 1;
                }
                answer => break answer?,
            }
        };
        self.store.chat_message(&reply.message);
        Ok(reply.message)
    }

    /// Takes the room's temporary lock with a message everyone sees.
    pub async fn lock(&self, room_id: &str, msg: &str, ttl_seconds: u32) -> Result<()> {
        let event = ClientEvent::LockAcquire(LockAcquire {
            room_id: room_id.to_string(),
            msg: Some(msg.to_string()),
            ttl_seconds: Some(ttl_seconds),
        });
        self.request_as::<serde_json::Value>(event).await.map(drop)
    }

    pub async fn lock_message(&self, room_id: &str, msg: &str) -> Result<()> {
        let event = ClientEvent::LockMsg(LockMsg { room_id: room_id.to_string(), msg: msg.to_string() });
        self.request_as::<serde_json::Value>(event).await.map(drop)
    }

    pub async fn unlock(&self, room_id: &str) -> Result<()> {
        self.request_as::<serde_json::Value>(ClientEvent::LockRelease(room(room_id))).await.map(drop)
    }

    /// Becomes the room's presenter (`conflict` when someone else is).
    pub async fn present(&self, room_id: &str) -> Result<()> {
        self.request_as::<serde_json::Value>(ClientEvent::PresenterRequest(room(room_id))).await.map(drop)
    }

    pub async fn stop_presenting(&self, room_id: &str) -> Result<()> {
        self.request_as::<serde_json::Value>(ClientEvent::PresenterRelease(room(room_id))).await.map(drop)
    }

    pub async fn show_frame(&self, room_id: &str, frame: u64) -> Result<()> {
        let event = ClientEvent::FrameSet(FrameSet { room_id: room_id.to_string(), frame });
        self.request_as::<serde_json::Value>(event).await.map(drop)
    }

    /// Ends the current connection as a network failure would; the socket
    /// connects again and joins its channels again.
    pub fn drop_connection(&self) {
        let _ = self.commands.send(Command::Drop);
    }

    fn remember(&self, channel: Channel) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }

    fn forget(&self, which: impl Fn(&Channel) -> bool) {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| !which(c));
    }
}

fn room(room_id: &str) -> RoomRef {
    RoomRef { room_id: room_id.to_string() }
}

fn closed() -> Error {
    Error::Network("the connection closed before the reply".into())
}

fn join_event(channel: &Channel) -> ClientEvent {
    match channel {
        Channel::Overview(query) => ClientEvent::JoinOverview(query.clone()),
        Channel::Room(id) => ClientEvent::JoinRoom(JoinRoom { room_id: id.clone(), role: None }),
    }
}

/// The longest wait between two connection attempts.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait between two sends of a chat message.
const CHAT_BACKOFF: Duration = Duration::from_secs(5);

/// What a request is waiting for.
enum Pending {
    Caller(Replier),
    /// A join (the program's, or one sent again after a reconnect): its
    /// reply refreshes the store first.
    Join(Channel, Option<Replier>),
}

/// A query for the whole room list (no filter, no window).
fn is_everything(query: &RoomQuery) -> bool {
    query.q.is_none() && query.status.is_none() && query.hidden.is_none() && query.limit.is_none()
}

/// The socket's background task. It holds no command sender: it ends
/// when the program has dropped every [`Socket`].
struct Task {
    client: Client,
    store: Store,
    channels: Arc<Mutex<Vec<Channel>>>,
    events: mpsc::UnboundedSender<Event>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut attempt = 0;
        loop {
            if commands.is_closed() {
                return; // the program dropped every handle while disconnected
            }
            let code = match tokio_tungstenite::connect_async(self.url()).await {
                Ok((ws, _)) => {
                    attempt = 0;
                    let _ = self.events.send(Event::Connected);
                    match self.connection(ws, &mut commands).await {
                        Some(code) => code,
                        None => return, // the program dropped every handle
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot connect");
                    None
                }
            };
            for (_, pending) in self.pending.drain() {
                if let Pending::Caller(reply) | Pending::Join(_, Some(reply)) = pending {
                    let _ = reply.send(Err(closed()));
                }
            }
            let _ = self.events.send(Event::Disconnected { code });
            if code == Some(UNAUTHORIZED) {
                return;
            }
            tokio::time::sleep(backoff(attempt, RECONNECT_BACKOFF)).await;
            attempt += 1;
        }
    }

    fn url(&self) -> String {
        let base = self.client.base_url().replacen("http", "ws", 1);
        match self.client.token() {
            Some(token) => format!("{base}/ws?token={token}"),
            None => format!("{base}/ws"),
        }
    }

    /// Serves one connection; `Some(close code)` when it ended, `None`
    /// when the program has gone.
    async fn connection(&mut self, mut ws: Ws, commands: &mut mpsc::UnboundedReceiver<Command>) -> Option<Option<u16>> {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for channel in channels {
            let event = join_event(&channel);
            if self.send(&mut ws, event, Pending::Join(channel, None)).await.is_err() {
                return Some(None);
            }
        }
        loop {
            tokio::select! {
                command = commands.recv() => match command? {
                    Command::Request { event, reply } => {
                        if self.send(&mut ws, event, Pending::Caller(reply)).await.is_err() {
                            return Some(None);
                        }
                    }
                    Command::Join { channel, reply } => {
                        let event = join_event(&channel);
                        if self.send(&mut ws, event, Pending::Join(channel, Some(reply))).await.is_err() {
                            return Some(None);
                        }
                    }
                    Command::Drop => return Some(None),
                },
                message = ws.next() => match message {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                    Some(Ok(Message::Close(frame))) => return Some(frame.map(|f| u16::from(f.code))),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Some(None),
                },
            }
        }
    }

    async fn send(&mut self, ws: &mut Ws, event: ClientEvent, pending: Pending) -> Result<()> {
        self.next_id += 1;
        let text = serde_json::to_string(&Request { event, id: Some(self.next_id) })?;
        self.pending.insert(self.next_id, pending);
        ws.send(Message::text(text)).await.map_err(|e| Error::Network(e.to_string()))
    }

    async fn on_text(&mut self, text: &str) {
        match ServerMessage::decode(text) {
            Ok(ServerMessage::Reply(reply)) => {
                let result = match (reply.ok, reply.data, reply.error) {
                    (true, data, _) => Ok(data.unwrap_or_default()),
                    (false, _, Some(e)) => Err(Error::Api(e)),
                    (false, _, None) => Err(Error::Decode("a failed reply without an error".into())),
                };
                match self.pending.remove(&reply.id) {
                    Some(Pending::Caller(tx)) => {
                        let _ = tx.send(result);
                    }
                    Some(Pending::Join(channel, caller)) => {
                        self.joined(channel, &result).await;
                        if let Some(tx) = caller {
                            let _ = tx.send(result);
                        }
                    }
                    None => {}
                }
            }
            Ok(ServerMessage::Event(event)) => self.on_event(event),
            Err(e) => tracing::warn!(error = %e, "unreadable server message"),
        }
    }

    /// Applies a join's snapshot to the store, before any later event.
    async fn joined(&self, channel: Channel, result: &Result<Box<RawValue>>) {
        let store = &self.store;
        match (channel, result) {
            (Channel::Room(_), Ok(data)) => match serde_json::from_str::<JoinRoomReply>(data.get()) {
                Ok(reply) => store.joined(&reply),
                Err(e) => tracing::warn!(error = %e, "bad join:room reply"),
            },
            (Channel::Overview(query), Ok(data)) => match serde_json::from_str::<JoinOverviewReply>(data.get()) {
                Ok(page) if is_everything(&query) => {
                    store.replace_rooms(page.rooms);
                    self.read_the_rest(page.next).await;
                }
                Ok(page) => page.rooms.into_iter().for_each(|r| store.put(r)),
                Err(e) => tracing::warn!(error = %e, "bad join:overview reply"),
            },
            (Channel::Room(id), Err(Error::Api(e))) if e.code == ErrorCode::NotFound => store.remove(&id),
            (channel, Err(e)) => tracing::warn!(?channel, error = %e, "could not join"),
        }
    }

    /// Reads the pages of the room list after the snapshot's first one.
    /// Events wait meanwhile, so a delta newer than a page is applied
    /// after it; a room a delta already brought is newer than its page.
    async fn read_the_rest(&self, mut next: Option<String>) {
        while let Some(after) = next {
            let query = RoomQuery { after: Some(after), limit: Some(500), ..Default::default() };
            match self.client.rooms(&query).await {
                Ok(page) => {
                    page.rooms.into_iter().for_each(|r| self.store.put_if_absent(r));
                    next = page.next;
                }
                Err(e) => return tracing::warn!(error = %e, "could not read the rest of the room list"),
            }
        }
    }

    fn on_event(&self, event: ServerEvent) {
        let store = &self.store;
        if let ServerEvent::RoomUpdate(delta) = &event
            && store.apply(delta) == Decision::Resync
        {
            self.resync(delta.room_id.clone());
        }
        match &event {
            ServerEvent::RoomDelete(d) => store.remove(&d.room_id),
            ServerEvent::RoomClosed(d) => store.remove(&d.room_id),
            ServerEvent::PresenceDiff(diff) => store.presence_diff(diff),
            ServerEvent::OverviewWindow(w) => w.enter.iter().cloned().for_each(|r| store.put(r)),
            ServerEvent::ChatMessageNew(e) | ServerEvent::ChatMessageUpdated(e) => store.chat_message(&e.message),
            _ => {}
        }
        let _ = self.events.send(Event::Server(event));
    }

    /// Reads a room the store fell behind on, then says so.
    fn resync(&self, room_id: String) {
        let (client, store, events) = (self.client.clone(), self.store.clone(), self.events.clone());
        tokio::spawn(async move {
            match client.room(&room_id).await {
                Ok(room) => store.put(room),
                Err(Error::Api(e)) if e.code == ErrorCode::NotFound => store.remove(&room_id),
                Err(e) => return tracing::warn!(room = %room_id, error = %e, "re-sync failed"),
            }
            let _ = events.send(Event::Resynced { room_id });
        });
    }
}
