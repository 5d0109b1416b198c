//! REST calls made by the browser (gloo-net). Outside the browser they
//! answer an error, so shared code compiles everywhere.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{CreateRoom, DefaultRoomRequest, PatchRoom, RoomPage, RoomQuery, SessionInfo, SessionRequest};
use crate::error::{ErrorBody, ErrorCode};
use crate::model::RoomMetadata;

#[derive(Clone, Copy, Debug)]
enum Method {
    Get,
    Post,
    Patch,
    Put,
    Delete,
}

/// How often a request answered `unavailable` (the server owning the room
/// is failing over, or storage is briefly unreachable) is sent again.
#[cfg(feature = "hydrate")]
const UNAVAILABLE_RETRIES: u32 = 3;

/// Sends a JSON request; `Ok(None)` for an answer without a body (204).
/// An `unavailable` answer means the change was not made: the request is
/// sent again after the `retryAfterMs` the server asks for.
async fn call<B: Serialize, T: DeserializeOwned>(
    method: Method,
    path: &str,
    body: Option<&B>,
) -> Result<Option<T>, ErrorBody> {
    call_keyed(method, path, body, None).await
}

/// Sends a write with an idempotency key: also after a lost answer (the
/// server answers a repeat with the first answer), and more patiently.
async fn write<B: Serialize, T: DeserializeOwned>(
    method: Method,
    path: &str,
    body: &B,
    key: &str,
) -> Result<T, ErrorBody> {
    call_keyed(method, path, Some(body), Some(key)).await?.ok_or_else(missing_body)
}

#[cfg(feature = "hydrate")]
async fn call_keyed<B: Serialize, T: DeserializeOwned>(
    method: Method,
    path: &str,
    body: Option<&B>,
    key: Option<&str>,
) -> Result<Option<T>, ErrorBody> {
    let mut attempt = 0;
    let retries = if key.is_some() { WRITE_RETRIES } else { UNAVAILABLE_RETRIES };
    let mut new_session = path != "/api/session";
    loop {
        match send(method, path, body, key).await {
            Err(e) if e.code == ErrorCode::Unavailable && attempt < retries => {
                let wait = e.retry_after_ms.unwrap_or(250 << attempt).min(5000) as u32;
                attempt += 1;
                gloo_timers::future::TimeoutFuture::new(wait).await;
            }
            // A first visit acting before its session exists: get it, once.
            Err(e) if e.code == ErrorCode::Unauthorized && new_session => {
                new_session = false;
                guest_session().await?;
            }
            answer => return answer,
        }
    }
}

/// How often a keyed write is sent again after a retryable failure.
#[cfg(feature = "hydrate")]
const WRITE_RETRIES: u32 = 6;

#[cfg(feature = "hydrate")]
type PendingSession = futures::future::Shared<futures::future::LocalBoxFuture<'static, Result<SessionInfo, ErrorBody>>>;

#[cfg(feature = "hydrate")]
thread_local! {
    /// The guest session being created (or created) for this tab, so the
    /// socket and REST calls made at the same moment share one.
    static GUEST: std::cell::RefCell<Option<PendingSession>> = const { std::cell::RefCell::new(None) };
}

/// This tab's guest session: created on the first call (a first visit has
/// none until it acts), the same one on every later call until
/// [`forget_guest_session`].
#[cfg(feature = "hydrate")]
pub async fn guest_session() -> Result<SessionInfo, ErrorBody> {
    use futures::FutureExt;
    let pending = GUEST.with(|g| {
        g.borrow_mut()
            .get_or_insert_with(|| {
                let name = format!("guest-{}", 1000 + (js_sys::Math::random() * 9000.0) as u32);
                async move { new_session(&name).await }.boxed_local().shared()
            })
            .clone()
    });
    let result = pending.await;
    if result.is_err() {
        forget_guest_session();
    }
    result
}

#[cfg(not(feature = "hydrate"))]
pub async fn guest_session() -> Result<SessionInfo, ErrorBody> {
    Err(ErrorBody::new(ErrorCode::Internal, "only the browser has a guest session"))
}

/// Lets the next [`guest_session`] create a new one (the old one expired).
#[cfg(feature = "hydrate")]
pub fn forget_guest_session() {
    GUEST.with(|g| *g.borrow_mut() = None);
}

/// Sends a JSON request once.
#[cfg(feature = "hydrate")]
async fn send<B: Serialize, T: DeserializeOwned>(
    method: Method,
    path: &str,
    body: Option<&B>,
    key: Option<&str>,
) -> Result<Option<T>, ErrorBody> {
    use crate::error::ErrorResponse;
    use gloo_net::http::Request;

    // The server could not be reached (or the answer was lost): nothing is
    // known to be done, so it is `unavailable`, to try again.
    let net = |e: gloo_net::Error| ErrorBody::new(ErrorCode::Unavailable, format!("network: {e}"));
    let builder = match method {
        Method::Get => Request::get(path),
        Method::Post => Request::post(path),
        Method::Patch => Request::patch(path),
        Method::Put => Request::put(path),
        Method::Delete => Request::delete(path),
    };
    let builder = match key {
        Some(key) => builder.header("Idempotency-Key", key),
        None => builder,
    };
    let response = match body {
        Some(b) => builder.json(b).map_err(net)?.send().await.map_err(net)?,
        None => builder.send().await.map_err(net)?,
    };
    if response.status() == 204 {
        return Ok(None);
    }
    if response.ok() {
        return response.json::<T>().await.map(Some).map_err(net);
    }
    match response.json::<ErrorResponse>().await {
        Ok(e) => Err(e.error),
        Err(_) => Err(ErrorBody::new(ErrorCode::Internal, format!("HTTP {}", response.status()))),
    }
}

