//! The REST API of PROTOCOL.md section 4 over real HTTP, including bad input.

mod common;

use common::{TestServer, assert_error};
use serde_json::json;

#[tokio::test]
async fn sessions_are_created_read_and_renamed() {
    let server = TestServer::start().await;
    let anon = server.api(None);
    let (status, body) = anon.post("/api/session", json!({ "userName": "alice" })).await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 43, "a token carries at least 256 bits: {token}");
    assert!(body["userId"].as_str().unwrap().starts_with("u_"));
    assert_eq!(body["userName"], "alice");

    let api = server.api(Some(&token));
    let (status, me) = api.get("/api/session").await;
    assert_eq!(status, 200);
    assert_eq!(me["userId"], body["userId"]);
    assert!(me.get("token").is_none(), "the token is only given once");

    let (status, me) = api.patch("/api/session", json!({ "userName": "  alicia " })).await;
    assert_eq!(status, 200);
    assert_eq!(me["userName"], "alicia");
    assert_eq!(api.get("/api/session").await.1["userName"], "alicia");

    assert_error(&anon.get("/api/session").await, 401, "unauthorized");
    assert_error(&server.api(Some("forged-token")).get("/api/session").await, 401, "unauthorized");
    assert_error(&anon.post("/api/session", json!({ "userName": "" })).await, 400, "bad_request");
    assert_error(&anon.post("/api/session", json!({ "userName": 5 })).await, 400, "bad_request");
    assert_error(&anon.post("/api/session", json!({})).await, 400, "bad_request");
    assert_error(&anon.post_raw("/api/session", "{not json").await, 400, "bad_request");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_works_as_auth() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let resp = http.post(server.url("/api/session")).json(&json!({ "userName": "bob" })).send().await.unwrap();
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let me = http.get(server.url("/api/session")).header("cookie", pair).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["userName"], "bob");
}

#[tokio::test]
async fn rooms_are_created_with_chosen_or_generated_ids() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let api = server.api(Some(&token));

    let room = api.create_room(json!({ "description": "Friday demo" })).await;
    let id = room["id"].as_str().unwrap();
    assert!(id.starts_with("ROOM-") && id.len() == 11, "{id}");
    assert!(id[5..].chars().all(|c| "23456789ABCDEFGHJKMNPQRSTUVWXYZ".contains(c)), "{id}");
    assert_eq!(room["version"], 1);
    assert_eq!(room["hostName"], "alice");
    assert_eq!(room["status"], "waiting");
    assert_eq!(room["description"], "Friday demo");

    let mine = api.create_room(json!({ "id": "Team_Sync-1", "hidden": true, "maxMembers": 4, "minMembers": 2 })).await;
    assert_eq!(mine["id"], "Team_Sync-1");
    assert_eq!(mine["hidden"], true);
    assert_eq!(mine["maxMembers"], 4);

    // Ids are matched case-insensitively everywhere.
    assert_error(&api.post("/api/rooms", json!({ "id": "team_sync-1" })).await, 409, "conflict");
    assert_error(&api.post("/api/rooms", json!({ "id": "Team_Sync-1" })).await, 409, "conflict");
    let (status, got) = api.get("/api/rooms/TEAM_SYNC-1").await;
    assert_eq!(status, 200);
    assert_eq!(got["id"], "Team_Sync-1");

    let (status, list) = api.get("/api/rooms").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["rooms"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"Team_Sync-1"), "hidden rooms are listed by the API");
}

#[tokio::test]
async fn bad_room_input_is_refused_with_the_protocol_codes() {
    let server = TestServer::start().await;
    let token = server.session("alice").await;
    let api = server.api(Some(&token));
    assert_error(&server.api(None).post("/api/rooms", json!({})).await, 401, "unauthorized");
    for bad in ["-starts-with-dash", "has space", "ümlaut", "a/b", ""] {
        assert_error(&api.post("/api/rooms", json!({ "id": bad })).await, 400, "bad_request");
    }
    assert_error(&api.post("/api/rooms", json!({ "id": "x".repeat(65) })).await, 400, "bad_request");
    assert_error(&api.post("/api/rooms", json!({ "description": "d".repeat(501) })).await, 400, "bad_request");
    assert_error(&api.post("/api/rooms", json!({ "id": 7 })).await, 400, "bad_request");
    assert_error(&api.post("/api/rooms", json!({ "hidden": "yes" })).await, 400, "bad_request");
    assert_error(&api.post("/api/rooms", json!({ "surprise": true })).await, 400, "bad_request");
    assert_error(&api.post("/api/rooms", json!({ "maxMembers": 2, "minMembers": 3 })).await, 400, "bad_request");
    assert_error(&api.post("/api/rooms", json!({ "maxMembers": -1 })).await, 400, "bad_request");
    assert_error(&api.post_raw("/api/rooms", "[1,2").await, 400, "bad_request");
    assert_error(&api.get("/api/rooms/nope").await, 404, "not_found");
    assert_error(&api.get("/api/nothing-here").await, 404, "not_found");
    // Nothing of that was stored.
    assert_eq!(api.get("/api/rooms").await.1["rooms"].as_array().unwrap().len(), 0);
    // A description of exactly 500 characters is fine.
    api.create_room(json!({ "description": "é".repeat(500) })).await;
}

