//! `list`: a server with many rooms. Creates them through the REST API,
//! then measures what a visitor of the room list costs: the first HTML of
//! `/rooms`, the `join:overview` replies (every room; a window), the whole
//! list paged over REST (what one unpaged answer would weigh, measured in
//! the same run), search latency over REST and over the socket, memory per
//! room, and how soon a new room shows in a window watching for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use roomcast_client::app::api::{RoomQuery, RoomSort};

use crate::subscriber::Subscriber;
use crate::wire;
use crate::{api, rss_kib, spawn_server};

#[derive(Args)]
pub struct List {
    #[arg(long, default_value_t = 100_000)]
    rooms: usize,
    /// Searches timed, over REST and as many over the socket.
    #[arg(long, default_value_t = 200)]
    searches: usize,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Two servers on this Redis: rooms made through the first, the list
    /// read from the second.
    #[arg(long)]
    redis_url: Option<String>,
    /// Keeps the servers running this long after the figures (to open a
    /// browser on them); their URLs are printed.
    #[arg(long, default_value_t = 0)]
    hold_seconds: u64,
}

/// Words of the descriptions: each room has two, so a word matches about
/// 2% of the rooms.
const WORDS: [&str; 100] = [
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor", "island", "jade", "kelp", "lagoon",
    "maple", "nectar", "orbit", "prairie", "quartz", "reef", "sierra", "tundra", "umber", "valley", "willow", "xenon",
    "yarrow", "zephyr", "atlas", "basalt", "canyon", "dune", "estuary", "fern", "glacier", "heath", "inlet", "jungle",
    "karst", "loch", "mesa", "nimbus", "oasis", "peak", "quarry", "ridge", "savanna", "tide", "upland", "vista",
    "wetland", "yonder", "zenith", "alder", "bluff", "cove", "dell", "eddy", "firth", "gully", "hollow", "isle",
    "jetty", "knoll", "ledge", "moor", "notch", "outcrop", "pond", "quay", "rapids", "shoal", "thicket", "urchin",
    "vale", "wharf", "yew", "zinc", "acorn", "bramble", "clover", "daisy", "elm", "foxglove", "gorse", "hazel", "iris",
    "juniper", "laurel", "mallow", "nettle", "oak", "poppy", "rowan", "sorrel", "thistle", "violet", "wisteria",
    "aspen", "beech", "cypress", "dogwood",
];

pub async fn run(args: List) {
    let prefix = format!("list-{}", std::process::id());
    let redis = args.redis_url.as_deref().map(|u| (u, prefix.as_str()));
    let max_rooms = (args.rooms + 100).to_string();
    let flags = ["--max-rooms", &max_rooms, "--max-connections", "100000"];
    let mut urls = Vec::new();
    let mut servers = Vec::new();
    for i in 0..if redis.is_some() { 2 } else { 1 } {
        let (url, s) = spawn_server(args.server_bin.clone(), redis, 200 + i, &flags).await;
        urls.push(url);
        servers.push(s);
    }
    let reader = urls.last().cloned().unwrap_or_default();
    let rss = || servers.iter().filter_map(|s| rss_kib(s.child.id())).sum::<u64>();
    let http = reqwest::Client::new();
    let token = api::session(&http, &urls[0], "lister").await;
    println!("roomcast-bench list: {} rooms on {} server(s)", args.rooms, urls.len());

    let before = rss();
    let made = create_rooms(&http, &urls[0], &token, args.rooms).await;
    wait_listed(&http, &reader, args.rooms).await;
    let after = rss();
    println!("  created            {} rooms in {:.1} s ({:.0}/s)", args.rooms, made, args.rooms as f64 / made);
    println!(
        "  server RSS         {before} KiB before, {after} KiB after: {:.2} KiB per room",
        after.saturating_sub(before) as f64 / args.rooms.max(1) as f64
    );

    let html = http.get(format!("{reader}/rooms")).send().await.expect("GET /rooms").bytes().await.expect("html");
    println!("  GET /rooms         {} bytes of HTML (uncompressed)", html.len());
    let ws_url = reader.replace("http://", "ws://") + "/ws?token=" + &token;
    let plain = ws_reply(&ws_url, wire::frame(wire::join_overview(RoomQuery::default()), Some(1))).await;
    let newest = RoomQuery { sort: Some(RoomSort::Newest), limit: Some(50), ..Default::default() };
    let window = wire::frame(wire::join_overview(newest), Some(1));
    let windowed = ws_reply(&ws_url, window).await;
    println!(
        "  join:overview      {} bytes for every room (a first page of {}, total {}), {} bytes for a window of 50",
        plain.0.len(),
        plain.1["data"]["rooms"].as_array().map_or(0, Vec::len),
        plain.1["data"]["total"],
        windowed.0.len()
    );
    let (dump_bytes, dump_rooms, dump_secs) = page_through(&http, &reader).await;
    println!(
        "  whole list         {dump_rooms} rooms, {dump_bytes} bytes of JSON in pages of 500 ({dump_secs:.2} s): the size of one unpaged answer"
    );
    search(&http, &reader, &ws_url, args.searches).await;
    live_window(&http, &urls[0], &token, &ws_url).await;
    if args.hold_seconds > 0 {
        println!("  holding            {} for {} s", urls.join(", "), args.hold_seconds);
        tokio::time::sleep(Duration::from_secs(args.hold_seconds)).await;
    }
}

