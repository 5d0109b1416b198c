//! A room changing owner: taken over from a server that died, and shown
//! again in full after a broker outage.

use super::*;

impl RoomActor {
    /// This server took the room over: what only lived on the old owner
    /// (temporary lock, presenter) is cleared, the connections still alive
    /// come back with their roles, and everyone following the room, here
    /// and on other servers, gets one delta, then a `presence:diff` with
    /// the first page again and each connection that did not come back
    /// (`gone`) as gone.
    pub(super) async fn take_over(
        &mut self,
        members: Vec<(Arc<str>, PresenceRecord)>,
        gone: Vec<Arc<str>>,
        is_default: bool,
    ) -> Result<(), EngineError> {
        self.lock = None;
        self.presenter = Presenting::default();
        let mut next = self.meta.clone();
        next.metadata_locked = None;
        next.presenter_sid = None;
        next.is_default = is_default;
        for (sid, record) in members {
            let member = Member { sid: sid.clone(), user: record.user.clone(), link: Link::Node(record.node) };
            if !self.present.contains_key(&sid) {
                let place = self.roster.place(&sid, record.role);
                self.present.insert(sid.clone(), Present { member, place });
            }
            self.take_seat(&record.user, record.role, Some(&sid));
        }
        let mut next = self.with_counts(next);
        self.host_now(&mut next);
        self.commit(next, false, None).await?;
        self.roster.forget_shown(gone);
        self.flush_presence(None).await;
        Ok(())
    }

    /// After a broker outage: every server's room list, and this room's
    /// connections on other servers, get the room's whole state again (a
    /// creation delta applies over any older version).
    pub(super) fn republish(&self) {
        let payload = frame(ServerEvent::RoomUpdate(RoomDelta::creation(&self.meta)).to_json());
        self.shared.broker.commit(&self.meta, self.last_active_unix(), &payload);
        if self.present.values().any(|p| matches!(p.member.link, Link::Node(_))) {
            self.shared.broker.publish(&self.key, Audience::All { skip: None }, &payload);
        }
    }
}
