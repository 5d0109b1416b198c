//! Presence at scale: every connection's place in the presence order
//! (members before spectators, each in arrival order), the first page
//! everyone sees, and one flush per presence tick that commits the counts
//! and sends how the first page changed (`presence:diff`). A join storm or
//! a mass departure thus costs each member a message or two per tick, not
//! one per arrival; the tick grows with the room.

use std::time::Duration;

use app::protocol::{MAX_PRESENCE_PAGE, PRESENCE_PAGE, PresenceDiff, PresencePage};

use super::*;

/// How often a room announces presence changes, at most.
pub(super) const PRESENCE_TICK: Duration = Duration::from_millis(100);
/// In a big room the tick grows with the room (50 us per connection, so
/// 500 ms at 10,000), keeping what one room's announcements cost the
/// server near 20,000 messages a second whatever its size.
const TICK_PER_CONNECTION: Duration = Duration::from_micros(50);
const LONGEST_TICK: Duration = Duration::from_secs(1);

/// A connection's place in the presence order: its role's rank, then when
/// it arrived.
pub(super) type Place = (u8, u64);

fn rank(role: Role) -> u8 {
    match role {
        Role::Member => 0,
        Role::Spectator => 1,
    }
}

/// The presence order and what the room's channel was last told of it.
#[derive(Default)]
pub(super) struct Roster {
    order: BTreeMap<Place, Arc<str>>,
    arrivals: u64,
    /// The first page as last announced, with each entry's rank.
    shown: Vec<(Arc<str>, u8)>,
    /// Connections to announce as gone that were never placed here (they
    /// died with the server this room was taken over from).
    departed: Vec<Arc<str>>,
    /// A change is waiting for the next flush.
    due: bool,
    last_flush: Option<Instant>,
}

impl Roster {
    /// Places a connection at the end of its role's order.
    pub fn place(&mut self, sid: &Arc<str>, role: Role) -> Place {
        self.arrivals += 1;
        let place = (rank(role), self.arrivals);
        self.order.insert(place, sid.clone());
        self.due = true;
        place
    }

    pub fn unplace(&mut self, place: Place) {
        self.order.remove(&place);
        self.due = true;
    }

    /// Connections from `offset` on, in presence order.
    pub fn page(&self, offset: usize, limit: usize) -> impl Iterator<Item = &Arc<str>> {
        self.order.values().skip(offset).take(limit)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The presence tick for the room's size.
    pub fn tick(&self) -> Duration {
        let by_size = TICK_PER_CONNECTION * u32::try_from(self.order.len()).unwrap_or(u32::MAX);
        by_size.clamp(PRESENCE_TICK, LONGEST_TICK)
    }

    /// When the next flush may run, if one is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.due.then(|| self.last_flush.map_or_else(Instant::now, |t| t + self.tick()))
    }

    /// Whether a due flush may run now.
    pub fn flush_allowed(&self) -> bool {
        self.due && self.last_flush.is_none_or(|t| t.elapsed() >= self.tick())
    }

    /// After a take-over: announce everyone again and these as gone.
    pub fn forget_shown(&mut self, departed: Vec<Arc<str>>) {
        self.shown.clear();
        self.departed.extend(departed);
        self.due = true;
    }
}

impl RoomActor {
    /// The first page as a join reply carries it.
    pub(super) fn presence_first_page(&self) -> Vec<Presence> {
        self.roster.page(0, PRESENCE_PAGE).filter_map(|sid| self.presence_of(sid)).collect()
    }

    /// `presence:page`: any page of the room's presence.
    pub(super) fn presence_page(&self, offset: u64, limit: Option<u32>) -> Result<Value, EngineError> {
        let limit = limit.unwrap_or(PRESENCE_PAGE as u32);
        if !(1..=MAX_PRESENCE_PAGE).contains(&limit) {
            return Err(EngineError::bad_request(format!("`limit` must be between 1 and {MAX_PRESENCE_PAGE}")));
        }
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let presence = self.roster.page(offset, limit as usize).filter_map(|sid| self.presence_of(sid)).collect();
        let page = PresencePage { presence, total: self.roster.len() as u64 };
        serde_json::to_value(page).map_err(|e| EngineError::internal(e.to_string()))
    }

    /// Flushes presence now if the tick allows (else the timer will).
    pub(super) async fn presence_changed(&mut self, skip: Option<&str>) {
        if self.roster.flush_allowed() {
            self.flush_presence(skip).await;
        }
    }

    /// Commits the counts and sends how the first page changed.
    pub(super) async fn flush_presence(&mut self, skip: Option<&str>) {
        self.roster.due = false;
        self.roster.last_flush = Some(Instant::now());
        let next = self.with_counts(self.meta.clone());
        if let Err(e) = self.commit(next, false, skip).await {
            tracing::warn!(room = %self.meta.id, error = %e, "presence counts not committed");
        }
        let page: Vec<(Arc<str>, u8)> =
            self.roster.order.iter().take(PRESENCE_PAGE).map(|(p, s)| (s.clone(), p.0)).collect();
        let shown = std::mem::replace(&mut self.roster.shown, page);
        let page = &self.roster.shown;
        let mut leaves: Vec<String> = shown.iter().filter(|e| !page.contains(e)).map(|(s, _)| s.to_string()).collect();
        leaves.extend(self.roster.departed.drain(..).map(|s| s.to_string()));
        let joins: Vec<Presence> =
            page.iter().filter(|e| !shown.contains(e)).filter_map(|(sid, _)| self.presence_of(sid)).collect();
        if joins.is_empty() && leaves.is_empty() {
            return;
        }
        let diff = PresenceDiff { room_id: self.meta.id.clone(), joins, leaves };
        self.broadcast_event(ServerEvent::PresenceDiff(diff), skip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_grows_with_the_room_between_its_bounds() {
        let mut roster = Roster::default();
        assert_eq!(roster.tick(), PRESENCE_TICK);
        for i in 0..10_000 {
            roster.place(&Arc::from(format!("c{i}")), Role::Member);
        }
        assert_eq!(roster.tick(), Duration::from_millis(500));
        for i in 10_000..40_000 {
            roster.place(&Arc::from(format!("c{i}")), Role::Spectator);
        }
        assert_eq!(roster.tick(), LONGEST_TICK);
        assert_eq!(roster.page(0, 3).count(), 3);
        assert_eq!(roster.page(39_999, 3).count(), 1);
    }
}
