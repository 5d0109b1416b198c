//! The shared backend: every durable record in one Redis server, so that
//! several Roomcast servers see the same rooms, sessions, frames and chat.
//!
//! Layout (all keys under the configured prefix, see `cluster::keys`):
//! a room is one JSON string (its metadata, with its version, and its last
//! activity), so a change and its version number are written in one step;
//! `rooms` is the set of room keys; frames are a list per room; chat is a
//! hash per room from message id to JSON, with the newest id in its field
//! `last` (older messages beyond the cap are removed as new ones come).
//! Sessions are keys with a TTL that each use renews; a write's receipt is
//! a key with a day's TTL, set in the same transaction as the write.

use std::time::Duration;

use app::ids::room_key;
use app::model::{ChatMessage, RoomMetadata};
use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::keys::Keys;
use super::scripts::{APPEND_FRAMES, LAST_CHAT_FIELD, SAVE_CHAT};
use crate::engine::idempotency::RECEIPT_TTL;
use crate::engine::storage::{Receipt, Storage, StorageError, StorageResult, StoredRoom, StoredSession};

#[derive(Clone)]
pub struct RedisStorage {
    conn: ConnectionManager,
    keys: Keys,
}

/// A Redis failure: `Unavailable` when Redis could not be reached (the
/// write was not made and may be retried), else `Failed`.
pub(super) fn redis_err(e: redis::RedisError) -> StorageError {
    if e.code() == Some("OOM") {
        StorageError::Full(e.to_string())
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        StorageError::Unavailable(e.to_string())
    } else {
        StorageError::Failed(e.to_string())
    }
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Failed(e.to_string())
}

/// A room record as stored in Redis.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomRecord {
    meta: RoomMetadata,
    last_active: f64,
}

/// The stored form of a room (shared with the commit script in `broker.rs`).
pub fn encode_room(room: &StoredRoom) -> StorageResult<String> {
    serde_json::to_string(&RoomRecord { meta: room.meta.clone(), last_active: room.last_active }).map_err(err)
}

pub fn decode_room(text: &str) -> StorageResult<StoredRoom> {
    let r: RoomRecord = serde_json::from_str(text).map_err(err)?;
    Ok(StoredRoom { meta: r.meta, last_active: r.last_active })
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionRecord {
    user_id: String,
    user_name: String,
}

/// A receipt as stored in Redis (user and key are in the key's name).
#[derive(Serialize, Deserialize)]
struct ReceiptRecord {
    request: String,
    answer: String,
    at: f64,
}

impl RedisStorage {
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        RedisStorage { conn, keys }
    }

    /// Adds the receipt's `SET … EX` to a transaction.
    fn put_receipt(&self, pipe: &mut redis::Pipeline, receipt: Option<&Receipt>) -> StorageResult<()> {
        if let Some(r) = receipt {
            pipe.set_ex(self.keys.receipt(&r.user_id, &r.key), encode_receipt(r)?, RECEIPT_TTL.as_secs()).ignore();
        }
        Ok(())
    }
}

fn encode_receipt(r: &Receipt) -> StorageResult<String> {
    let record = ReceiptRecord { request: r.request.clone(), answer: r.answer.clone(), at: r.at };
    serde_json::to_string(&record).map_err(err)
}

fn decode_receipt(user_id: &str, key: &str, text: &str) -> StorageResult<Receipt> {
    let r: ReceiptRecord = serde_json::from_str(text).map_err(err)?;
    Ok(Receipt { user_id: user_id.to_string(), key: key.to_string(), request: r.request, answer: r.answer, at: r.at })
}

/// What a write script with a receipt returned: the receipt already kept
/// under the key (nothing was written), if any.
fn earlier(receipt: Option<&Receipt>, kept: Option<String>) -> StorageResult<Option<Receipt>> {
    match (receipt, kept) {
        (Some(r), Some(text)) => decode_receipt(&r.user_id, &r.key, &text).map(Some),
        _ => Ok(None),
    }
}

