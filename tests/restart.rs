//! Rooms, sessions and the default room survive a restart of the server
//! process on the same SQLite file.

mod common;

use common::{TestServer, assert_error};
use serde_json::json;

#[tokio::test]
async fn rooms_sessions_and_the_default_room_survive_a_restart() {
    let mut server = TestServer::start().await;
    let token = server.session("alice").await;
    let api = server.api(Some(&token));
    let generated = api.create_room(json!({ "description": "generated id" })).await;
    api.create_room(json!({ "id": "Keep-Me", "description": "kept", "hidden": true, "maxMembers": 3 })).await;
    api.create_room(json!({ "id": "locked-one" })).await;
    api.patch("/api/rooms/locked-one", json!({ "locked": true })).await;
    api.create_room(json!({ "id": "deleted-one" })).await;
    api.delete("/api/rooms/deleted-one").await;
    api.put("/api/default-room", json!({ "roomId": "keep-me" })).await;
    let (_, before) = api.get("/api/rooms").await;

    server.restart().await;

    let api = server.api(Some(&token));
    let (status, me) = api.get("/api/session").await;
    assert_eq!(status, 200, "the session survived: {me}");
    assert_eq!(me["userName"], "alice");

    let (_, after) = api.get("/api/rooms").await;
    let ids = |v: &serde_json::Value| {
        let mut ids: Vec<String> =
            v["rooms"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&before), ids(&after));
    assert_eq!(ids(&after).len(), 3);
    let (_, kept) = api.get("/api/rooms/keep-me").await;
    assert_eq!(kept["id"], "Keep-Me");
    assert_eq!(kept["description"], "kept");
    assert_eq!(kept["hidden"], true);
    assert_eq!(kept["isDefault"], true);
    assert_eq!(kept["maxMembers"], 3);
    assert_eq!(kept["hostName"], "alice");
    let (_, locked) = api.get("/api/rooms/locked-one").await;
    assert_eq!(locked["locked"], true);
    let (_, gen_after) = api.get(&format!("/api/rooms/{}", generated["id"].as_str().unwrap())).await;
    assert_eq!(gen_after["description"], "generated id");
    assert_error(&api.get("/api/rooms/deleted-one").await, 404, "not_found");

    // The host is still the host, and ids still conflict.
    let (status, _) = api.patch("/api/rooms/keep-me", json!({ "description": "after restart" })).await;
    assert_eq!(status, 200);
    assert_error(&api.post("/api/rooms", json!({ "id": "KEEP-ME" })).await, 409, "conflict");
}
