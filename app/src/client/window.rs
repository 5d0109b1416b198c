//! The room list's window as the browser keeps it: the keys of the rooms
//! it shows, in the query's order, how many rooms match in all, and the
//! cursor of the next page. The rooms themselves live in the store.

use leptos::prelude::*;

use crate::api::RoomSort;

#[derive(Clone, Copy)]
pub struct RoomWindow {
    pub keys: RwSignal<Vec<String>>,
    pub total: RwSignal<u64>,
    pub next: RwSignal<Option<String>>,
    sort: RwSignal<RoomSort>,
}

impl RoomWindow {
    pub fn new() -> RoomWindow {
        RoomWindow {
            keys: RwSignal::new(Vec::new()),
            total: RwSignal::new(0),
            next: RwSignal::new(None),
            sort: RwSignal::new(RoomSort::default()),
        }
    }

    pub fn replace(&self, keys: Vec<String>, total: u64, next: Option<String>, sort: RoomSort) {
        self.sort.set(sort);
        self.keys.set(keys);
        self.total.set(total);
        self.next.set(next);
    }

    /// Drops `exits`, adds `enters` and puts the window back in the
    /// server's order (`place`: whether a room is the default room, and its
    /// creation time): the default room first, then by creation time.
    pub fn change(
        &self,
        exits: &[String],
        enters: Vec<String>,
        total: u64,
        next: Option<String>,
        place: impl Fn(&str) -> (bool, f64),
    ) {
        let newest_first = self.sort.get_untracked() == RoomSort::Newest;
        self.keys.update(|keys| {
            keys.retain(|k| !exits.contains(k) && !enters.contains(k));
            keys.extend(enters);
            let mut ordered: Vec<((bool, f64), String)> = keys.drain(..).map(|k| (place(&k), k)).collect();
            ordered.sort_by(|(a, ka), (b, kb)| {
                let by_time = a.1.total_cmp(&b.1).then_with(|| ka.cmp(kb));
                b.0.cmp(&a.0).then(if newest_first { by_time.reverse() } else { by_time })
            });
            keys.extend(ordered.into_iter().map(|(_, k)| k));
        });
        self.total.set(total);
        self.next.set(next);
    }

    /// A room that went away leaves the window (the server's
    /// `overview:window` that follows brings the room taking its place).
    pub fn drop_key(&self, key: &str) {
        if self.keys.with_untracked(|k| k.iter().any(|k| k == key)) {
            self.keys.update(|k| k.retain(|k| k != key));
        }
    }
}

impl Default for RoomWindow {
    fn default() -> Self {
        RoomWindow::new()
    }
}
