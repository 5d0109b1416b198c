//! The middleware every request passes: its client is named, its REST
//! rate taken, and it is answered `timeout` if it is not received and
//! answered within the request deadline.

use app::error::ErrorCode;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::limits::LimitKind;
use super::pages::is_static_file;
use super::state::AppState;
use super::throttle::{ClientIp, Peer, client_ip, rate_limited};

/// Whether a path is rate limited: everything but static files, the
/// health check and the operator's metrics. A socket upgrade counts too,
/// so reconnecting in a loop is limited like any request.
fn is_limited(path: &str) -> bool {
    !(is_static_file(path) || ["/healthz", "/metrics"].contains(&path))
}

/// Names the client, applies its REST rate and the request deadline.
pub async fn admit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().map(|p| p.addr.ip());
    let ip = peer.map(|p| client_ip(p, req.headers(), &state.throttle.trusted_proxies));
    if let Some(ip) = ip {
        req.extensions_mut().insert(ClientIp(ip));
        if is_limited(req.uri().path())
            && let Err(wait) = state.throttle.rest.take(ip)
        {
            state.limits.hit(LimitKind::RestRate);
            return rate_limited(LimitKind::RestRate, wait).into_response();
        }
    }
    match tokio::time::timeout(state.throttle.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            state.limits.hit(LimitKind::RequestTimeout);
            let secs = state.throttle.request_timeout.as_secs_f64();
            let mut response =
                ApiError::new(ErrorCode::Timeout, format!("the request was not received within {secs} s"))
                    .into_response();
            response.headers_mut().insert(axum::http::header::CONNECTION, "close".parse().expect("static header"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_files_and_the_socket_are_not_rate_limited() {
        assert!(is_limited("/api/rooms"));
        assert!(is_limited("/rooms/ROOM-7KQ2MX"));
        assert!(!is_limited("/pkg/roomcast.wasm"));
        assert!(is_limited("/ws"));
        assert!(!is_limited("/healthz"));
    }
}
