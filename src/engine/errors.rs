//! The engine's errors, one variant per kind of failure the protocol
//! names (`docs/protocol.md` section 8); the transports turn each into its
//! code and status in one place (`transport::error`). They cross servers
//! in replies, so they serialize.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::storage::StorageError;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EngineError {
    #[error("{message}")]
    BadRequest { message: String },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{message}")]
    NotFound { message: String },
    #[error("{message}")]
    Conflict { message: String },
    #[error("{message}")]
    TooLarge { message: String },
    #[error("{message}")]
    Locked { message: String },
    #[error("{message}")]
    Full { message: String },
    #[error("{message}")]
    RateLimited { message: String, retry_after_ms: u64 },
    #[error("{message}")]
    Capacity { message: String },
    /// Retryable: the change was not made (or, for a request in flight
    /// when its server died, may not have been).
    #[error("{message}")]
    Unavailable { message: String, retry_after_ms: u64 },
    /// A bug.
    #[error("{message}")]
    Internal { message: String },
}

pub type EngineResult<T> = Result<T, EngineError>;

/// How long a client should wait before retrying an `unavailable` answer.
pub const RETRY_AFTER: Duration = Duration::from_millis(1000);

macro_rules! constructors {
    ($($name:ident => $variant:ident),* $(,)?) => {
        impl EngineError {
            $(pub fn $name(message: impl Into<String>) -> EngineError {
                EngineError::$variant { message: message.into() }
            })*
        }
    };
}

constructors! {
    bad_request => BadRequest,
    forbidden => Forbidden,
    not_found => NotFound,
    conflict => Conflict,
    too_large => TooLarge,
    locked => Locked,
    full => Full,
    capacity => Capacity,
    internal => Internal,
}

impl EngineError {
    pub fn rate_limited(message: impl Into<String>, wait: Duration) -> EngineError {
        EngineError::RateLimited { message: message.into(), retry_after_ms: wait.as_millis().max(1) as u64 }
    }

    pub fn unavailable(message: impl Into<String>) -> EngineError {
        EngineError::Unavailable { message: message.into(), retry_after_ms: RETRY_AFTER.as_millis() as u64 }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::NotFound { .. })
    }
}

pub fn not_found(id: &str) -> EngineError {
    EngineError::not_found(format!("no room {id}"))
}

pub fn unavailable(message: impl Into<String>) -> EngineError {
    EngineError::unavailable(message)
}

pub fn storage_failed(e: StorageError) -> EngineError {
    match e {
        StorageError::Unavailable(why) => {
            tracing::warn!(error = %why, "storage unreachable");
            unavailable("storage is unreachable; the change was not made, retry")
        }
        StorageError::Full(why) => {
            tracing::error!(error = %why, "storage full");
            unavailable("storage is full; the change was not made, retry later")
        }
        StorageError::Failed(why) => {
            tracing::error!(error = %why, "storage failed");
            EngineError::internal("storage failed; the change was not made")
        }
    }
}
