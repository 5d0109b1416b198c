//! The embedded default backend: one SQLite file in WAL mode with
//! `synchronous=FULL`, so that a write is on disk before it is acknowledged.
//! Writes go through one writing thread that commits those waiting at the
//! same moment together (`writer.rs`); reads use a connection of their own.

mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::model::{ChatMessage, RoomMetadata};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::engine::idempotency::RECEIPT_TTL;
use crate::engine::storage::{Receipt, Storage, StorageError, StorageResult, StoredRoom, StoredSession};
use writer::Writer;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    key TEXT PRIMARY KEY,
    meta TEXT NOT NULL,
    last_active REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL,
    last_seen REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS frames (
    room TEXT NOT NULL,
    idx INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chat (
    room TEXT NOT NULL,
    id INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request TEXT NOT NULL,
    answer TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS receipts_at ON receipts (at);
";

#[derive(Clone)]
pub struct SqliteStorage {
    reader: Arc<Mutex<Connection>>,
    writer: Arc<Writer>,
    /// When receipts past their day were last removed (Unix seconds).
    pruned_at: Arc<AtomicU64>,
}

/// How often receipts past their day are removed, at most.
const PRUNE_EVERY_SECS: u64 = 60;

/// Writes that may share one commit, by default.
pub const DEFAULT_WRITE_BATCH: usize = 256;

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Failed(e.to_string())
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file and its schema.
    pub fn open(path: &Path) -> StorageResult<Self> {
        Self::open_with(path, DEFAULT_WRITE_BATCH)
    }

    /// Like `open`, with at most `max_batch` writes per commit.
    pub fn open_with(path: &Path, max_batch: usize) -> StorageResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let writing = connect(path)?;
        writing.execute_batch(SCHEMA).map_err(err)?;
        migrate(&writing)?;
        let reader = Arc::new(Mutex::new(connect(path)?));
        let writer = Arc::new(Writer::start(writing, max_batch)?);
        Ok(SqliteStorage { reader, writer, pruned_at: Arc::default() })
    }

    /// Runs a write with a receipt in the next commit, unless a receipt is
    /// kept for its user and key: then only answers that one.
    async fn write_once(
        &self,
        receipt: Option<&Receipt>,
        job: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> StorageResult<Option<Receipt>> {
        let receipt = receipt.cloned();
        if receipt.is_some() {
            self.prune_receipts_if_due();
        }
        let earlier = Arc::new(Mutex::new(None));
        let slot = earlier.clone();
        self.write(move |c| match claim_receipt(c, receipt.as_ref())? {
            Some(found) => {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(found);
                Ok(())
            }
            None => job(c),
        })
        .await?;
        Ok(earlier.lock().unwrap_or_else(|e| e.into_inner()).take())
    }

    /// Removes receipts past their day, once a minute at most, in a commit
    /// of its own (not waited for: the writes go on meanwhile).
    fn prune_receipts_if_due(&self) {
        let now = unix_now();
        let last = self.pruned_at.load(Ordering::Relaxed);
        if (now as u64) < last + PRUNE_EVERY_SECS
            || self.pruned_at.compare_exchange(last, now as u64, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let writer = self.writer.clone();
        let cutoff = now - RECEIPT_TTL.as_secs_f64();
        tokio::spawn(async move {
            let prune =
                move |c: &Connection| c.execute("DELETE FROM receipts WHERE at < ?1", params![cutoff]).map(drop);
            if let Err(e) = writer.write(Box::new(prune)).await {
                tracing::warn!(error = %e, "could not remove old receipts");
            }
        });
    }

    /// Runs a write in the next commit; returns once it is on disk.
    async fn write(&self, job: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static) -> StorageResult<()> {
        self.writer.write(Box::new(job)).await
    }

    /// Runs a read on the reading connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StorageResult<T> {
        let conn = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StorageError::Failed("connection lock poisoned".into()))?;
            f(&mut guard).map_err(err)
        })
        .await
        .map_err(err)?
    }
}

