//! One windowed overview subscription: the first `limit` rooms matching a
//! query (after its cursor), kept so as rooms change. A change yields what
//! the subscriber must be sent: the room's delta when it stays in the
//! window, or the rooms entering and leaving it, and the new total.

use std::collections::BTreeSet;

use app::api::RoomPage;
use app::model::RoomMetadata;
use app::protocol::OverviewWindow;

use super::listing::{Entry, Filter, Listing, SortKey, cursor, sort_key};

pub struct Window {
    filter: Filter,
    members: BTreeSet<SortKey>,
    total: u64,
}

/// What one room change means for one window.
#[derive(Debug, Default, PartialEq)]
pub struct Change {
    /// The room is (still) in the window: pass its delta or deletion on.
    pub forward: bool,
    pub window: Option<OverviewWindow>,
}

impl Window {
    /// The window's first state and the page to reply with.
    pub fn open(filter: Filter, listing: &Listing) -> (Window, RoomPage) {
        let (page, keys) = listing.page(&filter);
        let window = Window { filter, members: keys.into_iter().collect(), total: page.total };
        (window, page)
    }

    fn full(&self) -> bool {
        self.members.len() >= self.filter.limit
    }

    /// The window's last room in the query's order.
    fn last_in(&self, listing: &Listing) -> Option<SortKey> {
        // The default room comes first, so the last is the last other room
        // (a step or two from the set's end), or the default room alone.
        let mut backwards: Box<dyn Iterator<Item = &SortKey>> = match self.filter.sort {
            app::api::RoomSort::Oldest => Box::new(self.members.iter().rev()),
            app::api::RoomSort::Newest => Box::new(self.members.iter()),
        };
        let first = backwards.next()?;
        if !listing.is_pinned(first) {
            return Some(first.clone());
        }
        let other = backwards.find(|sk| !listing.is_pinned(sk));
        Some(other.unwrap_or(first).clone())
    }

    /// A room was created or changed (`old`: its entry before).
    pub fn upserted(&mut self, listing: &Listing, sk: &SortKey, old: Option<&Entry>) -> Change {
        let Some(entry) = listing.get(&sk.1) else { return Change::default() };
        let total_before = self.total;
        let belongs = self.recount(listing, sk, old, entry);
        let mut event = OverviewWindow::default();
        let mut forward = false;
        match (self.members.contains(sk), belongs) {
            (true, true) => forward = true,
            (true, false) => self.leave(listing, sk, &entry.meta, &mut event),
            (false, true) => self.admit(listing, sk, &entry.meta, &mut event),
            (false, false) => {}
        }
        self.finish(listing, event, forward, total_before)
    }

    /// The room's place in the order changed (it became, or stopped being,
    /// the default room): it leaves the window and comes back in where it
    /// now belongs, if it does.
    pub fn moved(&mut self, listing: &Listing, sk: &SortKey, old: &Entry) -> Change {
        let Some(entry) = listing.get(&sk.1) else { return Change::default() };
        let total_before = self.total;
        let belongs = self.recount(listing, sk, Some(old), entry);
        let mut event = OverviewWindow::default();
        if self.members.contains(sk) {
            self.leave(listing, sk, &entry.meta, &mut event);
        }
        if belongs {
            self.admit(listing, sk, &entry.meta, &mut event);
        }
        self.finish(listing, event, false, total_before)
    }

    /// Counts the change into `total`; whether the room now belongs in the
    /// window's range (matches, and lies past the cursor).
    fn recount(&mut self, listing: &Listing, sk: &SortKey, old: Option<&Entry>, entry: &Entry) -> bool {
        let was_match = old.is_some_and(|o| self.filter.matches(o));
        let now_match = self.filter.matches(entry);
        self.total = self.total + u64::from(now_match) - u64::from(was_match);
        now_match && listing.past_cursor(&self.filter, sk)
    }

    /// Takes a room of the window out; the next room past the end takes
    /// its place.
    fn leave(&mut self, listing: &Listing, sk: &SortKey, meta: &RoomMetadata, event: &mut OverviewWindow) {
        let was_full = self.full();
        self.members.remove(sk);
        event.exit.push(meta.id.clone());
        if was_full {
            self.refill(listing, event);
        }
    }

    /// Takes a room in if it sorts within the window, pushing the last
    /// room out of a full one.
    fn admit(&mut self, listing: &Listing, sk: &SortKey, meta: &RoomMetadata, event: &mut OverviewWindow) {
        if !self.full() {
            self.enter(sk, meta, event);
        } else if self.last_in(listing).is_some_and(|last| listing.before(&self.filter, sk, &last)) {
            self.enter(sk, meta, event);
            self.drop_last(listing, event);
        }
    }

    /// A room went away (`entry`: what it was).
    pub fn removed(&mut self, listing: &Listing, sk: &SortKey, entry: &Entry) -> Change {
        let total_before = self.total;
        if self.filter.matches(entry) {
            self.total = self.total.saturating_sub(1);
        }
        let was_full = self.full();
        let forward = self.members.remove(sk);
        let mut event = OverviewWindow::default();
        if forward && was_full {
            self.refill(listing, &mut event);
        }
        self.finish(listing, event, forward, total_before)
    }

    fn enter(&mut self, sk: &SortKey, meta: &RoomMetadata, event: &mut OverviewWindow) {
        self.members.insert(sk.clone());
        event.enter.push(meta.clone());
    }

