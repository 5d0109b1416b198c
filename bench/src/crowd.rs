//! `crowd`: N people, each their own user, join one room at once; the
//! same N join the room list on a second server, as the reference measured
//! in the same run. Then, in the room: steady churn (joins and leaves at a
//! rate, by other users) while every member counts what it receives, and
//! finally all N leave at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures::future::join_all;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use roomcast_client::app::api::RoomQuery;

use crate::subscriber::Subscriber;
use crate::wire;
use crate::{Spawned, api, rss_kib, spawn_server};

#[derive(Args)]
pub struct Crowd {
    /// People in the room (and, for the reference, on the room list).
    #[arg(long, default_value_t = 10_000)]
    members: usize,
    /// Joins per second during the churn, and as many leaves.
    #[arg(long, default_value_t = 100)]
    churn: usize,
    #[arg(long, default_value_t = 10)]
    churn_seconds: u64,
    /// Connections opened at once while joining.
    #[arg(long, default_value_t = 200)]
    connect_batch: usize,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Run the room on two servers on this Redis (members alternate).
    #[arg(long)]
    redis_url: Option<String>,
}

const SERVER_FLAGS: [&str; 2] = ["--max-connections", "100000"];

/// One member's socket, what it received, and how it ended.
struct Member {
    received: Arc<AtomicU64>,
    leave: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Option<u16>>,
}

/// How one join storm went.
struct Storm {
    seconds: f64,
    rss_per_conn_kib: f64,
    members: Vec<Member>,
}

pub async fn run(args: Crowd) {
    let http = reqwest::Client::new();
    let n = args.members;
    println!("roomcast-bench crowd: {n} people, each their own user");

    // The reference runs on the same kind of deployment as the room.
    let list_prefix = format!("crowd-list-{}", std::process::id());
    let list_redis = args.redis_url.as_deref().map(|u| (u, list_prefix.as_str()));
    let (list_urls, list_servers) = servers(&args, list_redis).await;
    let tokens = sessions(&http, &list_urls[0], n + 2 * args.churn).await;
    let overview = storm(
        &list_servers,
        &list_urls,
        &tokens[..n],
        wire::frame(wire::join_overview(RoomQuery::default()), Some(1)),
        args.connect_batch,
    )
    .await;
    println!(
        "  overview:public    joined in {:.2} s, server RSS {:.1} KiB per connection",
        overview.seconds, overview.rss_per_conn_kib
    );
    for m in overview.members {
        m.task.abort();
    }
    drop(list_servers);

    let prefix = format!("crowd-{}", std::process::id());
    let redis = args.redis_url.as_deref().map(|u| (u, prefix.as_str()));
    let (urls, room_servers) = servers(&args, redis).await;
    let tokens = sessions(&http, &urls[0], n + 2 * args.churn).await;
    let room = api::create_room(&http, &urls[0], &tokens[0]).await;
    let join = wire::frame(wire::join_room(&room, None), Some(1));
    let crowd = storm(&room_servers, &urls, &tokens[..n], join.clone(), args.connect_batch).await;
    println!(
        "  room:{room}  joined in {:.2} s ({:.2}x the overview), server RSS {:.1} KiB per connection ({:.2}x)",
        crowd.seconds,
        crowd.seconds / overview.seconds,
        crowd.rss_per_conn_kib,
        crowd.rss_per_conn_kib / overview.rss_per_conn_kib
    );
    settle(&http, &urls[0], &room, n).await;

    churn(&args, &urls, &tokens[n..], &join, &crowd.members).await;
    let leaving = Instant::now();
    let closes = leave_all(crowd.members).await;
    settle(&http, &urls[0], &room, 0).await;
    let empty = leaving.elapsed().as_secs_f64();
    let closed_4008 = closes.iter().filter(|c| **c == Some(4008)).count();
    println!("  all {n} leave      room empty after {empty:.2} s; connections closed with 4008: {closed_4008}");
    drop(room_servers);
    if closed_4008 > 0 {
        std::process::exit(1);
    }
}

async fn servers(args: &Crowd, redis: Option<(&str, &str)>) -> (Vec<String>, Vec<Spawned>) {
    let count = if redis.is_some() { 2 } else { 1 };
    let mut urls = Vec::new();
    let mut spawned = Vec::new();
    for i in 0..count {
        let n = 100 + i + if redis.is_some_and(|(_, p)| p.contains("list")) { 10 } else { 0 };
        let (url, s) = spawn_server(args.server_bin.clone(), redis, n, &SERVER_FLAGS).await;
        urls.push(url);
        spawned.push(s);
    }
    (urls, spawned)
}

/// `count` sessions, 64 created at a time.
async fn sessions(http: &reqwest::Client, url: &str, count: usize) -> Vec<String> {
    let gate = Arc::new(Semaphore::new(64));
    let made = (0..count).map(|i| {
        let gate = gate.clone();
        async move {
            let _permit = gate.acquire().await;
            api::session(http, url, &format!("p{i}")).await
        }
    });
    join_all(made).await
}

