//! roomcast-bench: opens N WebSocket subscribers on one channel of a running
//! (or spawned) Roomcast server, drives M room changes at a set rate through
//! the public REST API, and reports deliveries per second, delivery latency
//! (the send time travels in the change and is read on receipt) and the
//! server's RSS before and after connecting.
//!
//!   cargo run --release -p roomcast-bench -- fanout --subscribers 5000 --rate 100
//!   cargo run --release -p roomcast-bench -- fanout --channel overview --subscribers 1000 --rate 0
//!   cargo run --release -p roomcast-bench -- floor --subscribers 5000 --rate 5
//!   cargo run --release -p roomcast-bench -- failover --redis-url redis://127.0.0.1:6379/0
//!   cargo run --release -p roomcast-bench -- writes --writers 32
//!   cargo run --release -p roomcast-bench -- soak --seconds 300
//!   cargo run --release -p roomcast-bench -- list --rooms 100000
//!   cargo run --release -p roomcast-bench -- crowd --members 10000

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

mod api;
mod crowd;
mod failover;
mod floor;
mod keys;
mod list;
mod soak;
mod subscriber;
mod wire;
mod writes;
use roomcast_client::app::api::RoomQuery;
use roomcast_client::app::model::Role;
use subscriber::Subscriber;

#[derive(Parser)]
#[command(about = "Fan-out benchmark for Roomcast")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Channel {
    /// `room:<id>`
    Room,
    /// `overview:public`
    Overview,
}

#[derive(Clone, Copy, ValueEnum)]
enum Via {
    Ws,
    Rest,
}

#[derive(Subcommand)]
enum Cmd {
    /// Subscribers on one channel, changes of one room, deliveries measured.
    Fanout(Fanout),
    /// The machine's floor: the same load over plain loopback TCP with no
    /// server (one blocking write per delivery), to compare `fanout` with.
    Floor(floor::Floor),
    /// SIGKILL one of two servers on Redis: time to a clean view, and the
    /// answers to requests made meanwhile.
    Failover(failover::Failover),
    /// Durable writes per second with concurrent writers.
    Writes(writes::Writes),
    /// Appends with and without an idempotency key, alternating rounds:
    /// what exactly-once costs.
    Keys(keys::Keys),
    /// Normal users under hostile traffic, against a calm run.
    Soak(soak::Soak),
    /// Many rooms: the room list's first HTML, replies, search and memory.
    List(list::List),
    /// Many people in one room against as many on the room list: the join
    /// storm, memory, churn and everyone leaving at once.
    Crowd(crowd::Crowd),
}

#[derive(Args)]
struct Fanout {
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Changes to send.
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Changes per second; 0 sends them back to back (saturation).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[arg(long, value_enum, default_value = "room")]
    channel: Channel,
    /// A running server to use; without it one is started.
    #[arg(long)]
    url: Option<String>,
    /// The server binary to start (default: $CARGO_TARGET_DIR/release/roomcast).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// How changes are made: `ws` sets the temporary lock's message
    /// (a metadata change with no disk write, so the fan-out is what is
    /// measured); `rest` patches the description (each change is a
    /// durable SQLite write).
    #[arg(long, value_enum, default_value = "ws")]
    via: Via,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 200)]
    connect_batch: usize,
    /// Scale-out: start two servers on this Redis server, spread the
    /// subscribers over both and drive the changes through the first
    /// (which owns the room), so half the deliveries cross Redis.
    #[arg(long)]
    redis_url: Option<String>,
}

