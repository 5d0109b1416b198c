//! Convergence: 20 clients do random operations (create, patch, delete,
//! join, leave, lock, frames, chat) with random disconnects for a while;
//! at quiet, every client's store, kept with the shared delta rule, equals
//! `GET /api/rooms` exactly. Once as is, once with a server restart in the
//! middle, once with the clients spread over two servers sharing one Redis
//! (where both servers' lists must equal every store), and once over three
//! servers of which one is killed with SIGKILL midway (its clients move to
//! the others, disconnects go on through the failover window; both
//! survivors' lists, connection counts included, must equal every store).
//! `ROOMCAST_CONVERGENCE_SECONDS` sets the duration (default 60).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use app::delta::{Decision, RoomDelta, apply_to};
use app::model::RoomMetadata;
use common::{RedisTarget, TestServer, Ws};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use tokio::sync::RwLock;

const CLIENTS: usize = 20;

fn duration() -> Duration {
    let secs = std::env::var("ROOMCAST_CONVERGENCE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// A client's view, kept the way the browser keeps it.
struct Client {
    /// The server this client talks to.
    port: u16,
    token: String,
    name: String,
    rooms: HashMap<String, RoomMetadata>,
    ws: Option<Ws>,
    joined: Option<String>,
}

impl Client {
    async fn connect(&mut self, port: u16) {
        let url = format!("ws://127.0.0.1:{port}/ws?token={}", self.token);
        let Ok(Ok((stream, _))) =
            tokio::time::timeout(Duration::from_secs(2), tokio_tungstenite::connect_async(&url)).await
        else {
            self.ws = None;
            return;
        };
        let mut ws = Ws::from_stream(stream);
        let Some(reply) = ws.try_request("join:overview", json!({})).await else {
            self.ws = None;
            return;
        };
        if reply["ok"] == true {
            let rooms: Vec<RoomMetadata> = serde_json::from_value(reply["data"]["rooms"].clone()).unwrap();
            self.rooms = rooms.into_iter().map(|r| (r.id.clone(), r)).collect();
            // The snapshot is the first page; the rest comes over REST
            // (deltas arriving meanwhile are applied after it by version).
            if let Some(after) = reply["data"]["next"].as_str() {
                let api = format!("http://127.0.0.1:{port}");
                for (id, room) in pages_from(&api, Some(after.to_string())).await {
                    self.rooms.entry(id).or_insert(room);
                }
            }
        }
        self.joined = None;
        self.ws = Some(ws);
        self.drain_backlog(port).await;
    }

    /// Applies what arrived while waiting for replies.
    async fn drain_backlog(&mut self, port: u16) {
        let Some(ws) = self.ws.as_mut() else { return };
        let events: Vec<Value> = ws.backlog.drain(..).collect();
        for event in events {
            self.apply(event, port).await;
        }
    }

    async fn apply(&mut self, event: Value, port: u16) {
        match event["event"].as_str() {
            Some("room:update") => {
                let delta: RoomDelta = serde_json::from_value(event["data"].clone()).unwrap();
                if apply_to(&mut self.rooms, &delta) == Decision::Resync {
                    self.resync(&delta.room_id, port).await;
                }
            }
            Some("room:delete") => {
                let id = event["data"]["roomId"].as_str().unwrap();
                self.rooms.remove(id);
                if self.joined.as_deref() == Some(id) {
                    self.joined = None;
                }
            }
            _ => {}
        }
    }

    async fn resync(&mut self, id: &str, port: u16) {
        let url = format!("http://127.0.0.1:{port}/api/rooms/{id}");
        match reqwest::get(&url).await {
            Ok(r) if r.status() == 200 => {
                let room: RoomMetadata = r.json().await.unwrap();
                self.rooms.insert(room.id.clone(), room);
            }
            Ok(r) if r.status() == 404 => {
                self.rooms.remove(id);
            }
            _ => {}
        }
    }

    /// Reads whatever is there for a moment.
    async fn pump(&mut self, port: u16, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let Some(ws) = self.ws.as_mut() else { return };
            match ws.read(left).await {
                Some(event) => self.apply(event, port).await,
                None => {
                    if !ws.is_open() {
                        self.ws = None;
                    }
                    return;
                }
            }
        }
    }
}

async fn random_op(client: &mut Client, port: u16, round: usize) {
    let api_base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ids: Vec<String> = client.rooms.keys().cloned().collect();
    let pick = ids.choose(&mut rand::rng()).cloned();
    let choice = rand::rng().random_range(0..100);
    let auth = format!("Bearer {}", client.token);
    match (choice, pick) {
        (0..10, _) | (_, None) => {
            let id = format!("{}-{round}", client.name);
            let _ = http
                .post(format!("{api_base}/api/rooms"))
                .header("authorization", &auth)
                .json(&json!({ "id": id }))
                .send()
                .await;
        }
        (10..30, Some(id)) => {
            let body = if rand::rng().random_bool(0.5) {
                json!({ "description": format!("{} was here {round}", client.name) })
            } else {
                json!({ "hidden": rand::rng().random_bool(0.5) })
            };
            let _ = http
                .patch(format!("{api_base}/api/rooms/{id}"))
                .header("authorization", &auth)
                .json(&body)
                .send()
                .await;
        }
        (30..35, Some(id)) => {
            let _ = http.delete(format!("{api_base}/api/rooms/{id}")).header("authorization", &auth).send().await;
        }
        (35..50, Some(id)) => {
            let _ = http
                .post(format!("{api_base}/api/rooms/{id}/frames"))
                .header("authorization", &auth)
                .json(&json!([{ "round": round }]))
                .send()
                .await;
        }
        (50..65, Some(id)) => {
            if let Some(ws) = client.ws.as_mut() {
                if let Some(old) = client.joined.take() {
                    ws.try_request("leave:room", json!({ "roomId": old })).await;
                }
                if let Some(reply) = ws.try_request("join:room", json!({ "roomId": id })).await
                    && reply["ok"] == true
                {
                    client.joined = Some(id);
                }
            }
        }
        (65..75, _) => {
            if let (Some(ws), Some(room)) = (client.ws.as_mut(), client.joined.clone()) {
                let event = if rand::rng().random_bool(0.5) { "lock:acquire" } else { "lock:release" };
                ws.try_request(event, json!({ "roomId": room, "msg": format!("op {round}") })).await;
            }
        }
        (75..85, _) => {
            if let (Some(ws), Some(room)) = (client.ws.as_mut(), client.joined.clone()) {
                ws.try_request("chat:send", json!({ "roomId": room, "text": format!("hi {round}") })).await;
            }
        }
        (85..92, _) => {
            // Disconnect; reconnect later.
            if let Some(ws) = client.ws.take() {
                ws.close().await;
            }
        }
        _ => {
            if let (Some(ws), Some(room)) = (client.ws.as_mut(), client.joined.take()) {
                ws.try_request("leave:room", json!({ "roomId": room })).await;
            }
        }
    }
    client.drain_backlog(port).await;
}

/// How a run is disturbed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    OneServer,
    RestartMidway,
    TwoServers,
    /// Three servers on one Redis; the third is killed midway.
    KillMidway,
}

