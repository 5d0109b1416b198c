//! The two REST calls every benchmark starts with, through
//! `roomcast-client` (on the caller's HTTP client: some benchmarks send
//! each user's requests from an address of its own).

use roomcast_client::Client;
use roomcast_client::app::api::CreateRoom;

/// A new session's token.
pub async fn session(http: &reqwest::Client, url: &str, name: &str) -> String {
    let client = Client::with_http(url, http.clone()).signed_in(name).await.expect("session");
    client.token().expect("a new session has a token").to_string()
}

/// A new room of `token`'s user; returns its id.
pub async fn create_room(http: &reqwest::Client, url: &str, token: &str) -> String {
    let client = Client::with_http(url, http.clone()).using_token(token);
    client.create_room(&CreateRoom::default()).await.expect("room").id
}
