//! Sessions: unguessable tokens (256 bits from the OS-seeded CSPRNG) naming a
//! user. Only a SHA-256 of each token is stored; lookups are cached.

use std::sync::Arc;

use app::api::SessionInfo;
use app::error::{ErrorBody, ErrorCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::engine::connection::User;
use crate::engine::storage::{Storage, StoredSession};

pub const MAX_USER_NAME_CHARS: usize = 40;

#[derive(Clone)]
pub struct Sessions {
    storage: Arc<dyn Storage>,
    cache: Arc<DashMap<String, User>>,
}

fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn internal(e: impl std::fmt::Display) -> ErrorBody {
    tracing::error!(error = %e, "session storage failed");
    ErrorBody::new(ErrorCode::Internal, "session storage failed")
}

/// Checks and trims a user name.
pub fn validate_user_name(name: &str) -> Result<String, ErrorBody> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_USER_NAME_CHARS {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("field `userName` must be 1 to {MAX_USER_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ErrorBody::new(ErrorCode::BadRequest, "field `userName` has control characters"));
    }
    Ok(name.to_string())
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

impl Sessions {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Sessions { storage, cache: Arc::new(DashMap::new()) }
    }

    /// Creates a session; the token is only ever returned here.
    pub async fn create(&self, user_name: &str) -> Result<SessionInfo, ErrorBody> {
        let user_name = validate_user_name(user_name)?;
        let token = random_token(32);
        let user_id = format!("u_{}", random_token(9).to_ascii_lowercase().replace(['-', '_'], "x"));
        let stored = StoredSession { token_hash: hash(&token), user_id: user_id.clone(), user_name: user_name.clone() };
        self.storage.save_session(&stored).await.map_err(internal)?;
        self.cache.insert(stored.token_hash, User { id: user_id.as_str().into(), name: user_name.as_str().into() });
        Ok(SessionInfo { token: Some(token), user_id, user_name })
    }

    /// A session with a generated guest name, for a browser's first visit.
    pub async fn create_guest(&self) -> Result<SessionInfo, ErrorBody> {
        let n: u32 = rand::rng().random_range(1000..10000);
        self.create(&format!("guest-{n}")).await
    }

    /// The user behind a token, if the token is valid.
    pub async fn resolve(&self, token: &str) -> Result<Option<User>, ErrorBody> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let h = hash(token);
        if let Some(user) = self.cache.get(&h) {
            return Ok(Some(user.clone()));
        }
        let Some(s) = self.storage.session(&h).await.map_err(internal)? else {
            return Ok(None);
        };
        let user = User { id: s.user_id.as_str().into(), name: s.user_name.as_str().into() };
        self.cache.insert(h, user.clone());
        Ok(Some(user))
    }

    pub async fn rename(&self, token: &str, user: &User, user_name: &str) -> Result<User, ErrorBody> {
        let user_name = validate_user_name(user_name)?;
        let h = hash(token);
        let stored =
            StoredSession { token_hash: h.clone(), user_id: user.id.to_string(), user_name: user_name.clone() };
        self.storage.save_session(&stored).await.map_err(internal)?;
        let user = User { id: user.id.clone(), name: user_name.as_str().into() };
        self.cache.insert(h, user.clone());
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token(32);
        let b = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_user_name("  alice ").unwrap(), "alice");
        assert!(validate_user_name("").is_err());
        assert!(validate_user_name(&"x".repeat(41)).is_err());
        assert!(validate_user_name("a\u{7}b").is_err());
    }
}
