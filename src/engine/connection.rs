//! What the engine knows of a connection: its id, its user and a bounded
//! queue of serialized frames to send it. Nothing here knows of WebSocket
//! framing; the transport drains the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

/// A user as the engine sees one: the identity behind a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: Arc<str>,
    pub name: Arc<str>,
}

/// One serialized server message (UTF-8 JSON), shared by every recipient.
pub type Frame = Bytes;

/// Serializes a message once into a shareable frame.
pub fn frame(json: String) -> Frame {
    Bytes::from(json)
}

/// Why the engine asks a connection to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// It fell too far behind (close code 4008).
    SlowConsumer,
}

/// The sending half of a connection's outbound queue. Sending never waits:
/// a connection whose queue is full is marked for closing and skipped, so
/// no other connection waits for it.
#[derive(Clone, Debug)]
pub struct Outbound {
    tx: mpsc::Sender<Frame>,
    state: Arc<OutboundState>,
}

#[derive(Debug, Default)]
struct OutboundState {
    slow: AtomicBool,
    evict: Notify,
}

/// The receiving half, held by the transport's writer.
pub struct OutboundReceiver {
    pub rx: mpsc::Receiver<Frame>,
    pub eviction: EvictionSignal,
}

/// Tells the writer when the engine wants the connection closed.
pub struct EvictionSignal {
    state: Arc<OutboundState>,
}

impl EvictionSignal {
    /// Resolves when the engine wants the connection closed.
    pub async fn evicted(&self) -> Eviction {
        loop {
            let notified = self.state.evict.notified();
            if self.state.slow.load(Ordering::Acquire) {
                return Eviction::SlowConsumer;
            }
            notified.await;
        }
    }
}

/// A bounded outbound queue of `capacity` frames.
pub fn outbound(capacity: usize) -> (Outbound, OutboundReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let state = Arc::new(OutboundState::default());
    (Outbound { tx, state: state.clone() }, OutboundReceiver { rx, eviction: EvictionSignal { state } })
}

impl Outbound {
    /// Queues a frame. Returns false when the connection is gone or too slow.
    pub fn send(&self, frame: &Frame) -> bool {
        if self.state.slow.load(Ordering::Relaxed) {
            return false;
        }
        match self.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.state.slow.store(true, Ordering::Release);
                self.state.evict.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A live connection, shared by the channels it is in.
#[derive(Debug)]
pub struct Connection {
    pub sid: Arc<str>,
    pub user: User,
    pub out: Outbound,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_marks_the_connection_slow_and_never_blocks() {
        let (out, rx) = outbound(2);
        let f = frame("{}".into());
        assert!(out.send(&f));
        assert!(out.send(&f));
        assert!(!out.send(&f));
        assert_eq!(rx.eviction.evicted().await, Eviction::SlowConsumer);
        // Once slow, nothing more is queued.
        assert!(!out.send(&f));
        assert_eq!(rx.rx.len(), 2);
    }
}
