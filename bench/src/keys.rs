//! `roomcast-bench keys`: what exactly-once costs. `--writers` clients
//! each append one frame at a time to a room of their own, in rounds that
//! alternate between appends without a key and appends with a fresh
//! `Idempotency-Key` (a receipt looked up, then stored in the append's
//! transaction), on one server; each kind's appends per second and their
//! ratio, measured in the same run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use roomcast_client::app::api::FramesAppended;
use roomcast_client::{Client, new_key};
use serde_json::value::RawValue;

use super::api::{create_room, session};
use super::spawn_server;

#[derive(Args)]
pub struct Keys {
    /// Concurrent writers (one room each).
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Seconds of each round.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Rounds of each kind, alternating.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Run the server on this Redis instead of SQLite.
    #[arg(long)]
    redis_url: Option<String>,
}

/// One writer's append: with a fresh key, or without one.
async fn append(http: &reqwest::Client, client: &Client, room: &str, frame: &[Box<RawValue>], keyed: bool) {
    if keyed {
        client.append_frames_keyed(room, frame, &new_key()).await.expect("append");
        return;
    }
    let url = format!("{}/api/rooms/{room}/frames", client.base_url());
    let token = client.token().unwrap_or_default();
    let answer = http.post(url).bearer_auth(token).json(frame).send().await.expect("append");
    assert!(answer.status().is_success(), "append answered {}", answer.status());
    // Read like the client reads its answer, so both kinds cost the tool the same.
    let _: FramesAppended = answer.json().await.expect("the answer");
}

/// Appends per second over one round of `seconds`.
async fn round(http: &reqwest::Client, client: &Client, rooms: &[String], seconds: f64, keyed: bool) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let writers = rooms.iter().map(|room| {
        let done = done.clone();
        async move {
            let frame = [RawValue::from_string(r#"{"x":1}"#.to_string()).expect("json")];
            while Instant::now() < until {
                append(http, client, room, &frame, keyed).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    futures::future::join_all(writers).await;
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

pub async fn run(args: Keys) {
    let prefix = format!("bench-keys-{}", std::process::id());
    let redis = args.redis_url.as_deref().map(|u| (u, prefix.as_str()));
    let (url, server) = spawn_server(args.server_bin.clone(), redis, 0, &[]).await;
    let http = reqwest::Client::new();
    let token = session(&http, &url, "writer").await;
    let client = Client::with_http(&url, http.clone()).using_token(&token);
    let mut rooms = Vec::new();
    for _ in 0..args.writers {
        rooms.push(create_room(&http, &url, &token).await);
    }
    let (mut plain, mut keyed) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        plain.push(round(&http, &client, &rooms, args.seconds, false).await);
        keyed.push(round(&http, &client, &rooms, args.seconds, true).await);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let show = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" ");
    println!(
        "roomcast-bench keys: {} writers on {}, {} rounds of {} s each",
        args.writers,
        if redis.is_some() { "Redis" } else { "SQLite" },
        args.rounds,
        args.seconds
    );
    println!("  without a key    appends/s {} (mean {:.0})", show(&plain), mean(&plain));
    println!("  with a key       appends/s {} (mean {:.0})", show(&keyed), mean(&keyed));
    println!("  keyed / plain    {:.2}", mean(&keyed) / mean(&plain));
    drop(server);
}