#[async_trait]
impl Storage for RedisStorage {
    async fn load_rooms(&self) -> StorageResult<Vec<StoredRoom>> {
        let mut c = self.conn.clone();
        let keys: Vec<String> = c.smembers(self.keys.rooms()).await.map_err(redis_err)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = keys.iter().map(|k| self.keys.room(k)).collect();
        let texts: Vec<Option<String>> = redis::cmd("MGET").arg(&names).query_async(&mut c).await.map_err(redis_err)?;
        texts.into_iter().flatten().map(|t| decode_room(&t)).collect()
    }

    async fn load_room(&self, id: &str) -> StorageResult<Option<StoredRoom>> {
        let mut c = self.conn.clone();
        let text: Option<String> = c.get(self.keys.room(&room_key(id))).await.map_err(redis_err)?;
        text.map(|t| decode_room(&t)).transpose()
    }

    async fn save_room(&self, room: &StoredRoom, receipt: Option<&Receipt>) -> StorageResult<()> {
        let key = room_key(&room.meta.id);
        let text = encode_room(room)?;
        let mut pipe = redis::pipe();
        pipe.atomic().set(self.keys.room(&key), text).ignore().sadd(self.keys.rooms(), &key).ignore();
        self.put_receipt(&mut pipe, receipt)?;
        pipe.query_async::<()>(&mut self.conn.clone()).await.map_err(redis_err)
    }

