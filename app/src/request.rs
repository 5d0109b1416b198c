//! A client frame as the server reads it (PROTOCOL.md section 5): the
//! event, its payload and an optional request id, decoded so that every
//! failure names what was wrong and can still be answered.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{ErrorBody, ErrorCode};
use crate::protocol::ClientEvent;

/// A client frame: an event, its payload and an optional request id.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Request {
    #[serde(flatten)]
    pub event: ClientEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// Why a client frame could not be decoded. `id` and `event` are whatever
/// could be read, so the error can still be addressed to the request.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeError {
    pub id: Option<u64>,
    pub event: Option<String>,
    pub message: String,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
}

impl Request {
    /// Decodes one client text frame. Every failure names what was wrong.
    pub fn decode(text: &str) -> Result<Request, DecodeError> {
        let raw: RawEnvelope = serde_json::from_str(text).map_err(|e| DecodeError {
            id: None,
            event: None,
            message: format!("frame is not a JSON object: {e}"),
        })?;
        let id = match raw.id {
            None => None,
            Some(v) => match serde_json::from_str::<Option<u64>>(v.get()) {
                Ok(id) => id,
                Err(_) => {
                    return Err(DecodeError {
                        id: None,
                        event: None,
                        message: "field `id` must be a non-negative integer".into(),
                    });
                }
            },
        };
        let fail = |event: Option<String>, message: String| DecodeError { id, event, message };
        let event: String = match raw.event {
            None => return Err(fail(None, "missing field `event`".into())),
            Some(v) => {
                serde_json::from_str(v.get()).map_err(|_| fail(None, "field `event` must be a string".into()))?
            }
        };
        let data = raw.data.map_or("{}", |v| v.get());
        if !data.trim_start().starts_with('{') {
            return Err(fail(Some(event), "field `data` must be an object".into()));
        }
        // The tag first, so serde reads `data` straight into the event's
        // type and the path of a bad field is known.
        let envelope = format!("{{\"event\":{},\"data\":{data}}}", Value::String(event.clone()));
        let mut reader = serde_json::Deserializer::from_str(&envelope);
        match serde_path_to_error::deserialize::<_, ClientEvent>(&mut reader) {
            Ok(decoded) => Ok(Request { event: decoded, id }),
            Err(e) => {
                let field = e.path().to_string();
                let inner = e.into_inner();
                let why = inner.to_string();
                let why =
                    why.strip_suffix(&format!(" at line {} column {}", inner.line(), inner.column())).unwrap_or(&why);
                let message = match field.strip_prefix("data.") {
                    Some(field) => format!("bad `data` for `{event}`: field `{field}`: {why}"),
                    None if why.starts_with("unknown variant") => format!("unknown event `{event}`"),
                    None => format!("bad `data` for `{event}`: {why}"),
                };
                Err(fail(Some(event), message))
            }
        }
    }
}

impl From<&DecodeError> for ErrorBody {
    fn from(e: &DecodeError) -> Self {
        ErrorBody::new(ErrorCode::BadRequest, e.message.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use crate::protocol::{ChatEdit, JoinRoom};

    #[test]
    fn decodes_a_request_with_id() {
        let r = Request::decode(r#"{"event":"join:room","data":{"roomId":"ROOM-7KQ2MX"},"id":7}"#).unwrap();
        assert_eq!(r.id, Some(7));
        assert_eq!(r.event, ClientEvent::JoinRoom(JoinRoom { room_id: "ROOM-7KQ2MX".into(), role: None }));
        let r = Request::decode(r#"{"event":"join:room","data":{"roomId":"a","as":"spectator"}}"#).unwrap();
        assert_eq!(r.event, ClientEvent::JoinRoom(JoinRoom { room_id: "a".into(), role: Some(Role::Spectator) }));
    }

    #[test]
    fn data_may_be_left_out_for_empty_payloads() {
        let r = Request::decode(r#"{"event":"join:overview","id":1}"#).unwrap();
        assert_eq!(r.event, ClientEvent::JoinOverview(Default::default()));
    }

    #[test]
    fn round_trips_through_serialize() {
        let req = Request {
            event: ClientEvent::ChatEdit(ChatEdit { room_id: "r".into(), message_id: 3, text: "hi".into() }),
            id: Some(9),
        };
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(Request::decode(&text).unwrap(), req);
        assert!(text.contains(r#""event":"chat:edit""#));
        assert!(text.contains(r#""messageId":3"#));
    }

    #[test]
    fn bad_frames_name_the_problem_and_keep_the_id() {
        let e = Request::decode("not json").unwrap_err();
        assert_eq!(e.id, None);
        assert!(e.message.contains("not a JSON object"));

        let e = Request::decode(r#"{"event":"dance","data":{},"id":4}"#).unwrap_err();
        assert_eq!(e.id, Some(4));
        assert_eq!(e.message, "unknown event `dance`");

        let e = Request::decode(r#"{"event":"join:room","data":{"roomId":5},"id":5}"#).unwrap_err();
        assert_eq!(e.id, Some(5));
        assert_eq!(e.event.as_deref(), Some("join:room"));
        assert_eq!(
            e.message, "bad `data` for `join:room`: field `roomId`: invalid type: integer `5`, expected a string",
            "the message names the field at fault"
        );
        let e = Request::decode(r#"{"event":"signal","data":{"roomId":"a","to":"b","kind":"wave","payload":1}}"#)
            .unwrap_err();
        assert!(e.message.contains("field `kind`"), "{}", e.message);

        let e = Request::decode(r#"{"event":"join:room","data":{},"id":6}"#).unwrap_err();
        assert!(e.message.contains("roomId"), "{}", e.message);

        let e = Request::decode(r#"{"event":"join:room","data":[1],"id":6}"#).unwrap_err();
        assert!(e.message.contains("object"));

        let e = Request::decode(r#"{"event":"join:room","id":"x"}"#).unwrap_err();
        assert!(e.message.contains("id"));

        let e = Request::decode(r#"{"event":7}"#).unwrap_err();
        assert!(e.message.contains("event"));
    }
}
