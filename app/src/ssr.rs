//! What the server gives the pages while rendering: read access to rooms
//! and the request's session. Server only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use leptos::prelude::*;

use crate::api::{RoomPage, RoomQuery, SessionInfo};
use crate::model::RoomMetadata;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Implemented by the server's engine.
pub trait RoomSource: Send + Sync + 'static {
    /// One page of the room list (an empty page for a bad query).
    fn rooms(&self, query: RoomQuery) -> BoxFuture<RoomPage>;
    fn room(&self, id: String) -> BoxFuture<Option<RoomMetadata>>;
}

/// Provided in context for every page render.
#[derive(Clone)]
pub struct ServerData(pub Arc<dyn RoomSource>);

/// The session the server attached to this request.
pub fn request_session() -> Option<SessionInfo> {
    use_context::<http::request::Parts>().and_then(|parts| parts.extensions.get::<SessionInfo>().cloned())
}

/// Answers this page with a status other than 200.
pub fn set_status(code: u16) {
    if let (Some(options), Ok(status)) =
        (use_context::<leptos_axum::ResponseOptions>(), http::StatusCode::from_u16(code))
    {
        options.set_status(status);
    }
}

/// Sends the page's `Content-Security-Policy`: scripts only from this
/// origin or with this render's nonce (the hydration scripts carry it),
/// WebAssembly allowed, sockets and fetches to this origin, never framed.
pub fn content_security_policy() {
    let (Some(nonce), Some(response)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>())
    else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}
