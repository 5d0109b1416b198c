//! Chat (PROTOCOL.md 6.5): send, edit own, recent history, rate limit.

use super::*;

impl RoomActor {
    pub(super) async fn recent_chat(&mut self) -> Result<Vec<ChatMessage>, EngineError> {
        if self.chat.is_none() {
            let storage = &self.shared.storage;
            let recent = storage.chat_page(&self.meta.id, None, RECENT_CHAT as u64).await.map_err(storage_failed)?;
            let last = storage.last_chat_id(&self.meta.id).await.map_err(storage_failed)?;
            self.chat = Some((recent.into(), last));
        }
        Ok(self.chat.as_ref().map(|(recent, _)| recent.iter().cloned().collect()).unwrap_or_default())
    }

    /// Applies the per-user chat rate limit, over all of the user's rooms.
    pub(super) fn chat_allowed(&mut self, user: &Arc<str>) -> Result<(), EngineError> {
        let (max, window) = (self.settings().chat_burst, self.settings().chat_window);
        let mut rates = self.shared.chat_rate.lock().unwrap_or_else(|e| e.into_inner());
        if rates.len() > 4096 {
            rates.retain(|_, sent| sent.back().is_some_and(|t| t.elapsed() < window));
        }
        let sent = rates.entry(user.clone()).or_default();
        while sent.front().is_some_and(|t| t.elapsed() >= window) {
            sent.pop_front();
        }
        if sent.len() >= max {
            let wait = sent.front().map_or(window, |t| window.saturating_sub(t.elapsed()));
            return Err(EngineError::rate_limited(format!("at most {max} messages per {} s", window.as_secs()), wait));
        }
        sent.push_back(Instant::now());
        Ok(())
    }

    /// Gives back the rate slot of a message that was not sent after all
    /// (a retry answered from its receipt).
    fn chat_unsent(&mut self, user: &Arc<str>) {
        let mut rates = self.shared.chat_rate.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sent) = rates.get_mut(user) {
            sent.pop_back();
        }
    }

    /// Sends a message; with a key, a retry answers the message the first
    /// send stored (and does not count against the rate).
    pub(super) async fn chat_send(
        &mut self,
        conn: &Member,
        text: String,
        key: Option<String>,
    ) -> Result<Value, EngineError> {
        let text = validate_chat_text(&text)?;
        let what = format!("chat:send {}", self.key);
        let idempotency = Idempotency::maybe(key.as_deref(), &what, text.as_bytes())?;
        if let Err(refusal) = self.chat_allowed(&conn.user.id) {
            let storage = &*self.shared.storage;
            let first = or_recalled::<ChatReply>(refusal, storage, &conn.user.id, idempotency.as_ref()).await?;
            return Ok(serde_json::to_value(first).unwrap_or_default());
        }
        self.recent_chat().await?;
        let keep = self.settings().max_chat_per_room;
        let Some((recent, last)) = self.chat.as_mut() else {
            return Err(EngineError::internal("chat history unavailable"));
        };
        let message = ChatMessage {
            id: *last + 1,
            room_id: self.meta.id.clone(),
            user_id: conn.user.id.to_string(),
            user_name: conn.user.name.to_string(),
            text,
            timestamp: now_secs(),
            edited_at: None,
        };
        let reply = ChatReply { message: message.clone() };
        let receipt = idempotency.as_ref().map(|i| i.receipt(&conn.user.id, &reply)).transpose()?;
        let earlier = self.shared.storage.save_chat(&message, keep, receipt.as_ref()).await.map_err(storage_failed)?;
        if let (Some(first), Some(idem)) = (earlier, &idempotency) {
            self.chat_unsent(&conn.user.id);
            return Ok(serde_json::to_value(replay::<ChatReply>(&first, idem)?).unwrap_or_default());
        }
        *last = message.id;
        recent.push_back(message.clone());
        if recent.len() > RECENT_CHAT {
            recent.pop_front();
        }
        let event = ServerEvent::ChatMessageNew(ChatEvent { room_id: self.meta.id.clone(), message: message.clone() });
        self.broadcast_event(event, Some(&conn.sid));
        Ok(serde_json::to_value(reply).unwrap_or_default())
    }

    pub(super) async fn chat_edit(&mut self, conn: &Member, id: u64, text: String) -> Result<Value, EngineError> {
        let text = validate_chat_text(&text)?;
        self.recent_chat().await?;
        let stored = self.shared.storage.chat_message(&self.meta.id, id).await.map_err(storage_failed)?;
        let Some(mut message) = stored else {
            return Err(EngineError::not_found(format!("no message {id}")));
        };
        if message.user_id != *conn.user.id {
            return Err(EngineError::forbidden("you can only edit your own messages"));
        }
        message.text = text;
        message.edited_at = Some(now_secs());
        let keep = self.settings().max_chat_per_room;
        self.shared.storage.save_chat(&message, keep, None).await.map_err(storage_failed)?;
        if let Some((recent, _)) = self.chat.as_mut()
            && let Some(m) = recent.iter_mut().find(|m| m.id == id)
        {
            *m = message.clone();
        }
        let event =
            ServerEvent::ChatMessageUpdated(ChatEvent { room_id: self.meta.id.clone(), message: message.clone() });
        self.broadcast_event(event, Some(&conn.sid));
        Ok(serde_json::to_value(ChatReply { message }).unwrap_or_default())
    }
}

pub const MAX_CHAT_CHARS: usize = 2000;

fn validate_chat_text(text: &str) -> Result<String, EngineError> {
    let text = text.trim();
    let n = text.chars().count();
    if n == 0 {
        return Err(EngineError::bad_request("field `text` is empty"));
    }
    if n > MAX_CHAT_CHARS {
        return Err(EngineError::too_large(format!("field `text` is longer than {MAX_CHAT_CHARS} characters")));
    }
    Ok(text.to_string())
}
