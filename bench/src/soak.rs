//! `roomcast-bench soak`: normal users keep using rooms while hostile
//! clients flood the server, compared with the same users on a calm server
//! in the same run. The server keeps its default limits; every client has
//! an address of its own on the loopback network (127.0.0.0/8), so limits
//! per address apply to attackers as they would on the internet.
//!
//! Normal users: `--users` clients in rooms of ten, each sending a chat
//! message every two seconds (its send time inside) and reading its room
//! and the room list over REST every second. Hostile traffic: a session
//! flood (400 a second), half-open requests and idle connections
//! (`--floods`, reopened as the server closes them), 50 slow bodies (a byte
//! a second), 3 MiB bodies (ten a second) and ten WebSockets sending 1,000
//! events a second each. The attackers are paced because they run on the
//! server's own cores.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use super::{cpu_millis, now_micros, rss_kib, spawn_server_with, wire};

#[derive(Args)]
pub struct Soak {
    /// Seconds of each phase (calm, then hostile).
    #[arg(long, default_value_t = 300.0)]
    seconds: f64,
    /// Normal users (in rooms of ten).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Half-open and idle connections the attackers keep open.
    #[arg(long, default_value_t = 6000)]
    floods: usize,
    /// The kinds of hostile traffic (default: all).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Attack::ALL)]
    attacks: Vec<Attack>,
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    Sessions,
    HalfOpen,
    Idle,
    SlowBodies,
    Oversized,
    Events,
}

impl Attack {
    const ALL: [Attack; 6] =
        [Attack::Sessions, Attack::HalfOpen, Attack::Idle, Attack::SlowBodies, Attack::Oversized, Attack::Events];
}

/// What the normal users saw.
#[derive(Default)]
struct Seen {
    latency: Option<Histogram<u64>>,
    failures: Vec<String>,
}

struct Phase {
    p50_ms: f64,
    p99_ms: f64,
    deliveries: u64,
    requests: u64,
    failures: Vec<String>,
    max_rss_mib: f64,
    max_fds: usize,
    /// The server's RSS (MiB) at each tenth of the phase.
    rss_timeline: Vec<f64>,
    cpu_server_s: f64,
    cpu_tool_s: f64,
    end_rss_mib: f64,
    end_fds: usize,
    limits: Value,
}

/// The `n`-th address of a /16 block of the loopback network.
fn address(block: u8, n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, block, (n / 250) as u8, (n % 250 + 1) as u8))
}

