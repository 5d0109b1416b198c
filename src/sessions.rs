//! Sessions: unguessable tokens (256 bits from the OS-seeded CSPRNG) naming a
//! user. Only a SHA-256 of each token is stored; lookups are cached. A
//! session unused for its TTL expires and is removed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::api::SessionInfo;
use app::error::{ErrorBody, ErrorCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::engine::connection::User;
use crate::engine::storage::{Storage, StorageError, StoredSession};

pub const MAX_USER_NAME_CHARS: usize = 40;

#[derive(Clone)]
pub struct Sessions {
    storage: Arc<dyn Storage>,
    cache: Arc<DashMap<String, Cached>>,
    ttl: Duration,
}

/// A session in the cache: who, and when it was last used and last
/// marked used in storage.
#[derive(Clone)]
struct Cached {
    user: User,
    used: Instant,
    stored_use: Instant,
}

impl Cached {
    fn new(user: User) -> Self {
        let now = Instant::now();
        Cached { user, used: now, stored_use: now }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A storage failure as a session answer: `unavailable` (retry later) when
/// the store is unreachable or full, `internal` otherwise.
fn internal(e: StorageError) -> ErrorBody {
    tracing::error!(error = %e, "session storage failed");
    match e {
        StorageError::Unavailable(_) | StorageError::Full(_) => ErrorBody {
            code: ErrorCode::Unavailable,
            message: "session storage is unavailable; retry later".into(),
            retry_after_ms: Some(1000),
        },
        StorageError::Failed(_) => ErrorBody::new(ErrorCode::Internal, "session storage failed"),
    }
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
    /// Sessions in `storage` that expire after `ttl` unused.
    pub fn new(storage: Arc<dyn Storage>, ttl: Duration) -> Self {
        Sessions { storage, cache: Arc::new(DashMap::new()), ttl }
    }

    /// How often a used session is marked used in storage: often enough
    /// that it never expires while in use, rarely enough to cost nothing.
    fn store_use_every(&self) -> Duration {
        (self.ttl / 4).min(Duration::from_secs(3600))
    }

    /// Removes expired sessions, now and then every so often.
    pub fn start_sweeping(&self) {
        let sessions = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(sessions.store_use_every().max(Duration::from_millis(200)));
            loop {
                every.tick().await;
                sessions.sweep().await;
            }
        });
    }

    async fn sweep(&self) {
        let ttl = self.ttl;
        self.cache.retain(|_, c| c.used.elapsed() < ttl);
        match self.storage.remove_idle_sessions(ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "could not remove expired sessions"),
        }
    }

    /// Creates a session; the token is only ever returned here.
    pub async fn create(&self, user_name: &str) -> Result<SessionInfo, ErrorBody> {
        let user_name = validate_user_name(user_name)?;
        let token = random_token(32);
        let user_id = format!("u_{}", random_token(9).to_ascii_lowercase().replace(['-', '_'], "x"));
        let stored = StoredSession {
            token_hash: hash(&token),
            user_id: user_id.clone(),
            user_name: user_name.clone(),
            last_seen: None,
        };
        self.storage.save_session(&stored, self.ttl).await.map_err(internal)?;
        let user = User { id: user_id.as_str().into(), name: user_name.as_str().into() };
        self.cache.insert(stored.token_hash, Cached::new(user));
        Ok(SessionInfo { token: Some(token), user_id, user_name })
    }

    /// The user behind a token, if the token is valid.
    pub async fn resolve(&self, token: &str) -> Result<Option<User>, ErrorBody> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let h = hash(token);
        if let Some(user) = self.cached(&h) {
            return Ok(Some(user));
        }
        let Some(s) = self.storage.session(&h).await.map_err(internal)? else {
            return Ok(None);
        };
        let idle = s.last_seen.map(|seen| unix_now() - seen);
        if idle.is_some_and(|idle| idle >= self.ttl.as_secs_f64()) {
            return Ok(None);
        }
        let user = User { id: s.user_id.as_str().into(), name: s.user_name.as_str().into() };
        self.cache.insert(h.clone(), Cached::new(user.clone()));
        if idle.is_none_or(|idle| idle >= self.store_use_every().as_secs_f64()) {
            self.store_use(h);
        }
        Ok(Some(user))
    }

    /// A cached session that has not expired, marked used.
    fn cached(&self, h: &str) -> Option<User> {
        let user = {
            let cached = self.cache.get(h)?;
            if cached.used.elapsed() >= self.ttl {
                drop(cached);
                self.cache.remove(h);
                return None;
            }
            cached.user.clone()
        };
        self.used(h);
        Some(user)
    }

    /// Marks a session used; now and then also in storage.
    fn used(&self, h: &str) {
        let Some(mut cached) = self.cache.get_mut(h) else { return };
        cached.used = Instant::now();
        if cached.stored_use.elapsed() < self.store_use_every() {
            return;
        }
        cached.stored_use = Instant::now();
        drop(cached);
        self.store_use(h.to_string());
    }

    fn store_use(&self, h: String) {
        let (storage, ttl) = (self.storage.clone(), self.ttl);
        tokio::spawn(async move {
            if let Err(e) = storage.touch_session(&h, ttl).await {
                tracing::warn!(error = %e, "could not mark a session used");
            }
        });
    }

    pub async fn rename(&self, token: &str, user: &User, user_name: &str) -> Result<User, ErrorBody> {
        let user_name = validate_user_name(user_name)?;
        let h = hash(token);
        let stored = StoredSession {
            token_hash: h.clone(),
            user_id: user.id.to_string(),
            user_name: user_name.clone(),
            last_seen: None,
        };
        self.storage.save_session(&stored, self.ttl).await.map_err(internal)?;
        let user = User { id: user.id.clone(), name: user_name.as_str().into() };
        self.cache.insert(h, Cached::new(user.clone()));
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