/// Connects one socket per token, in batches, each sending `join` and
/// counting everything it receives; returns once every join is answered.
async fn storm(servers: &[Spawned], urls: &[String], tokens: &[String], join: String, batch: usize) -> Storm {
    let rss = || servers.iter().filter_map(|s| rss_kib(s.child.id())).sum::<u64>();
    let before = rss();
    let start = Instant::now();
    let mut members = Vec::with_capacity(tokens.len());
    for chunk in tokens.chunks(batch.max(1)).enumerate().collect::<Vec<_>>() {
        let (c, chunk) = chunk;
        let mut ready = Vec::with_capacity(chunk.len());
        for (i, token) in chunk.iter().enumerate() {
            let url = &urls[(c * batch + i) % urls.len()];
            let ws_url = url.replace("http://", "ws://") + "/ws?token=" + token;
            let (member, joined) = member(ws_url, join.to_string());
            members.push(member);
            ready.push(joined);
        }
        for joined in ready {
            joined.await.expect("a member's join was answered");
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per = (rss().saturating_sub(before)) as f64 / tokens.len().max(1) as f64;
    Storm { seconds, rss_per_conn_kib: per, members }
}

/// A member: joins, then reads and counts until told to leave; answers
/// the close code it met, if any.
fn member(ws_url: String, join: String) -> (Member, tokio::sync::oneshot::Receiver<()>) {
    let received = Arc::new(AtomicU64::new(0));
    let (leave, mut leaving) = watch::channel(false);
    let (joined, is_joined) = tokio::sync::oneshot::channel();
    let count = received.clone();
    let task = tokio::spawn(async move {
        let mut ws = connect(&ws_url).await;
        let leave = wire::frame(wire::leave_room(&room_of(&join)), Some(2));
        ws.send(join).await.expect("join");
        let mut joined = Some(joined);
        let mut done_asking = false;
        loop {
            tokio::select! {
                text = ws.next_text() => {
                    let Some(text) = text else { return ws.close_code };
                    if text.starts_with(r#"{"event":"reply""#) {
                        let reply: Value = serde_json::from_str(&text).unwrap_or_default();
                        assert_eq!(reply["ok"], true, "{reply}");
                        match reply["id"].as_u64() {
                            Some(1) => drop(joined.take().map(|j| j.send(()))),
                            Some(2) => return ws.close_code,
                            _ => {}
                        }
                    } else {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                asked = leaving.changed(), if !done_asking => {
                    done_asking = true;
                    if asked.is_ok() {
                        let _ = ws.send(leave.clone()).await;
                    }
                }
            }
        }
    });
    (Member { received, leave, task }, is_joined)
}

/// Connects, trying again for a while: a run right after another may find
/// the loopback's ports still held by the last run's closed sockets.
async fn connect(ws_url: &str) -> Subscriber {
    let mut last = String::new();
    for _ in 0..100 {
        match Subscriber::connect(ws_url).await {
            Ok(ws) => return ws,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot connect: {last}");
}

/// The `"roomId"` of a join, as JSON text.
fn room_of(join: &str) -> String {
    let v: Value = serde_json::from_str(join).unwrap_or_default();
    v["data"]["roomId"].as_str().unwrap_or_default().to_string()
}

/// Others join and leave at `churn` per second each while the members
/// count what reaches them.
async fn churn(args: &Crowd, urls: &[String], tokens: &[String], join: &str, members: &[Member]) {
    let rate = args.churn.max(1);
    let mut inside: Vec<Member> = Vec::new();
    for (i, token) in tokens[..rate].iter().enumerate() {
        let ws_url = urls[i % urls.len()].replace("http://", "ws://") + "/ws?token=" + token;
        let (m, joined) = member(ws_url, join.to_string());
        joined.await.expect("churner joined");
        inside.push(m);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = |ms: &[Member]| ms.iter().map(|m| m.received.load(Ordering::Relaxed)).collect::<Vec<u64>>();
    let before = counts(members);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let total = rate * args.churn_seconds as usize;
    for step in 0..total {
        tick.tick().await;
        let gone = inside.remove(0);
        let _ = gone.leave.send(true);
        let token = &tokens[(rate + step) % tokens.len()];
        let ws_url = urls[step % urls.len()].replace("http://", "ws://") + "/ws?token=" + token;
        let (m, _joined) = member(ws_url, join.to_string());
        inside.push(m);
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = counts(members);
    let rates: Vec<f64> = before.iter().zip(&after).map(|(b, a)| (a - b) as f64 / seconds).collect();
    let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    let max = rates.iter().cloned().fold(0.0, f64::max);
    println!(
        "  churn              {rate} joins + {rate} leaves/s for {seconds:.1} s: each member received {mean:.1} messages/s (max {max:.1})"
    );
    for m in inside {
        let _ = m.leave.send(true);
    }
}

/// Every member asks to leave at the same moment; their close codes.
async fn leave_all(members: Vec<Member>) -> Vec<Option<u16>> {
    for m in &members {
        let _ = m.leave.send(true);
    }
    let ends = members.into_iter().map(|m| async move {
        match tokio::time::timeout(Duration::from_secs(60), m.task).await {
            Ok(Ok(code)) => code,
            _ => Some(0),
        }
    });
    join_all(ends).await
}

/// Waits until the room shows `connections`; the seconds it took.
async fn settle(http: &reqwest::Client, url: &str, room: &str, connections: usize) -> f64 {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        let answer = http.get(format!("{url}/api/rooms/{room}")).send().await;
        if let Ok(r) = answer
            && let Ok(meta) = r.json::<Value>().await
            && meta["connectionCount"].as_u64() == Some(connections as u64)
        {
            return start.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the room never showed {connections} connections");
}