#[cfg(not(feature = "hydrate"))]
async fn call_keyed<B: Serialize, T: DeserializeOwned>(
    method: Method,
    path: &str,
    body: Option<&B>,
    key: Option<&str>,
) -> Result<Option<T>, ErrorBody> {
    send(method, path, body, key).await
}

#[cfg(not(feature = "hydrate"))]
async fn send<B: Serialize, T: DeserializeOwned>(
    method: Method,
    path: &str,
    _body: Option<&B>,
    _key: Option<&str>,
) -> Result<Option<T>, ErrorBody> {
    Err(ErrorBody::new(ErrorCode::Internal, format!("{method:?} {path}: only the browser calls the REST API")))
}

fn missing_body() -> ErrorBody {
    ErrorBody::new(ErrorCode::Internal, "the server answered without a body")
}

fn path_of(id: &str) -> String {
    // Room ids are [A-Za-z0-9_-], safe in a path as they are; anything else
    // is not a room id and must not reach the URL unescaped.
    if crate::ids::is_valid_room_id(id) { format!("/api/rooms/{id}") } else { "/api/rooms/%00".into() }
}

/// One page of the room list.
pub async fn list_rooms(query: &RoomQuery) -> Result<RoomPage, ErrorBody> {
    let path = format!("/api/rooms?{}", query.to_query_string());
    call::<(), _>(Method::Get, &path, None).await?.ok_or_else(missing_body)
}

/// A room, or `None` when the server does not know it.
pub async fn get_room(id: &str) -> Result<Option<RoomMetadata>, ErrorBody> {
    match call::<(), RoomMetadata>(Method::Get, &path_of(id), None).await {
        Ok(room) => Ok(room),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a room exactly once, however often it has to be sent.
pub async fn create_room(req: &CreateRoom) -> Result<RoomMetadata, ErrorBody> {
    write(Method::Post, "/api/rooms", req, &new_key()).await
}

pub async fn patch_room(id: &str, patch: &PatchRoom) -> Result<RoomMetadata, ErrorBody> {
    call(Method::Patch, &path_of(id), Some(patch)).await?.ok_or_else(missing_body)
}

pub async fn delete_room(id: &str) -> Result<(), ErrorBody> {
    call::<(), serde_json::Value>(Method::Delete, &path_of(id), None).await.map(|_| ())
}

pub async fn set_default_room(id: Option<&str>) -> Result<(), ErrorBody> {
    match id {
        Some(id) => {
            let body = DefaultRoomRequest { room_id: id.to_string() };
            call::<_, serde_json::Value>(Method::Put, "/api/default-room", Some(&body)).await.map(|_| ())
        }
        None => call::<(), serde_json::Value>(Method::Delete, "/api/default-room", None).await.map(|_| ()),
    }
}

/// A fresh session (the server sets the cookie).
pub async fn new_session(user_name: &str) -> Result<SessionInfo, ErrorBody> {
    let body = SessionRequest { user_name: user_name.to_string() };
    call(Method::Post, "/api/session", Some(&body)).await?.ok_or_else(missing_body)
}

pub async fn rename(user_name: &str) -> Result<SessionInfo, ErrorBody> {
    let body = SessionRequest { user_name: user_name.to_string() };
    call(Method::Patch, "/api/session", Some(&body)).await?.ok_or_else(missing_body)
}

/// One frame of a room.
pub async fn get_frame(id: &str, index: u64) -> Result<serde_json::Value, ErrorBody> {
    call::<(), _>(Method::Get, &format!("{}/frames/{index}", path_of(id)), None).await?.ok_or_else(missing_body)
}

/// Appends frames exactly once under the idempotency key `key`; returns
/// the room's frame count. A lost answer or `unavailable` is sent again
/// with the same key, and the server stores the frames only once.
pub async fn append_frames(id: &str, frames: &[Box<serde_json::value::RawValue>], key: &str) -> Result<u64, ErrorBody> {
    let done: crate::api::FramesAppended =
        write(Method::Post, &format!("{}/frames", path_of(id)), &frames, key).await?;
    Ok(done.frame_count)
}

/// A fresh idempotency key: the time in milliseconds, then random digits
/// (keys made later sort later, as the server's index of them likes).
pub fn new_key() -> String {
    #[cfg(feature = "hydrate")]
    let (millis, a, b) = (js_sys::Date::now() as u64, js_sys::Math::random(), js_sys::Math::random());
    #[cfg(not(feature = "hydrate"))]
    let (millis, a, b) = (0u64, 0.0, 0.0);
    let random = |x: f64| (x * f64::from(u32::MAX)) as u32;
    format!("{millis:012x}{:08x}{:08x}", random(a), random(b))
}

/// Chat messages older than `before`, oldest first.
pub async fn chat_before(id: &str, before: u64, limit: u64) -> Result<Vec<crate::model::ChatMessage>, ErrorBody> {
    let page: crate::api::ChatPage =
        call::<(), _>(Method::Get, &format!("{}/chat?before={before}&limit={limit}", path_of(id)), None)
            .await?
            .ok_or_else(missing_body)?;
    Ok(page.messages)
}

/// `GET /api/stats`, as raw JSON.
pub async fn stats() -> Result<serde_json::Value, ErrorBody> {
    call::<(), _>(Method::Get, "/api/stats", None).await?.ok_or_else(missing_body)
}
