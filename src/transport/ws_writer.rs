//! The writing half of a connection's WebSocket: drains its outbound
//! queue (every queued frame in one flush, large ones as fragments), sends
//! pings, and closes the socket when asked to or when the connection is
//! evicted as a slow consumer.

use std::collections::VecDeque;
use std::time::Duration;

use futures::SinkExt;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame as WsFrame, Utf8Bytes};

use crate::engine::connection::{Eviction, Frame, FrameQueue, OutboundReceiver};

/// The close codes of PROTOCOL.md section 5.
pub mod close {
    pub const UNAUTHORIZED: u16 = 4001;
    pub const SLOW_CONSUMER: u16 = 4008;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INVALID_TEXT: u16 = 1007;
    pub const RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const FOREIGN_ORIGIN: u16 = 4003;
}

/// Outgoing messages larger than this go out as fragments of this size,
/// and the write buffer is flushed to the socket once it holds this much.
pub const FRAGMENT: usize = 8 * 1024;

pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// What the reader asks of the writer besides data.
pub enum Control {
    Close(u16, &'static str),
}

/// How long a close frame may take to go out before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

pub type Sink = futures::stream::SplitSink<WebSocket, Message>;

pub fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from_static(reason) }))
}

/// Writes what the engine queues, every queued frame in one flush, and a
/// ping every `ping_every`. Returns when the socket or the queue ends; it is
/// cancelled only to close the connection, and what it had taken but not
/// written is then still in `batch`.
async fn pump(sink: &mut Sink, rx: &mut FrameQueue, batch: &mut VecDeque<Frame>, ping_every: Duration) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            more = rx.recv_all(batch) => if !more { return },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() { return }
                continue;
            }
        }
        while let Some(f) = batch.pop_front() {
            if feed(sink, f).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

/// Sends what is queued, then the close frame, within [`CLOSE_TIMEOUT`].
async fn drain_and_close(sink: &mut Sink, rx: &mut FrameQueue, batch: &mut VecDeque<Frame>, close: Option<Message>) {
    let finish = async {
        while let Some(f) = batch.pop_front().or_else(|| rx.try_recv()) {
            if feed(sink, f).await.is_err() {
                return;
            }
        }
        if let Some(close) = close {
            let _ = sink.send(close).await;
        }
        let _ = sink.close().await;
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, finish).await;
}

/// Writes the connection's frames until it closes; `done` is dropped when
/// the reader must stop: at once on an eviction (so the connection leaves
/// its rooms without waiting for a stalled client to take the close
/// frame), else when the writer ends. Gives the sink back.
pub async fn write_loop(
    mut sink: Sink,
    out: OutboundReceiver,
    mut control: mpsc::Receiver<Control>,
    ping_every: Duration,
    done: tokio::sync::oneshot::Sender<()>,
) -> Sink {
    let OutboundReceiver { mut rx, eviction } = out;
    let mut batch = VecDeque::new();
    tokio::select! {
        biased;
        cmd = control.recv() => {
            let close = cmd.map(|Control::Close(code, reason)| close_frame(code, reason));
            drain_and_close(&mut sink, &mut rx, &mut batch, close).await;
        }
        eviction = eviction.evicted() => {
            // Whatever is queued is dropped: the client re-syncs on reconnect.
            let Eviction::SlowConsumer = eviction;
            drop(done);
            let close = close_frame(close::SLOW_CONSUMER, "slow consumer");
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close)).await;
        }
        () = pump(&mut sink, &mut rx, &mut batch, ping_every) => {}
    }
    sink
}

/// Queues one text message on the socket: whole when small, else as
/// fragments of [`FRAGMENT`] bytes. The bytes are shared, not copied, and
/// not validated again: frames are serialized from `String`s.
async fn feed(sink: &mut Sink, f: Frame) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut at = 0;
    loop {
        let end = (at + FRAGMENT).min(f.len());
        let opcode = if at == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
        let fin = end == f.len();
        sink.feed(Message::Frame(WsFrame::message(f.slice(at..end), opcode, fin))).await?;
        if fin {
            return Ok(());
        }
        at = end;
    }
}
