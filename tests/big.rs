//! Big lists and big rooms against the real binary: the room list as a
//! query (pages, cursors, search, a bounded snapshot), windows of the
//! overview (rooms entering and leaving), presence announced per tick as
//! diffs of the first page, and presence pages.

mod common;

use std::collections::HashSet;

use common::{TestServer, Ws, assert_error, assert_reply_error, assert_reply_ok};
use serde_json::{Value, json};

async fn create_rooms(api: &common::Api, n: usize, word: &str) {
    for i in 0..n {
        api.create_room(json!({ "id": format!("{word}-{i:03}"), "description": format!("{word} number {i}") })).await;
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["rooms"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_room_list_pages_by_cursor_in_either_order_and_searches_on_the_server() {
    let server = TestServer::start_with(&["--rest-rate-per-second", "10000", "--rest-rate-burst", "10000"]).await;
    let token = server.session("lister").await;
    let api = server.api(Some(&token));
    create_rooms(&api, 130, "pine").await;
    create_rooms(&api, 5, "oak").await;

    // Without a limit: the first 100, oldest first, a total and a cursor.
    let (status, first) = api.get("/api/rooms").await;
    assert_eq!(status, 200);
    assert_eq!((first["rooms"].as_array().unwrap().len(), first["total"].as_u64()), (100, Some(135)));
    assert_eq!(ids(&first)[0], "pine-000");
    // Following `next` visits every room once.
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(cursor) => format!("/api/rooms?limit=40&sort=newest&after={cursor}"),
            None => "/api/rooms?limit=40&sort=newest".to_string(),
        };
        let (_, page) = api.get(&path).await;
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 135);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 135, "no room twice");
    assert_eq!(seen[0], "oak-004", "newest first");

    // Search: by description, ignoring case, counted in full.
    let (_, found) = api.get("/api/rooms?q=OAK%20number&limit=2").await;
    assert_eq!((ids(&found), found["total"].as_u64()), (vec!["oak-000".to_string(), "oak-001".to_string()], Some(5)));
    let (_, one) = api.get("/api/rooms?q=pine-129").await;
    assert_eq!(ids(&one), vec!["pine-129"]);

    // Bad queries name what is wrong.
    for (path, field) in [
        ("/api/rooms?limit=0", "limit"),
        ("/api/rooms?limit=501", "limit"),
        ("/api/rooms?after=garbage", "after"),
        ("/api/rooms?sort=sideways", "sideways"),
        ("/api/rooms?status=asleep", "asleep"),
        ("/api/rooms?surprise=1", "surprise"),
    ] {
        let answer = api.get(path).await;
        assert_error(&answer, 400, "bad_request");
        assert!(answer.1["error"]["message"].as_str().unwrap().contains(field), "{path}: {}", answer.1);
    }

    // A plain join:overview has the same first page as its snapshot.
    let mut ws = server.ws(&token).await;
    let reply = ws.request("join:overview", json!({})).await;
    let snapshot = assert_reply_ok(&reply);
    assert_eq!(ids(snapshot), ids(&first));
    assert_eq!((snapshot["total"].as_u64(), snapshot["next"].is_string()), (Some(135), true));
    assert_reply_error(&ws.request("join:overview", json!({ "limit": 9999 })).await, "bad_request");
}

/// Joins a window and returns its first page.
async fn window(ws: &mut Ws, query: Value) -> Value {
    assert_reply_ok(&ws.request("join:overview", query).await).clone()
}

