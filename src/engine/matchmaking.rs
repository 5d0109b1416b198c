//! Quick match: a waiting room with a free seat and the wanted number of
//! seats, or a new one, as one step across every server (a lock on this
//! server, then the broker's shared lock and barrier, so that matches fill
//! a room before opening the next).

use std::sync::Arc;

use app::api::CreateRoom;
use app::model::{Role, RoomMetadata, RoomStatus};

use super::broker::{HeldLock, broker_failed};
use super::command::{Command, JoinMode, Via};
use super::connection::{Connection, User};
use super::errors::{EngineError, storage_failed};
use super::idempotency::{Idempotency, recall};
use super::registry::Engine;
use super::room::MAX_SEATS;

pub use app::api::Matched;

/// The name of the lock every server's matchmaking takes.
const MATCHMAKING_LOCK: &str = "match";

/// The matchmaking locks; `release` frees them.
struct MatchmakingGuard<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    shared: Box<dyn HeldLock>,
}

impl MatchmakingGuard<'_> {
    async fn release(self) {
        self.shared.release().await;
    }
}

fn match_size(max_members: Option<u32>) -> Result<u32, EngineError> {
    let n = max_members.unwrap_or(2);
    if !(1..=MAX_SEATS).contains(&n) {
        return Err(EngineError::bad_request(format!("field `maxMembers` must be 1 to {MAX_SEATS}")));
    }
    Ok(n)
}

impl Engine {
    /// Candidate rooms for a match, oldest first.
    async fn match_candidates(&self, max_members: u32) -> Vec<RoomMetadata> {
        let mut rooms = self.list_rooms().await;
        rooms.retain(|r| r.status == RoomStatus::Waiting && !r.locked && !r.hidden && r.max_members == max_members);
        rooms
    }

    /// Serializes matchmaking: on this server with a lock, across servers
    /// with the shared lock, after which this server's room list has every
    /// room the previous holder opened.
    async fn lock_matchmaking(&self) -> Result<MatchmakingGuard<'_>, EngineError> {
        let local = self.inner.matchmaking.lock().await;
        let shared = self.broker().lock(MATCHMAKING_LOCK).await.map_err(broker_failed)?;
        self.broker().barrier().await;
        Ok(MatchmakingGuard { _local: local, shared })
    }

    /// `match`: joins a waiting room with a free seat and `maxMembers`
    /// seats, or creates one, as one step. Returns the canonical room id.
    /// With an idempotency key, a retry joins the room the first match
    /// joined, as `join:room` would, instead of matching again.
    pub async fn match_room(
        &self,
        conn: Arc<Connection>,
        max_members: Option<u32>,
        key: Option<String>,
        reply_id: Option<u64>,
    ) -> Result<Arc<str>, EngineError> {
        let n = match_size(max_members)?;
        let idempotency = Idempotency::maybe(key.as_deref(), "match", n.to_string().as_bytes())?;
        let guard = self.lock_matchmaking().await?;
        let result = self.match_room_once(conn, n, idempotency, reply_id).await;
        guard.release().await;
        result
    }

    async fn match_room_once(
        &self,
        conn: Arc<Connection>,
        n: u32,
        idempotency: Option<Idempotency>,
        reply_id: Option<u64>,
    ) -> Result<Arc<str>, EngineError> {
        let storage = &*self.inner.shared.storage;
        if let Some(first) = recall::<String>(storage, &conn.user.id, idempotency.as_ref()).await? {
            let joined = self.join_with(conn, &first, Some(Role::Member), JoinMode::Normal, reply_id).await?;
            return Ok(joined.0);
        }
        let user_id = conn.user.id.clone();
        let id = self.match_room_locked(conn, n, reply_id).await?;
        // The join's reply is on its way: a receipt that cannot be made or
        // stored costs a retry its answer, not this answer.
        if let Some(idem) = idempotency {
            let stored = match idem.receipt(&user_id, &id) {
                Ok(receipt) => storage.save_receipt(&receipt).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, room = %id, "the match's receipt was not stored");
            }
        }
        Ok(id)
    }

    async fn match_room_locked(
        &self,
        conn: Arc<Connection>,
        n: u32,
        reply_id: Option<u64>,
    ) -> Result<Arc<str>, EngineError> {
        let mode = JoinMode::Match { max_members: n };
        for candidate in self.match_candidates(n).await {
            if let Ok((id, _)) = self.join_with(conn.clone(), &candidate.id, Some(Role::Member), mode, reply_id).await {
                return Ok(id);
            }
        }
        let room =
            self.create_room(&conn.user, CreateRoom { max_members: Some(n), ..Default::default() }, None).await?;
        self.join_with(conn, &room.id, Some(Role::Member), mode, reply_id).await.map(|(id, _)| id)
    }

    /// `POST /api/match`: like `match`, but holds the seat for the grace
    /// period until the user joins over a socket. With an idempotency key,
    /// a retry answers the first match (its receipt is written before the
    /// answer; the seat itself lives in memory, like every seat).
    pub async fn match_reserve(
        &self,
        user: &User,
        max_members: Option<u32>,
        idempotency: Option<Idempotency>,
    ) -> Result<Matched, EngineError> {
        let n = match_size(max_members)?;
        // To its end even when the caller stops waiting: a seat is never
        // held without its receipt stored, nor the lock left held.
        let (engine, user) = (self.clone(), user.clone());
        let matched = tokio::spawn(async move {
            let guard = engine.lock_matchmaking().await?;
            let result = engine.match_reserve_once(&user, n, idempotency).await;
            guard.release().await;
            result
        });
        matched.await.map_err(|e| EngineError::internal(format!("matchmaking failed: {e}")))?
    }

    async fn match_reserve_once(
        &self,
        user: &User,
        n: u32,
        idempotency: Option<Idempotency>,
    ) -> Result<Matched, EngineError> {
        let storage = &*self.inner.shared.storage;
        if let Some(first) = recall(storage, &user.id, idempotency.as_ref()).await? {
            return Ok(first);
        }
        let matched = self.match_reserve_locked(user, n).await?;
        if let Some(idem) = idempotency {
            storage.save_receipt(&idem.receipt(&user.id, &matched)?).await.map_err(storage_failed)?;
        }
        Ok(matched)
    }

    async fn match_reserve_locked(&self, user: &User, n: u32) -> Result<Matched, EngineError> {
        let reserve = || Command::Reserve { user: user.clone(), max_members: n };
        for candidate in self.match_candidates(n).await {
            if let Ok((_, outcome)) = self.ask(&candidate.id, reserve(), Via::Local(None)).await {
                return Ok(Matched { room: outcome.meta()?, role: Role::Member });
            }
        }
        let room = self.create_room(user, CreateRoom { max_members: Some(n), ..Default::default() }, None).await?;
        let room = self.ask(&room.id, reserve(), Via::Local(None)).await?.1.meta()?;
        Ok(Matched { room, role: Role::Member })
    }
}
