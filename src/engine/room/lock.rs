//! The temporary lock (PROTOCOL.md 6.3): acquire or refresh, message,
//! release; expiry and release on close are in `timers.rs` and `leave`.

use super::*;

impl RoomActor {
    pub(super) fn lock_ttl(&self, ttl: Option<u32>) -> Result<Duration, EngineError> {
        let ttl = ttl.unwrap_or(self.settings().default_lock_ttl);
        if !(1..=300).contains(&ttl) {
            return Err(EngineError::bad_request("field `ttlSeconds` must be 1 to 300"));
        }
        Ok(Duration::from_secs(ttl as u64))
    }

    pub(super) fn lock_reply(&self) -> Value {
        let expires_at = self.lock.as_ref().map_or(0.0, |l| l.expires_at_unix);
        serde_json::to_value(LockReply { expires_at }).unwrap_or_default()
    }

    pub(super) fn own_lock(&self, user: &User) -> Result<(), EngineError> {
        match &self.lock {
            Some(l) if l.user_id == user.id => Ok(()),
            Some(_) => Err(EngineError::locked("another user holds the lock")),
            None => Err(EngineError::not_found("the room is not temporarily locked")),
        }
    }

    pub(super) async fn lock_acquire(
        &mut self,
        conn: &Member,
        msg: Option<String>,
        ttl: Option<u32>,
    ) -> Result<Value, EngineError> {
        if self.meta.locked {
            return Err(EngineError::locked("the room is locked"));
        }
        let ttl = self.lock_ttl(ttl)?;
        let msg = validate_lock_msg(msg)?;
        if let Some(l) = &self.lock
            && l.user_id != conn.user.id
        {
            let by = self.meta.metadata_locked.as_ref().map(|l| l.user_name.clone()).unwrap_or_default();
            return Err(EngineError::locked(format!("{by} holds the lock")));
        }
        let held = self.lock.is_some();
        let mut next = self.meta.clone();
        match (&mut next.metadata_locked, held) {
            (Some(meta), true) => {
                if msg.is_some() {
                    meta.msg = msg;
                }
            }
            _ => {
                next.metadata_locked =
                    Some(LockMetadata { msg, user_name: conn.user.name.to_string(), timestamp: now_secs() });
            }
        }
        self.commit(next, false, None).await?;
        self.lock = Some(TempLock {
            user_id: conn.user.id.clone(),
            sid: self.lock.take().map_or(Some(conn.sid.clone()), |l| l.sid),
            expires_at: Instant::now() + ttl,
            expires_at_unix: now_secs() + ttl.as_secs_f64(),
        });
        Ok(self.lock_reply())
    }

    pub(super) fn lock_refresh(&mut self, user: &User, ttl: Option<u32>) -> Result<Value, EngineError> {
        self.own_lock(user)?;
        let ttl = self.lock_ttl(ttl)?;
        if let Some(l) = &mut self.lock {
            l.expires_at = Instant::now() + ttl;
            l.expires_at_unix = now_secs() + ttl.as_secs_f64();
        }
        Ok(self.lock_reply())
    }

    pub(super) async fn lock_msg(&mut self, user: &User, msg: String) -> Result<Value, EngineError> {
        self.own_lock(user)?;
        let msg = validate_lock_msg(Some(msg))?;
        let mut next = self.meta.clone();
        if let Some(meta) = &mut next.metadata_locked {
            meta.msg = msg;
        }
        self.commit(next, false, None).await?;
        Ok(json!({}))
    }

    pub(super) async fn lock_release(&mut self, user: &User) -> Result<Value, EngineError> {
        self.own_lock(user)?;
        self.lock = None;
        let mut next = self.meta.clone();
        next.metadata_locked = None;
        self.commit(next, false, None).await?;
        Ok(json!({}))
    }
}

const MAX_LOCK_MSG_CHARS: usize = 200;

fn validate_lock_msg(msg: Option<String>) -> Result<Option<String>, EngineError> {
    let Some(msg) = msg else { return Ok(None) };
    let msg = msg.trim();
    if msg.chars().count() > MAX_LOCK_MSG_CHARS {
        return Err(EngineError::bad_request(format!("field `msg` is longer than {MAX_LOCK_MSG_CHARS} characters")));
    }
    Ok((!msg.is_empty()).then(|| msg.to_string()))
}
