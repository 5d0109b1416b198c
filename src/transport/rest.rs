//! The REST API of PROTOCOL.md section 4: each handler reads the request,
//! calls the engine and writes the answer.

use app::api::{
    ChatPage, CreateRoom, DefaultRoomRequest, FramesAppended, MatchBody, PatchRoom, RoomPage, RoomQuery, SessionInfo,
    SessionRequest,
};
use app::error::ErrorCode;
use app::model::{DeleteReason, RoomMetadata};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::header::{CONTENT_TYPE, HeaderName, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::auth::{Admin, CurrentUser, session_cookie};
use super::error::{ApiError, ApiResult, Json, Path, object_body};
use super::limits::{LimitKind, LimitStats};
use super::state::AppState;
use super::throttle::{ClientIp, rate_limited};
use crate::engine::idempotency::Idempotency;

/// The header that makes a write exactly-once (`docs/protocol.md` 4.3).
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/session", get(get_session).post(create_session).patch(rename_session))
        .route("/api/rooms", get(list_rooms).post(create_room))
        .route("/api/rooms/{id}", get(get_room).patch(patch_room).delete(delete_room))
        .route("/api/default-room", put(set_default_room).delete(clear_default_room))
        .route("/api/rooms/{id}/frames", get(frame_range).post(append_frames))
        .route("/api/rooms/{id}/frames/{index}", get(one_frame))
        .route("/api/rooms/{id}/chat", get(chat_page))
        .route("/api/match", post(match_room))
        .route("/api/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/{*rest}", axum::routing::any(unknown_endpoint))
}

async fn unknown_endpoint() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn healthz() -> &'static str {
    "ok"
}

/// `POST /api/session`, at the stricter session rate of the address.
async fn create_session(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    Json(req): Json<SessionRequest>,
) -> ApiResult<Response> {
    session_slot(&state, client.map(|Extension(ip)| ip))?;
    let info = state.sessions.create(&req.user_name).await?;
    let token = info.token.clone().unwrap_or_default();
    let cookie = session_cookie(&token, state.config.secure_cookie);
    Ok(([(SET_COOKIE, cookie)], Json(info)).into_response())
}

/// Takes one of the address's new-session slots (the stricter session
/// rate), or answers `rate_limited`.
pub(super) fn session_slot(state: &AppState, client: Option<ClientIp>) -> ApiResult<()> {
    if let Some(ClientIp(ip)) = client
        && let Err(wait) = state.throttle.sessions.take(ip)
    {
        state.limits.hit(LimitKind::SessionRate);
        return Err(rate_limited(LimitKind::SessionRate, wait));
    }
    Ok(())
}

async fn get_session(who: CurrentUser) -> Json<SessionInfo> {
    Json(who.info())
}

async fn rename_session(
    State(state): State<AppState>,
    who: CurrentUser,
    Json(req): Json<SessionRequest>,
) -> ApiResult<Json<SessionInfo>> {
    let user = state.sessions.rename(&who.token, &who.user, &req.user_name).await?;
    Ok(Json(SessionInfo { token: None, user_id: user.id.to_string(), user_name: user.name.to_string() }))
}

async fn list_rooms(
    State(state): State<AppState>,
    q: Result<Query<RoomQuery>, QueryRejection>,
) -> ApiResult<Json<RoomPage>> {
    Ok(Json(state.engine.query_rooms(&query(q)?).await?))
}

async fn create_room(
    State(state): State<AppState>,
    who: CurrentUser,
    headers: HeaderMap,
    Json(req): Json<CreateRoom>,
) -> ApiResult<(StatusCode, Json<RoomMetadata>)> {
    let body = serde_json::to_vec(&req).unwrap_or_default();
    let idempotency = idempotency(&headers, "POST /api/rooms", &body)?;
    let room = state.engine.create_room(&who.user, req, idempotency).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

async fn get_room(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<RoomMetadata>> {
    Ok(Json(state.engine.get_room(&id).await?))
}

async fn patch_room(
    State(state): State<AppState>,
    who: CurrentUser,
    Path(id): Path<String>,
    Json(patch): Json<PatchRoom>,
) -> ApiResult<Json<RoomMetadata>> {
    Ok(Json(state.engine.patch_room(&who.user, &id, patch).await?))
}

async fn delete_room(State(state): State<AppState>, who: CurrentUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.engine.delete_room(Some(&who.user), &id, DeleteReason::Deleted).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_default_room(
    State(state): State<AppState>,
    _admin: Admin,
    Json(req): Json<DefaultRoomRequest>,
) -> ApiResult<Json<Option<RoomMetadata>>> {
    Ok(Json(state.engine.set_default_room(Some(&req.room_id)).await?))
}

async fn clear_default_room(State(state): State<AppState>, _admin: Admin) -> ApiResult<StatusCode> {
    state.engine.set_default_room(None).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn json_text(body: String) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(v)| v).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))
}

