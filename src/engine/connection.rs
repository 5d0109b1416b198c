//! What the engine knows of a connection: its id, its user and a bounded
//! queue of serialized frames to send it. Nothing here knows of WebSocket
//! framing; the transport drains the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

/// A user as the engine sees one: the identity behind a session.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

#[derive(Debug)]
struct OutboundState {
    slow: AtomicBool,
    evict: Notify,
    /// Bytes queued and not yet taken by the writer.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
}

/// The receiving half, held by the transport's writer.
pub struct OutboundReceiver {
    pub rx: FrameQueue,
    pub eviction: EvictionSignal,
}

/// The frames waiting for the writer; taking one releases its bytes.
pub struct FrameQueue {
    rx: mpsc::Receiver<Frame>,
    state: Arc<OutboundState>,
}

impl FrameQueue {
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().await?;
        self.state.queued_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
        Some(frame)
    }

    pub fn try_recv(&mut self) -> Option<Frame> {
        let frame = self.rx.try_recv().ok()?;
        self.state.queued_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
        Some(frame)
    }

    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
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

/// An outbound queue bounded to `capacity` frames and `max_bytes` bytes.
pub fn outbound(capacity: usize, max_bytes: usize) -> (Outbound, OutboundReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let state = Arc::new(OutboundState {
        slow: AtomicBool::new(false),
        evict: Notify::new(),
        queued_bytes: AtomicUsize::new(0),
        max_bytes: max_bytes.max(1),
    });
    let queue = FrameQueue { rx, state: state.clone() };
    (Outbound { tx, state: state.clone() }, OutboundReceiver { rx: queue, eviction: EvictionSignal { state } })
}

impl Outbound {
    /// Queues a frame. Returns false when the connection is gone or too slow.
    pub fn send(&self, frame: &Frame) -> bool {
        if self.state.slow.load(Ordering::Relaxed) {
            return false;
        }
        let n = frame.len();
        let queued = self.state.queued_bytes.fetch_add(n, Ordering::Relaxed) + n;
        if queued > self.state.max_bytes {
            self.state.queued_bytes.fetch_sub(n, Ordering::Relaxed);
            self.mark_slow();
            return false;
        }
        match self.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(e) => {
                self.state.queued_bytes.fetch_sub(n, Ordering::Relaxed);
                if let mpsc::error::TrySendError::Full(_) = e {
                    self.mark_slow();
                }
                false
            }
        }
    }

    fn mark_slow(&self) {
        self.state.slow.store(true, Ordering::Release);
        self.state.evict.notify_one();
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
        let (out, rx) = outbound(2, 1 << 20);
        let f = frame("{}".into());
        assert!(out.send(&f));
        assert!(out.send(&f));
        assert!(!out.send(&f));
        assert_eq!(rx.eviction.evicted().await, Eviction::SlowConsumer);
        // Once slow, nothing more is queued.
        assert!(!out.send(&f));
        assert_eq!(rx.rx.len(), 2);
    }

    #[tokio::test]
    async fn queued_bytes_over_the_limit_mark_the_connection_slow() {
        let (out, mut rx) = outbound(1024, 10);
        let f = frame("12345".into());
        assert!(out.send(&f));
        assert!(out.send(&f));
        // Taking one frame frees its bytes.
        assert_eq!(rx.rx.recv().await.as_deref(), Some(&b"12345"[..]));
        assert!(out.send(&f));
        assert!(!out.send(&f), "15 bytes would be queued");
        assert_eq!(rx.eviction.evicted().await, Eviction::SlowConsumer);
    }
}