    fn drop_last(&mut self, listing: &Listing, event: &mut OverviewWindow) {
        if let Some(last) = self.last_in(listing) {
            self.members.remove(&last);
            if let Some(gone) = listing.get(&last.1) {
                event.exit.push(gone.meta.id.clone());
            }
        }
    }

    /// Takes in the next matching room after the window's end.
    fn refill(&mut self, listing: &Listing, event: &mut OverviewWindow) {
        let from = self.last_in(listing).or_else(|| self.filter.after.clone());
        let next = listing.after(&self.filter, from.as_ref()).find(|(_, e)| self.filter.matches(e));
        if let Some((sk, entry)) = next {
            let sk = sk.clone();
            self.enter(&sk, &entry.meta, event);
        }
    }

    fn finish(&self, listing: &Listing, mut event: OverviewWindow, forward: bool, total_before: u64) -> Change {
        // A room may have come in and gone out again within one change.
        event.enter.retain(|m| self.members.contains(&sort_key(m)));
        let moved = !event.enter.is_empty() || !event.exit.is_empty();
        if !moved && self.total == total_before {
            return Change { forward, window: None };
        }
        event.total = self.total;
        event.next = if self.full() { self.last_in(listing).as_ref().map(cursor) } else { None };
        Change { forward, window: Some(event) }
    }
}

#[cfg(test)]
mod tests {
    use app::api::{RoomQuery, RoomSort};

    use super::*;

    fn room(id: &str, at: f64) -> RoomMetadata {
        RoomMetadata::new(id.into(), at)
    }

    fn open(listing: &Listing, q: RoomQuery) -> Window {
        Window::open(Filter::parse(&q).unwrap(), listing).0
    }

    fn ids(list: &[RoomMetadata]) -> Vec<&str> {
        list.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn a_new_room_enters_a_newest_first_window_and_pushes_out_its_last() {
        let mut listing = Listing::new((1..=3).map(|i| room(&format!("r{i}"), i as f64)).collect());
        let mut w = open(&listing, RoomQuery { sort: Some(RoomSort::Newest), limit: Some(2), ..Default::default() });
        let (_, sk, old) = listing.upsert(room("r4", 4.0));
        let change = w.upserted(&listing, &sk, old.as_ref());
        let event = change.window.unwrap();
        assert_eq!((ids(&event.enter), event.exit, event.total), (vec!["r4"], vec!["r2".to_string()], 4));
        assert!(!change.forward);
    }

    #[test]
    fn a_room_that_stops_matching_leaves_and_the_next_one_fills_its_place() {
        let mut listing = Listing::new((1..=3).map(|i| room(&format!("r{i}"), i as f64)).collect());
        let mut w = open(&listing, RoomQuery { hidden: Some(false), limit: Some(2), ..Default::default() });
        let mut hidden = room("r1", 1.0);
        hidden.hidden = true;
        let (_, sk, old) = listing.upsert(hidden.clone());
        let event = w.upserted(&listing, &sk, old.as_ref()).window.unwrap();
        assert_eq!((ids(&event.enter), event.exit, event.total), (vec!["r3"], vec!["r1".to_string()], 2));
        // A change of a room inside the window is its delta, nothing else.
        let mut changed = room("r2", 2.0);
        changed.description = Some("d".into());
        let (_, sk, old) = listing.upsert(changed);
        assert_eq!(w.upserted(&listing, &sk, old.as_ref()), Change { forward: true, window: None });
        // A change of a room outside the window that still does not match: nothing.
        hidden.description = Some("d".into());
        let (_, sk, old) = listing.upsert(hidden);
        assert_eq!(w.upserted(&listing, &sk, old.as_ref()), Change::default());
    }

    #[test]
    fn a_room_made_default_moves_to_the_front_of_a_full_window() {
        let mut listing = Listing::new((1..=4).map(|i| room(&format!("r{i}"), i as f64)).collect());
        let mut w = open(&listing, RoomQuery { limit: Some(2), ..Default::default() });
        let mut default = room("r4", 4.0);
        default.is_default = true;
        let (_, sk, old) = listing.upsert(default);
        let event = w.moved(&listing, &sk, old.as_ref().unwrap()).window.unwrap();
        assert_eq!((ids(&event.enter), event.exit), (vec!["r4"], vec!["r2".to_string()]));
        let (_, sk, old) = listing.upsert(room("r4", 4.0));
        let event = w.moved(&listing, &sk, old.as_ref().unwrap()).window.unwrap();
        assert_eq!((ids(&event.enter), event.exit), (vec!["r2"], vec!["r4".to_string()]));
    }

    #[test]
    fn a_deleted_room_is_forwarded_and_replaced_and_a_room_beyond_only_counts() {
        let mut listing = Listing::new((1..=3).map(|i| room(&format!("r{i}"), i as f64)).collect());
        let mut w = open(&listing, RoomQuery { limit: Some(2), ..Default::default() });
        let (sk, entry) = listing.remove("r1").unwrap();
        let change = w.removed(&listing, &sk, &entry);
        assert!(change.forward);
        let event = change.window.unwrap();
        assert_eq!((ids(&event.enter), event.total, event.next.is_some()), (vec!["r3"], 2, true));
        let (_, sk, old) = listing.upsert(room("r9", 9.0));
        let event = w.upserted(&listing, &sk, old.as_ref()).window.unwrap();
        assert_eq!((event.enter.len(), event.exit.len(), event.total), (0, 0, 3));
    }
}
