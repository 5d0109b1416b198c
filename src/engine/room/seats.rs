//! Who is in the room: joins and leaves, seats (members and spectators,
//! kept for the grace period), the host, and the presence records a server
//! taking the room over reads.

use super::*;

impl RoomActor {
    pub(super) fn presence_of(&self, sid: &Arc<str>) -> Option<Presence> {
        let p = self.present.get(sid)?;
        let seat = self.seats.get(&p.member.user.id)?;
        Some(Presence {
            room_id: self.meta.id.clone(),
            sid: sid.to_string(),
            user_id: p.member.user.id.to_string(),
            user_name: p.member.user.name.to_string(),
            role: seat.role,
        })
    }

    /// The role a user gets on joining, or `full`.
    pub(super) fn role_for(&self, user: &User, wanted: Option<Role>, mode: JoinMode) -> Result<Role, EngineError> {
        let seat = self.seats.get(&user.id);
        let has_member_seat = seat.is_some_and(|s| s.role == Role::Member);
        let seat_free = self.meta.max_members == 0 || self.seats_taken() < self.meta.max_members as usize;
        if mode == JoinMode::Restore {
            return Ok(wanted.unwrap_or(Role::Member));
        }
        if let JoinMode::Match { max_members } = mode {
            let open = self.meta.status == RoomStatus::Waiting
                && !self.meta.locked
                && !self.meta.hidden
                && self.meta.max_members == max_members;
            return if open && (has_member_seat || seat_free) {
                Ok(Role::Member)
            } else {
                Err(EngineError::full("no free seat"))
            };
        }
        if has_member_seat {
            return Ok(Role::Member);
        }
        if wanted != Some(Role::Spectator) && seat_free {
            return Ok(Role::Member);
        }
        if self.meta.allow_spectators {
            Ok(Role::Spectator)
        } else {
            Err(EngineError::full(format!("room {} has no free seat and no spectators", self.meta.id)))
        }
    }

    /// Gives `user` the seat with `role`, marking it present or (without a
    /// connection) held for the grace period.
    pub(super) fn take_seat(&mut self, user: &User, role: Role, sid: Option<&Arc<str>>) {
        let now = Instant::now();
        let seat = self.seats.entry(user.id.clone()).or_insert_with(|| Seat {
            user: user.clone(),
            role,
            conns: Vec::new(),
            present_since: now,
            left_at: Some(now),
            reserved: false,
        });
        let role_changed = seat.role != role;
        seat.role = role;
        if sid.is_some() {
            // The user may have renamed since the seat was taken.
            seat.user = user.clone();
        }
        // A seat taken without a connection is a match's reservation until
        // the user connects; one left by a connection is only kept.
        seat.reserved = sid.is_none() && seat.conns.is_empty();
        let replace: Vec<Arc<str>> = if role_changed { seat.conns.clone() } else { Vec::new() };
        if let Some(sid) = sid {
            if seat.conns.is_empty() {
                seat.present_since = now;
            }
            if !seat.conns.contains(sid) {
                seat.conns.push(sid.clone());
            }
            seat.left_at = None;
        }
        if self.is_host(user) && sid.is_some() {
            self.host_absent_since = None;
        }
        for sid in replace {
            if let Some(p) = self.present.get_mut(&sid) {
                self.roster.unplace(p.place);
                p.place = self.roster.place(&sid, role);
            }
        }
    }

    /// The host as it should be now: the first member of a hostless room,
    /// or the member present longest once the host has been gone for the
    /// grace period.
    pub(super) fn host_now(&self, next: &mut RoomMetadata) {
        let present_members = || {
            self.seats
                .values()
                .filter(|s| s.role == Role::Member && !s.conns.is_empty())
                .min_by_key(|s| s.present_since)
        };
        let grace = self.settings().seat_grace;
        let host_gone = match &next.host_user_id {
            None => true,
            Some(host) => {
                let host_present = self.seats.get(host.as_str()).is_some_and(|s| !s.conns.is_empty());
                !host_present && self.host_absent_since.is_some_and(|since| since.elapsed() >= grace)
            }
        };
        if host_gone && let Some(seat) = present_members() {
            next.host_user_id = Some(seat.user.id.to_string());
            next.host_name = Some(seat.user.name.to_string());
        }
        // A host who renamed shows the new name once back.
        if let Some(seat) = next.host_user_id.as_deref().and_then(|h| self.seats.get(h))
            && next.host_name.as_deref() != Some(&*seat.user.name)
        {
            next.host_name = Some(seat.user.name.to_string());
        }
    }