/// `POST /api/rooms/{id}/frames`: a JSON array of 1..=1000 values, each
/// stored as sent.
async fn append_frames(
    State(state): State<AppState>,
    who: CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<FramesAppended>> {
    let limit = state.config.max_append_bytes;
    let bytes = read_body(body, limit).await?;
    let what = format!("POST /api/rooms/{}/frames", app::ids::room_key(&id));
    let idempotency = idempotency(&headers, &what, &bytes)?;
    let frames: Vec<Box<RawValue>> = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("the body must be a JSON array of frames: {e}")))?;
    if frames.is_empty() {
        return Err(ApiError::new(ErrorCode::BadRequest, "the array holds no frame"));
    }
    let max = state.config.max_append_frames;
    if frames.len() > max {
        return Err(ApiError::new(ErrorCode::TooLarge, format!("an append holds at most {max} frames")));
    }
    let frames = frames.into_iter().map(|f| f.get().to_string()).collect();
    let frame_count = state.engine.append_frames(&who.user, &id, frames, idempotency).await?;
    Ok(Json(FramesAppended { frame_count }))
}

/// Reads a body of at most `limit` bytes. A larger one is answered 413
/// only once the client has sent it (read and dropped, up to 8 times the
/// limit or 10 s), so that a client still sending sees the answer rather
/// than a reset connection.
async fn read_body(body: Body, limit: usize) -> ApiResult<axum::body::Bytes> {
    use futures::StreamExt;
    let too_large = || ApiError::new(ErrorCode::TooLarge, format!("an append is at most {limit} bytes"));
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("the body could not be read: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            let mut dropped = bytes.len() + chunk.len();
            let drain = async {
                while let Some(Ok(chunk)) = stream.next().await {
                    dropped += chunk.len();
                    if dropped > 8 * limit {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.into())
}

async fn one_frame(State(state): State<AppState>, Path((id, index)): Path<(String, String)>) -> ApiResult<Response> {
    let index: u64 =
        index.parse().map_err(|_| ApiError::new(ErrorCode::BadRequest, "the frame index must be a number"))?;
    let (mut frames, _) = state.engine.frames(&id, index, 1).await?;
    match frames.pop() {
        Some(frame) => Ok(json_text(frame)),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("no frame {index} in room {id}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameRange {
    offset: Option<u64>,
    limit: Option<u64>,
}

async fn frame_range(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<FrameRange>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(100);
    if limit > crate::engine::MAX_FRAMES_PER_PAGE {
        return Err(ApiError::new(ErrorCode::BadRequest, "`limit` is at most 1000"));
    }
    let (frames, frame_count) = state.engine.frames(&id, offset, limit).await?;
    // The stored frames are JSON already: join them without re-parsing.
    let mut body = String::with_capacity(frames.iter().map(|f| f.len() + 1).sum::<usize>() + 64);
    body.push_str("{\"frames\":[");
    body.push_str(&frames.join(","));
    body.push_str(&format!("],\"offset\":{offset},\"frameCount\":{frame_count}}}"));
    Ok(json_text(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatQuery {
    before: Option<u64>,
    limit: Option<u64>,
}

async fn chat_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<ChatQuery>, QueryRejection>,
) -> ApiResult<Json<ChatPage>> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(50);
    if limit > crate::engine::MAX_CHAT_PER_PAGE {
        return Err(ApiError::new(ErrorCode::BadRequest, "`limit` is at most 100"));
    }
    Ok(Json(state.engine.chat_page(&id, q.before, limit).await?))
}

async fn match_room(
    State(state): State<AppState>,
    who: CurrentUser,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<crate::engine::Matched>> {
    let req: MatchBody = if body.iter().all(u8::is_ascii_whitespace) {
        MatchBody::default()
    } else {
        object_body(&body)?;
        serde_json::from_slice(&body).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?
    };
    let idempotency = idempotency(&headers, "POST /api/match", &serde_json::to_vec(&req).unwrap_or_default())?;
    Ok(Json(state.engine.match_reserve(&who.user, req.max_members, idempotency).await?))
}

/// The `Idempotency-Key` header of a write, with the write it keys.
fn idempotency(headers: &HeaderMap, what: &str, body: &[u8]) -> ApiResult<Option<Idempotency>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
    // Bytes that are not ASCII stay not ASCII: the key's one check refuses them.
    let key = String::from_utf8_lossy(value.as_bytes());
    Ok(Some(Idempotency::new(&key, what, body)?))
}

/// The engine's figures and the transports' limits.
#[derive(serde::Serialize)]
struct ServerStats {
    #[serde(flatten)]
    engine: crate::engine::Stats,
    limits: LimitStats,
}

async fn stats(State(state): State<AppState>, _admin: Admin) -> Json<ServerStats> {
    Json(ServerStats { engine: state.engine.stats().await, limits: state.limits.stats() })
}

async fn metrics(State(state): State<AppState>, _admin: Admin) -> Response {
    let stats = state.engine.stats().await;
    let by_status = [
        ("waiting", stats.by_status.waiting),
        ("active", stats.by_status.active),
        ("finished", stats.by_status.finished),
    ];
    let mut text = state.engine.metrics().prometheus(stats.rooms, by_status);
    text.push_str(&state.limits.prometheus());
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
