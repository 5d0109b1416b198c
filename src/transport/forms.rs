//! The lobby's forms for browsers without JavaScript: plain form posts
//! answered with a redirect (to the room, or back to the lobby with the
//! reason). With JavaScript the pages submit through the API instead and
//! never reach these.

use app::api::CreateRoom;
use app::error::ErrorBody;
use axum::Router;
use axum::extract::{Extension, Form, Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::auth::{cookie_token, session_cookie};
use super::error::error_body;
use super::rest::session_slot;
use super::state::AppState;
use super::throttle::ClientIp;
use super::ws::origin_allowed;
use crate::engine::connection::User;

pub fn routes() -> Router<AppState> {
    Router::new().route("/create", post(create_room)).route("/join", get(join_by_code))
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    description: String,
    /// A checked checkbox sends `on`; an unchecked one sends nothing.
    hidden: Option<String>,
}

#[derive(Deserialize)]
struct JoinForm {
    #[serde(default)]
    code: String,
}

/// Where the lobby shows a failed form: its error and what was typed.
#[derive(Serialize, Default)]
struct Back<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    create_error: Option<&'a str>,
    /// The error's code, so the form can put it next to its field.
    #[serde(skip_serializing_if = "Option::is_none")]
    create_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    join_error: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    code: &'a str,
}

fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

fn back(to: Back<'_>, cookie: Option<String>) -> Response {
    let query = serde_urlencoded::to_string(&to).unwrap_or_default();
    see_other(&format!("/?{query}"), cookie)
}

fn optional(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The visitor's user, or a new guest session (and its cookie) for a
/// first visit, at the address's session rate.
async fn user_or_guest(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<ClientIp>,
) -> Result<(User, Option<String>), ErrorBody> {
    if let Some(token) = cookie_token(headers)
        && let Some(user) = state.sessions.resolve(&token).await?
    {
        return Ok((user, None));
    }
    session_slot(state, client).map_err(|e| e.0)?;
    let name = format!("guest-{}", rand::random_range(1000..10_000));
    let info = state.sessions.create(&name).await?;
    let token = info.token.unwrap_or_default();
    let user = User { id: info.user_id.into(), name: info.user_name.into() };
    Ok((user, Some(session_cookie(&token, state.config.secure_cookie))))
}

/// `POST /create` (form): creates the room and opens it.
async fn create_room(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Option<Extension<ClientIp>>,
    Form(form): Form<CreateForm>,
) -> Response {
    let typed = Back { id: &form.id, description: &form.description, ..Back::default() };
    if !origin_allowed(&headers, &state.config.allowed_origins) {
        let reason = "this form was sent from another site";
        return back(Back { create_error: Some(reason), ..typed }, None);
    }
    let (user, cookie) = match user_or_guest(&state, &headers, client.map(|Extension(ip)| ip)).await {
        Ok(found) => found,
        Err(e) => return back(Back { create_error: Some(&e.message), ..typed }, None),
    };
    let req = CreateRoom {
        id: optional(&form.id),
        description: optional(&form.description),
        hidden: Some(form.hidden.is_some()),
        ..CreateRoom::default()
    };
    match state.engine.create_room(&user, req, None).await {
        Ok(room) => see_other(&format!("/rooms/{}", room.id), cookie),
        Err(e) => {
            let e = error_body(e);
            back(Back { create_error: Some(&e.message), create_code: Some(e.code.as_str()), ..typed }, cookie)
        }
    }
}

/// `GET /join?code=…` (form): opens the room the code names.
async fn join_by_code(State(state): State<AppState>, Query(form): Query<JoinForm>) -> Response {
    for id in app::ids::code_candidates(&form.code) {
        if let Ok(room) = state.engine.get_room(&id).await {
            return see_other(&format!("/rooms/{}", room.id), None);
        }
    }
    let reason = format!("No room has the code “{}”.", form.code.trim());
    back(Back { join_error: Some(&reason), code: &form.code, ..Back::default() }, None)
}
