//! Exactly-once writes (`docs/protocol.md` section 4.3): a write sent with
//! an idempotency key leaves a receipt, its answer, stored in the same
//! transaction as the write. A retry with the same key by the same user
//! within a day finds the receipt and gets the first answer back; nothing
//! is written again.
//!
//! Frames and chat, the frequent ones, are checked by the write itself:
//! storage stores the receipt with the write unless one is kept under the
//! key, and then writes nothing and answers that one (one step, no read
//! before). Only a write refused (a room locked since, a rate reached) is
//! looked up first, so that a retry of what was done gets its answer.
//! Room creation is checked under the registry lock and a lock on its key
//! shared by every server, matchmaking under the matchmaking locks (one
//! across servers).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::clock::now_secs;
use super::errors::{EngineError, storage_failed};
use super::storage::{Receipt, Storage};

/// How long a receipt answers retries.
pub const RECEIPT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A write's idempotency key and what the write asks, as the transport
/// received them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    key: String,
    /// A digest of the write (what it is and its body): the same key sent
    /// again with another write is refused rather than answered wrongly.
    request: String,
}

impl Idempotency {
    /// Checks a key (1 to 255 visible ASCII characters) and fingerprints
    /// the write it comes with: `what` names the write (`POST /api/rooms`),
    /// `body` is everything it asks.
    pub fn new(key: &str, what: &str, body: &[u8]) -> Result<Idempotency, EngineError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EngineError::bad_request(format!(
                "an idempotency key is 1 to {MAX_KEY_LEN} visible ASCII characters"
            )));
        }
        let mut digest = Sha256::new();
        digest.update(what.as_bytes());
        digest.update([0]);
        digest.update(body);
        let request = format!("{what} {}", hex(&digest.finalize()));
        Ok(Idempotency { key: key.to_string(), request })
    }

    /// The same for an optional key.
    pub fn maybe(key: Option<&str>, what: &str, body: &[u8]) -> Result<Option<Idempotency>, EngineError> {
        key.map(|k| Idempotency::new(k, what, body)).transpose()
    }

    /// The name of the lock shared by every server under which `user_id`'s
    /// write with this key runs when it is not one step in storage (a
    /// creation): a digest, so any key makes a short name.
    pub fn lock_name(&self, user_id: &str) -> String {
        let mut digest = Sha256::new();
        digest.update(user_id.as_bytes());
        digest.update([0]);
        digest.update(self.key.as_bytes());
        format!("key:{}", &hex(&digest.finalize())[..32])
    }

    /// The receipt to store with the write, answering `answer`.
    pub fn receipt(&self, user_id: &str, answer: &impl Serialize) -> Result<Receipt, EngineError> {
        let answer = serde_json::to_string(answer).map_err(|e| EngineError::internal(e.to_string()))?;
        Ok(Receipt {
            user_id: user_id.to_string(),
            key: self.key.clone(),
            request: self.request.clone(),
            answer,
            at: now_secs(),
        })
    }
}

/// The first answer to a write with this key, if `user_id` made one in the
/// last day; a key used for another write is a `conflict`.
pub async fn recall<T: DeserializeOwned>(
    storage: &dyn Storage,
    user_id: &str,
    idempotency: Option<&Idempotency>,
) -> Result<Option<T>, EngineError> {
    let Some(idem) = idempotency else { return Ok(None) };
    let Some(receipt) = storage.receipt(user_id, &idem.key).await.map_err(storage_failed)? else {
        return Ok(None);
    };
    if receipt.at < now_secs() - RECEIPT_TTL.as_secs_f64() {
        return Ok(None);
    }
    replay(&receipt, idem).map(Some)
}

/// The answer kept in a receipt found under the key of `idempotency`.
pub fn replay<T: DeserializeOwned>(receipt: &Receipt, idempotency: &Idempotency) -> Result<T, EngineError> {
    if receipt.request != idempotency.request {
        return Err(EngineError::conflict(format!(
            "the idempotency key `{}` was used for another request in the last 24 hours",
            idempotency.key
        )));
    }
    serde_json::from_str(&receipt.answer).map_err(|e| EngineError::internal(e.to_string()))
}

/// A keyed write that was refused: the first answer if the write was made
/// before (the retry finds the room changed since: locked, a rate reached),
/// else the refusal.
pub async fn or_recalled<T: DeserializeOwned>(
    refusal: EngineError,
    storage: &dyn Storage,
    user_id: &str,
    idempotency: Option<&Idempotency>,
) -> Result<T, EngineError> {
    match recall(storage, user_id, idempotency).await? {
        Some(first) => Ok(first),
        None => Err(refusal),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255_characters() {
        assert!(Idempotency::new("upload-7 part/3", "w", b"").is_err(), "a space is not visible");
        assert!(Idempotency::new("", "w", b"").is_err());
        assert!(Idempotency::new(&"k".repeat(256), "w", b"").is_err());
        assert!(Idempotency::new("é", "w", b"").is_err());
        assert!(Idempotency::new(&"k".repeat(255), "w", b"").is_ok());
    }

    #[test]
    fn the_fingerprint_tells_writes_apart_but_not_their_retries() {
        let first = Idempotency::new("k1", "POST /api/rooms", b"{}").expect("key");
        assert_eq!(first, Idempotency::new("k1", "POST /api/rooms", b"{}").expect("key"));
        assert_ne!(first, Idempotency::new("k1", "POST /api/rooms", b"{\"id\":\"a\"}").expect("key"));
        assert_ne!(first, Idempotency::new("k1", "POST /api/match", b"{}").expect("key"));
    }
}
