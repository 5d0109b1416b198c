//! The subscriber connection: everything the other servers publish for
//! this one arrives here, in order, and goes to the engine's inbox. When
//! the connection is lost the server keeps running: it connects again with
//! backoff and jitter, subscribes to everything it follows again, and asks
//! the engine to re-read what it may have missed (`Inbound::Resync`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt;
use rand::Rng;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::keys::Keys;
use super::wire::{NodeMsg, OverviewMsg, RoomMsg, decode};
use crate::engine::broker::{Inbound, RoomEvent, Target};
use crate::engine::command::Outcome;
use crate::engine::errors::EngineError;

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a new subscription waits for a lost connection to come back.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

/// Requests of this server waiting for their replies, by request id.
pub(super) type Pending = DashMap<u64, oneshot::Sender<Result<Outcome, EngineError>>>;

/// The subscriber connection and what it follows.
pub(super) struct Subscriber {
    client: redis::Client,
    keys: Keys,
    node: Arc<str>,
    /// The command half (none while the connection is re-made) and the
    /// rooms followed, under one lock so that a reconnect re-subscribes
    /// exactly what is followed.
    state: Mutex<(Option<PubSubSink>, HashSet<String>)>,
}

impl Subscriber {
    pub fn new(client: redis::Client, keys: Keys, node: Arc<str>) -> Subscriber {
        Subscriber { client, keys, node, state: Mutex::new((None, HashSet::new())) }
    }

    /// Makes a subscriber connection with every channel this server
    /// follows: the overview, its own, and each followed room.
    pub async fn connect(&self) -> Result<PubSubStream, redis::RedisError> {
        let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
        let mut state = self.state.lock().await;
        sink.subscribe(self.keys.overview_channel()).await?;
        sink.subscribe(self.keys.node_channel(&self.node)).await?;
        for room in &state.1 {
            sink.subscribe(self.keys.room_channel(room)).await?;
        }
        state.0 = Some(sink);
        Ok(stream)
    }

    /// Follows a room; returns once Redis confirmed the subscription
    /// (waiting a while for a connection being re-made).
    pub async fn subscribe(&self, room: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + SUBSCRIBE_WAIT;
        loop {
            {
                let mut state = self.state.lock().await;
                if let Some(sink) = state.0.as_mut() {
                    sink.subscribe(self.keys.room_channel(room)).await.map_err(|e| e.to_string())?;
                    state.1.insert(room.to_string());
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err("the redis subscription is being re-made".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn unsubscribe(&self, room: &str) {
        let mut state = self.state.lock().await;
        state.1.remove(room);
        if let Some(sink) = state.0.as_mut()
            && let Err(e) = sink.unsubscribe(self.keys.room_channel(room)).await
        {
            tracing::warn!(error = %e, room, "unsubscribe failed");
        }
    }
}

pub(super) async fn listen(
    sub: Arc<Subscriber>,
    pending: Arc<Pending>,
    mut stream: PubSubStream,
    inbox: mpsc::UnboundedSender<Inbound>,
) {
    loop {
        while let Some(msg) = stream.next().await {
            dispatch(&sub, &pending, msg.get_channel_name(), msg.get_payload_bytes(), &inbox);
        }
        tracing::error!("lost the redis subscription; connecting again");
        sub.state.lock().await.0 = None;
        stream = reconnect(&sub).await;
        tracing::info!("redis subscription restored; re-reading followed rooms");
        if inbox.send(Inbound::Resync).is_err() {
            return;
        }
    }
}

async fn reconnect(sub: &Subscriber) -> PubSubStream {
    let mut backoff = Duration::from_millis(100);
    loop {
        let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 2);
        tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
        match sub.connect().await {
            Ok(stream) => return stream,
            Err(e) => tracing::warn!(error = %e, ?backoff, "redis still unreachable"),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn dispatch(sub: &Subscriber, pending: &Pending, channel: &str, raw: &[u8], inbox: &mpsc::UnboundedSender<Inbound>) {
    let inbound = if channel == sub.keys.overview_channel() {
        on_overview(&sub.node, raw)
    } else if channel == sub.keys.node_channel(&sub.node) {
        on_node_message(pending, raw)
    } else {
        on_room(raw)
    };
    if let Some(inbound) = inbound {
        let _ = inbox.send(inbound);
    }
}

fn on_room(raw: &[u8]) -> Option<Inbound> {
    let Some((msg, payload)) = decode::<RoomMsg>(raw) else {
        tracing::warn!("undecodable room message");
        return None;
    };
    let to = match (msg.end, msg.to) {
        (true, _) => Target::End,
        (false, Some(sid)) => Target::One { sid, admit: msg.admit },
        (false, None) => Target::All { skip: msg.skip },
    };
    Some(Inbound::Room(RoomEvent { room: msg.room, to, payload }))
}

fn on_overview(me: &str, raw: &[u8]) -> Option<Inbound> {
    let Some((header, payload)) = decode::<OverviewMsg>(raw) else {
        tracing::warn!("undecodable overview message");
        return None;
    };
    match header {
        OverviewMsg::Barrier { origin, nonce } if origin == me => Some(Inbound::Barrier(nonce)),
        OverviewMsg::Barrier { .. } => None,
        OverviewMsg::Upsert { origin, .. } | OverviewMsg::Remove { origin, .. } if origin == me => None,
        OverviewMsg::Upsert { origin, meta } => Some(Inbound::Upsert { origin: origin.into(), meta, payload }),
        OverviewMsg::Remove { key, .. } => Some(Inbound::Remove { key, payload }),
    }
}

fn on_node_message(pending: &Pending, raw: &[u8]) -> Option<Inbound> {
    let Some((msg, _)) = decode::<NodeMsg>(raw) else {
        tracing::warn!("undecodable request or reply");
        return None;
    };
    match msg {
        NodeMsg::Request { id, from, room, cmd } => Some(Inbound::Request { id, from: from.into(), room, cmd: *cmd }),
        NodeMsg::Reply { id, result } => {
            if let Some((_, done)) = pending.remove(&id) {
                let _ = done.send(result);
            }
            None
        }
    }
}