    async fn delete_room(&self, id: &str) -> StorageResult<()> {
        let key = room_key(id);
        let mut c = self.conn.clone();
        let default: Option<String> = c.get(self.keys.default_room()).await.map_err(redis_err)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&[self.keys.room(&key), self.keys.frames(&key), self.keys.chat(&key)])
            .ignore()
            .srem(self.keys.rooms(), &key)
            .ignore();
        if default.is_some_and(|d| room_key(&d) == key) {
            pipe.del(self.keys.default_room()).ignore();
        }
        pipe.query_async::<()>(&mut c).await.map_err(redis_err)
    }

    async fn default_room(&self) -> StorageResult<Option<String>> {
        let mut c = self.conn.clone();
        c.get(self.keys.default_room()).await.map_err(redis_err)
    }

    async fn set_default_room(&self, id: Option<&str>) -> StorageResult<()> {
        let mut c = self.conn.clone();
        match id {
            Some(id) => c.set(self.keys.default_room(), id).await.map_err(redis_err),
            None => c.del(self.keys.default_room()).await.map_err(redis_err),
        }
    }

    async fn save_session(&self, s: &StoredSession, ttl: Duration) -> StorageResult<()> {
        let text = serde_json::to_string(&SessionRecord { user_id: s.user_id.clone(), user_name: s.user_name.clone() })
            .map_err(err)?;
        let mut c = self.conn.clone();
        c.set_ex(self.keys.session(&s.token_hash), text, ttl.as_secs().max(1)).await.map_err(redis_err)
    }

    async fn touch_session(&self, token_hash: &str, ttl: Duration) -> StorageResult<()> {
        let mut c = self.conn.clone();
        let ttl = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        c.expire::<_, ()>(self.keys.session(token_hash), ttl).await.map_err(redis_err)
    }

    /// Session keys carry their TTL: Redis removes them itself.
    async fn remove_idle_sessions(&self, _ttl: Duration) -> StorageResult<u64> {
        Ok(0)
    }

    async fn session(&self, token_hash: &str) -> StorageResult<Option<StoredSession>> {
        let mut c = self.conn.clone();
        let text: Option<String> = c.get(self.keys.session(token_hash)).await.map_err(redis_err)?;
        let Some(text) = text else { return Ok(None) };
        let r: SessionRecord = serde_json::from_str(&text).map_err(err)?;
        Ok(Some(StoredSession {
            token_hash: token_hash.to_string(),
            user_id: r.user_id,
            user_name: r.user_name,
            last_seen: None,
        }))
    }

    async fn append_frames(
        &self,
        room: &StoredRoom,
        frames: Vec<String>,
        receipt: Option<&Receipt>,
    ) -> StorageResult<Option<Receipt>> {
        let key = room_key(&room.meta.id);
        let script = redis::Script::new(APPEND_FRAMES);
        let mut call = script.key(self.keys.frames(&key));
        call.key(self.keys.room(&key)).arg(encode_room(room)?);
        match receipt {
            Some(r) => call.key(self.keys.receipt(&r.user_id, &r.key)).arg(encode_receipt(r)?),
            None => call.arg(""),
        };
        call.arg(RECEIPT_TTL.as_secs()).arg(frames);
        let kept: Option<String> = call.invoke_async(&mut self.conn.clone()).await.map_err(redis_err)?;
        earlier(receipt, kept)
    }

    async fn frames(&self, room_id: &str, offset: u64, limit: u64) -> StorageResult<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let start = isize::try_from(offset).map_err(err)?;
        let stop = isize::try_from(offset + limit - 1).map_err(err)?;
        c.lrange(self.keys.frames(&room_key(room_id)), start, stop).await.map_err(redis_err)
    }

    async fn save_chat(
        &self,
        message: &ChatMessage,
        keep: u64,
        receipt: Option<&Receipt>,
    ) -> StorageResult<Option<Receipt>> {
        let text = serde_json::to_string(message).map_err(err)?;
        let script = redis::Script::new(SAVE_CHAT);
        let mut call = script.key(self.keys.chat(&room_key(&message.room_id)));
        call.arg(message.id).arg(text).arg(keep);
        if let Some(r) = receipt {
            call.key(self.keys.receipt(&r.user_id, &r.key)).arg(encode_receipt(r)?).arg(RECEIPT_TTL.as_secs());
        }
        let kept: Option<String> = call.invoke_async(&mut self.conn.clone()).await.map_err(redis_err)?;
        earlier(receipt, kept)
    }

    async fn chat_page(&self, room_id: &str, before: Option<u64>, limit: u64) -> StorageResult<Vec<ChatMessage>> {
        let last = self.last_chat_id(room_id).await?;
        let end = before.map_or(last, |b| b.saturating_sub(1).min(last));
        let start = end.saturating_sub(limit.saturating_sub(1)).max(1);
        if end == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<u64> = (start..=end).collect();
        let mut c = self.conn.clone();
        let texts: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.chat(&room_key(room_id)))
            .arg(&ids)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        texts.into_iter().flatten().map(|t| serde_json::from_str(&t).map_err(err)).collect()
    }

    async fn chat_message(&self, room_id: &str, id: u64) -> StorageResult<Option<ChatMessage>> {
        let mut c = self.conn.clone();
        let text: Option<String> = c.hget(self.keys.chat(&room_key(room_id)), id).await.map_err(redis_err)?;
        text.map(|t| serde_json::from_str(&t).map_err(err)).transpose()
    }

    async fn last_chat_id(&self, room_id: &str) -> StorageResult<u64> {
        let mut c = self.conn.clone();
        let chat = self.keys.chat(&room_key(room_id));
        let last: Option<u64> = c.hget(&chat, LAST_CHAT_FIELD).await.map_err(redis_err)?;
        match last {
            Some(last) => Ok(last),
            // Written before history was capped: ids are dense from 1.
            None => c.hlen(&chat).await.map_err(redis_err),
        }
    }

    async fn receipt(&self, user_id: &str, key: &str) -> StorageResult<Option<Receipt>> {
        let text: Option<String> = self.conn.clone().get(self.keys.receipt(user_id, key)).await.map_err(redis_err)?;
        text.map(|t| decode_receipt(user_id, key, &t)).transpose()
    }

    async fn save_receipt(&self, receipt: &Receipt) -> StorageResult<()> {
        let mut pipe = redis::pipe();
        self.put_receipt(&mut pipe, Some(receipt))?;
        pipe.query_async::<()>(&mut self.conn.clone()).await.map_err(redis_err)
    }
}
