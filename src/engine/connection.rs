//! What the engine knows of a connection: its id, its user and a bounded
//! queue of serialized frames to send it. Nothing here knows of WebSocket
//! framing; the transport drains the queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;

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
///
/// The queue is a plain deque behind an uncontended mutex, in one
/// allocation with its flags: a broadcast touches one cache line per
/// connection, and only a push onto an empty queue wakes the writer, which
/// then takes everything queued at once.
#[derive(Debug)]
pub struct Outbound {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer when frames arrive or the sender goes.
    ready: Notify,
    slow: AtomicBool,
    evict: Notify,
    capacity: usize,
    max_bytes: usize,
}

#[derive(Debug)]
struct Queue {
    frames: VecDeque<Frame>,
    /// Bytes queued and not yet taken by the writer.
    bytes: usize,
    /// Of those, the bytes of the connection's own replies, which never
    /// count toward the lag limit (a large snapshot is not lag).
    reply_bytes: usize,
    /// The engine's half ([`Outbound`]) is still there.
    sender: bool,
    /// The writer's half ([`FrameQueue`]) is still there.
    receiver: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The receiving half, held by the transport's writer.
pub struct OutboundReceiver {
    pub rx: FrameQueue,
    pub eviction: EvictionSignal,
}

/// The frames waiting for the writer; taking them releases their bytes.
pub struct FrameQueue {
    shared: Arc<Shared>,
}

impl FrameQueue {
    /// Waits for frames and moves every queued one to the end of `batch`.
    /// Returns false once the queue is empty and the sender is gone.
    pub async fn recv_all(&mut self, batch: &mut VecDeque<Frame>) -> bool {
        loop {
            {
                let mut q = self.shared.lock();
                if !q.frames.is_empty() {
                    if batch.is_empty() {
                        // Swapping hands the writer's spare capacity back.
                        std::mem::swap(&mut q.frames, batch);
                    } else {
                        batch.append(&mut q.frames);
                    }
                    q.bytes = 0;
                    q.reply_bytes = 0;
                    return true;
                }
                if !q.sender {
                    return false;
                }
            }
            self.shared.ready.notified().await;
        }
    }

    pub fn try_recv(&mut self) -> Option<Frame> {
        let mut q = self.shared.lock();
        let frame = q.frames.pop_front()?;
        q.bytes -= frame.len();
        q.reply_bytes = q.reply_bytes.min(q.bytes);
        Some(frame)
    }

    pub fn len(&self) -> usize {
        self.shared.lock().frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for FrameQueue {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.receiver = false;
        q.frames = VecDeque::new();
        q.bytes = 0;
        q.reply_bytes = 0;
    }
}

/// Tells the writer when the engine wants the connection closed.
pub struct EvictionSignal {
    shared: Arc<Shared>,
}

impl EvictionSignal {
    /// Resolves when the engine wants the connection closed.
    pub async fn evicted(&self) -> Eviction {
        loop {
            let notified = self.shared.evict.notified();
            if self.shared.slow.load(Ordering::Acquire) {
                return Eviction::SlowConsumer;
            }
            notified.await;
        }
    }
}

/// An outbound queue bounded to `capacity` frames and `max_bytes` bytes.
pub fn outbound(capacity: usize, max_bytes: usize) -> (Outbound, OutboundReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue { frames: VecDeque::new(), bytes: 0, reply_bytes: 0, sender: true, receiver: true }),
        ready: Notify::new(),
        slow: AtomicBool::new(false),
        evict: Notify::new(),
        capacity: capacity.max(1),
        max_bytes: max_bytes.max(1),
    });
    let queue = FrameQueue { shared: shared.clone() };
    (Outbound { shared: shared.clone() }, OutboundReceiver { rx: queue, eviction: EvictionSignal { shared } })
}

impl Outbound {
    /// Queues a frame. Returns false when the connection is gone or too slow.
    pub fn send(&self, frame: &Frame) -> bool {
        self.push(frame, false)
    }

    /// Queues the connection's own reply (a join's snapshot): it never
    /// makes the connection slow, however large, and does not count toward
    /// the lag limit of what follows.
    pub fn reply(&self, frame: &Frame) -> bool {
        self.push(frame, true)
    }

