//! Durability: streams of writes from 8 writers at once (so that writes
//! share commits), SIGKILL at a random moment, a restart; every
//! acknowledged write is there. `ROOMCAST_CRASH_ROUNDS` rounds (default
//! 20) on one database file.

mod common;

use std::time::Duration;

use common::TestServer;
use rand::Rng;
use serde_json::json;

#[derive(Default)]
struct Acked {
    /// Rooms whose creation was answered 201.
    rooms: Vec<String>,
    /// Per room: descriptions sent, in order, and how many were answered.
    descriptions: Vec<(String, Vec<String>, usize)>,
    /// Per room: the frame count of the last answered append.
    frames: Vec<(String, u64)>,
}

const WRITERS: usize = 8;

impl Acked {
    fn absorb(&mut self, other: Acked) {
        self.rooms.extend(other.rooms);
        self.descriptions.extend(other.descriptions);
        self.frames.extend(other.frames);
    }
}

/// Writes until the server stops answering; returns what was acknowledged.
async fn write_until_error(api: common::Api, round: usize, writer: usize) -> Acked {
    let mut acked = Acked::default();
    write_into(api, round, writer, &mut acked).await;
    acked
}

async fn write_into(api: common::Api, round: usize, writer: usize, acked: &mut Acked) {
    for i in 0.. {
        let id = format!("r{round}-w{writer}-{i}");
        let (status, _) = api.post("/api/rooms", json!({ "id": id })).await;
        if status != 201 {
            return;
        }
        acked.rooms.push(id.clone());
        let mut sent = Vec::new();
        let mut answered = 0;
        for d in 0..3 {
            let text = format!("{id} description {d}");
            sent.push(text.clone());
            let (status, _) = api.patch(&format!("/api/rooms/{id}"), json!({ "description": text })).await;
            if status != 200 {
                acked.descriptions.push((id, sent, answered));
                return;
            }
            answered += 1;
        }
        acked.descriptions.push((id.clone(), sent, answered));
        let (status, body) = api.post(&format!("/api/rooms/{id}/frames"), json!([i, { "round": round }])).await;
        if status != 200 {
            return;
        }
        acked.frames.push((id, body["frameCount"].as_u64().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill() {
    let rounds: usize = std::env::var("ROOMCAST_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    // Room eviction (at `--max-rooms`) would delete acknowledged rooms on a
    // fast disk: this test is about crashes, so it never evicts.
    let mut server = TestServer::start_with(&["--max-rooms", "1000000"]).await;
    let token = server.session("writer").await;
    let mut acked = Acked::default();
    let mut lost = 0;
    for round in 0..rounds {
        let kill_after = Duration::from_millis(rand::rng().random_range(50..600));
        {
            let writes = (0..WRITERS).map(|w| tokio::spawn(write_until_error(server.api(Some(&token)), round, w)));
            let writes = futures::future::join_all(writes);
            tokio::pin!(writes);
            tokio::select! {
                _ = &mut writes => panic!("the writers stopped before the kill"),
                _ = tokio::time::sleep(kill_after) => {}
            }
            server.kill();
            // Let the writers see the dead server and stop.
            for written in writes.await {
                acked.absorb(written.expect("writer"));
            }
        }
        server.restart().await;

        let api = server.api(Some(&token));
        assert_eq!(api.get("/api/session").await.0, 200, "the session survived round {round}");
        for id in &acked.rooms {
            if api.get(&format!("/api/rooms/{id}")).await.0 != 200 {
                lost += 1;
            }
        }
        for (id, sent, answered) in &acked.descriptions {
            let (_, room) = api.get(&format!("/api/rooms/{id}")).await;
            let now = room["description"].as_str().map(str::to_string);
            if *answered > 0 {
                // The last answered one, or a later one the server took
                // before it died.
                let allowed = &sent[answered - 1..];
                if !now.as_ref().is_some_and(|d| allowed.contains(d)) {
                    lost += 1;
                }
            }
        }
        for (id, count) in &acked.frames {
            let (_, room) = api.get(&format!("/api/rooms/{id}")).await;
            if room["frameCount"].as_u64().unwrap_or(0) < *count {
                lost += 1;
            }
        }
    }
    println!(
        "crash test: {rounds} SIGKILLs, {WRITERS} writers, {} rooms, {} descriptions, {} appends acknowledged, {lost} lost",
        acked.rooms.len(),
        acked.descriptions.iter().map(|d| d.2).sum::<usize>(),
        acked.frames.len()
    );
    assert_eq!(lost, 0);
    assert!(acked.rooms.len() >= rounds, "writes went through in every round");
}
