//! The two REST calls every benchmark starts with.

use serde_json::{Value, json};

/// A new session's token.
pub async fn session(http: &reqwest::Client, url: &str, name: &str) -> String {
    let body: Value = http
        .post(format!("{url}/api/session"))
        .json(&json!({ "userName": name }))
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("session body");
    body["token"].as_str().expect("token").to_string()
}

/// A new room of `token`'s user; returns its id.
pub async fn create_room(http: &reqwest::Client, url: &str, token: &str) -> String {
    let room: Value = http
        .post(format!("{url}/api/rooms"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .expect("room")
        .json()
        .await
        .expect("room body");
    room["id"].as_str().expect("room id").to_string()
}