    fn push(&self, frame: &Frame, own: bool) -> bool {
        let shared = &*self.shared;
        if shared.slow.load(Ordering::Relaxed) {
            return false;
        }
        let mut q = shared.lock();
        if !q.receiver {
            return false;
        }
        let lag = q.bytes - q.reply_bytes;
        if !own && (q.frames.len() >= shared.capacity || lag + frame.len() > shared.max_bytes) {
            drop(q);
            self.mark_slow();
            return false;
        }
        let wake = q.frames.is_empty();
        q.frames.push_back(frame.clone());
        q.bytes += frame.len();
        if own {
            q.reply_bytes += frame.len();
        }
        drop(q);
        if wake {
            shared.ready.notify_one();
        }
        true
    }

    fn mark_slow(&self) {
        self.shared.slow.store(true, Ordering::Release);
        self.shared.evict.notify_one();
    }

    /// True once the writer is gone.
    pub fn is_closed(&self) -> bool {
        !self.shared.lock().receiver
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.shared.lock().sender = false;
        self.shared.ready.notify_one();
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
        assert_eq!(rx.rx.try_recv().as_deref(), Some(&b"12345"[..]));
        assert!(out.send(&f));
        assert!(!out.send(&f), "15 bytes would be queued");
        assert_eq!(rx.eviction.evicted().await, Eviction::SlowConsumer);
    }

    #[tokio::test]
    async fn an_own_reply_over_the_limit_is_queued_and_is_not_lag() {
        let (out, mut rx) = outbound(1024, 10);
        let snapshot = frame("x".repeat(100));
        assert!(out.reply(&snapshot), "a 100-byte reply on a 10-byte limit is still delivered");
        // Deltas after it have the whole limit to themselves.
        let f = frame("12345".into());
        assert!(out.send(&f));
        assert!(out.send(&f));
        assert!(!out.send(&f), "15 bytes of deltas are lag");
        assert_eq!(rx.eviction.evicted().await, Eviction::SlowConsumer);
        let mut batch = VecDeque::new();
        assert!(rx.rx.recv_all(&mut batch).await);
        assert_eq!(batch.front(), Some(&snapshot));
    }

    #[tokio::test]
    async fn the_writer_takes_everything_queued_in_order_and_frees_its_bytes() {
        let (out, mut rx) = outbound(16, 12);
        for text in ["a1234", "b1234"] {
            assert!(out.send(&frame(text.into())));
        }
        let mut batch = VecDeque::new();
        assert!(rx.rx.recv_all(&mut batch).await);
        assert_eq!(batch, [frame("a1234".into()), frame("b1234".into())]);
        assert!(rx.rx.is_empty());
        // The 10 bytes taken no longer count against the limit of 12.
        assert!(out.send(&frame("c1234".into())));
        assert!(out.send(&frame("d1234".into())));
        assert!(rx.rx.recv_all(&mut batch).await, "appends to what the writer still holds");
        assert_eq!(batch.len(), 4);
        assert_eq!(batch[3], frame("d1234".into()));
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_on_a_frame_and_ends_with_the_sender() {
        let (out, mut rx) = outbound(16, 1 << 20);
        let writer = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut batch = VecDeque::new();
            while rx.rx.recv_all(&mut batch).await {
                got.extend(batch.drain(..));
            }
            got
        });
        tokio::task::yield_now().await;
        assert!(out.send(&frame("1".into())));
        tokio::task::yield_now().await;
        assert!(out.send(&frame("2".into())));
        assert!(out.send(&frame("3".into())));
        drop(out);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        let got = got.expect("the writer ends once the sender is gone").expect("writer task");
        assert_eq!(got, [frame("1".into()), frame("2".into()), frame("3".into())]);
    }

    #[test]
    fn a_connection_whose_writer_is_gone_is_closed_and_takes_nothing() {
        let (out, rx) = outbound(16, 1 << 20);
        assert!(!out.is_closed());
        assert!(out.send(&frame("x".into())));
        drop(rx);
        assert!(out.is_closed());
        assert!(!out.send(&frame("y".into())));
    }
}
