//! `roomcast-bench failover`: two servers on one Redis; a room owned by the
//! first, whose client holds the temporary lock and presents, watched from
//! the second. The first is killed with SIGKILL while requests for the room
//! go on through the second. Reports, per round, when the watcher's view
//! was clean (lock and presenter cleared, the dead connection gone), the
//! answers to the requests made meanwhile by status, and how long the
//! slowest took.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use roomcast_client::app::protocol::ClientEvent;
use roomcast_client::{Client, Socket};

use super::api::{create_room, session};
use super::{spawn_server, wire};

#[derive(Args)]
pub struct Failover {
    /// The Redis both servers share.
    #[arg(long)]
    redis_url: String,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The servers' heartbeat expiry.
    #[arg(long, default_value_t = 1.0)]
    node_ttl_seconds: f64,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// How long requests go on after the kill.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, token: &str) -> Ws {
    let ws_url = format!("{}/ws?token={token}", url.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(&ws_url).await.expect("ws connect").0
}

/// Sends a request and waits for its reply; returns the reply's `data`.
async fn request(ws: &mut Ws, id: u64, event: ClientEvent) -> Value {
    let event_name = event.name();
    ws.send(Message::Text(wire::frame(event, Some(id)).into())).await.expect("send");
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        if v["event"] == "reply" && v["id"] == id {
            assert_eq!(v["ok"], true, "{event_name}: {v}");
            return v["data"].clone();
        }
    }
    panic!("no reply to {event_name}");
}

/// What a round measured.
struct Round {
    clean_after: Option<Duration>,
    by_status: BTreeMap<u16, u64>,
    first_ok_after: Option<Duration>,
    slowest: Duration,
}

pub async fn run(args: Failover) {
    println!("roomcast-bench failover (node TTL {} s, {} rounds)", args.node_ttl_seconds, args.rounds);
    for round in 0..args.rounds {
        let r = one_round(&args, round).await;
        let codes: Vec<String> = r.by_status.iter().map(|(s, n)| format!("{n} x {s}")).collect();
        println!(
            "  round {round}: watcher clean after {}; requests during failover: {}; first 200 after {}; slowest {:.0} ms",
            r.clean_after.map_or("NEVER".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0)),
            codes.join(", "),
            r.first_ok_after.map_or("none".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0)),
            r.slowest.as_secs_f64() * 1000.0,
        );
        let failed = r.clean_after.is_none() || r.by_status.keys().any(|s| *s != 200 && *s != 503);
        if failed {
            std::process::exit(1);
        }
    }
}

async fn one_round(args: &Failover, round: usize) -> Round {
    let prefix = format!("bench-failover-{}-{round}", std::process::id());
    let ttl = args.node_ttl_seconds.to_string();
    let extra = ["--node-ttl-seconds", ttl.as_str()];
    let redis = Some((args.redis_url.as_str(), prefix.as_str()));
    let (url_a, mut a) = spawn_server(args.server_bin.clone(), redis, 2 * round, &extra).await;
    let (url_b, _b) = spawn_server(args.server_bin.clone(), redis, 2 * round + 1, &extra).await;
    let http = reqwest::Client::new();
    let token = session(&http, &url_a, "host").await;
    let id = create_room(&http, &url_a, &token).await;
    // The holder, through roomcast-client: what the watcher must see
    // cleared once its server is gone.
    let (holder, _events) = Socket::open(&Client::with_token(&url_a, &token));
    holder.join_room(&id).await.expect("holder joined");
    holder.lock(&id, "Uploading 1/3", 60).await.expect("lock");
    holder.present(&id).await.expect("presenter");
    // The second server knows the room before its watcher joins (so that
    // a server that does not look a room up still gets measured).
    while !http.get(format!("{url_b}/api/rooms/{id}")).send().await.is_ok_and(|r| r.status().is_success()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let watcher_token = session(&http, &url_b, "watcher").await;
    let mut watcher = connect(&url_b, &watcher_token).await;
    let mut state = request(&mut watcher, 1, wire::join_room(&id, None)).await["room"].clone();

    let killed = Instant::now();
    let _ = a.child.kill();
    let _ = a.child.wait();
    let until = killed + Duration::from_secs_f64(args.seconds);
    let requests = tokio::spawn(patch_until(http.clone(), url_b.clone(), token.clone(), id.clone(), killed, until));
    let clean_after = watch_until_clean(&mut watcher, &id, &mut state, killed, until).await;
    let (by_status, first_ok_after, slowest) = requests.await.expect("requests");
    drop(holder);
    Round { clean_after, by_status, first_ok_after, slowest }
}

/// PATCHes the room through the surviving server, one after another.
async fn patch_until(
    http: reqwest::Client,
    url: String,
    token: String,
    id: String,
    killed: Instant,
    until: Instant,
) -> (BTreeMap<u16, u64>, Option<Duration>, Duration) {
    let mut by_status = BTreeMap::new();
    let (mut first_ok, mut slowest) = (None, Duration::ZERO);
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let started = Instant::now();
        let status = http
            .patch(format!("{url}/api/rooms/{id}"))
            .bearer_auth(&token)
            .json(&json!({ "description": format!("during failover {n}") }))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        slowest = slowest.max(started.elapsed());
        *by_status.entry(status).or_insert(0) += 1;
        if status == 200 && first_ok.is_none() {
            first_ok = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (by_status, first_ok, slowest)
}

/// Applies the room's deltas until the dead server's lock, presenter and
/// connection are gone from the watcher's view.
async fn watch_until_clean(
    ws: &mut Ws,
    id: &str,
    state: &mut Value,
    killed: Instant,
    until: Instant,
) -> Option<Duration> {
    let clean = |s: &Value| s["metadataLocked"].is_null() && s["presenterSid"].is_null() && s["connectionCount"] == 1;
    while !clean(state) {
        let left = until.saturating_duration_since(Instant::now());
        let text = match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        };
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        if v["event"] == "room:update" && v["data"]["roomId"] == id {
            for (field, value) in v["data"].as_object().into_iter().flatten() {
                state[field] = value.clone();
            }
        }
    }
    Some(killed.elapsed())
}
