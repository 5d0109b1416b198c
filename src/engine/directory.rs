//! The `overview:public` channel: the latest metadata of every room (a
//! `Listing`) and the connections watching the room list, each watching
//! every room or a window of a query. One task owns both, so a join's
//! snapshot and the deltas after it reach the connection in that order.

use std::collections::HashMap;
use std::sync::Arc;

use app::api::{RoomPage, RoomQuery};
use app::model::RoomMetadata;
use app::protocol::{Reply, ServerEvent};
use tokio::sync::{mpsc, oneshot};

use super::connection::{Connection, Frame, frame};
use super::errors::EngineError;
use super::listing::{Filter, Listing};
use super::window::{Change, Window};

enum Command {
    /// A room was created or changed; `payload` is its serialized delta.
    Upsert {
        meta: Box<RoomMetadata>,
        payload: Frame,
    },
    /// A room went away; `payload` is its serialized `room:delete`.
    Remove {
        key: String,
        payload: Frame,
    },
    Join {
        conn: Arc<Connection>,
        filter: Filter,
        windowed: bool,
        reply_id: Option<u64>,
        done: oneshot::Sender<()>,
    },
    Leave {
        sid: Arc<str>,
    },
    Page {
        filter: Filter,
        done: oneshot::Sender<RoomPage>,
    },
    All {
        done: oneshot::Sender<Vec<RoomMetadata>>,
    },
    Get {
        key: String,
        done: oneshot::Sender<Option<RoomMetadata>>,
    },
}

/// A handle to the directory task.
#[derive(Clone)]
pub struct Directory {
    tx: mpsc::Sender<Command>,
}

impl Directory {
    /// Starts the directory task with the rooms known at start-up.
    pub fn start(rooms: Vec<RoomMetadata>) -> Directory {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(Listing::new(rooms), rx));
        Directory { tx }
    }

    pub async fn upsert(&self, meta: RoomMetadata, payload: Frame) {
        let _ = self.tx.send(Command::Upsert { meta: Box::new(meta), payload }).await;
    }

    pub async fn remove(&self, key: String, payload: Frame) {
        let _ = self.tx.send(Command::Remove { key, payload }).await;
    }

    /// Subscribes the connection (to a window of the query when it names a
    /// `limit`, else to every room) and, with `reply_id`, queues the first
    /// page as the reply before any later event.
    pub async fn join(
        &self,
        conn: Arc<Connection>,
        query: &RoomQuery,
        reply_id: Option<u64>,
    ) -> Result<(), EngineError> {
        let filter = Filter::parse(query)?;
        let windowed = query.limit.is_some();
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Join { conn, filter, windowed, reply_id, done }).await.is_ok() {
            let _ = wait.await;
        }
        Ok(())
    }

    pub async fn leave(&self, sid: Arc<str>) {
        let _ = self.tx.send(Command::Leave { sid }).await;
    }

    /// One page of the rooms matching a query.
    pub async fn page(&self, query: &RoomQuery) -> Result<RoomPage, EngineError> {
        let filter = Filter::parse(query)?;
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Page { filter, done }).await.is_err() {
            return Ok(RoomPage::default());
        }
        Ok(wait.await.unwrap_or_default())
    }

    /// Every room, oldest first.
    pub async fn list(&self) -> Vec<RoomMetadata> {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::All { done }).await.is_err() {
            return Vec::new();
        }
        wait.await.unwrap_or_default()
    }

    /// One room's latest metadata.
    pub async fn get(&self, key: String) -> Option<RoomMetadata> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::Get { key, done }).await.ok()?;
        wait.await.ok().flatten()
    }
}

/// A connection on the overview, watching every room or one window.
struct Watcher {
    conn: Arc<Connection>,
    window: Option<Window>,
}

async fn run(mut listing: Listing, mut rx: mpsc::Receiver<Command>) {
    let mut watchers: HashMap<Arc<str>, Watcher> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Upsert { meta, payload } => {
                let (key, sk, old) = listing.upsert(*meta);
                let moved = old.as_ref().filter(|o| listing.is_pinned(&sk) != o.meta.is_default);
                fan_out(&mut watchers, &payload, Some(&key), |w| match moved {
                    Some(old) => w.moved(&listing, &sk, old),
                    None => w.upserted(&listing, &sk, old.as_ref()),
                });
            }
            Command::Remove { key, payload } => match listing.remove(&key) {
                Some((sk, entry)) => fan_out(&mut watchers, &payload, None, |w| w.removed(&listing, &sk, &entry)),
                None => fan_out(&mut watchers, &payload, None, |_| Change::default()),
            },
            Command::Join { conn, filter, windowed, reply_id, done } => {
                let (window, page) = match windowed {
                    true => {
                        let (window, page) = Window::open(filter, &listing);
                        (Some(window), page)
                    }
                    false => (None, listing.page(&filter).0),
                };
                if let Some(id) = reply_id {
                    conn.out.reply(&frame(Reply::ok(id, &page).to_json()));
                }
                watchers.insert(conn.sid.clone(), Watcher { conn, window });
                let _ = done.send(());
            }
            Command::Leave { sid } => {
                watchers.remove(&sid);
            }
            Command::Page { filter, done } => {
                let _ = done.send(listing.page(&filter).0);
            }
            Command::All { done } => {
                let _ = done.send(listing.all());
            }
            Command::Get { key, done } => {
                let _ = done.send(listing.get(&key).map(|e| e.meta.clone()));
            }
        }
    }
}

/// Hands one room change to every watcher: the payload to those watching
/// every room, and to each window what the change means for it. A delta
/// (`latest`: its room) is merged on a lagging watcher with the room's
/// delta it still waits for.
fn fan_out(
    watchers: &mut HashMap<Arc<str>, Watcher>,
    payload: &Frame,
    latest: Option<&Arc<str>>,
    mut change: impl FnMut(&mut Window) -> Change,
) {
    watchers.retain(|_, watcher| {
        let out = &watcher.conn.out;
        let (forward, event) = match watcher.window.as_mut() {
            None => (true, None),
            Some(window) => {
                let c = change(window);
                (c.forward, c.window)
            }
        };
        let mut sent = true;
        if forward {
            sent &= match latest {
                Some(room) => out.send_latest(room, payload),
                None => out.send(payload),
            };
        }
        if let Some(event) = event {
            sent &= out.send(&frame(ServerEvent::OverviewWindow(event).to_json()));
        }
        sent || !out.is_closed()
    });
}
