//! The REST API of PROTOCOL.md section 4: each handler reads the request,
//! calls the engine and writes the answer.

use app::api::{CreateRoom, DefaultRoomRequest, PatchRoom, RoomList, SessionInfo, SessionRequest};
use app::error::ErrorCode;
use app::model::{DeleteReason, RoomMetadata};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};

use super::auth::{Admin, CurrentUser, session_cookie};
use super::error::{ApiError, ApiResult, Json};
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/session",
            get(get_session).post(create_session).patch(rename_session),
        )
        .route("/api/rooms", get(list_rooms).post(create_room))
        .route(
            "/api/rooms/{id}",
            get(get_room).patch(patch_room).delete(delete_room),
        )
        .route(
            "/api/default-room",
            put(set_default_room).delete(clear_default_room),
        )
        .route("/healthz", get(healthz))
        .route("/api/{*rest}", axum::routing::any(unknown_endpoint))
}

async fn unknown_endpoint() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn healthz() -> &'static str {
    "ok"
}

async fn create_session(
    State(state): State<AppState>,
    Json(req): Json<SessionRequest>,
) -> ApiResult<Response> {
    let info = state.sessions.create(&req.user_name).await?;
    let token = info.token.clone().unwrap_or_default();
    let cookie = session_cookie(&token, state.config.secure_cookie);
    Ok(([(SET_COOKIE, cookie)], Json(info)).into_response())
}

async fn get_session(who: CurrentUser) -> Json<SessionInfo> {
    Json(who.info())
}

async fn rename_session(
    State(state): State<AppState>,
    who: CurrentUser,
    Json(req): Json<SessionRequest>,
) -> ApiResult<Json<SessionInfo>> {
    let user = state
        .sessions
        .rename(&who.token, &who.user, &req.user_name)
        .await?;
    Ok(Json(SessionInfo {
        token: None,
        user_id: user.id.to_string(),
        user_name: user.name.to_string(),
    }))
}

async fn list_rooms(State(state): State<AppState>) -> Json<RoomList> {
    Json(RoomList {
        rooms: state.engine.list_rooms().await,
    })
}

async fn create_room(
    State(state): State<AppState>,
    who: CurrentUser,
    Json(req): Json<CreateRoom>,
) -> ApiResult<(StatusCode, Json<RoomMetadata>)> {
    let room = state.engine.create_room(&who.user, req).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

async fn get_room(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RoomMetadata>> {
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

async fn delete_room(
    State(state): State<AppState>,
    who: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .delete_room(Some(&who.user), &id, DeleteReason::Deleted)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_default_room(
    State(state): State<AppState>,
    _admin: Admin,
    Json(req): Json<DefaultRoomRequest>,
) -> ApiResult<Json<Option<RoomMetadata>>> {
    Ok(Json(
        state.engine.set_default_room(Some(&req.room_id)).await?,
    ))
}

async fn clear_default_room(State(state): State<AppState>, _admin: Admin) -> ApiResult<StatusCode> {
    state.engine.set_default_room(None).await?;
    Ok(StatusCode::NO_CONTENT)
}
