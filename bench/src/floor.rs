//! The machine's floor for fan-out latency: the same shape of load as
//! `fanout` (N subscribers, changes at a set rate, one message per
//! subscriber per change, the send time carried in the message) with no
//! server at all. Sender threads write a 16-byte record to each of N plain
//! loopback TCP sockets in turn (one blocking `write` per delivery, no
//! WebSocket framing, no JSON, no queues, no tasks); readers are tokio tasks
//! like the `fanout` subscribers.
//!
//! Any server that sends one TCP message per subscriber (every WebSocket
//! server does: each subscriber has its own connection) pays at least this
//! per delivery, so the figures here bound what `fanout` can show on the
//! same machine.
//!
//!   cargo run --release -p roomcast-bench -- floor --subscribers 5000 --rate 5

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;

use crate::{cpu_millis, now_micros, report_deliveries};

/// One delivery on the wire: send time in microseconds, change number.
const RECORD: usize = 16;

#[derive(clap::Args)]
pub struct Floor {
    #[arg(long, default_value_t = 5000)]
    subscribers: usize,
    /// Changes to send.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Changes per second; 0 sends them back to back.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Threads writing the changes, each to its share of the sockets.
    #[arg(long, default_value_t = 2)]
    senders: usize,
}

/// Reads records until the last change; returns the delays in microseconds.
async fn read_records(stream: tokio::net::TcpStream, changes: usize) -> Vec<u64> {
    let mut delays = Vec::with_capacity(changes);
    let mut buf = [0u8; 4 * RECORD];
    let mut filled = 0;
    loop {
        if stream.readable().await.is_err() {
            return delays;
        }
        match stream.try_read(&mut buf[filled..]) {
            Ok(0) => return delays,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return delays,
        }
        let now = now_micros();
        let whole = filled / RECORD * RECORD;
        for record in buf[..whole].chunks_exact(RECORD) {
            let (sent, change) = record.split_at(8);
            let sent = u64::from_le_bytes(sent.try_into().unwrap_or_default());
            let change = u64::from_le_bytes(change.try_into().unwrap_or_default());
            delays.push(now.saturating_sub(sent).max(1));
            if change + 1 == changes as u64 {
                return delays;
            }
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
}

/// Writes every change to its share of the sockets, one write per socket.
fn send_changes(mut sockets: Vec<TcpStream>, changes: usize, rate: f64, start: Instant) {
    for change in 0..changes {
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(change as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let mut record = [0u8; RECORD];
        record[..8].copy_from_slice(&now_micros().to_le_bytes());
        record[8..].copy_from_slice(&(change as u64).to_le_bytes());
        for socket in &mut sockets {
            socket.write_all(&record).expect("floor: write");
        }
    }
}

pub async fn run(floor: Floor) {
    let Floor { subscribers, changes, rate, senders } = floor;
    let listener = TcpListener::bind("127.0.0.1:0").expect("floor: bind");
    let addr = listener.local_addr().expect("floor: address");
    let accepting = std::thread::spawn(move || {
        (0..subscribers)
            .map(|_| {
                let (socket, _) = listener.accept().expect("floor: accept");
                socket.set_nodelay(true).expect("floor: nodelay");
                socket
            })
            .collect::<Vec<_>>()
    });
    let mut readers = Vec::with_capacity(subscribers);
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram")));
    let deliveries = Arc::new(AtomicU64::new(0));
    for _ in 0..subscribers {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("floor: connect");
        let histogram = histogram.clone();
        let deliveries = deliveries.clone();
        readers.push(tokio::spawn(async move {
            let delays = read_records(stream, changes).await;
            deliveries.fetch_add(delays.len() as u64, Ordering::Relaxed);
            let mut h = histogram.lock().await;
            for d in delays {
                let _ = h.record(d);
            }
        }));
    }
    let mut sockets = accepting.join().expect("floor: accept thread");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let senders = senders.clamp(1, subscribers.max(1));
    let share = subscribers.div_ceil(senders);
    let cpu_before = cpu_millis("self");
    let start = Instant::now();
    let mut threads = Vec::new();
    while !sockets.is_empty() {
        let rest = sockets.split_off(share.min(sockets.len()));
        let part = std::mem::replace(&mut sockets, rest);
        threads.push(std::thread::spawn(move || send_changes(part, changes, rate, start)));
    }
    for t in threads {
        t.join().expect("floor: sender");
    }
    let send_time = start.elapsed();
    futures::future::join_all(readers).await;
    let span = start.elapsed();
    let cpu = cpu_millis("self").zip(cpu_before).map(|(a, b)| a.saturating_sub(b));

    let h = histogram.lock().await;
    let delivered = deliveries.load(Ordering::Relaxed);
    let expected = (subscribers * changes) as u64;
    println!("roomcast-bench floor (plain TCP, no server)");
    println!("  subscribers        {subscribers}, {senders} sender thread(s)");
    println!(
        "  changes            {changes} at {} (sent in {send_time:.2?})",
        if rate > 0.0 { format!("{rate}/s") } else { "saturation".into() }
    );
    report_deliveries(delivered, expected, span.as_secs_f64(), &h);
    if let Some(cpu) = cpu {
        println!(
            "  CPU                {:.2} s for senders and readers, {:.1} us per delivery",
            cpu as f64 / 1000.0,
            cpu as f64 * 1000.0 / delivered.max(1) as f64
        );
    }
    if delivered != expected {
        std::process::exit(1);
    }
}
