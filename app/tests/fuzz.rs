//! Fuzzing the decoders with generated input: arbitrary bytes, arbitrary
//! JSON in the right envelope, and arbitrary typed events. Nothing may
//! panic; whatever decodes must survive a round trip. The number of cases
//! is `PROPTEST_CASES` (CI sets it; the default below is for local runs).

use app::api::{CreateRoom, MatchBody, PatchRoom, SessionRequest};
use app::delta::RoomDelta;
use app::model::Role;
use app::protocol::*;
use app::request::Request;
use proptest::prelude::*;
use serde_json::{Value, json};

const EVENTS: &[&str] = &[
    "join:overview",
    "leave:overview",
    "join:room",
    "leave:room",
    "match",
    "room:start",
    "room:finish",
    "keep_alive",
    "lock:acquire",
    "lock:refresh",
    "lock:msg",
    "lock:release",
    "presenter:request",
    "presenter:release",
    "frame:set",
    "chat:send",
    "chat:edit",
    "signal",
    "reply",
    "",
    "JOIN:ROOM",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![Just("roomId"), Just("ROOM-7KQ2MX"), Just("as"), Just("member")].prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("roomId".to_string()),
                    Just("text".to_string()),
                    Just("frame".to_string()),
                    Just("ttlSeconds".to_string()),
                    Just("msg".to_string()),
                    Just("to".to_string()),
                    Just("kind".to_string()),
                    Just("payload".to_string()),
                    Just("messageId".to_string()),
                    Just("maxMembers".to_string()),
                    ".{0,6}".prop_map(String::from),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn client_event() -> impl Strategy<Value = ClientEvent> {
    let room = "[A-Za-z0-9][A-Za-z0-9_-]{0,10}";
    prop_oneof![
        Just(ClientEvent::JoinOverview(Default::default())),
        ("[a-z ]{0,8}", 1..=500u32).prop_map(|(q, limit)| ClientEvent::JoinOverview(app::api::RoomQuery {
            q: Some(q),
            sort: Some(app::api::RoomSort::Newest),
            limit: Some(limit),
            ..Default::default()
        })),
        (room, 0..100u64).prop_map(|(room_id, offset)| ClientEvent::PresencePage(app::protocol::PresencePageRequest {
            room_id,
            offset,
            limit: None
        })),
        Just(ClientEvent::LeaveOverview(Empty {})),
        (room, proptest::option::of(prop_oneof![Just(Role::Member), Just(Role::Spectator)]))
            .prop_map(|(room_id, role)| ClientEvent::JoinRoom(JoinRoom { room_id, role })),
        room.prop_map(|room_id| ClientEvent::LeaveRoom(RoomRef { room_id })),
        (proptest::option::of(any::<u32>()), proptest::option::of("[ -~]{0,8}"))
            .prop_map(|(max_members, key)| ClientEvent::Match(MatchRequest { max_members, key })),
        (room, proptest::option::of(".{0,20}"), proptest::option::of(any::<u32>())).prop_map(
            |(room_id, msg, ttl_seconds)| ClientEvent::LockAcquire(LockAcquire { room_id, msg, ttl_seconds })
        ),
        (room, ".{0,20}").prop_map(|(room_id, msg)| ClientEvent::LockMsg(LockMsg { room_id, msg })),
        (room, any::<u64>()).prop_map(|(room_id, frame)| ClientEvent::FrameSet(FrameSet { room_id, frame })),
        (room, ".{0,40}").prop_map(|(room_id, text)| ClientEvent::ChatSend(ChatSend { room_id, text, key: None })),
        (room, any::<u64>(), ".{0,40}").prop_map(|(room_id, message_id, text)| ClientEvent::ChatEdit(ChatEdit {
            room_id,
            message_id,
            text
        })),
        (room, "c_[a-z0-9]{1,8}", json_value()).prop_map(|(room_id, to, payload)| {
            ClientEvent::Signal(SignalSend { room_id, to, kind: SignalKind::Ice, payload })
        }),
    ]
}

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Request::decode(&text);
        let _ = ServerMessage::decode(&text);
    }

    #[test]
    fn arbitrary_json_in_an_envelope_decodes_or_names_the_problem(
        event in prop::sample::select(EVENTS),
        data in json_value(),
        id in proptest::option::of(json_value()),
    ) {
        let mut envelope = json!({ "event": event, "data": data });
        if let Some(id) = id {
            envelope["id"] = id;
        }
        match Request::decode(&envelope.to_string()) {
            Ok(request) => {
                let again = Request::decode(&serde_json::to_string(&request).unwrap()).unwrap();
                prop_assert_eq!(again, request);
            }
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
    }

    #[test]
    fn typed_events_round_trip(event in client_event(), id in proptest::option::of(any::<u64>())) {
        let request = Request { event, id };
        let text = serde_json::to_string(&request).unwrap();
        prop_assert_eq!(Request::decode(&text).unwrap(), request);
    }

    #[test]
    fn rest_bodies_and_deltas_never_panic(body in json_value()) {
        let _ = serde_json::from_value::<CreateRoom>(body.clone());
        let _ = serde_json::from_value::<PatchRoom>(body.clone());
        let _ = serde_json::from_value::<SessionRequest>(body.clone());
        let _ = serde_json::from_value::<MatchBody>(body.clone());
        let _ = serde_json::from_value::<RoomDelta>(body);
    }
}
