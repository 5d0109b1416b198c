//! `roomcast-bench writes`: durable writes per second. `--writers`
//! clients each PATCH the description of a room of their own, one request
//! after another, for `--seconds`; every answer is a write on disk (SQLite
//! with `synchronous=FULL` unless the server runs on Redis).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use roomcast_client::Client;
use roomcast_client::app::api::PatchRoom;

use super::api::{create_room, session};
use super::{cpu_millis, spawn_server};

#[derive(Args)]
pub struct Writes {
    /// Concurrent writers (one room each).
    #[arg(long, default_value_t = 32)]
    writers: usize,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Extra flags for the spawned server, e.g. `--write-batch=1`.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
}

pub async fn run(args: Writes) {
    let extra: Vec<&str> = args.server_arg.iter().map(String::as_str).collect();
    let (url, server) = spawn_server(args.server_bin.clone(), None, 0, &extra).await;
    let pid = server.child.id().to_string();
    let http = reqwest::Client::new();
    let token = session(&http, &url, "writer").await;
    let mut rooms = Vec::new();
    for _ in 0..args.writers {
        rooms.push(create_room(&http, &url, &token).await);
    }
    let cpu_before = (cpu_millis(&pid), cpu_millis("self"));
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let client = Client::with_token(&url, &token);
    let writers = rooms.into_iter().map(|room| {
        let (client, done) = (client.clone(), done.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let patch = PatchRoom { description: Some(Some(format!("write {n}"))), ..Default::default() };
                client.patch_room(&room, &patch).await.expect("patch");
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    for w in futures::future::join_all(writers).await {
        w.expect("writer");
    }
    let total = done.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, (cpu_millis(&pid), cpu_millis("self"))) {
        ((Some(s0), Some(t0)), (Some(s1), Some(t1))) => {
            format!("; CPU server {:.1} s, load tool {:.1} s", (s1 - s0) as f64 / 1000.0, (t1 - t0) as f64 / 1000.0)
        }
        _ => String::new(),
    };
    println!(
        "roomcast-bench writes: {} writers{}, {total} durable writes in {secs:.1} s: {:.0} writes/s{cpu}",
        args.writers,
        if extra.is_empty() { String::new() } else { format!(" (server {})", extra.join(" ")) },
        total as f64 / secs
    );
    drop(server);
}
