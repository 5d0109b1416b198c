//! What can go wrong, typed: the server's own error (with its protocol
//! code), or the network, or an answer that could not be read.

use app::error::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error (`docs/protocol.md` section 8).
    #[error("{}: {}", .0.code, .0.message)]
    Api(ErrorBody),
    /// The request did not get an answer: connection refused or lost.
    #[error("network: {0}")]
    Network(String),
    /// No reply within the request's timeout.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The server's answer was not what the protocol says.
    #[error("unreadable answer: {0}")]
    Decode(String),
}

impl Error {
    /// The protocol code of a server error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// Whether sending the same request again may succeed: the network
    /// failed, or the server said `unavailable` (nothing was changed).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Network(_) | Error::Timeout(_))
            || matches!(self.code(), Some(ErrorCode::Unavailable | ErrorCode::Timeout))
    }

    /// How long the server asked to wait before trying again.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Error::Api(e) => e.retry_after_ms,
            _ => None,
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        if e.is_decode() { Error::Decode(e.to_string()) } else { Error::Network(with_causes(&e)) }
    }
}

/// An error and what caused it ("error sending request: …: invalid peer
/// certificate: UnknownIssuer"): the top line alone rarely says why.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Decode(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
