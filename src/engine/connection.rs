//! What the engine knows of a connection: its id, its user and a bounded
//! queue of serialized frames to send it. Nothing here knows of WebSocket
//! framing; the transport drains the queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;

use super::conflate::merge_updates;

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
///
/// Three kinds of frames: ordered ones (events, chat, signals), which count
/// toward the lag limit; the connection's own replies, which never do; and
/// a room's latest state (`room:update`), which a lagging connection gets
/// merged: a new delta of a room whose previous delta still waits replaces
/// it with one delta from the older `base` to the newer `version`
/// (`conflate.rs`), so a laggard is sent less instead of being closed.
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
    /// Queued frames; a merged-away delta leaves an empty frame behind,
    /// which the writer skips.
    frames: VecDeque<Frame>,
    /// The number of frames taken by the writer so far: `frames[i]` is
    /// frame number `head + i`.
    head: u64,
    /// Ordered frames queued and their bytes: the lag.
    lag_frames: usize,
    lag_bytes: usize,
    /// Bytes of latest-state deltas queued (bounded apart).
    latest_bytes: usize,
    /// Each room's delta still queued, by frame number.
    latest: HashMap<Arc<str>, u64>,
    /// The engine's half ([`Outbound`]) is still there.
    sender: bool,
    /// The writer's half ([`FrameQueue`]) is still there.
    receiver: bool,
}

impl Queue {
    fn clear_counts(&mut self) {
        self.lag_frames = 0;
        self.lag_bytes = 0;
        self.latest_bytes = 0;
        self.latest.clear();
    }

