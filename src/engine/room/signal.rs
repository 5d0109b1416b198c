//! Signaling (PROTOCOL.md 6.5): relay to a connection in the same room.

use super::*;

impl RoomActor {
    pub(super) fn signal(
        &self,
        from: &Arc<str>,
        to: &str,
        kind: app::protocol::SignalKind,
        payload: Value,
    ) -> Result<Value, EngineError> {
        let size = serde_json::to_string(&payload).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > self.settings().max_signal_bytes {
            return Err(EngineError::too_large(format!(
                "signal payload over {} bytes",
                self.settings().max_signal_bytes
            )));
        }
        let Some(target) = self.present.get(to) else {
            return Err(EngineError::not_found(format!("no connection {to} in room {}", self.meta.id)));
        };
        let event =
            ServerEvent::Signal(SignalRelay { room_id: self.meta.id.clone(), from: from.to_string(), kind, payload });
        self.send_to(&target.member, &frame(event.to_json()));
        self.shared.metrics.sent(1);
        Ok(json!({}))
    }
}
