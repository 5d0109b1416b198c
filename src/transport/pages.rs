//! The server-rendered pages: a browser's first visit gets a guest session
//! cookie, and pages read rooms straight from the engine.

use std::sync::Arc;

use app::api::SessionInfo;
use app::model::RoomMetadata;
use app::ssr::{BoxFuture, RoomSource, ServerData};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::SET_COOKIE;
use axum::middleware::Next;
use axum::response::Response;

use super::auth::{cookie_token, session_cookie};
use super::state::AppState;
use crate::engine::Engine;

impl RoomSource for Engine {
    fn rooms(&self) -> BoxFuture<Vec<RoomMetadata>> {
        let engine = self.clone();
        Box::pin(async move { engine.list_rooms().await })
    }

    fn room(&self, id: String) -> BoxFuture<Option<RoomMetadata>> {
        let engine = self.clone();
        Box::pin(async move { engine.get_room(&id).await.ok() })
    }
}

/// The context every page render gets.
pub fn server_data(engine: &Engine) -> ServerData {
    ServerData(Arc::new(engine.clone()))
}

/// Whether a path is a page (not the API, the socket or a static file).
fn is_page(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    !(path.starts_with("/api/")
        || path == "/api"
        || path == "/ws"
        || path.starts_with("/pkg/")
        || path == "/healthz"
        || path == "/metrics"
        || last.contains('.'))
}

/// Gives a page request its session (creating a guest one on a first
/// visit) as a request extension the pages read.
pub async fn ensure_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !is_page(req.uri().path()) {
        return next.run(req).await;
    }
    let existing = match cookie_token(req.headers()) {
        Some(token) => state.sessions.resolve(&token).await.ok().flatten(),
        None => None,
    };
    let (info, new_cookie) = match existing {
        Some(user) => {
            (SessionInfo { token: None, user_id: user.id.to_string(), user_name: user.name.to_string() }, None)
        }
        None => match state.sessions.create_guest().await {
            Ok(info) => {
                let cookie = session_cookie(info.token.as_deref().unwrap_or_default(), state.config.secure_cookie);
                (SessionInfo { token: None, ..info }, Some(cookie))
            }
            Err(e) => {
                tracing::error!(error = %e, "could not create a guest session");
                return next.run(req).await;
            }
        },
    };
    req.extensions_mut().insert(info);
    let mut response = next.run(req).await;
    if let Some(cookie) = new_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::is_page;

    #[test]
    fn pages_are_told_apart_from_other_paths() {
        assert!(is_page("/"));
        assert!(is_page("/rooms"));
        assert!(is_page("/rooms/ROOM-7KQ2MX"));
        assert!(!is_page("/api/rooms"));
        assert!(!is_page("/ws"));
        assert!(!is_page("/pkg/roomcast.wasm"));
        assert!(!is_page("/favicon.ico"));
    }
}
