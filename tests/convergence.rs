//! Convergence: 20 clients do random operations (create, patch, delete,
//! join, leave, lock, frames, chat) with random disconnects for a while;
//! at quiet, every client's store equals `GET /api/rooms` exactly. Once as
//! is, once with a server restart in the middle, once with the clients
//! spread over two servers sharing one Redis (where both servers' lists
//! must equal every store), and once over three servers of which one is
//! killed with SIGKILL midway (its clients move to the others, disconnects
//! go on through the failover window; both survivors' lists, connection
//! counts included, must equal every store).
//!
//! Each client is `roomcast-client`: its `Socket` keeps the store (the
//! whole list: the first page, the rest over REST, then deltas by the
//! delta rule, re-read on a gap, joined again after every reconnect), so
//! this test is also the client's: a store that drifts fails it.
//! `ROOMCAST_CONVERGENCE_SECONDS` sets the duration (default 60).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{RedisTarget, TestServer};
use rand::Rng;
use rand::seq::IndexedRandom;
use roomcast_client::app::api::{CreateRoom, PatchRoom, RoomQuery};
use roomcast_client::app::model::RoomMetadata;
use roomcast_client::{Client, Event, Socket};
use serde_json::value::RawValue;
use tokio::sync::RwLock;
use tokio::sync::mpsc::UnboundedReceiver;

const CLIENTS: usize = 20;

