//! What an error means to the person using the page: what happened and
//! what they can do. The server's own message is kept for errors that
//! depend on what was typed (it names the field at fault).

use crate::error::{ErrorBody, ErrorCode};

pub fn error_text(e: &ErrorBody) -> String {
    match e.code {
        ErrorCode::RateLimited => match e.retry_after_ms {
            Some(ms) => format!("Too fast: wait {} s and try again.", ms.div_ceil(1000).max(1)),
            None => "Too fast: wait a moment and try again.".into(),
        },
        ErrorCode::Locked => "This room is locked: it can no longer be changed.".into(),
        ErrorCode::Full => "This room is full: every seat is taken.".into(),
        ErrorCode::NotFound => "This room no longer exists.".into(),
        ErrorCode::Forbidden => format!("Only the host can do that ({}).", e.message),
        ErrorCode::Unavailable | ErrorCode::Capacity | ErrorCode::Timeout => {
            "The server is busy or restarting: try again in a moment.".into()
        }
        ErrorCode::Unauthorized => "Your session expired: reload the page.".into(),
        ErrorCode::BadRequest | ErrorCode::Conflict | ErrorCode::TooLarge | ErrorCode::Internal => e.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_say_how_long_to_wait() {
        let mut e = ErrorBody::new(ErrorCode::RateLimited, "chat: 5 messages per 5 s");
        e.retry_after_ms = Some(2100);
        assert_eq!(error_text(&e), "Too fast: wait 3 s and try again.");
        e.retry_after_ms = None;
        assert!(error_text(&e).contains("wait a moment"));
    }

    #[test]
    fn input_errors_keep_the_servers_words() {
        let e = ErrorBody::new(ErrorCode::BadRequest, "text: at most 2000 characters");
        assert_eq!(error_text(&e), "text: at most 2000 characters");
    }
}
