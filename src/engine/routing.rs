//! Routing a command to a room: to its task here, or through the broker to
//! the server owning it, waiting through a failover for the room's next
//! owner when its owner dies.

use std::sync::Arc;
use std::time::Duration;

use app::delta::RoomDelta;
use app::ids::room_key;
use app::protocol::ServerEvent;
use tokio::time::Instant;

use super::broker::{BrokerError, broker_failed};
use super::command::{Command, Outcome, Via};
use super::connection::frame;
use super::errors::{EngineError, not_found, storage_failed, unavailable};
use super::registry::Engine;
use super::room::RoomHandle;
use super::target::{RemoteRoom, Target};

/// Why a request to a room's owner got no answer.
enum NoAnswer {
    /// Not sent: the owner was known dead.
    Unsent,
    /// Sent, but nobody was listening: it did not run.
    Undelivered,
    /// Sent, but the owner died or went silent: it may have run.
    Lost,
}

impl Engine {
    pub(super) fn known(&self, key: &str) -> Option<Target> {
        if let Some(h) = self.inner.rooms.get(key) {
            return Some(Target::Local(h.clone()));
        }
        self.inner.remote.get(key).map(|r| Target::Remote(r.clone()))
    }

    /// Where room `id` lives. A room this server has not heard of yet (its
    /// creation may still be on the way) is looked up in the shared store
    /// before the answer is `not_found`.
    pub(super) async fn target(&self, id: &str) -> Result<Target, EngineError> {
        let key = room_key(id);
        if let Some(target) = self.known(&key) {
            return Ok(target);
        }
        if !self.broker().is_shared() {
            return Err(not_found(id));
        }
        self.locate(&key).await?.ok_or_else(|| not_found(id))
    }

    /// Reads a room another server owns from the shared store and follows it.
    async fn locate(&self, key: &str) -> Result<Option<Target>, EngineError> {
        let owner = self.broker().owners(&[key.to_string()]).await.map_err(broker_failed)?.pop().flatten();
        let Some(owner) = owner.filter(|o| **o != **self.broker().node()) else { return Ok(None) };
        let Some(stored) = self.inner.shared.storage.load_room(key).await.map_err(storage_failed)? else {
            return Ok(None);
        };
        let meta = stored.meta;
        let room = RemoteRoom { id: meta.id.as_str().into(), owner: owner.into(), version: meta.version };
        if let Some(known) = self.known(key) {
            return Ok(Some(known));
        }
        self.inner.remote.insert(key.to_string(), room.clone());
        let payload = frame(ServerEvent::RoomUpdate(RoomDelta::creation(&meta)).to_json());
        self.inner.shared.directory.upsert(meta, payload).await;
        Ok(Some(Target::Remote(room)))
    }

    /// How long a request waits for a room's new owner when its owner died.
    fn failover_wait(&self) -> Duration {
        self.settings().node_ttl * 2 + Duration::from_secs(1)
    }

    /// Runs a command on a room, here or on the server owning it; returns
    /// the room's canonical id and the answer. When the owner dies, the
    /// command waits for the room's next owner (up to `failover_wait`) and
    /// goes there if it had not reached the dead one or is repeatable; else
    /// the answer is `unavailable`.
    pub(super) async fn ask(&self, id: &str, cmd: Command, via: Via) -> Result<(Arc<str>, Outcome), EngineError> {
        let deadline = Instant::now() + self.failover_wait();
        loop {
            let remote = match self.target(id).await? {
                Target::Local(h) => return Ok((h.id.clone(), self.ask_local(&h, cmd, via).await?)),
                Target::Remote(r) => r,
            };
            let why = match self.ask_remote(&remote, cmd.clone()).await {
                Ok(result) => return Ok((remote.id.clone(), result?)),
                Err(why) => why,
            };
            let why = match why {
                Ok(why) => why,
                Err(e) => return Err(broker_failed(e)),
            };
            let again = !matches!(why, NoAnswer::Lost) || cmd.is_repeatable();
            if !again || Instant::now() >= deadline {
                return Err(unavailable(format!("the server owning room {id} did not answer; retry")));
            }
            match why {
                NoAnswer::Undelivered => tokio::time::sleep(Duration::from_millis(50)).await,
                NoAnswer::Unsent | NoAnswer::Lost => self.wait_for_new_owner(id, &remote.owner, deadline).await,
            }
        }
    }

    /// Sends a command to a room's owner, giving up as soon as the owner
    /// is found dead.
    async fn ask_remote(
        &self,
        room: &RemoteRoom,
        cmd: Command,
    ) -> Result<Result<Outcome, EngineError>, Result<NoAnswer, BrokerError>> {
        if self.is_dead(&room.owner) {
            return Err(Ok(NoAnswer::Unsent));
        }
        let mut deaths = self.inner.deaths.subscribe();
        let owner_died = async {
            while deaths.changed().await.is_ok() {
                if self.is_dead(&room.owner) {
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        let key = room_key(&room.id);
        tokio::select! {
            answer = self.broker().request(&room.owner, &key, cmd) => match answer {
                Ok(result) => Ok(result),
                Err(e @ BrokerError::Unavailable(_)) => Err(Err(e)),
                Err(BrokerError::NotDelivered(_)) => Err(Ok(NoAnswer::Undelivered)),
                Err(BrokerError::NoAnswer(_)) => Err(Ok(NoAnswer::Lost)),
            },
            () = owner_died => Err(Ok(NoAnswer::Lost)),
        }
    }

    pub(super) fn is_dead(&self, node: &str) -> bool {
        self.inner.dead.lock().unwrap_or_else(|e| e.into_inner()).contains(node)
    }

    /// Waits until room `id` has an owner other than `old` (or none), or
    /// until `deadline`.
    async fn wait_for_new_owner(&self, id: &str, old: &str, deadline: Instant) {
        let key = room_key(id);
        while Instant::now() < deadline {
            match self.known(&key) {
                Some(Target::Remote(r)) if *r.owner == *old => {}
                _ => return,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a command on a room task of this server; a room it deletes
    /// leaves the registry.
    pub(super) async fn ask_local(&self, handle: &RoomHandle, cmd: Command, via: Via) -> Result<Outcome, EngineError> {
        let deleting = matches!(cmd, Command::Delete { .. });
        let outcome = handle.ask(cmd, via).await?;
        if deleting {
            self.forget(handle);
        }
        Ok(outcome)
    }
}
