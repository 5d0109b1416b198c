//! Who is asking: the session from the cookie or a bearer token, and the
//! admin token rule of PROTOCOL.md section 4.

use app::api::SessionInfo;
use app::error::ErrorCode;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;

use super::error::ApiError;
use super::state::AppState;
use crate::engine::connection::User;

pub const COOKIE_NAME: &str = "roomcast_session";

/// The value of our session cookie, if the request carries one.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_string())
}

/// The bearer token of an `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// `Set-Cookie` for a session token: HttpOnly, SameSite=Lax, a year long.
pub fn session_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{secure}")
}

/// A request's session: bearer token first, then the cookie.
pub struct CurrentUser {
    pub user: User,
    pub token: String,
}

impl CurrentUser {
    pub fn info(&self) -> SessionInfo {
        SessionInfo { token: None, user_id: self.user.id.to_string(), user_name: self.user.name.to_string() }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        for token in [bearer_token(&parts.headers), cookie_token(&parts.headers)].into_iter().flatten() {
            if let Some(user) = state.sessions.resolve(&token).await? {
                return Ok(CurrentUser { user, token });
            }
        }
        Err(ApiError::new(ErrorCode::Unauthorized, "no valid session: POST /api/session first"))
    }
}

/// Passes when no admin token is configured, or the request bears it.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.config.admin_token.as_deref() else {
            return Ok(Admin);
        };
        match bearer_token(&parts.headers) {
            Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(Admin),
            _ => Err(ApiError::new(ErrorCode::Unauthorized, "this endpoint needs the admin token")),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