fn duration() -> Duration {
    let secs = std::env::var("ROOMCAST_CONVERGENCE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// One simulated user: a session, its client on one server and its socket.
struct User {
    name: String,
    token: String,
    port: u16,
    client: Client,
    socket: Socket,
    events: UnboundedReceiver<Event>,
    connected: bool,
    joined: Option<String>,
}

impl User {
    /// Opens the user's socket on `port` and joins the whole room list.
    async fn open(name: String, token: String, port: u16) -> User {
        let client = Client::with_token(&format!("http://127.0.0.1:{port}"), &token);
        let (socket, events) = Socket::open(&client);
        let mut user = User { name, token, port, client, socket, events, connected: false, joined: None };
        user.join_overview().await;
        user
    }

    /// Joins the room list, again until it is joined (the server may be
    /// restarting; once joined, the socket joins again by itself).
    async fn join_overview(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.socket.join_overview(RoomQuery::default()).await.is_err() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reads the socket's news: whether it is connected.
    fn follow(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            match event {
                Event::Connected => self.connected = true,
                Event::Disconnected { .. } => self.connected = false,
                _ => {}
            }
        }
    }

    fn rooms(&self) -> HashMap<String, RoomMetadata> {
        self.socket.store().rooms().into_iter().map(|r| (r.id.clone(), r)).collect()
    }
}

fn frame(round: usize) -> Box<RawValue> {
    RawValue::from_string(format!(r#"{{"round":{round}}}"#)).expect("json")
}

/// One random operation; failures (a room deleted meanwhile, a lock
/// taken, a server restarting) are part of the game and ignored.
async fn random_op(user: &mut User, round: usize) {
    let ids: Vec<String> = user.socket.store().rooms().into_iter().map(|r| r.id).collect();
    let pick = ids.choose(&mut rand::rng()).cloned();
    let choice = rand::rng().random_range(0..100);
    let (client, socket) = (&user.client, &user.socket);
    match (choice, pick) {
        (0..10, _) | (_, None) => {
            let req = CreateRoom { id: Some(format!("{}-{round}", user.name)), ..Default::default() };
            let _ = client.create_room(&req).await;
        }
        (10..30, Some(id)) => {
            let patch = if rand::rng().random_bool(0.5) {
                PatchRoom { description: Some(Some(format!("{} was here {round}", user.name))), ..Default::default() }
            } else {
                PatchRoom { hidden: Some(rand::rng().random_bool(0.5)), ..Default::default() }
            };
            let _ = client.patch_room(&id, &patch).await;
        }
        (30..35, Some(id)) => {
            let _ = client.delete_room(&id).await;
        }
        (35..50, Some(id)) => {
            let _ = client.append_frames(&id, &[frame(round)]).await;
        }
        (50..65, Some(id)) => {
            if let Some(old) = user.joined.take() {
                let _ = socket.leave_room(&old).await;
            }
            if socket.join_room(&id).await.is_ok() {
                user.joined = Some(id);
            }
        }
        (65..75, _) => {
            if let Some(room) = &user.joined {
                let _ = if rand::rng().random_bool(0.5) {
                    socket.lock(room, &format!("op {round}"), 30).await
                } else {
                    socket.unlock(room).await
                };
            }
        }
        (75..85, _) => {
            if let Some(room) = &user.joined {
                let _ = socket.send_chat(room, &format!("hi {round}")).await;
            }
        }
        (85..92, _) => socket.drop_connection(), // it reconnects by itself
        _ => {
            if let Some(room) = user.joined.take() {
                let _ = socket.leave_room(&room).await;
            }
        }
    }
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
    let mut users = Vec::new();
    for i in 0..CLIENTS {
        let name = format!("u{i}");
        let token = server.read().await.session(&name).await;
        users.push(User::open(name, token, ports[i % ports.len()]).await);
    }
    let total = duration();
    let stop = Arc::new(AtomicBool::new(false));
    let victim_dead = Arc::new(AtomicBool::new(false));
    let restarter = {
        let (server, victim, stop, victim_dead) = (server.clone(), victim.clone(), stop.clone(), victim_dead.clone());
        tokio::spawn(async move {
            if restart_midway || victim_port.is_some() {
                tokio::time::sleep(total / 2).await;
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match victim.write().await.as_mut() {
                    Some(victim) => {
                        victim.kill();
                        victim_dead.store(true, Ordering::Relaxed);
                    }
                    None => server.write().await.restart().await,
                }
            }
        })
    };
    let start = Instant::now();
    let workers = users.into_iter().map(|mut user| {
        let (survivors, victim_dead) = (survivors.clone(), victim_dead.clone());
        async move {
            let mut round = 0;
            while start.elapsed() < total {
                round += 1;
                user.follow();
                if Some(user.port) == victim_port && victim_dead.load(Ordering::Relaxed) {
                    // Its server was killed: go to another one, as a load
                    // balancer would.
                    let port = *survivors.choose(&mut rand::rng()).unwrap_or(&survivors[0]);
                    user = User::open(user.name, user.token, port).await;
                    continue;
                }
                random_op(&mut user, round).await;
                tokio::time::sleep(Duration::from_millis(rand::rng().random_range(20..200))).await;
            }
            user
        }
    });
    let mut users = futures::future::join_all(workers).await;
    stop.store(true, Ordering::Relaxed);
    restarter.await.unwrap();

    // Quiet: everyone on a server still up, nothing more happens.
    for user in &mut users {
        if Some(user.port) == victim_port {
            let (name, token) = (user.name.clone(), user.token.clone());
            *user = User::open(name, token, survivors[0]).await;
        }
    }
    // Timers (seat grace, host migration, lock expiry) may still change a
    // room at quiet, and a socket may still be reconnecting; those changes
    // reach every store too. Compare until equal.
    let mut attempts = 0;
    let truth = loop {
        attempts += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let truth = room_list(&server.read().await.url("")).await;
        let peer_list = match &peer {
            Some(peer) => Some(room_list(&peer.url("")).await),
            None => None,
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut differing: Vec<&str> = users.iter().filter(|u| u.rooms() != truth).map(|u| u.name.as_str()).collect();
        if peer_list.as_ref().is_some_and(|l| *l != truth) {
            differing.push("the second server's GET /api/rooms");
        }
        if differing.is_empty() {
            break truth;
        }
        assert!(attempts < 40, "stores still differ from GET /api/rooms: {differing:?}");
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

/// Every room of `GET /api/rooms`, page after page.
async fn room_list(base: &str) -> HashMap<String, RoomMetadata> {
    let client = Client::new(base);
    let mut rooms = HashMap::new();
    let mut after = None;
    loop {
        let query = RoomQuery { after, limit: Some(500), ..Default::default() };
        let page = client.rooms(&query).await.expect("the room list");
        rooms.extend(page.rooms.into_iter().map(|r| (r.id.clone(), r)));
        match page.next {
            Some(next) => after = Some(next),
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