    /// Frame `number` (of `len` bytes) left the queue.
    fn forget(&mut self, number: u64, len: usize) {
        let room = self.latest.iter().find(|(_, n)| **n == number).map(|(r, _)| r.clone());
        match room {
            Some(room) => {
                self.latest.remove(&room);
                self.latest_bytes -= len;
            }
            None if len > 0 => {
                // An ordered frame or a reply: replies are not counted.
                self.lag_frames = self.lag_frames.saturating_sub(1);
                self.lag_bytes = self.lag_bytes.saturating_sub(len);
            }
            None => {}
        }
    }
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
                    let taken = q.frames.len() as u64;
                    if q.latest.is_empty() && batch.is_empty() {
                        // Swapping hands the writer's spare capacity back.
                        std::mem::swap(&mut q.frames, batch);
                    } else {
                        batch.extend(q.frames.drain(..).filter(|f| !f.is_empty()));
                    }
                    q.head += taken;
                    q.clear_counts();
                    return true;
                }
                if !q.sender {
                    return false;
                }
            }
            self.shared.ready.notified().await;
        }
    }

    /// Takes the first queued frame (for draining at close and tests).
    pub fn try_recv(&mut self) -> Option<Frame> {
        let mut q = self.shared.lock();
        loop {
            let frame = q.frames.pop_front()?;
            let number = q.head;
            q.head += 1;
            if q.frames.is_empty() {
                q.clear_counts();
            } else {
                q.forget(number, frame.len());
            }
            if !frame.is_empty() {
                return Some(frame);
            }
        }
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
        q.clear_counts();
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
        queue: Mutex::new(Queue {
            frames: VecDeque::new(),
            head: 0,
            lag_frames: 0,
            lag_bytes: 0,
            latest_bytes: 0,
            latest: HashMap::new(),
            sender: true,
            receiver: true,
        }),
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
    /// Queues an ordered frame. Returns false when the connection is gone
    /// or too slow.
    pub fn send(&self, frame: &Frame) -> bool {
        self.push(frame, Kind::Ordered)
    }

    /// Queues the connection's own reply (a join's snapshot): it never
    /// makes the connection slow, however large, and does not count toward
    /// the lag limit of what follows.
    pub fn reply(&self, frame: &Frame) -> bool {
        self.push(frame, Kind::Reply)
    }

    /// Queues a `room:update` of room `room`; merged with the room's delta
    /// still queued, if any.
    pub fn send_latest(&self, room: &Arc<str>, frame: &Frame) -> bool {
        self.push(frame, Kind::Latest(room))
    }

    fn push(&self, frame: &Frame, kind: Kind<'_>) -> bool {
        let shared = &*self.shared;
        if shared.slow.load(Ordering::Relaxed) {
            return false;
        }
        let mut q = shared.lock();
        if !q.receiver {
            return false;
        }
        let wake = q.frames.is_empty();
        let fits = match kind {
            Kind::Reply => {
                q.frames.push_back(frame.clone());
                true
            }
            Kind::Ordered => push_ordered(&mut q, shared, frame),
            Kind::Latest(room) => push_latest(&mut q, shared, room, frame),
        };
        drop(q);
        if !fits {
            self.mark_slow();
            return false;
        }
        if wake {
            shared.ready.notify_one();
        }
        true
    }

    #[cfg(test)]
    fn lag(&self) -> (usize, usize, usize) {
        let q = self.shared.lock();
        (q.lag_frames, q.lag_bytes, q.latest_bytes)
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

#[derive(Clone, Copy)]
enum Kind<'a> {
    Ordered,
    Reply,
    Latest(&'a Arc<str>),
}

fn push_ordered(q: &mut Queue, shared: &Shared, frame: &Frame) -> bool {
    if q.lag_frames >= shared.capacity || q.lag_bytes + frame.len() > shared.max_bytes {
        return false;
    }
    q.frames.push_back(frame.clone());
    q.lag_frames += 1;
    q.lag_bytes += frame.len();
    true
}

/// A room's latest delta. A connection that keeps up queues it as any
/// frame (shared, never parsed); one that is behind (a quarter of its lag
/// limit used) gets it merged with the room's queued delta (which leaves an
/// empty frame in its place), queued last. Latest-state bytes are bounded
/// apart, at 8 times the lag limit (one delta per room).
fn push_latest(q: &mut Queue, shared: &Shared, room: &Arc<str>, frame: &Frame) -> bool {
    let behind = q.lag_bytes + q.latest_bytes > shared.max_bytes / 4 || q.lag_frames > shared.capacity / 4;
    if !behind && !q.latest.contains_key(room) {
        return push_ordered(q, shared, frame);
    }
    let mut next = frame.clone();
    if let Some(&number) = q.latest.get(room) {
        let at = (number - q.head) as usize;
        if let Some(merged) = q.frames.get(at).and_then(|old| merge_updates(old, frame)) {
            q.latest_bytes -= q.frames[at].len();
            q.frames[at] = Frame::new();
            next = merged;
        }
    }
    if q.latest_bytes + next.len() > shared.max_bytes.saturating_mul(8) {
        return false;
    }
    q.latest_bytes += next.len();
    q.latest.insert(room.clone(), q.head + q.frames.len() as u64);
    q.frames.push_back(next);
    true
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

    fn update(version: u64, description: &str) -> Frame {
        let text = format!(
            r#"{{"event":"room:update","data":{{"roomId":"r","base":{},"version":{version},"description":"{description}"}}}}"#,
            version - 1
        );
        frame(text)
    }

    #[tokio::test]
    async fn a_laggard_gets_a_rooms_deltas_merged_and_ordered_frames_in_order() {
        // Room of 2 ordered frames and 64 bytes of lag: a thousand deltas of
        // one room would close it ten times over; merged, they are one.
        let (out, mut rx) = outbound(2, 64);
        let room: Arc<str> = "r".into();
        let first = frame(r#"{"event":"presence:join"}"#.into());
        assert!(out.send(&first));
        for v in 2..=1001 {
            assert!(out.send_latest(&room, &update(v, &format!("d{v}"))), "delta {v} refused");
        }
        let (lag_frames, _, latest_bytes) = out.lag();
        assert_eq!(lag_frames, 1, "deltas are not lag");
        assert!(latest_bytes < 200, "one merged delta is queued: {latest_bytes}");
        let mut batch = VecDeque::new();
        assert!(rx.rx.recv_all(&mut batch).await);
        assert_eq!(batch.len(), 2, "the ordered frame, then one delta");
        assert_eq!(batch[0], first);
        let merged: serde_json::Value = serde_json::from_slice(&batch[1]).unwrap();
        assert_eq!(merged["data"]["base"], 1);
        assert_eq!(merged["data"]["version"], 1001);
        assert_eq!(merged["data"]["description"], "d1001");
        // Ordered frames still count: two more than the room allows.
        assert!(out.send(&first) && out.send(&first));
        assert!(!out.send(&first));
        assert_eq!(rx.eviction.evicted().await, Eviction::SlowConsumer);
    }

    #[tokio::test]
    async fn a_connection_that_keeps_up_gets_deltas_as_they_are() {
        let (out, mut rx) = outbound(16, 1 << 20);
        let room: Arc<str> = "r".into();
        let (a, b) = (update(2, "a"), update(3, "b"));
        assert!(out.send_latest(&room, &a) && out.send_latest(&room, &b));
        assert_eq!(out.lag().0, 2, "counted as any frame");
        assert_eq!(rx.rx.try_recv(), Some(a));
        assert_eq!(rx.rx.try_recv(), Some(b));
    }

    #[tokio::test]
    async fn a_delta_merged_away_leaves_nothing_for_the_writer() {
        let (out, mut rx) = outbound(16, 400);
        let room: Arc<str> = "r".into();
        // A quarter of the 400 bytes used: the connection is behind.
        let filler = frame(format!(r#"{{"event":"x","data":"{}"}}"#, "f".repeat(120)));
        assert!(out.send(&filler));
        assert!(out.send_latest(&room, &update(2, "a")));
        assert!(out.send(&frame(r#"{"event":"chat"}"#.into())));
        assert!(out.send_latest(&room, &update(3, "b")));
        // The chat message keeps its place; the room's state comes after it.
        assert_eq!(rx.rx.try_recv(), Some(filler));
        let first = rx.rx.try_recv().expect("a frame");
        assert_eq!(&first[..], br#"{"event":"chat"}"#);
        let merged: serde_json::Value = serde_json::from_slice(&rx.rx.try_recv().expect("the delta")).unwrap();
        assert_eq!((merged["data"]["base"].as_u64(), merged["data"]["version"].as_u64()), (Some(1), Some(3)));
        assert!(rx.rx.try_recv().is_none());
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