async fn run(mode: Mode) {
    let args = ["--rate-burst", "1000"];
    let restart_midway = mode == Mode::RestartMidway;
    let two_servers = matches!(mode, Mode::TwoServers | Mode::KillMidway);
    let redis = two_servers.then(RedisTarget::required);
    let (server, peer) = if let Some(redis) = &redis {
        let a = TestServer::start_on_redis(Some(redis.clone()), &args).await;
        let b = TestServer::start_on_redis(Some(redis.clone()), &args).await;
        (a, Some(b))
    } else {
        (TestServer::start_with(&args).await, None)
    };
    let victim = match (&redis, mode) {
        (Some(redis), Mode::KillMidway) => Some(TestServer::start_on_redis(Some(redis.clone()), &args).await),
        _ => None,
    };
    let victim_port = victim.as_ref().map(|v| v.port);
    let victim = Arc::new(RwLock::new(victim));
    let server = Arc::new(RwLock::new(server));
    let mut ports = vec![server.read().await.port];
    ports.extend(peer.as_ref().map(|p| p.port));
    let survivors = ports.clone();
    ports.extend(victim_port);
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let name = format!("u{i}");
        let token = server.read().await.session(&name).await;
        let port = ports[i % ports.len()];
        clients.push(Client { port, token, name, rooms: HashMap::new(), ws: None, joined: None });
    }
    let total = duration();
    let stop = Arc::new(AtomicBool::new(false));
    let restarter = {
        let server = server.clone();
        let victim = victim.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            if restart_midway || victim_port.is_some() {
                tokio::time::sleep(total / 2).await;
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match victim.write().await.as_mut() {
                    Some(victim) => victim.kill(),
                    None => server.write().await.restart().await,
                }
            }
        })
    };
    let start = Instant::now();
    let workers = clients.into_iter().map(|mut client| {
        let survivors = survivors.clone();
        async move {
            let mut round = 0;
            while start.elapsed() < total {
                round += 1;
                let port = client.port;
                if client.ws.is_none() {
                    client.connect(port).await;
                    if client.ws.is_none() {
                        // Its server was killed: go to another one, as a load
                        // balancer would.
                        if Some(port) == victim_port {
                            client.port = *survivors.choose(&mut rand::rng()).unwrap_or(&survivors[0]);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
                random_op(&mut client, port, round).await;
                let pause = Duration::from_millis(rand::rng().random_range(20..200));
                client.pump(port, pause).await;
            }
            client
        }
    });
    let mut clients = futures::future::join_all(workers).await;
    stop.store(true, Ordering::Relaxed);
    restarter.await.unwrap();

    // Quiet: everyone connected (to a server still up), nothing more
    // happens, all events read.
    for client in &mut clients {
        if Some(client.port) == victim_port {
            client.port = survivors[0];
            client.ws = None;
        }
        if client.ws.is_none() {
            client.connect(client.port).await;
        }
    }
    // Timers (seat grace, host migration, lock expiry) may still change a
    // room at quiet; those changes reach every client too. Compare until
    // equal, reading everything sent before each comparison.
    let mut attempts = 0;
    let truth = loop {
        attempts += 1;
        for client in &mut clients {
            client.pump(client.port, Duration::from_millis(200)).await;
        }
        let truth = room_list(&server.read().await.api(None)).await;
        let peer_list = match &peer {
            Some(peer) => Some(room_list(&peer.api(None)).await),
            None => None,
        };
        for client in &mut clients {
            client.pump(client.port, Duration::from_millis(100)).await;
        }
        let mut differing: Vec<&str> = clients.iter().filter(|c| c.rooms != truth).map(|c| c.name.as_str()).collect();
        if peer_list.as_ref().is_some_and(|l| *l != truth) {
            differing.push("the second server's GET /api/rooms");
        }
        if differing.is_empty() {
            break truth;
        }
        assert!(attempts < 20, "stores still differ from GET /api/rooms: {differing:?}");
    };
    assert!(truth.len() > 3, "the run made rooms: {}", truth.len());
    println!(
        "convergence{}{}: {CLIENTS} clients for {total:?}, {} rooms at quiet, every store equal to GET /api/rooms",
        if restart_midway { " (restart midway)" } else { "" },
        match mode {
            Mode::TwoServers => " (two servers on one Redis)",
            Mode::KillMidway => " (three servers on one Redis, one killed midway)",
            _ => "",
        },
        truth.len()
    );
}

async fn room_list(api: &common::Api) -> HashMap<String, RoomMetadata> {
    pages_from(&api.base, None).await
}

/// Every room of `GET /api/rooms`, page after page from `after`.
async fn pages_from(base: &str, mut after: Option<String>) -> HashMap<String, RoomMetadata> {
    let mut rooms = HashMap::new();
    loop {
        let mut url = format!("{base}/api/rooms?limit=500");
        if let Some(cursor) = &after {
            url.push_str(&format!("&after={cursor}"));
        }
        let Ok(answer) = reqwest::get(&url).await else { return rooms };
        let Ok(page) = answer.json::<Value>().await else { return rooms };
        for room in serde_json::from_value::<Vec<RoomMetadata>>(page["rooms"].clone()).unwrap_or_default() {
            rooms.insert(room.id.clone(), room);
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return rooms,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_converge() {
    run(Mode::OneServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_converge_across_a_restart() {
    run(Mode::RestartMidway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_converge_across_two_servers() {
    run(Mode::TwoServers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_converge_across_a_server_killed_midway() {
    run(Mode::KillMidway).await;
}
