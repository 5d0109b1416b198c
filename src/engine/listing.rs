//! The room list as a query: every room's latest metadata in creation
//! order, a query checked into a `Filter`, and pages of the rooms matching
//! it (`docs/protocol.md` section 4.2). Owned by the directory task.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use app::api::{DEFAULT_PAGE, MAX_PAGE, MAX_QUERY_CHARS, RoomPage, RoomQuery, RoomSort};
use app::model::{RoomMetadata, RoomStatus};

use super::errors::EngineError;

/// A room's place in the list: creation time (as ordered bits, never
/// negative), then key.
pub type SortKey = (u64, Arc<str>);

pub fn sort_key_of(meta: &RoomMetadata, key: &Arc<str>) -> SortKey {
    (meta.created_at.max(0.0).to_bits(), key.clone())
}

/// A room's sort key from its metadata alone.
pub fn sort_key(meta: &RoomMetadata) -> SortKey {
    sort_key_of(meta, &app::ids::room_key(&meta.id).into())
}

/// A room and the text a search looks in.
pub struct Entry {
    pub meta: RoomMetadata,
    haystack: String,
}

impl Entry {
    fn new(meta: RoomMetadata) -> Entry {
        let mut haystack = meta.id.to_lowercase();
        if let Some(d) = &meta.description {
            haystack.push('\n');
            haystack.push_str(&d.to_lowercase());
        }
        Entry { meta, haystack }
    }
}

/// A checked query: what matches, in which order, from where, how many.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    text: Option<String>,
    status: Option<RoomStatus>,
    hidden: Option<bool>,
    pub sort: RoomSort,
    pub after: Option<SortKey>,
    pub limit: usize,
}

impl Filter {
    /// Checks a client's query.
    pub fn parse(query: &RoomQuery) -> Result<Filter, EngineError> {
        let text = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if text.is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
            return Err(EngineError::bad_request(format!("`q` is longer than {MAX_QUERY_CHARS} characters")));
        }
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(EngineError::bad_request(format!("`limit` must be between 1 and {MAX_PAGE}")));
        }
        let after = match query.after.as_deref() {
            Some(cursor) => Some(decode_cursor(cursor)?),
            None => None,
        };
        Ok(Filter {
            text: text.map(str::to_lowercase),
            status: query.status,
            hidden: query.hidden,
            sort: query.sort.unwrap_or_default(),
            after,
            limit: limit as usize,
        })
    }

    /// Whether the room matches the query's conditions (not its cursor).
    pub fn matches(&self, entry: &Entry) -> bool {
        self.status.is_none_or(|s| s == entry.meta.status)
            && self.hidden.is_none_or(|h| h == entry.meta.hidden)
            && self.text.as_deref().is_none_or(|t| entry.haystack.contains(t))
    }

    fn is_everything(&self) -> bool {
        self.text.is_none() && self.status.is_none() && self.hidden.is_none()
    }
}

/// The cursor of a page that ends with `key`: opaque to clients.
pub fn cursor(key: &SortKey) -> String {
    format!("{:x}.{}", key.0, key.1)
}

fn decode_cursor(text: &str) -> Result<SortKey, EngineError> {
    let bad = || EngineError::bad_request("`after` is not a cursor this server gave");
    let (bits, key) = text.split_once('.').ok_or_else(bad)?;
    let bits = u64::from_str_radix(bits, 16).map_err(|_| bad())?;
    if key.is_empty() {
        return Err(bad());
    }
    Ok((bits, key.into()))
}

/// Every room, by key and in creation order. The default room (`pinned`,
/// at most one but for the moment the flag moves) comes first in either
/// order.
#[derive(Default)]
pub struct Listing {
    rooms: HashMap<Arc<str>, Entry>,
    order: BTreeSet<SortKey>,
    pinned: BTreeSet<SortKey>,
}

impl Listing {
    pub fn new(rooms: Vec<RoomMetadata>) -> Listing {
        let mut listing = Listing::default();
        for meta in rooms {
            listing.upsert(meta);
        }
        listing
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.rooms.get(key)
    }

