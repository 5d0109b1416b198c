//! The engine's errors: each failure is an `ErrorBody` with its protocol
//! code (the transports only turn the code into a status or a reply).

use std::time::Duration;

use app::error::{ErrorBody, ErrorCode};

use super::broker::BrokerError;
use super::storage::StorageError;

/// How long a client should wait before retrying an `unavailable` answer.
pub const RETRY_AFTER: Duration = Duration::from_millis(1000);

pub fn not_found(id: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no room {id}"))
}

/// Retryable: the change was not made (or, for a request in flight when
/// its server died, may not have been).
pub fn unavailable(message: impl Into<String>) -> ErrorBody {
    let mut body = ErrorBody::new(ErrorCode::Unavailable, message);
    body.retry_after_ms = Some(RETRY_AFTER.as_millis() as u64);
    body
}

pub fn storage_failed(e: StorageError) -> ErrorBody {
    match e {
        StorageError::Unavailable(why) => {
            tracing::warn!(error = %why, "storage unreachable");
            unavailable("storage is unreachable; the change was not made, retry")
        }
        StorageError::Failed(why) => {
            tracing::error!(error = %why, "storage failed");
            ErrorBody::new(ErrorCode::Internal, "storage failed; the change was not made")
        }
    }
}

pub fn broker_failed(e: BrokerError) -> ErrorBody {
    tracing::warn!(error = %e, "broker failed");
    unavailable(format!("{e}; retry"))
}