async fn tcp_from(from: IpAddr, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

fn http_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder().local_address(from).build().expect("client")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

pub async fn run(args: Soak) {
    let calm = phase(&args, false).await;
    let hostile = phase(&args, true).await;
    println!("roomcast-bench soak: {} normal users, {:.0} s per phase", args.users, args.seconds);
    for (name, p) in [("calm", &calm), ("hostile", &hostile)] {
        println!(
            "  {name:8} deliveries {}  p50 {:.2} ms  p99 {:.2} ms  requests {}  failed {}  \
             server RSS max {:.1} MiB (end {:.1})  fds max {} (end {})  CPU server {:.1} s, load tool {:.1} s",
            p.deliveries,
            p.p50_ms,
            p.p99_ms,
            p.requests,
            p.failures.len(),
            p.max_rss_mib,
            p.end_rss_mib,
            p.max_fds,
            p.end_fds,
            p.cpu_server_s,
            p.cpu_tool_s
        );
    }
    let timeline: Vec<String> = hostile.rss_timeline.iter().map(|m| format!("{m:.0}")).collect();
    println!("  server RSS MiB under attack, each tenth of the run: {}", timeline.join(" "));
    println!("  limits hit under attack: {}", hostile.limits);
    println!("  p99 hostile / calm: {:.2}", hostile.p99_ms / calm.p99_ms.max(0.001));
    let failures: Vec<&String> = calm.failures.iter().chain(&hostile.failures).collect();
    for f in failures.iter().take(10) {
        println!("  FAILED: {f}");
    }
    assert!(failures.is_empty(), "{} normal requests failed", failures.len());
    // What the attack held is given back once it stops.
    assert!(hostile.end_fds <= calm.end_fds + 50, "descriptors left open: {} (calm {})", hostile.end_fds, calm.end_fds);
    assert!(calm.deliveries > 0 && hostile.deliveries > 0, "no chat was delivered");
}

async fn phase(args: &Soak, hostile: bool) -> Phase {
    let (url, server) = spawn_server_with(args.server_bin.clone(), None, usize::from(hostile), &[], false).await;
    let port: u16 = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let pid = server.child.id();
    let until = Instant::now() + Duration::from_secs_f64(args.seconds);
    let seen = Arc::new(Mutex::new(Seen { latency: Histogram::new(3).ok(), failures: Vec::new() }));
    let requests = Arc::new(AtomicU64::new(0));
    let users = normal_users(&url, port, args.users, until, seen.clone(), requests.clone()).await;
    let cpu_before = (cpu_millis(&pid.to_string()), cpu_millis("self"));
    let attacks = if hostile { &args.attacks[..] } else { &[] };
    let attackers = attack(&url, port, args.floods, until, attacks).await;
    let (mut max_rss, mut max_fds) = (0u64, 0usize);
    let started = Instant::now();
    let mut rss_timeline = Vec::new();
    while Instant::now() < until {
        let rss = rss_kib(pid).unwrap_or(0);
        max_rss = max_rss.max(rss);
        max_fds = max_fds.max(open_fds(pid));
        if started.elapsed().as_secs_f64() >= args.seconds * rss_timeline.len() as f64 / 10.0 {
            rss_timeline.push(rss as f64 / 1024.0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for user in users {
        let _ = user.await;
    }
    for attacker in attackers {
        attacker.abort();
    }
    let seconds = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) => (a - b) as f64 / 1000.0,
        _ => 0.0,
    };
    let cpu_server_s = seconds(cpu_before.0, cpu_millis(&pid.to_string()));
    let cpu_tool_s = seconds(cpu_before.1, cpu_millis("self"));
    // Let the server see the attackers gone, then read what is left.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let limits = reqwest::get(format!("{url}/api/stats")).await.expect("stats").json::<Value>().await.expect("json");
    let seen = std::mem::take(&mut *seen.lock().await);
    let h = seen.latency.expect("histogram");
    Phase {
        p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        deliveries: h.len(),
        requests: requests.load(Ordering::Relaxed),
        failures: seen.failures,
        max_rss_mib: max_rss as f64 / 1024.0,
        max_fds,
        rss_timeline,
        cpu_server_s,
        cpu_tool_s,
        end_rss_mib: rss_kib(pid).unwrap_or(0) as f64 / 1024.0,
        end_fds: open_fds(pid),
        limits: limits["limits"]["limitsHit"].clone(),
    }
}

/// Starts the normal users; each task ends at `until`.
async fn normal_users(
    url: &str,
    port: u16,
    n: usize,
    until: Instant,
    seen: Arc<Mutex<Seen>>,
    requests: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut rooms = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..n {
        let from = address(10, i);
        let http = http_from(from);
        let token = super::api::session(&http, url, &format!("user{i}")).await;
        if i % 10 == 0 {
            rooms.push(super::api::create_room(&http, url, &token).await);
        }
        let room = rooms.last().cloned().expect("a room");
        let user = User { url: url.to_string(), port, from, http, token, room };
        tasks.push(tokio::spawn(user.run(until, seen.clone(), requests.clone())));
    }
    tasks
}

struct User {
    url: String,
    port: u16,
    from: IpAddr,
    http: reqwest::Client,
    token: String,
    room: String,
}

impl User {
    async fn run(self, until: Instant, seen: Arc<Mutex<Seen>>, requests: Arc<AtomicU64>) {
        let fail = |why: String| {
            let seen = seen.clone();
            async move { seen.lock().await.failures.push(why) }
        };
        let stream = match tcp_from(self.from, self.port).await {
            Ok(s) => s,
            Err(e) => return fail(format!("connect: {e}")).await,
        };
        let ws_url = format!("ws://127.0.0.1:{}/ws?token={}", self.port, self.token);
        let (ws, _) = match tokio_tungstenite::client_async(ws_url, stream).await {
            Ok(ws) => ws,
            Err(e) => return fail(format!("socket: {e}")).await,
        };
        let (mut tx, rx) = ws.split();
        let _ = tx.send(Message::text(wire::frame(wire::join_room(&self.room, None), Some(1)))).await;
        let reader = tokio::spawn(read_room(rx, seen.clone()));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n = 0u64;
        while Instant::now() < until {
            tick.tick().await;
            n += 1;
            if n.is_multiple_of(2) {
                let text = format!("t={}", now_micros());
                let send = wire::frame(wire::chat(&self.room, &text), Some(n + 1));
                if tx.send(Message::text(send)).await.is_err() {
                    fail("the socket closed".into()).await;
                    break;
                }
            }
            for path in [format!("/api/rooms/{}", self.room), "/api/rooms".to_string()] {
                requests.fetch_add(1, Ordering::Relaxed);
                let answer = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await;
                match answer {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => fail(format!("GET {path}: {}", r.status())).await,
                    Err(e) => fail(format!("GET {path}: {e}")).await,
                }
            }
        }
        reader.abort();
    }
}

type WsRead = futures::stream::SplitStream<tokio_tungstenite::WebSocketStream<TcpStream>>;

/// Reads a user's socket: chat from others gives a delivery latency; an
/// error reply or a close is a failure.
async fn read_room(mut rx: WsRead, seen: Arc<Mutex<Seen>>) {
    while let Some(Ok(message)) = rx.next().await {
        let Message::Text(text) = message else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        if v["ok"] == false {
            seen.lock().await.failures.push(format!("reply: {v}"));
        } else if v["event"] == "chat:message:new" {
            let sent = v["data"]["message"]["text"].as_str().and_then(|t| t.strip_prefix("t=")?.parse::<u64>().ok());
            if let Some(sent) = sent
                && let Some(h) = seen.lock().await.latency.as_mut()
            {
                let _ = h.record(now_micros().saturating_sub(sent));
            }
        }
    }
}

/// Starts every kind of hostile traffic; the tasks run until aborted.
async fn attack(
    url: &str,
    port: u16,
    floods: usize,
    until: Instant,
    attacks: &[Attack],
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..4 * usize::from(attacks.contains(&Attack::Sessions)) {
        let (http, url) = (http_from(address(66, i)), url.to_string());
        tasks.push(tokio::spawn(session_flood(http, url)));
    }
    // Half of the floods send a partial request head, half send nothing.
    for i in 0..floods {
        let from = address(67, i / 300);
        let partial = i % 2 == 0;
        let kind = if partial { Attack::HalfOpen } else { Attack::Idle };
        if attacks.contains(&kind) {
            tasks.push(tokio::spawn(hold_open(from, port, partial, until)));
        }
    }
    for i in 0..50 * usize::from(attacks.contains(&Attack::SlowBodies)) {
        tasks.push(tokio::spawn(slow_body(address(68, i), port)));
    }
    let owner = http_from(address(69, 0));
    let token = super::api::session(&owner, url, "mallory").await;
    let room = super::api::create_room(&owner, url, &token).await;
    for i in 0..2 * usize::from(attacks.contains(&Attack::Oversized)) {
        let (http, url, token, room) = (http_from(address(69, i + 1)), url.to_string(), token.clone(), room.clone());
        tasks.push(tokio::spawn(oversized_bodies(http, url, token, room)));
    }
    for i in 0..10 * usize::from(attacks.contains(&Attack::Events)) {
        let http = http_from(address(70, i));
        let token = super::api::session(&http, url, &format!("flooder{i}")).await;
        let room = super::api::create_room(&http, url, &token).await;
        tasks.push(tokio::spawn(event_flood(address(70, i), port, token, room)));
    }
    tasks
}

/// Sends `per_second` at a steady pace (the attacker's machine is this
/// one: unpaced, the load tool would take the cores from the server).
fn pace(per_second: f64) -> tokio::time::Interval {
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    every
}

/// Session creation, 100 a second from one address.
async fn session_flood(http: reqwest::Client, url: String) {
    let mut every = pace(100.0);
    loop {
        every.tick().await;
        let _ = http.post(format!("{url}/api/session")).json(&json!({ "userName": "spam" })).send().await;
    }
}

/// Keeps a connection open (with a partial request head, or silent);
/// opens another once the server closes it.
async fn hold_open(from: IpAddr, port: u16, partial: bool, until: Instant) {
    while Instant::now() < until {
        let Ok(mut stream) = tcp_from(from, port).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if partial {
            let _ = stream.write_all(b"GET /rooms HTTP/1.1\r\nHost: x\r\n").await;
        }
        let mut sink = [0u8; 1024];
        let mut refused = false;
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
            refused |= sink[..n].starts_with(b"HTTP/1.1 503");
        }
        if refused {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A request body trickled a byte a second.
async fn slow_body(from: IpAddr, port: u16) {
    loop {
        let Ok(mut stream) = tcp_from(from, port).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let head =
            "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        while stream.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// 3 MiB bodies, frames and rooms alternately, five a second.
async fn oversized_bodies(http: reqwest::Client, url: String, token: String, room: String) {
    let frames = format!("[\"{}\"]", "x".repeat(3 << 20)).into_bytes();
    let new_room = format!("{{\"description\":\"{}\"}}", "x".repeat(3 << 20)).into_bytes();
    let mut every = pace(5.0);
    for n in 0u64.. {
        every.tick().await;
        let (path, body) = if n.is_multiple_of(2) {
            (format!("/api/rooms/{room}/frames"), &frames)
        } else {
            ("/api/rooms".into(), &new_room)
        };
        let _ = http
            .post(format!("{url}{path}"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
    }
}

/// A socket sending events as fast as it can (chat, signals, garbage),
/// reconnecting whenever the server closes it.
async fn event_flood(from: IpAddr, port: u16, token: String, room: String) {
    loop {
        let Ok(stream) = tcp_from(from, port).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let url = format!("ws://127.0.0.1:{port}/ws?token={token}");
        let Ok((ws, _)) = tokio_tungstenite::client_async(url, stream).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let (mut tx, mut rx) = ws.split();
        let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
        let _ = tx.send(Message::text(wire::frame(wire::join_room(&room, None), Some(1)))).await;
        let mut every = pace(100.0);
        for n in 0u64.. {
            // Ten events every 10 ms: 1,000 a second.
            if n.is_multiple_of(10) {
                every.tick().await;
            }
            let frame = match n % 3 {
                0 => wire::frame(wire::chat(&room, "spam"), None),
                1 => json!({ "event": "signal", "data": { "roomId": room, "to": "nobody", "kind": "ice", "payload": n } })
                    .to_string(),
                _ => "{not json".to_string(),
            };
            if tx.send(Message::text(frame)).await.is_err() {
                break;
            }
        }
        drain.abort();
    }
}