    /// Stores a room's latest metadata; returns its key, its sort key and
    /// the entry it replaced.
    pub fn upsert(&mut self, meta: RoomMetadata) -> (Arc<str>, SortKey, Option<Entry>) {
        let key: Arc<str> = app::ids::room_key(&meta.id).into();
        let sk = sort_key_of(&meta, &key);
        let pinned = meta.is_default;
        let old = self.rooms.insert(key.clone(), Entry::new(meta));
        if let Some(old) = &old {
            self.order.remove(&sort_key_of(&old.meta, &key));
            self.pinned.remove(&sort_key_of(&old.meta, &key));
        }
        self.order.insert(sk.clone());
        if pinned {
            self.pinned.insert(sk.clone());
        }
        (key, sk, old)
    }

    pub fn remove(&mut self, key: &str) -> Option<(SortKey, Entry)> {
        let (key, entry) = self.rooms.remove_entry(key)?;
        let sk = sort_key_of(&entry.meta, &key);
        self.order.remove(&sk);
        self.pinned.remove(&sk);
        Some((sk, entry))
    }

    pub fn is_pinned(&self, key: &SortKey) -> bool {
        self.pinned.contains(key)
    }

    /// Whether `a` comes before `b` in the filter's order.
    pub fn before(&self, filter: &Filter, a: &SortKey, b: &SortKey) -> bool {
        match (self.pinned.contains(a), self.pinned.contains(b)) {
            (true, false) => true,
            (false, true) => false,
            _ => match filter.sort {
                RoomSort::Oldest => a < b,
                RoomSort::Newest => a > b,
            },
        }
    }

    /// Whether the room lies after the filter's cursor.
    pub fn past_cursor(&self, filter: &Filter, key: &SortKey) -> bool {
        filter.after.as_ref().is_none_or(|after| self.before(filter, after, key))
    }

    /// Rooms strictly after `from` in the filter's order (from the start
    /// without `from`).
    pub fn after<'a>(
        &'a self,
        filter: &Filter,
        from: Option<&SortKey>,
    ) -> Box<dyn Iterator<Item = (&'a SortKey, &'a Entry)> + 'a> {
        let from_pinned = from.is_some_and(|k| self.pinned.contains(k));
        let pinned = match from {
            None => in_order(&self.pinned, filter.sort, None),
            Some(k) if from_pinned => in_order(&self.pinned, filter.sort, Some(k)),
            Some(_) => Box::new(std::iter::empty()),
        };
        let rest = in_order(&self.order, filter.sort, from.filter(|_| !from_pinned));
        let rest = rest.filter(|sk| !self.pinned.contains(*sk));
        Box::new(pinned.chain(rest).filter_map(|sk| self.rooms.get(&sk.1).map(|e| (sk, e))))
    }

    /// How many rooms match the filter's conditions.
    pub fn total(&self, filter: &Filter) -> u64 {
        if filter.is_everything() {
            return self.rooms.len() as u64;
        }
        self.rooms.values().filter(|e| filter.matches(e)).count() as u64
    }

    /// The page the filter asks for, with the sort keys of its rooms.
    pub fn page(&self, filter: &Filter) -> (RoomPage, Vec<SortKey>) {
        let mut found = self.after(filter, filter.after.as_ref()).filter(|(_, e)| filter.matches(e));
        let mut keys = Vec::new();
        let mut rooms = Vec::new();
        for (sk, entry) in found.by_ref().take(filter.limit) {
            keys.push(sk.clone());
            rooms.push(entry.meta.clone());
        }
        let more = found.next().is_some();
        let next = if more { keys.last().map(cursor) } else { None };
        (RoomPage { rooms, total: self.total(filter), next }, keys)
    }

    /// Every room, oldest first (the default room among them).
    pub fn all(&self) -> Vec<RoomMetadata> {
        self.order.iter().filter_map(|sk| self.rooms.get(&sk.1)).map(|e| e.meta.clone()).collect()
    }
}

