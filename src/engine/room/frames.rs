//! Appending frames (PROTOCOL.md 6.4): who may append, the room's cap,
//! and the receipt of a keyed append, stored with the frames.

use super::*;

impl RoomActor {
    pub(super) async fn append_frames(
        &mut self,
        user: &User,
        frames: Vec<String>,
        idempotency: Option<Idempotency>,
    ) -> Result<u64, EngineError> {
        if let Err(refusal) = self.may_append(user, frames.len() as u64) {
            let storage = &*self.shared.storage;
            let first = or_recalled::<FramesAppended>(refusal, storage, &user.id, idempotency.as_ref()).await?;
            return Ok(first.frame_count);
        }
        self.touch();
        let mut next = self.meta.clone();
        next.frame_count += frames.len() as u64;
        next.version += 1;
        let stored = StoredRoom { meta: next.clone(), last_active: self.last_active_unix() };
        let answer = FramesAppended { frame_count: next.frame_count };
        let receipt = idempotency.as_ref().map(|i| i.receipt(&user.id, &answer)).transpose()?;
        let storage = &self.shared.storage;
        let earlier = storage.append_frames(&stored, frames, receipt.as_ref()).await.map_err(storage_failed)?;
        if let (Some(first), Some(idem)) = (earlier, &idempotency) {
            return replay::<FramesAppended>(&first, idem).map(|a| a.frame_count);
        }
        self.announce(next, None).await;
        Ok(self.meta.frame_count)
    }

    /// Whether `user` may append `count` frames now.
    fn may_append(&self, user: &User, count: u64) -> Result<(), EngineError> {
        if self.meta.locked {
            return Err(EngineError::locked("the room is locked"));
        }
        if let Some(lock) = &self.lock
            && lock.user_id != user.id
        {
            let by = self.meta.metadata_locked.as_ref().map(|l| l.user_name.clone()).unwrap_or_default();
            return Err(EngineError::locked(format!("the room is temporarily locked by {by}")));
        }
        let max = self.settings().max_frames_per_room;
        if self.meta.frame_count + count > max {
            let room = self.meta.frame_count;
            return Err(EngineError::too_large(format!("a room holds at most {max} frames (this one has {room})")));
        }
        Ok(())
    }
}
