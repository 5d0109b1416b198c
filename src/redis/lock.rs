//! Locks shared by every server (`Broker::lock`): a Redis key set with
//! `NX` to a token of the holder's, with a lease. While the holder works
//! the lease is renewed, so a slow holder keeps its lock (a keyed creation
//! is never made twice) and a dead server's lock expires by itself.

use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use redis::Script;
use redis::aio::ConnectionManager;

use super::scripts::{RENEW, UNLOCK};
use crate::engine::broker::{BrokerError, BrokerResult, HeldLock};

/// How long a lock outlives its holder's last renewal.
pub const LEASE: Duration = Duration::from_secs(10);

/// Where a lock is kept and who holds it.
pub struct Lock {
    pub key: String,
    pub token: String,
    /// How long it outlives its holder's last renewal ([`LEASE`]).
    pub lease: Duration,
}

/// Takes `lock`, waiting while another holds it, at most `patience`.
pub async fn take(conn: ConnectionManager, lock: Lock, patience: Duration) -> BrokerResult<Box<dyn HeldLock>> {
    let Lock { key, token, lease } = lock;
    let deadline = tokio::time::Instant::now() + patience;
    let mut c = conn.clone();
    loop {
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(lease.as_millis() as u64)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        if taken.is_some() {
            let keeper = tokio::spawn(keep(conn.clone(), key.clone(), token.clone(), lease));
            return Ok(Box::new(SharedLock { conn, key, token, keeper }));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(BrokerError::Unavailable("busy: another server holds this step's lock; send it again".into()));
        }
        let pause = rand::rng().random_range(2..10);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

fn unavailable(e: redis::RedisError) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

/// Renews the lease three times per lease until the lock is released or
/// is no longer ours.
async fn keep(mut conn: ConnectionManager, key: String, token: String, lease: Duration) {
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await; // the first tick is at once
    loop {
        tick.tick().await;
        let renewed: Result<i64, _> =
            Script::new(RENEW).key(&key).arg(&token).arg(lease.as_millis() as u64).invoke_async(&mut conn).await;
        match renewed {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(lock = %key, "a held lock was lost: its lease ran out");
                return;
            }
            Err(e) => tracing::warn!(error = %e, lock = %key, "a lock's lease was not renewed"),
        }
    }
}

/// A held lock: its key, the token that says it is ours, the task that
/// renews it.
struct SharedLock {
    conn: ConnectionManager,
    key: String,
    token: String,
    keeper: tokio::task::JoinHandle<()>,
}

#[async_trait]
impl HeldLock for SharedLock {
    async fn release(self: Box<Self>) {
        self.keeper.abort();
        let result: Result<i64, _> =
            Script::new(UNLOCK).key(&self.key).arg(&self.token).invoke_async(&mut self.conn.clone()).await;
        if let Err(e) = result {
            tracing::warn!(error = %e, lock = %self.key, "unlock failed; the lock expires");
        }
    }
}

impl Drop for SharedLock {
    /// A holder that never released (it panicked) stops renewing: the
    /// lock then expires.
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn redis() -> ConnectionManager {
        let url = std::env::var("ROOMCAST_TEST_REDIS").expect("ROOMCAST_TEST_REDIS names a running Redis server");
        let client = redis::Client::open(url).expect("a Redis URL");
        client.get_connection_manager().await.expect("Redis answers")
    }

    fn lock(key: &str, token: &str) -> Lock {
        Lock { key: key.into(), token: token.into(), lease: Duration::from_secs(2) }
    }

    #[tokio::test]
    async fn a_lock_held_past_its_lease_stays_held_until_released() {
        let conn = redis().await;
        let key = format!("test-lock-{:016x}", rand::random::<u64>());
        let held = take(conn.clone(), lock(&key, "first"), Duration::ZERO).await.expect("taken");
        tokio::time::sleep(Duration::from_secs(5)).await; // two and a half leases
        let second = take(conn.clone(), lock(&key, "second"), Duration::from_millis(200)).await;
        assert!(second.is_err(), "still held: its lease was renewed");
        held.release().await;
        let second = take(conn.clone(), lock(&key, "second"), Duration::ZERO).await.expect("free once released");
        second.release().await;
    }

    #[tokio::test]
    async fn a_lock_whose_holder_is_gone_expires() {
        let conn = redis().await;
        let key = format!("test-lock-{:016x}", rand::random::<u64>());
        drop(take(conn.clone(), lock(&key, "first"), Duration::ZERO).await.expect("taken")); // never released
        let second = take(conn.clone(), lock(&key, "second"), Duration::from_secs(10)).await;
        second.expect("taken once the lease ran out").release().await;
    }
}
