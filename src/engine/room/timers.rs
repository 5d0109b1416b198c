//! Time-based rules: seat grace, host migration, lock expiry, presenter
//! coalescing, idle warning and expiry, all on the room task's one timer.

use super::*;

impl RoomActor {
    /// When the timer must next wake the task.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let s = self.settings();
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for seat in self.seats.values() {
            if let Some(left) = seat.left_at {
                consider(left + s.seat_grace);
            }
        }
        if let Some(since) = self.host_absent_since
            && self.seats.values().any(|s| s.role == Role::Member && !s.conns.is_empty())
        {
            consider(since + s.seat_grace);
        }
        if let Some(lock) = &self.lock {
            consider(lock.expires_at);
        }
        if let Some(at) = self.roster.deadline() {
            consider(at);
        }
        if self.presenter.pending
            && let Some(last) = self.presenter.last_sent
        {
            consider(last + s.frame_update_interval);
        }
        if !self.pinned() && !self.expiry_asked {
            let warn_at = self.last_active + s.room_idle.saturating_sub(s.room_warning);
            consider(if self.warned { self.last_active + s.room_idle } else { warn_at });
        }
        next
    }

    pub(super) async fn on_timer(&mut self) {
        let now = Instant::now();
        let s = self.settings().clone();
        let before = self.seats.len();
        self.seats.retain(|_, seat| seat.left_at.is_none_or(|left| now < left + s.seat_grace));
        let mut next = self.with_counts(self.meta.clone());
        if let Some(lock) = &self.lock
            && now >= lock.expires_at
        {
            self.lock = None;
            next.metadata_locked = None;
        }
        self.host_now(&mut next);
        let host_changed = next.host_user_id != self.meta.host_user_id;
        let changed = host_changed || self.seats.len() != before || next.metadata_locked != self.meta.metadata_locked;
        if changed && let Err(e) = self.commit(next, host_changed, None).await {
            tracing::warn!(room = %self.meta.id, error = %e, "timer change failed");
        }
        if self.roster.flush_allowed() {
            self.flush_presence(None).await;
        }
        if self.presenter.pending && self.presenter.last_sent.is_none_or(|t| t.elapsed() >= s.frame_update_interval) {
            self.send_frame_update();
        }
        if !self.pinned() && !self.expiry_asked {
            let idle = self.last_active.elapsed();
            if idle >= s.room_idle {
                self.expiry_asked = true;
                let _ = self.shared.expired.send(self.meta.id.as_str().into());
            } else if !self.warned && idle >= s.room_idle.saturating_sub(s.room_warning) {
                self.warned = true;
                let remaining = s.room_idle.saturating_sub(idle).as_secs_f64().ceil() as u64;
                let warning = ServerEvent::RoomWarning(RoomWarning {
                    room_id: self.meta.id.clone(),
                    seconds_remaining: remaining,
                    message: format!("This room closes in {remaining} s unless someone is active in it."),
                });
                self.broadcast_event(warning, None);
            }
        }
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