/// Creates `count` rooms, 32 requests at a time; the seconds it took.
async fn create_rooms(http: &reqwest::Client, url: &str, token: &str, count: usize) -> f64 {
    let start = Instant::now();
    let gate = Arc::new(Semaphore::new(32));
    let made = (0..count).map(|i| {
        let gate = gate.clone();
        async move {
            let _permit = gate.acquire().await;
            let description = format!("{} {} meeting {i}", WORDS[i % 100], WORDS[(i / 100) % 100]);
            let body = json!({ "id": format!("bench-{i:06}"), "description": description });
            let answer = http.post(format!("{url}/api/rooms")).bearer_auth(token).json(&body).send().await;
            let status = answer.map(|a| a.status().as_u16()).unwrap_or(0);
            assert_eq!(status, 201, "creating room {i}");
        }
    });
    join_all(made).await;
    start.elapsed().as_secs_f64()
}

/// Waits until the reading server lists every room.
async fn wait_listed(http: &reqwest::Client, url: &str, count: usize) {
    for _ in 0..600 {
        let page: Value = match http.get(format!("{url}/api/rooms?limit=1")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if page["total"].as_u64() >= Some(count as u64) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the list never reached {count} rooms");
}

/// Sends one request on a fresh socket; the reply's text and value.
async fn ws_reply(ws_url: &str, request: String) -> (String, Value) {
    let mut ws = Subscriber::connect(ws_url).await.expect("connect");
    ws.send(request).await.expect("send");
    loop {
        let text = ws.next_text().await.expect("a reply");
        if text.starts_with(r#"{"event":"reply""#) {
            let value = serde_json::from_str(&text).unwrap_or_default();
            return (text.to_string(), value);
        }
    }
}

/// Every room through `GET /api/rooms` pages: bytes, rooms, seconds.
async fn page_through(http: &reqwest::Client, url: &str) -> (usize, usize, f64) {
    let start = Instant::now();
    let (mut bytes, mut rooms) = (0, 0);
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("{url}/api/rooms?limit=500");
        if let Some(cursor) = &after {
            path.push_str(&format!("&after={cursor}"));
        }
        let body = http.get(path).send().await.expect("page").bytes().await.expect("page body");
        let page: Value = serde_json::from_slice(&body).expect("page json");
        bytes += page["rooms"].to_string().len();
        rooms += page["rooms"].as_array().map_or(0, Vec::len);
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return (bytes, rooms, start.elapsed().as_secs_f64()),
        }
    }
}

fn median_and_p95(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms.get(((ms.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    (at(0.5), at(0.95))
}

/// Times searches for words, for an id and for text in every room.
async fn search(http: &reqwest::Client, url: &str, ws_url: &str, count: usize) {
    let terms: Vec<String> = (0..count)
        .map(|i| match i % 4 {
            0 => format!("bench-{:06}", i * 7919 % 100_000),
            1 => "meeting".to_string(),
            _ => WORDS[i * 37 % 100].to_string(),
        })
        .collect();
    let mut rest_ms = Vec::new();
    let mut matched = 0u64;
    for term in &terms {
        let start = Instant::now();
        let page: Value = http
            .get(format!("{url}/api/rooms?q={term}&limit=50&sort=newest"))
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("search body");
        rest_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        matched += page["total"].as_u64().unwrap_or(0);
    }
    let mut ws = Subscriber::connect(ws_url).await.expect("connect");
    let mut ws_ms = Vec::new();
    for (i, term) in terms.iter().enumerate() {
        let start = Instant::now();
        let id = i as u64 + 1;
        let query = RoomQuery { q: Some(term.to_string()), limit: Some(50), ..Default::default() };
        ws.send(wire::frame(wire::join_overview(query), Some(id))).await.expect("send");
        let needle = format!(r#""id":{id},"#);
        while let Some(text) = ws.next_text().await {
            if text.starts_with(r#"{"event":"reply""#) && text.contains(&needle) {
                break;
            }
        }
        ws_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let (rest_median, rest_p95) = median_and_p95(rest_ms);
    let (ws_median, ws_p95) = median_and_p95(ws_ms);
    println!(
        "  search             {count} queries (mean {} matches): REST median {rest_median:.2} ms, p95 {rest_p95:.2} ms; join:overview median {ws_median:.2} ms, p95 {ws_p95:.2} ms",
        matched / count.max(1) as u64
    );
}

/// A window searching for a fresh word sees a room made with it enter.
async fn live_window(http: &reqwest::Client, url: &str, token: &str, ws_url: &str) {
    let mut ws = Subscriber::connect(ws_url).await.expect("connect");
    let query = RoomQuery { q: Some("kingfisher".into()), limit: Some(50), ..Default::default() };
    ws.send(wire::frame(wire::join_overview(query), Some(1))).await.expect("send");
    while let Some(text) = ws.next_text().await {
        if text.starts_with(r#"{"event":"reply""#) {
            break;
        }
    }
    let start = Instant::now();
    let body = json!({ "id": "bench-kingfisher", "description": "the kingfisher room" });
    let made = http.post(format!("{url}/api/rooms")).bearer_auth(token).json(&body).send().await.expect("create");
    assert_eq!(made.status().as_u16(), 201);
    while let Some(text) = ws.next_text().await {
        if text.contains("overview:window") && text.contains("bench-kingfisher") {
            println!(
                "  live window        a new matching room entered the window {:.1} ms after its POST",
                start.elapsed().as_secs_f64() * 1000.0
            );
            return;
        }
    }
    panic!("the new room never entered the window");
}