/// Keys of `set` strictly after `from` in `sort` order.
fn in_order<'a>(
    set: &'a BTreeSet<SortKey>,
    sort: RoomSort,
    from: Option<&SortKey>,
) -> Box<dyn Iterator<Item = &'a SortKey> + 'a> {
    match (sort, from) {
        (RoomSort::Oldest, None) => Box::new(set.iter()),
        (RoomSort::Oldest, Some(k)) => Box::new(set.range((Bound::Excluded(k), Bound::Unbounded))),
        (RoomSort::Newest, None) => Box::new(set.iter().rev()),
        (RoomSort::Newest, Some(k)) => Box::new(set.range(..k).rev()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str, at: f64, description: Option<&str>) -> RoomMetadata {
        let mut meta = RoomMetadata::new(id.into(), at);
        meta.description = description.map(String::from);
        meta
    }

    fn listing(n: usize) -> Listing {
        Listing::new((0..n).map(|i| room(&format!("r{i:03}"), 100.0 + i as f64, None)).collect())
    }

    fn ids(page: &RoomPage) -> Vec<&str> {
        page.rooms.iter().map(|r| r.id.as_str()).collect()
    }

    fn query(q: RoomQuery) -> Filter {
        Filter::parse(&q).unwrap()
    }

    #[test]
    fn pages_follow_their_cursor_to_the_end_in_either_order() {
        let list = listing(5);
        let (first, _) = list.page(&query(RoomQuery { limit: Some(2), ..Default::default() }));
        assert_eq!((ids(&first), first.total), (vec!["r000", "r001"], 5));
        let second = query(RoomQuery { limit: Some(2), after: first.next.clone(), ..Default::default() });
        let (second, _) = list.page(&second);
        assert_eq!(ids(&second), vec!["r002", "r003"]);
        let third = query(RoomQuery { limit: Some(2), after: second.next.clone(), ..Default::default() });
        let (third, _) = list.page(&third);
        assert_eq!(ids(&third), vec!["r004"]);
        assert_eq!(third.next, None);

        let newest = query(RoomQuery { limit: Some(2), sort: Some(RoomSort::Newest), ..Default::default() });
        let (page, _) = list.page(&newest);
        assert_eq!(ids(&page), vec!["r004", "r003"]);
        let on = RoomQuery { limit: Some(2), sort: Some(RoomSort::Newest), after: page.next, ..Default::default() };
        assert_eq!(ids(&list.page(&query(on)).0), vec!["r002", "r001"]);
    }

    #[test]
    fn search_matches_id_or_description_ignoring_case_and_counts_every_match() {
        let mut list = listing(3);
        list.upsert(room("Blue", 1.0, Some("The SEA room")));
        list.upsert(room("sea-1", 2.0, None));
        let (page, _) = list.page(&query(RoomQuery { q: Some(" sea ".into()), limit: Some(1), ..Default::default() }));
        assert_eq!((ids(&page), page.total, page.next.is_some()), (vec!["Blue"], 2, true));
        let mut hidden = room("r001", 101.0, None);
        hidden.hidden = true;
        list.upsert(hidden);
        let visible = list.page(&query(RoomQuery { hidden: Some(false), ..Default::default() })).0;
        assert_eq!(visible.total, 4);
        assert!(!ids(&visible).contains(&"r001"));
    }

    #[test]
    fn the_default_room_leads_every_page_order_and_pages_go_on_after_it() {
        let mut list = listing(4);
        let mut default = room("r001", 101.0, None);
        default.is_default = true;
        list.upsert(default);
        for sort in [RoomSort::Oldest, RoomSort::Newest] {
            let first = list.page(&query(RoomQuery { sort: Some(sort), limit: Some(2), ..Default::default() })).0;
            assert_eq!(first.rooms[0].id, "r001", "{sort:?}");
            let rest = RoomQuery { sort: Some(sort), after: first.next, limit: Some(10), ..Default::default() };
            let rest = list.page(&query(rest)).0;
            assert_eq!(first.rooms.len() + rest.rooms.len(), 4, "{sort:?}");
            assert!(!ids(&rest).contains(&"r001"));
        }
    }

    #[test]
    fn bad_queries_are_named() {
        for (q, field) in [
            (RoomQuery { limit: Some(0), ..Default::default() }, "limit"),
            (RoomQuery { limit: Some(MAX_PAGE + 1), ..Default::default() }, "limit"),
            (RoomQuery { after: Some("nope".into()), ..Default::default() }, "after"),
            (RoomQuery { after: Some("zz.x".into()), ..Default::default() }, "after"),
            (RoomQuery { q: Some("x".repeat(MAX_QUERY_CHARS + 1)), ..Default::default() }, "q"),
        ] {
            let e = Filter::parse(&q).unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
    }
}
