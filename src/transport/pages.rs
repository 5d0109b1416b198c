//! The server-rendered pages: they see the visitor's session, if any, and
//! read rooms straight from the engine.

use std::sync::Arc;

use app::api::{RoomPage, RoomQuery, SessionInfo};
use app::model::RoomMetadata;
use app::ssr::{BoxFuture, RoomSource, ServerData};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::auth::cookie_token;
use super::state::AppState;
use crate::engine::Engine;

impl RoomSource for Engine {
    fn rooms(&self, query: RoomQuery) -> BoxFuture<RoomPage> {
        let engine = self.clone();
        Box::pin(async move { engine.query_rooms(&query).await.unwrap_or_default() })
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

/// Whether a path is a static file: the built site (`/pkg/…`) or a name
/// with an extension (`/favicon.png`).
pub fn is_static_file(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    path.starts_with("/pkg/") || last.contains('.')
}

/// Whether a path is a page (not the API, the socket or a static file).
fn is_page(path: &str) -> bool {
    let not_pages = ["/api", "/ws", "/healthz", "/metrics"];
    !(path.starts_with("/api/") || not_pages.contains(&path) || is_static_file(path))
}

/// Gives a page request the visitor's session, if it has one, as a
/// request extension the pages read. A first visit gets none: the browser
/// asks for one when it first acts (opens its socket), so crawlers and
/// page views leave nothing stored.
pub async fn page_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !is_page(req.uri().path()) {
        return next.run(req).await;
    }
    let user = match cookie_token(req.headers()) {
        Some(token) => state.sessions.resolve(&token).await.ok().flatten(),
        None => None,
    };
    if let Some(user) = user {
        req.extensions_mut().insert(SessionInfo {
            token: None,
            user_id: user.id.to_string(),
            user_name: user.name.to_string(),
        });
    }
    next.run(req).await
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
