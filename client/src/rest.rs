//! Every REST call of `docs/protocol.md` section 4, typed. A call answered
//! `unavailable` (the room's server is failing over; nothing was changed)
//! is sent again after the `retryAfterMs` the server asks for. The three
//! writes that are not repeatable by nature (create a room, append frames,
//! match) carry an `Idempotency-Key` and are also sent again after a
//! network failure: the server answers a repeat with the first answer.

use std::time::Duration;

use app::api::{
    ChatPage, CreateRoom, FramePage, FramesAppended, MatchBody, Matched, PatchRoom, RoomPage, RoomQuery, SessionInfo,
    SessionRequest,
};
use app::error::{ErrorCode, ErrorResponse};
use app::ids::is_valid_room_id;
use app::model::{ChatMessage, RoomMetadata};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// How often an `unavailable` answer is tried again.
const UNAVAILABLE_RETRIES: u32 = 3;
/// How often a keyed write is tried again after a retryable failure
/// (about 20 s in all: long enough for a server to restart).
const WRITE_RETRIES: u32 = 8;

/// A fresh idempotency key: the time in milliseconds, then 80 random bits,
/// in hex. Keys made later sort later (like a UUIDv7), so the server's
/// index of receipts grows at its end instead of at random places.
pub fn new_key() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let random = rand::random::<u128>() & ((1 << 80) - 1);
    format!("{:012x}{random:020x}", millis & 0xffff_ffff_ffff)
}

/// The wait before attempt `attempt + 1`: 250 ms doubling up to `most`,
/// each drawn from the upper half of its range (jitter).
pub(crate) fn backoff(attempt: u32, most: Duration) -> Duration {
    let most = u64::try_from(most.as_millis()).unwrap_or(u64::MAX);
    let ceiling = 250u64.saturating_mul(1 << attempt.min(16)).min(most);
    Duration::from_millis(rand::random_range(ceiling / 2..=ceiling))
}

/// The longest wait between two attempts of a write.
const WRITE_BACKOFF: Duration = Duration::from_secs(5);