#[tokio::test]
async fn a_window_gets_rooms_entering_and_leaving_it_and_only_its_own_deltas() {
    let server = TestServer::start_with(&["--rest-rate-per-second", "10000", "--rest-rate-burst", "10000"]).await;
    let token = server.session("host").await;
    let api = server.api(Some(&token));
    create_rooms(&api, 4, "elm").await;
    let mut ws = server.ws(&token).await;
    let first = window(&mut ws, json!({ "sort": "newest", "limit": 2, "hidden": false })).await;
    assert_eq!((ids(&first), first["total"].as_u64()), (vec!["elm-003".to_string(), "elm-002".to_string()], Some(4)));

    // A change outside the window: nothing arrives.
    api.patch("/api/rooms/elm-000", json!({ "description": "far away" })).await;
    ws.no_event("room:update", std::time::Duration::from_millis(300)).await;

    // A change inside it: its delta.
    api.patch("/api/rooms/elm-002", json!({ "description": "close" })).await;
    assert_eq!(ws.event("room:update").await["data"]["roomId"], "elm-002");

    // A new room enters at the top and pushes the last one out.
    api.create_room(json!({ "id": "elm-new" })).await;
    let moved = ws.event("overview:window").await["data"].clone();
    assert_eq!(moved["enter"][0]["id"], "elm-new");
    assert_eq!((moved["exit"].clone(), moved["total"].as_u64()), (json!(["elm-002"]), Some(5)));

    // A room that stops matching (hidden) leaves, and the next one fills in.
    api.patch("/api/rooms/elm-new", json!({ "hidden": true })).await;
    let moved = ws.event("overview:window").await["data"].clone();
    assert_eq!((moved["exit"].clone(), moved["enter"][0]["id"].clone()), (json!(["elm-new"]), json!("elm-002")));
    assert_eq!(moved["total"], 4);

    // A deletion in the window: room:delete, then the room taking its place.
    api.delete("/api/rooms/elm-003").await;
    assert_eq!(ws.event("room:delete").await["data"]["roomId"], "elm-003");
    let moved = ws.event("overview:window").await["data"].clone();
    assert_eq!((moved["enter"][0]["id"].clone(), moved["total"].clone()), (json!("elm-001"), json!(3)));

    // Joining again replaces the window.
    let searched = window(&mut ws, json!({ "q": "far", "limit": 10 })).await;
    assert_eq!(ids(&searched), vec!["elm-000"]);
    api.create_room(json!({ "id": "elm-far", "description": "far too" })).await;
    let moved = ws.event("overview:window").await["data"].clone();
    assert_eq!((moved["enter"][0]["id"].clone(), moved["total"].clone()), (json!("elm-far"), json!(2)));
}

#[tokio::test]
async fn presence_comes_as_diffs_of_the_first_page_and_the_rest_by_pages() {
    let server = TestServer::start().await;
    let host = server.session("host").await;
    server.api(Some(&host)).create_room(json!({ "id": "hall" })).await;
    let mut watcher = server.ws(&host).await;
    assert_reply_ok(&watcher.request("join:room", json!({ "roomId": "hall" })).await);

    let mut people = Vec::new();
    for i in 0..29 {
        let token = server.session(&format!("guest{i:02}")).await;
        let mut ws = server.ws(&token).await;
        let reply = ws.request("join:room", json!({ "roomId": "hall", "as": "spectator" })).await;
        let sid = assert_reply_ok(&reply)["sid"].as_str().unwrap().to_string();
        people.push((sid, ws));
    }
    // The watcher hears of the first page only (20 entries, itself first),
    // in diffs, and the counts in deltas.
    let mut listed: Vec<String> = Vec::new();
    let mut diffs = 0;
    while listed.len() < 19 {
        let diff = watcher.event("presence:diff").await;
        diffs += 1;
        for p in diff["data"]["joins"].as_array().unwrap() {
            listed.push(p["userName"].as_str().unwrap().to_string());
        }
    }
    assert!(diffs < 19, "arrivals within a tick come together ({diffs} diffs)");
    assert_eq!(listed.len(), 19);
    common::room_eventually(&server, "hall", |r| r["connectionCount"] == 30).await;
    watcher.no_event("presence:diff", std::time::Duration::from_millis(400)).await;

    // A late joiner's reply has the first page; further pages on request.
    let late = server.session("late").await;
    let mut ws = server.ws(&late).await;
    let joined = assert_reply_ok(&ws.request("join:room", json!({ "roomId": "hall" })).await).clone();
    let page: Vec<&str> =
        joined["presence"].as_array().unwrap().iter().map(|p| p["userName"].as_str().unwrap()).collect();
    assert_eq!(page.len(), 20);
    assert_eq!(&page[..2], ["host", "late"], "members before spectators");
    let rest = ws.request("presence:page", json!({ "roomId": "hall", "offset": 20, "limit": 50 })).await;
    let rest = assert_reply_ok(&rest);
    assert_eq!((rest["presence"].as_array().unwrap().len(), rest["total"].as_u64()), (11, Some(31)));
    assert_reply_error(&ws.request("presence:page", json!({ "roomId": "hall", "limit": 0 })).await, "bad_request");

    // One of the first page leaves: the diff names it, and the next in
    // line takes its place.
    let (gone_sid, gone) = people.remove(0);
    gone.close().await;
    let diff = loop {
        let diff = watcher.event("presence:diff").await;
        if diff["data"]["leaves"].as_array().unwrap().iter().any(|s| *s == gone_sid) {
            break diff;
        }
    };
    assert_eq!(diff["data"]["leaves"].as_array().unwrap().len(), 1);
    assert_eq!(diff["data"]["joins"].as_array().unwrap().len(), 1, "{diff}");
}
