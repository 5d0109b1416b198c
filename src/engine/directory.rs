//! The `overview:public` channel: the latest metadata of every room and the
//! connections watching the room list. One task owns both, so a join's
//! snapshot and the deltas after it reach the connection in that order.

use std::collections::HashMap;
use std::sync::Arc;

use app::model::RoomMetadata;
use app::protocol::{JoinOverviewReply, Reply};
use tokio::sync::{mpsc, oneshot};

use super::connection::{Connection, Frame, frame};

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
        reply_id: Option<u64>,
        done: oneshot::Sender<()>,
    },
    Leave {
        sid: Arc<str>,
    },
    List {
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
        let rooms = rooms.into_iter().map(|m| (app::ids::room_key(&m.id), m)).collect();
        tokio::spawn(run(rooms, rx));
        Directory { tx }
    }

    pub async fn upsert(&self, meta: RoomMetadata, payload: Frame) {
        let _ = self.tx.send(Command::Upsert { meta: Box::new(meta), payload }).await;
    }

    pub async fn remove(&self, key: String, payload: Frame) {
        let _ = self.tx.send(Command::Remove { key, payload }).await;
    }

    /// Subscribes the connection and, with `reply_id`, queues the snapshot
    /// reply before any later delta.
    pub async fn join(&self, conn: Arc<Connection>, reply_id: Option<u64>) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Join { conn, reply_id, done }).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub async fn leave(&self, sid: Arc<str>) {
        let _ = self.tx.send(Command::Leave { sid }).await;
    }

    /// Every room, oldest first.
    pub async fn list(&self) -> Vec<RoomMetadata> {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::List { done }).await.is_err() {
            return Vec::new();
        }
        wait.await.unwrap_or_default()
    }
}

impl Directory {
    /// One room's latest metadata.
    pub async fn get(&self, key: String) -> Option<RoomMetadata> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::Get { key, done }).await.ok()?;
        wait.await.ok().flatten()
    }
}

fn sorted(rooms: &HashMap<String, RoomMetadata>) -> Vec<RoomMetadata> {
    let mut list: Vec<RoomMetadata> = rooms.values().cloned().collect();
    list.sort_by(|a, b| a.created_at.total_cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    list
}

async fn run(mut rooms: HashMap<String, RoomMetadata>, mut rx: mpsc::Receiver<Command>) {
    let mut watchers: HashMap<Arc<str>, Arc<Connection>> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Upsert { meta, payload } => {
                let key: Arc<str> = app::ids::room_key(&meta.id).into();
                rooms.insert(key.to_string(), *meta);
                fan_out(&mut watchers, &payload, Some(&key));
            }
            Command::Remove { key, payload } => {
                rooms.remove(&key);
                fan_out(&mut watchers, &payload, None);
            }
            Command::Join { conn, reply_id, done } => {
                if let Some(id) = reply_id {
                    let data = JoinOverviewReply { rooms: sorted(&rooms) };
                    let reply = Reply::ok(id, &data);
                    conn.out.reply(&frame(reply.to_json()));
                }
                watchers.insert(conn.sid.clone(), conn);
                let _ = done.send(());
            }
            Command::Leave { sid } => {
                watchers.remove(&sid);
            }
            Command::List { done } => {
                let _ = done.send(sorted(&rooms));
            }
            Command::Get { key, done } => {
                let _ = done.send(rooms.get(&key).cloned());
            }
        }
    }
}

/// Queues a frame on every watcher; a delta (`latest`: its room) is merged
/// on a lagging watcher with the room's delta it still waits for.
fn fan_out(watchers: &mut HashMap<Arc<str>, Arc<Connection>>, payload: &Frame, latest: Option<&Arc<str>>) {
    watchers.retain(|_, conn| {
        let sent = match latest {
            Some(room) => conn.out.send_latest(room, payload),
            None => conn.out.send(payload),
        };
        sent || !conn.out.is_closed()
    });
}