/// A Roomcast server and the session to use with it.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `url` (e.g. `http://127.0.0.1:3000`)
    /// without a session: reads only, until [`Client::sign_in`].
    pub fn new(url: &str) -> Client {
        Client::with_http(url, reqwest::Client::new())
    }

    /// A client making its requests with `http` (one with timeouts, a
    /// proxy, or a local address of its own).
    pub fn with_http(url: &str, http: reqwest::Client) -> Client {
        Client { http, base: url.trim_end_matches('/').to_string(), token: None }
    }

    /// A client using an existing session's token.
    pub fn with_token(url: &str, token: &str) -> Client {
        Client::new(url).using_token(token)
    }

    /// This client with an existing session's token.
    pub fn using_token(self, token: &str) -> Client {
        Client { token: Some(token.to_string()), ..self }
    }

    /// Creates a session named `user_name` and uses it from now on.
    pub async fn sign_in(url: &str, user_name: &str) -> Result<Client> {
        Client::new(url).signed_in(user_name).await
    }

    /// This client with a new session named `user_name`.
    pub async fn signed_in(mut self, user_name: &str) -> Result<Client> {
        let body = SessionRequest { user_name: user_name.to_string() };
        let info: SessionInfo = self.call(Method::POST, "/api/session", Some(&body)).await?;
        self.token = info.token;
        Ok(self)
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub async fn session(&self) -> Result<SessionInfo> {
        self.call::<(), _>(Method::GET, "/api/session", None).await
    }

    /// Renames the user. Connections opened before keep the old name.
    pub async fn rename(&self, user_name: &str) -> Result<SessionInfo> {
        let body = SessionRequest { user_name: user_name.to_string() };
        self.call(Method::PATCH, "/api/session", Some(&body)).await
    }

    /// One page of the room list.
    pub async fn rooms(&self, query: &RoomQuery) -> Result<RoomPage> {
        self.call::<(), _>(Method::GET, &format!("/api/rooms?{}", query.to_query_string()), None).await
    }

    pub async fn room(&self, id: &str) -> Result<RoomMetadata> {
        self.call::<(), _>(Method::GET, &room_path(id, "")?, None).await
    }

    /// Creates a room, exactly once however often it has to be sent.
    pub async fn create_room(&self, req: &CreateRoom) -> Result<RoomMetadata> {
        self.create_room_keyed(req, &new_key()).await
    }

    /// Creates a room with a chosen idempotency key: the same key (same
    /// user, within a day) answers the room it created the first time.
    pub async fn create_room_keyed(&self, req: &CreateRoom, key: &str) -> Result<RoomMetadata> {
        self.write(Method::POST, "/api/rooms", req, key).await
    }

    pub async fn patch_room(&self, id: &str, patch: &PatchRoom) -> Result<RoomMetadata> {
        self.call(Method::PATCH, &room_path(id, "")?, Some(patch)).await
    }

    pub async fn delete_room(&self, id: &str) -> Result<()> {
        self.call_empty(Method::DELETE, &room_path(id, "")?).await
    }

    pub async fn set_default_room(&self, id: &str) -> Result<Option<RoomMetadata>> {
        let body = app::api::DefaultRoomRequest { room_id: id.to_string() };
        self.call(Method::PUT, "/api/default-room", Some(&body)).await
    }

    pub async fn clear_default_room(&self) -> Result<()> {
        self.call_empty(Method::DELETE, "/api/default-room").await
    }

    /// Appends frames (JSON documents, kept byte for byte) exactly once;
    /// answers the room's frame count after them.
    pub async fn append_frames(&self, id: &str, frames: &[Box<RawValue>]) -> Result<u64> {
        self.append_frames_keyed(id, frames, &new_key()).await
    }

    /// Appends frames with a chosen idempotency key.
    pub async fn append_frames_keyed(&self, id: &str, frames: &[Box<RawValue>], key: &str) -> Result<u64> {
        let path = room_path(id, "/frames")?;
        let done: FramesAppended = self.write(Method::POST, &path, &frames, key).await?;
        Ok(done.frame_count)
    }

    pub async fn frames(&self, id: &str, offset: u64, limit: u32) -> Result<FramePage> {
        let path = format!("{}?offset={offset}&limit={limit}", room_path(id, "/frames")?);
        self.call::<(), _>(Method::GET, &path, None).await
    }

    pub async fn frame(&self, id: &str, index: u64) -> Result<serde_json::Value> {
        self.call::<(), _>(Method::GET, &room_path(id, &format!("/frames/{index}"))?, None).await
    }

    /// Chat messages before the message id `before` (none: the newest),
    /// oldest first.
    pub async fn chat(&self, id: &str, before: Option<u64>, limit: u32) -> Result<Vec<ChatMessage>> {
        let before = before.map(|b| format!("before={b}&")).unwrap_or_default();
        let path = format!("{}?{before}limit={limit}", room_path(id, "/chat")?);
        let page: ChatPage = self.call::<(), _>(Method::GET, &path, None).await?;
        Ok(page.messages)
    }

    /// A member seat in a waiting room with `max_members` seats (a new
    /// room when none has one free), held for the grace period.
    /// Matched once, however often it has to be sent.
    pub async fn quick_match(&self, max_members: Option<u32>) -> Result<Matched> {
        self.quick_match_keyed(max_members, &new_key()).await
    }

    /// A match with a chosen idempotency key.
    pub async fn quick_match_keyed(&self, max_members: Option<u32>, key: &str) -> Result<Matched> {
        self.write(Method::POST, "/api/match", &MatchBody { max_members }, key).await
    }

    /// `GET /api/stats`, as JSON.
    pub async fn stats(&self) -> Result<serde_json::Value> {
        self.call::<(), _>(Method::GET, "/api/stats", None).await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// Sends once; reads the answer as `T` or the protocol's error body.
    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        key: Option<&str>,
    ) -> Result<T> {
        let req = self.request(method, path);
        let req = match key {
            Some(key) => req.header("Idempotency-Key", key),
            None => req,
        };
        let req = match body {
            Some(b) => req.json(b),
            None => req,
        };
        let response = req.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status.is_success() {
            let text = if status == StatusCode::NO_CONTENT || bytes.is_empty() { &b"null"[..] } else { &bytes[..] };
            return Ok(serde_json::from_slice(text)?);
        }
        match serde_json::from_slice::<ErrorResponse>(&bytes) {
            Ok(e) => Err(Error::Api(e.error)),
            Err(_) => Err(Error::Decode(format!("HTTP {status} without an error body"))),
        }
    }

    /// Sends, and again while the server answers `unavailable`.
    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            match self.send(method.clone(), path, body, None).await {
                Err(Error::Api(e)) if e.code == ErrorCode::Unavailable && attempt < UNAVAILABLE_RETRIES => {
                    attempt += 1;
                    let wait = e.retry_after_ms.unwrap_or(1000).min(5000);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                answer => return answer,
            }
        }
    }

    /// Sends a keyed write, and again (same key) after any retryable
    /// failure: a network error, a timeout or `unavailable`.
    async fn write<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        key: &str,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            match self.send(method.clone(), path, Some(body), Some(key)).await {
                Err(e) if e.is_retryable() && attempt < WRITE_RETRIES => {
                    let asked = e.retry_after_ms().map(Duration::from_millis);
                    tokio::time::sleep(asked.unwrap_or_else(|| backoff(attempt, WRITE_BACKOFF)).min(WRITE_BACKOFF))
                        .await;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }

    async fn call_empty(&self, method: Method, path: &str) -> Result<()> {
        self.call::<(), serde_json::Value>(method, path, None).await.map(drop)
    }
}

/// `/api/rooms/{id}{rest}`, for a valid room id only (anything else must
/// not reach a URL: it is refused here as the server would refuse it).
fn room_path(id: &str, rest: &str) -> Result<String> {
    if !is_valid_room_id(id) {
        return Err(Error::Api(app::error::ErrorBody::new(ErrorCode::BadRequest, format!("`{id}` is not a room id"))));
    }
    Ok(format!("/api/rooms/{id}{rest}"))
}