/// Prints the delivery count, the rate and the latency percentiles.
fn report_deliveries(delivered: u64, expected: u64, seconds: f64, h: &Histogram<u64>) {
    let ms = |v: u64| v as f64 / 1000.0;
    println!(
        "  deliveries         {delivered} of {expected}{}",
        if delivered == expected { "" } else { "  (MISSING)" }
    );
    println!("  deliveries/s       {:.0}", delivered as f64 / seconds);
    println!(
        "  latency ms         p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.95)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    );
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The server's resident memory in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) a process has used, in milliseconds, from /proc.
fn cpu_millis(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports these in USER_HZ, 100 per second on every common build.
    Some(ticks * 10)
}

struct Spawned {
    child: Child,
    _dir: PathBuf,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// All load comes from 127.0.0.1: the per-address and per-user limits
/// are lifted (the soak run sets its own).
const UNLIMITED: [&str; 12] = [
    "--rest-rate-per-second",
    "1000000",
    "--rest-rate-burst",
    "1000000",
    "--session-rate-per-minute",
    "1000000",
    "--session-rate-burst",
    "1000000",
    "--max-connections-per-address",
    "1000000",
    "--max-sockets-per-user",
    "1000000",
];

async fn spawn_server(
    bin: Option<PathBuf>,
    redis: Option<(&str, &str)>,
    n: usize,
    extra: &[&str],
) -> (String, Spawned) {
    spawn_server_with(bin, redis, n, extra, true).await
}

/// Starts a server; `lifted` lifts the limits per address and per user.
async fn spawn_server_with(
    bin: Option<PathBuf>,
    redis: Option<(&str, &str)>,
    n: usize,
    extra: &[&str],
    lifted: bool,
) -> (String, Spawned) {
    let bin = bin.unwrap_or_else(|| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        PathBuf::from(target).join("release").join("roomcast")
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let dir = std::env::temp_dir().join(format!("roomcast-bench-{}-{n}", std::process::id()));
    let mut shared = Vec::new();
    if let Some((url, prefix)) = redis {
        shared = vec!["--redis-url", url, "--redis-prefix", prefix];
    }
    let child = Command::new(&bin)
        .args(["--addr", &format!("127.0.0.1:{port}"), "--db"])
        .arg(dir.join("bench.db"))
        .args(["--rate-burst", "100000", "--rate-per-second", "100000"])
        .args(if lifted { &UNLIMITED[..] } else { &[] })
        .args(&shared)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e} (build it: cargo build --release)", bin.display()));
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{url}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (url, Spawned { child, _dir: dir })
}

#[derive(Default)]
struct Tally {
    deliveries: AtomicU64,
    /// Subscribers that saw a change out of order.
    gaps: AtomicU64,
    /// Changes merged into a later one for a lagging subscriber (the
    /// server sends a laggard a room's deltas merged: never a loss, as
    /// each subscriber still sees the last change).
    merged: AtomicU64,
    /// Subscribers whose connection ended before the last change, by close code (0: none sent).
    closed: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    last_receipt_micros: AtomicU64,
}

/// Records the delay of every benchmark change until the last one.
/// Returns the subscriber still connected: a subscriber that left as soon
/// as it was done would make the server send every other one a presence
/// event while the last changes are still on their way.
async fn read_changes(
    mut ws: Subscriber,
    changes: usize,
    histogram: Arc<Mutex<Histogram<u64>>>,
    tally: Arc<Tally>,
) -> Subscriber {
    // Delays in microseconds, added to the shared histogram at the end: a
    // histogram per subscriber would spread the hot path over 5,000 tables.
    let mut delays: Vec<u64> = Vec::with_capacity(changes);
    let mut last = 0;
    let mut next = 0;
    let mut gap = false;
    let mut merged = 0;
    let mut finished = false;
    while let Some(text) = ws.next_text().await {
        let Some((sent, seq)) = parse_change(&text) else { continue };
        last = now_micros();
        delays.push(last.saturating_sub(sent).max(1));
        gap |= seq < next;
        merged += seq.saturating_sub(next);
        next = seq + 1;
        if text.contains("bench-last") {
            finished = true;
            break;
        }
    }
    if gap {
        tally.gaps.fetch_add(1, Ordering::Relaxed);
    }
    tally.merged.fetch_add(merged as u64, Ordering::Relaxed);
    if !finished && let Ok(mut closed) = tally.closed.lock() {
        *closed.entry(ws.close_code.unwrap_or(0)).or_default() += 1;
    }
    tally.deliveries.fetch_add(delays.len() as u64, Ordering::Relaxed);
    tally.last_receipt_micros.fetch_max(last, Ordering::Relaxed);
    let mut h = histogram.lock().await;
    for d in delays {
        let _ = h.record(d);
    }
    drop(h);
    ws
}

/// The send time and sequence number a benchmark change carries
/// (`bench-t=<micros> #<n>`).
fn parse_change(text: &str) -> Option<(u64, usize)> {
    let rest = &text[text.find("bench-t=")? + 8..];
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let sent = rest[..digits(rest)].parse().ok()?;
    let rest = &rest[rest.find('#')? + 1..];
    let seq = rest[..digits(rest)].parse().ok()?;
    Some((sent, seq))
}

#[tokio::main]
async fn main() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match Cli::parse().command {
        Cmd::Fanout(args) => fanout(args).await,
        Cmd::Floor(args) => floor::run(args).await,
        Cmd::Failover(args) => failover::run(args).await,
        Cmd::Writes(args) => writes::run(args).await,
        Cmd::Keys(args) => keys::run(args).await,
        Cmd::Soak(args) => soak::run(args).await,
        Cmd::List(args) => list::run(args).await,
        Cmd::Crowd(args) => crowd::run(args).await,
    }
}

async fn fanout(args: Fanout) {
    let Fanout { subscribers, changes, rate, channel, url, server_bin, via, connect_batch, redis_url } = args;

    let prefix = format!("bench-{}", std::process::id());
    let redis = redis_url.as_deref().map(|u| (u, prefix.as_str()));
    let mut spawned = Vec::new();
    let urls: Vec<String> = match url {
        Some(u) => vec![u],
        None => {
            let count = if redis.is_some() { 2 } else { 1 };
            let mut urls = Vec::new();
            for n in 0..count {
                let (u, s) = spawn_server(server_bin.clone(), redis, n, &[]).await;
                urls.push(u);
                spawned.push(s);
            }
            urls
        }
    };
    let url = urls[0].clone();
    let pids: Vec<u32> = spawned.iter().map(|s| s.child.id()).collect();
    let rss = |pids: &[u32]| -> Option<u64> { pids.iter().map(|p| rss_kib(*p)).sum() };
    let http = reqwest::Client::new();
    let token = api::session(&http, &url, "bench").await;
    let room_id = api::create_room(&http, &url, &token).await;

    let rss_before = rss(&pids);
    let ws_urls: Vec<String> = urls.iter().map(|u| u.replace("http://", "ws://") + "/ws?token=" + &token).collect();
    let ws_url = ws_urls[0].clone();
    let join = match channel {
        Channel::Room => wire::join_room(&room_id, Some(Role::Spectator)),
        Channel::Overview => wire::join_overview(RoomQuery::default()),
    };
    let join = wire::frame(join, Some(1));

    // Connect every subscriber and wait for its join reply. Each starts
    // reading at once (presence events of later joins arrive meanwhile),
    // and from then on records every benchmark change it receives.
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram")));
    let tally = Arc::new(Tally::default());
    let connect_start = Instant::now();
    let mut readers = Vec::with_capacity(subscribers);
    for batch in (0..subscribers).collect::<Vec<_>>().chunks(connect_batch.max(1)) {
        let mut joined = Vec::with_capacity(batch.len());
        for i in batch {
            let n = *i;
            let ws_url = ws_urls[i % ws_urls.len()].clone();
            let join = join.clone();
            let histogram = histogram.clone();
            let tally = tally.clone();
            let (ready, is_ready) = tokio::sync::oneshot::channel::<()>();
            joined.push(is_ready);
            readers.push(tokio::spawn(async move {
                let mut ws = Subscriber::connect(&ws_url).await.expect("connect");
                ws.send(join).await.expect("join");
                while let Some(t) = ws.next_text().await {
                    if t.contains("\"event\":\"reply\"") {
                        // A refused join would count as "got nothing" later.
                        assert!(t.contains("\"ok\":true"), "subscriber {n}: join refused: {t}");
                        break;
                    }
                }
                let _ = ready.send(());
                read_changes(ws, changes, histogram, tally).await
            }));
        }
        for is_ready in joined {
            is_ready.await.expect("a subscriber failed to join");
        }
    }
    let connect_time = connect_start.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss(&pids);

    // Drive the changes.
    let mut driver = None;
    if let Via::Ws = via {
        let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("driver connect");
        for (id, event) in
            [(1, wire::join_room(&room_id, Some(Role::Spectator))), (2, wire::lock(&room_id, "bench", 300))]
        {
            ws.send(Message::Text(wire::frame(event, Some(id)).into())).await.expect("driver send");
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg
                    && t.contains(&format!("\"id\":{id}"))
                {
                    assert!(t.contains("\"ok\":true"), "driver: {t}");
                    break;
                }
            }
        }
        let (sink, mut stream) = ws.split();
        // Drain what the driver receives so its own queue never backs up.
        tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        driver = Some(sink);
    }
    let cpu = |pids: &[u32]| -> Option<u64> { pids.iter().map(|p| cpu_millis(&p.to_string())).sum() };
    let cpu_before = (cpu(&pids), cpu_millis("self"));
    let send_start_micros = now_micros();
    let send_start = Instant::now();
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    for i in 0..changes {
        if let Some(every) = interval {
            let due = send_start + every * i as u32;
            tokio::time::sleep_until(due.into()).await;
        }
        let last = if i + 1 == changes { " bench-last" } else { "" };
        let text = format!("bench-t={} #{i}{last}", now_micros());
        match driver.as_mut() {
            Some(sink) => {
                let event = wire::frame(wire::lock_msg(&room_id, &text), None);
                sink.send(Message::Text(event.into())).await.expect("driver send");
            }
            None => {
                // `unavailable` (503) is retried as it asks; anything else fails.
                for attempt in 0.. {
                    let response = http
                        .patch(format!("{url}/api/rooms/{room_id}"))
                        .bearer_auth(&token)
                        .json(&json!({ "description": text }))
                        .send()
                        .await
                        .expect("patch");
                    let status = response.status();
                    if status.as_u16() == 503 && attempt < 10 {
                        let body: Value = response.json().await.unwrap_or_default();
                        let wait = body["error"]["retryAfterMs"].as_u64().unwrap_or(100).min(2000);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        continue;
                    }
                    assert!(status.is_success(), "patch answered {status}");
                    break;
                }
            }
        }
    }
    let send_time = send_start.elapsed();
    // The subscribers stay connected until the figures are printed.
    let wait = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(readers)).await;
    if wait.is_err() {
        eprintln!("warning: not every subscriber saw the last change within 60 s");
    }

    let cpu_after = (cpu(&pids), cpu_millis("self"));
    let deliveries = tally.deliveries.load(Ordering::Relaxed);
    let span = tally.last_receipt_micros.load(Ordering::Relaxed).saturating_sub(send_start_micros).max(1);
    let h = histogram.lock().await;
    let expected = (subscribers * changes) as u64;
    println!("roomcast-bench fanout");
    println!(
        "  channel            {}",
        match channel {
            Channel::Room => "room",
            Channel::Overview => "overview:public",
        }
    );
    println!(
        "  servers            {}{}",
        urls.len(),
        if redis.is_some() { " on one Redis (subscribers alternate; changes through the first)" } else { "" }
    );
    println!("  subscribers        {subscribers} (connected in {:.2?})", connect_time);
    println!(
        "  changes            {changes} at {} (sent in {:.2?})",
        if rate > 0.0 { format!("{rate}/s") } else { "saturation".into() },
        send_time
    );
    let merged = tally.merged.load(Ordering::Relaxed);
    report_deliveries(deliveries + merged, expected, span as f64 / 1e6, &h);
    if merged > 0 {
        println!("  merged             {merged} changes reached lagging subscribers merged into later deltas");
    }
    let gaps = tally.gaps.load(Ordering::Relaxed);
    if gaps > 0 {
        println!("  out of order       {gaps} subscribers saw a change out of order");
    }
    let closed_early = tally.closed.lock().map(|c| c.values().sum::<u64>()).unwrap_or(0);
    if let Ok(closed) = tally.closed.lock()
        && !closed.is_empty()
    {
        let codes: Vec<String> = closed.iter().map(|(code, n)| format!("{n} by close code {code}")).collect();
        println!("  closed early       {}", codes.join(", "));
    }
    if let ((Some(s0), Some(b0)), (Some(s1), Some(b1))) = (cpu_before, cpu_after) {
        println!(
            "  CPU while changing server {:.2} s, load tool {:.2} s (in {:.2} s)",
            (s1 - s0) as f64 / 1000.0,
            (b1 - b0) as f64 / 1000.0,
            span as f64 / 1e6
        );
    }
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let per = (after.saturating_sub(before) as f64) * 1024.0 / subscribers.max(1) as f64;
        println!(
            "  server RSS         {before} KiB before, {after} KiB after connecting (all servers): {:.1} KiB per connection",
            per / 1024.0
        );
    }
    if deliveries + merged != expected || gaps > 0 || closed_early > 0 {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_change;

    #[test]
    fn a_change_gives_its_send_time_and_number_wherever_it_sits_in_the_event() {
        let event = r#"{"event":"room:update","data":{"lock":{"msg":"bench-t=1700000000123456 #41 bench-last"}}}"#;
        assert_eq!(parse_change(event), Some((1_700_000_000_123_456, 41)));
        assert_eq!(parse_change(r#"{"msg":"bench-t=5 #0"}"#), Some((5, 0)));
        assert_eq!(parse_change(r#"{"event":"presence:join"}"#), None);
        assert_eq!(parse_change("bench-t= #3"), None, "no send time");
        assert_eq!(parse_change("bench-t=12"), None, "no number");
    }
}