    pub(super) async fn join(
        &mut self,
        member: Member,
        wanted: Option<Role>,
        mode: JoinMode,
        reply_id: Option<u64>,
    ) -> Result<Role, EngineError> {
        let sid = member.sid.clone();
        let user = member.user.clone();
        let role = self.role_for(&user, wanted, mode)?;
        if !self.present.contains_key(&sid) {
            let place = self.roster.place(&sid, role);
            self.present.insert(sid.clone(), Present { member: member.clone(), place });
        }
        self.record_presence(&member, role);
        self.take_seat(&user, role, Some(&sid));
        self.touch();
        let mut next = self.meta.clone();
        self.host_now(&mut next);
        if next.host_user_id != self.meta.host_user_id || next.host_name != self.meta.host_name {
            // A new host (or the host's new name) is durable and cannot
            // wait for the presence tick.
            if let Err(e) = self.commit(self.with_counts(next), true, Some(&sid)).await {
                self.drop_connection(&sid);
                return Err(e);
            }
        }
        if mode == JoinMode::Restore {
            return Ok(role);
        }
        self.presence_changed(Some(&sid)).await;
        let reply = match reply_id {
            Some(id) => {
                let chat = self.recent_chat().await.unwrap_or_default();
                let data = JoinRoomReply {
                    sid: sid.to_string(),
                    // As committed: counts not yet announced come in the
                    // room's next delta, within a presence tick.
                    room: self.meta.clone(),
                    role,
                    presence: self.presence_first_page(),
                    frame: self.presenter.frame,
                    chat,
                };
                frame(Reply::ok(id, &data).to_json())
            }
            None => Frame::new(),
        };
        match &member.link {
            Link::Node(_) => self.shared.broker.publish(&self.key, Audience::One { sid: &sid, admit: true }, &reply),
            Link::Local(conn) if !reply.is_empty() => {
                conn.out.reply(&reply);
            }
            Link::Local(_) => {}
        }
        Ok(role)
    }

    pub(super) async fn reserve(&mut self, user: User, max_members: u32) -> Result<RoomMetadata, EngineError> {
        self.role_for(&user, Some(Role::Member), JoinMode::Match { max_members })?;
        self.take_seat(&user, Role::Member, None);
        self.touch();
        // The reserved seat counts at once: the answer and every list agree.
        self.commit(self.with_counts(self.meta.clone()), false, None).await?;
        Ok(self.meta.clone())
    }

    /// Takes a connection out of the room's state (not announced).
    pub(super) fn drop_connection(&mut self, sid: &Arc<str>) -> bool {
        let Some(p) = self.present.remove(sid) else { return false };
        self.roster.unplace(p.place);
        self.shared.broker.presence_del(&self.key, sid);
        let user_id = &p.member.user.id;
        if let Some(seat) = self.seats.get_mut(user_id) {
            seat.conns.retain(|s| s != sid);
            if seat.conns.is_empty() {
                seat.left_at = Some(Instant::now());
                if self.meta.host_user_id.as_deref() == Some(&**user_id) {
                    self.host_absent_since = Some(Instant::now());
                }
            }
        }
        true
    }

    pub(super) async fn leave(&mut self, sid: &Arc<str>) -> Result<(), EngineError> {
        if !self.drop_connection(sid) {
            return Ok(());
        }
        let mut next = self.meta.clone();
        if self.lock.as_ref().is_some_and(|l| l.sid.as_ref() == Some(sid)) {
            self.lock = None;
            next.metadata_locked = None;
        }
        if next.presenter_sid.as_deref() == Some(&**sid) {
            next.presenter_sid = None;
            self.presenter.pending = false;
        }
        if next != self.meta {
            // What the connection held is released at once.
            self.commit(self.with_counts(next), false, None).await?;
        }
        self.presence_changed(None).await;
        Ok(())
    }

    /// Records who is present, for a server that takes the room over.
    pub(super) fn record_presence(&self, member: &Member, role: Role) {
        let broker = &self.shared.broker;
        if !broker.is_shared() {
            return;
        }
        let node = match &member.link {
            Link::Local(_) => broker.node().clone(),
            Link::Node(node) => node.clone(),
        };
        let record = PresenceRecord { node, user: member.user.clone(), role };
        broker.presence_set(&self.key, &member.sid, &record);
    }

    /// A server died: its connections leave, with what they held.
    pub(super) async fn node_gone(&mut self, node: &str) -> Result<(), EngineError> {
        let gone: Vec<Arc<str>> = self
            .present
            .iter()
            .filter(|(_, p)| matches!(&p.member.link, Link::Node(n) if &**n == node))
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in gone {
            self.leave(&sid).await?;
        }
        Ok(())
    }
}