fn connect(path: &Path) -> StorageResult<Connection> {
    let conn = Connection::open(path).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
    Ok(conn)
}

/// Brings a database of an earlier version up to this schema.
fn migrate(conn: &Connection) -> StorageResult<()> {
    let has_last_seen: bool = conn
        .query_row("SELECT COUNT(*) FROM pragma_table_info('sessions') WHERE name = 'last_seen'", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(err)?
        > 0;
    if !has_last_seen {
        // Sessions from before expiry count as used at the upgrade.
        conn.execute_batch(&format!(
            "ALTER TABLE sessions ADD COLUMN last_seen REAL NOT NULL DEFAULT 0;
             UPDATE sessions SET last_seen = {};",
            unix_now()
        ))
        .map_err(err)?;
    }
    conn.execute_batch("CREATE INDEX IF NOT EXISTS sessions_last_seen ON sessions (last_seen)").map_err(err)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn key(id: &str) -> String {
    app::ids::room_key(id)
}

/// Stores a receipt in the write's transaction (replacing one past its
/// day: those are removed only once a minute).
fn put_receipt(c: &Connection, receipt: Option<&Receipt>) -> rusqlite::Result<()> {
    claim_receipt(c, receipt).map(drop)
}

/// Like `put_receipt`, unless a receipt of the last day is kept for the
/// user and key: then that one (and the write must not be made).
fn claim_receipt(c: &Connection, receipt: Option<&Receipt>) -> rusqlite::Result<Option<Receipt>> {
    let Some(r) = receipt else { return Ok(None) };
    let added = c
        .prepare_cached(
            "INSERT INTO receipts (user_id, key, request, answer, at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(user_id, key) DO UPDATE SET request = excluded.request, answer = excluded.answer,
                 at = excluded.at WHERE receipts.at < ?6",
        )?
        .execute(params![r.user_id, r.key, r.request, r.answer, r.at, r.at - RECEIPT_TTL.as_secs_f64()])?;
    if added == 1 { Ok(None) } else { read_receipt(c, &r.user_id, &r.key) }
}

fn read_receipt(c: &Connection, user_id: &str, key: &str) -> rusqlite::Result<Option<Receipt>> {
    c.prepare_cached("SELECT request, answer, at FROM receipts WHERE user_id = ?1 AND key = ?2")?
        .query_row(params![user_id, key], |r| {
            Ok(Receipt {
                user_id: user_id.to_string(),
                key: key.to_string(),
                request: r.get(0)?,
                answer: r.get(1)?,
                at: r.get(2)?,
            })
        })
        .optional()
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn load_rooms(&self) -> StorageResult<Vec<StoredRoom>> {
        let rows: Vec<(String, f64)> = self
            .with(|c| {
                let mut stmt = c.prepare("SELECT meta, last_active FROM rooms")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(meta, last_active)| {
                let meta: RoomMetadata = serde_json::from_str(&meta).map_err(err)?;
                Ok(StoredRoom { meta, last_active })
            })
            .collect()
    }

    async fn load_room(&self, id: &str) -> StorageResult<Option<StoredRoom>> {
        let k = key(id);
        let row: Option<(String, f64)> = self
            .with(move |c| {
                c.query_row("SELECT meta, last_active FROM rooms WHERE key = ?1", params![k], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .await?;
        row.map(|(meta, last_active)| Ok(StoredRoom { meta: serde_json::from_str(&meta).map_err(err)?, last_active }))
            .transpose()
    }

    async fn save_room(&self, room: &StoredRoom, receipt: Option<&Receipt>) -> StorageResult<()> {
        let meta = serde_json::to_string(&room.meta).map_err(err)?;
        let k = key(&room.meta.id);
        let last_active = room.last_active;
        let receipt = receipt.cloned();
        if receipt.is_some() {
            self.prune_receipts_if_due();
        }
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO rooms (key, meta, last_active) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET meta = excluded.meta, last_active = excluded.last_active",
            )?
            .execute(params![k, meta, last_active])?;
            put_receipt(c, receipt.as_ref())
        })
        .await
    }

    async fn delete_room(&self, id: &str) -> StorageResult<()> {
        let k = key(id);
        self.write(move |c| {
            c.execute("DELETE FROM rooms WHERE key = ?1", params![k])?;
            c.execute("DELETE FROM frames WHERE room = ?1", params![k])?;
            c.execute("DELETE FROM chat WHERE room = ?1", params![k])?;
            c.execute("DELETE FROM settings WHERE name = 'default_room' AND lower(value) = ?1", params![k])?;
            Ok(())
        })
        .await
    }

    async fn default_room(&self) -> StorageResult<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT value FROM settings WHERE name = 'default_room'", [], |r| r.get(0)).optional()
        })
        .await
    }

    async fn set_default_room(&self, id: Option<&str>) -> StorageResult<()> {
        let id = id.map(str::to_string);
        self.write(move |c| match id {
            Some(id) => c
                .execute(
                    "INSERT INTO settings (name, value) VALUES ('default_room', ?1)
                     ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    params![id],
                )
                .map(|_| ()),
            None => c.execute("DELETE FROM settings WHERE name = 'default_room'", []).map(|_| ()),
        })
        .await
    }

    async fn save_session(&self, s: &StoredSession, _ttl: Duration) -> StorageResult<()> {
        let s = s.clone();
        let now = unix_now();
        self.write(move |c| {
            c.execute(
                "INSERT INTO sessions (token_hash, user_id, user_name, last_seen) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(token_hash) DO UPDATE SET user_name = excluded.user_name, last_seen = excluded.last_seen",
                params![s.token_hash, s.user_id, s.user_name, now],
            )
            .map(|_| ())
        })
        .await
    }

    async fn session(&self, token_hash: &str) -> StorageResult<Option<StoredSession>> {
        let h = token_hash.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT token_hash, user_id, user_name, last_seen FROM sessions WHERE token_hash = ?1",
                params![h],
                |r| {
                    Ok(StoredSession {
                        token_hash: r.get(0)?,
                        user_id: r.get(1)?,
                        user_name: r.get(2)?,
                        last_seen: Some(r.get(3)?),
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn touch_session(&self, token_hash: &str, _ttl: Duration) -> StorageResult<()> {
        let h = token_hash.to_string();
        let now = unix_now();
        self.write(move |c| {
            c.prepare_cached("UPDATE sessions SET last_seen = ?2 WHERE token_hash = ?1")?.execute(params![h, now])?;
            Ok(())
        })
        .await
    }

    async fn remove_idle_sessions(&self, ttl: Duration) -> StorageResult<u64> {
        let cutoff = unix_now() - ttl.as_secs_f64();
        let removed = Arc::new(AtomicU64::new(0));
        let count = removed.clone();
        self.write(move |c| {
            let n = c.execute("DELETE FROM sessions WHERE last_seen < ?1", params![cutoff])?;
            count.store(n as u64, Ordering::Relaxed);
            Ok(())
        })
        .await?;
        Ok(removed.load(Ordering::Relaxed))
    }

    async fn append_frames(
        &self,
        room: &StoredRoom,
        frames: Vec<String>,
        receipt: Option<&Receipt>,
    ) -> StorageResult<Option<Receipt>> {
        let meta = serde_json::to_string(&room.meta).map_err(err)?;
        let k = key(&room.meta.id);
        let last_active = room.last_active;
        let start = room.meta.frame_count - frames.len() as u64;
        self.write_once(receipt, move |c| {
            {
                let mut insert = c.prepare_cached("INSERT INTO frames (room, idx, body) VALUES (?1, ?2, ?3)")?;
                for (i, body) in frames.iter().enumerate() {
                    insert.execute(params![k, (start + i as u64) as i64, body])?;
                }
            }
            c.execute("UPDATE rooms SET meta = ?2, last_active = ?3 WHERE key = ?1", params![k, meta, last_active])?;
            Ok(())
        })
        .await
    }

    async fn frames(&self, room_id: &str, offset: u64, limit: u64) -> StorageResult<Vec<String>> {
        let k = key(room_id);
        self.with(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT body FROM frames WHERE room = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3")?;
            let rows = stmt.query_map(params![k, offset as i64, limit as i64], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn save_chat(
        &self,
        message: &ChatMessage,
        keep: u64,
        receipt: Option<&Receipt>,
    ) -> StorageResult<Option<Receipt>> {
        let body = serde_json::to_string(message).map_err(err)?;
        let k = key(&message.room_id);
        let id = message.id as i64;
        let oldest_kept = message.id.saturating_sub(keep.saturating_sub(1)) as i64;
        self.write_once(receipt, move |c| {
            c.prepare_cached(
                "INSERT INTO chat (room, id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(room, id) DO UPDATE SET body = excluded.body",
            )?
            .execute(params![k, id, body])?;
            c.prepare_cached("DELETE FROM chat WHERE room = ?1 AND id < ?2")?.execute(params![k, oldest_kept])?;
            Ok(())
        })
        .await
    }

    async fn chat_page(&self, room_id: &str, before: Option<u64>, limit: u64) -> StorageResult<Vec<ChatMessage>> {
        let k = key(room_id);
        let before = before.map_or(i64::MAX, |b| b as i64);
        let bodies: Vec<String> = self
            .with(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT body FROM (SELECT id, body FROM chat WHERE room = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3)
                     ORDER BY id",
                )?;
                let rows = stmt.query_map(params![k, before, limit as i64], |r| r.get(0))?;
                rows.collect()
            })
            .await?;
        bodies.iter().map(|b| serde_json::from_str(b).map_err(err)).collect()
    }

    async fn chat_message(&self, room_id: &str, id: u64) -> StorageResult<Option<ChatMessage>> {
        let k = key(room_id);
        let body: Option<String> = self
            .with(move |c| {
                c.query_row("SELECT body FROM chat WHERE room = ?1 AND id = ?2", params![k, id as i64], |r| r.get(0))
                    .optional()
            })
            .await?;
        body.map(|b| serde_json::from_str(&b).map_err(err)).transpose()
    }

    async fn last_chat_id(&self, room_id: &str) -> StorageResult<u64> {
        let k = key(room_id);
        let id: Option<i64> = self
            .with(move |c| c.query_row("SELECT MAX(id) FROM chat WHERE room = ?1", params![k], |r| r.get(0)))
            .await?;
        Ok(id.unwrap_or(0) as u64)
    }

    async fn receipt(&self, user_id: &str, key: &str) -> StorageResult<Option<Receipt>> {
        let (user_id, key) = (user_id.to_string(), key.to_string());
        self.with(move |c| read_receipt(c, &user_id, &key)).await
    }

    async fn save_receipt(&self, receipt: &Receipt) -> StorageResult<()> {
        let receipt = receipt.clone();
        self.prune_receipts_if_due();
        self.write(move |c| put_receipt(c, Some(&receipt))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(answer: &str, at: f64) -> Receipt {
        Receipt { user_id: "u_1".into(), key: "k".into(), request: "w".into(), answer: answer.into(), at }
    }

    #[test]
    fn a_kept_receipt_stops_the_write_and_one_past_its_day_does_not() {
        let conn = Connection::open_in_memory().expect("db");
        conn.execute_batch(SCHEMA).expect("schema");
        let now = unix_now();
        assert_eq!(claim_receipt(&conn, Some(&receipt("first", now))).expect("claim"), None, "stored");
        let kept = claim_receipt(&conn, Some(&receipt("second", now))).expect("claim");
        assert_eq!(kept.map(|r| r.answer).as_deref(), Some("first"), "the first is kept and answered");

        let old = now - RECEIPT_TTL.as_secs_f64() - 1.0;
        conn.execute("UPDATE receipts SET at = ?1", params![old]).expect("age it");
        assert_eq!(claim_receipt(&conn, Some(&receipt("third", now))).expect("claim"), None, "replaced");
        let stored = read_receipt(&conn, "u_1", "k").expect("read").expect("kept");
        assert_eq!((stored.answer.as_str(), stored.at), ("third", now));
    }
}
