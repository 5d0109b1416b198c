//! Wall-clock time as the protocol writes it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds, as a float.
pub fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