#[tokio::test]
async fn only_the_host_patches_and_locked_rooms_refuse_changes() {
    let server = TestServer::start().await;
    let alice = server.api(Some(&server.session("alice").await));
    let bob = server.api(Some(&server.session("bob").await));
    let room = alice.create_room(json!({ "id": "demo" })).await;
    assert_eq!(room["version"], 1);

    assert_error(&bob.patch("/api/rooms/demo", json!({ "description": "mine" })).await, 403, "forbidden");
    assert_error(&bob.delete("/api/rooms/demo").await, 403, "forbidden");
    assert_error(&server.api(None).patch("/api/rooms/demo", json!({ "hidden": true })).await, 401, "unauthorized");

    let (status, room) = alice.patch("/api/rooms/DEMO", json!({ "description": "  hello  " })).await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(room["description"], "hello");
    assert_eq!(room["version"], 2);
    // No change, no new version.
    let (_, room) = alice.patch("/api/rooms/demo", json!({ "description": "hello" })).await;
    assert_eq!(room["version"], 2);
    let (_, room) = alice.patch("/api/rooms/demo", json!({ "description": null })).await;
    assert_eq!(room["description"], serde_json::Value::Null);
    assert_eq!(room["version"], 3);

    assert_error(&alice.patch("/api/rooms/demo", json!({ "locked": false })).await, 400, "bad_request");
    assert_error(&alice.patch("/api/rooms/demo", json!({ "colour": "red" })).await, 400, "bad_request");
    assert_error(&alice.patch("/api/rooms/demo", json!({ "description": "x".repeat(501) })).await, 400, "bad_request");
    assert_error(&alice.patch("/api/rooms/nope", json!({ "hidden": true })).await, 404, "not_found");

    let (status, room) = alice.patch("/api/rooms/demo", json!({ "locked": true })).await;
    assert_eq!(status, 200);
    assert_eq!(room["locked"], true);
    assert_error(&alice.patch("/api/rooms/demo", json!({ "description": "after" })).await, 423, "locked");
    assert_error(&alice.patch("/api/rooms/demo", json!({ "locked": true })).await, 423, "locked");
    assert_error(&alice.delete("/api/rooms/demo").await, 423, "locked");
    // `hidden` may still change on a locked room.
    let (status, room) = alice.patch("/api/rooms/demo", json!({ "hidden": true })).await;
    assert_eq!(status, 200);
    assert_eq!(room["hidden"], true);
    assert_eq!(room["locked"], true);
}

#[tokio::test]
async fn the_host_deletes_a_room() {
    let server = TestServer::start().await;
    let alice = server.api(Some(&server.session("alice").await));
    alice.create_room(json!({ "id": "gone-soon" })).await;
    let (status, body) = alice.delete("/api/rooms/GONE-SOON").await;
    assert_eq!(status, 204, "{body}");
    assert_error(&alice.get("/api/rooms/gone-soon").await, 404, "not_found");
    assert_error(&alice.delete("/api/rooms/gone-soon").await, 404, "not_found");
    // The id is free again.
    alice.create_room(json!({ "id": "gone-soon" })).await;
}

#[tokio::test]
async fn one_default_room_at_a_time() {
    let server = TestServer::start().await;
    let api = server.api(Some(&server.session("alice").await));
    api.create_room(json!({ "id": "a" })).await;
    api.create_room(json!({ "id": "b" })).await;
    let (status, room) = api.put("/api/default-room", json!({ "roomId": "A" })).await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(room["isDefault"], true);
    api.put("/api/default-room", json!({ "roomId": "b" })).await;
    assert_eq!(api.get("/api/rooms/a").await.1["isDefault"], false);
    assert_eq!(api.get("/api/rooms/b").await.1["isDefault"], true);
    assert_error(&api.put("/api/default-room", json!({ "roomId": "zzz" })).await, 404, "not_found");
    assert_error(&api.put("/api/default-room", json!({ "room": "a" })).await, 400, "bad_request");
    let (status, _) = api.delete("/api/default-room").await;
    assert_eq!(status, 204);
    let (_, list) = api.get("/api/rooms").await;
    assert!(list["rooms"].as_array().unwrap().iter().all(|r| r["isDefault"] == false));
}

#[tokio::test]
async fn the_admin_token_guards_the_default_room() {
    let server = TestServer::start_with(&["--admin-token", "s3cret-admin"]).await;
    let api = server.api(Some(&server.session("alice").await));
    api.create_room(json!({ "id": "a" })).await;
    assert_error(&api.put("/api/default-room", json!({ "roomId": "a" })).await, 401, "unauthorized");
    assert_error(&api.delete("/api/default-room").await, 401, "unauthorized");
    let admin = server.api(Some("s3cret-admin"));
    let (status, room) = admin.put("/api/default-room", json!({ "roomId": "a" })).await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(room["isDefault"], true);
}

#[tokio::test]
async fn pages_render_on_the_server_and_unknown_rooms_are_404() {
    let server = TestServer::start().await;
    let api = server.api(Some(&server.session("alice").await));
    api.create_room(json!({ "id": "visible-room", "description": "<script>alert(1)</script>" })).await;
    let http = reqwest::Client::new();
    let page = http.get(server.url("/rooms")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("set-cookie").is_none(), "a page view stores no session");
    // The browser gets its cookie when it first acts: creating a session.
    let created = http.post(server.url("/api/session")).json(&json!({ "userName": "bob" })).send().await.unwrap();
    let cookie = created.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(cookie.starts_with("roomcast_session=") && cookie.contains("HttpOnly"), "{cookie}");
    let html = page.text().await.unwrap();
    assert!(html.contains("visible-room"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "descriptions are escaped");
    assert!(!html.contains("<script>alert(1)</script>"));

    let room = http.get(server.url("/rooms/VISIBLE-ROOM")).send().await.unwrap();
    assert_eq!(room.status(), 200);
    let missing = http.get(server.url("/rooms/no-such-room")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Not found"));
}
