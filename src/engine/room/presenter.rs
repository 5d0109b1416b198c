//! The presenter and the shared frame (PROTOCOL.md 6.4), with
//! `frame_update` coalesced per room.

use super::*;

impl RoomActor {
    pub(super) async fn presenter_request(&mut self, sid: &Arc<str>) -> Result<Value, EngineError> {
        match self.meta.presenter_sid.as_deref() {
            Some(p) if p == &**sid => return Ok(json!({})),
            Some(_) => return Err(EngineError::conflict("someone else is presenting")),
            None => {}
        }
        let mut next = self.meta.clone();
        next.presenter_sid = Some(sid.to_string());
        self.commit(next, false, None).await?;
        Ok(json!({}))
    }

    pub(super) async fn presenter_release(&mut self, sid: &Arc<str>) -> Result<Value, EngineError> {
        if self.meta.presenter_sid.as_deref() != Some(&**sid) {
            return Err(EngineError::forbidden("you are not presenting"));
        }
        let mut next = self.meta.clone();
        next.presenter_sid = None;
        self.presenter.pending = false;
        self.commit(next, false, None).await?;
        Ok(json!({}))
    }

    pub(super) fn frame_set(&mut self, sid: &Arc<str>, frame_index: u64) -> Result<Value, EngineError> {
        if self.meta.presenter_sid.as_deref() != Some(&**sid) {
            return Err(EngineError::forbidden("only the presenter sets the frame"));
        }
        if frame_index >= self.meta.frame_count {
            return Err(EngineError::not_found(format!(
                "no frame {frame_index}; the room has {}",
                self.meta.frame_count
            )));
        }
        self.presenter.frame = Some(frame_index);
        let interval = self.settings().frame_update_interval;
        let due = self.presenter.last_sent.is_none_or(|t| t.elapsed() >= interval);
        if due {
            self.send_frame_update();
        } else {
            self.presenter.pending = true;
        }
        Ok(json!({}))
    }

    pub(super) fn send_frame_update(&mut self) {
        let (Some(frame_index), Some(sid)) = (self.presenter.frame, self.meta.presenter_sid.clone()) else {
            return;
        };
        self.presenter.last_sent = Some(Instant::now());
        self.presenter.pending = false;
        let event = ServerEvent::FrameUpdate(FrameUpdate {
            room_id: self.meta.id.clone(),
            frame: frame_index,
            sid: sid.clone(),
        });
        self.broadcast_event(event, Some(&sid));
    }
}
