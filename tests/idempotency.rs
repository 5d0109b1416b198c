//! Exactly-once writes (`docs/protocol.md` 4.3): a write repeated with its
//! idempotency key gets the first answer and writes nothing again — on one
//! server, after the server is killed and restarted, and through another
//! server on the same Redis (also at the same moment); another user's
//! same key is another write.

mod common;

use common::{RedisTarget, TestServer, assert_reply_error, assert_reply_ok};
use roomcast_client::app::api::{CreateRoom, RoomQuery};
use roomcast_client::app::error::ErrorCode;
use roomcast_client::{Client, Socket};
use serde_json::json;
use serde_json::value::RawValue;

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("json")
}

fn described(text: &str) -> CreateRoom {
    CreateRoom { description: Some(text.into()), max_members: Some(4), ..Default::default() }
}

async fn room_count(client: &Client) -> u64 {
    client.rooms(&RoomQuery::default()).await.expect("rooms").total
}

async fn frame_bodies(client: &Client, room: &str) -> Vec<String> {
    let page = client.frames(room, 0, 100).await.expect("frames");
    page.frames.iter().map(|f| f.to_string()).collect()
}

/// Two servers on one Redis, and the bot's one session on each.
struct Pair {
    a: TestServer,
    b: TestServer,
    on_a: Client,
    on_b: Client,
}

impl Pair {
    async fn start() -> Pair {
        let redis = RedisTarget::required();
        let a = TestServer::start_on_redis(Some(redis.clone()), &[]).await;
        let b = TestServer::start_on_redis(Some(redis), &[]).await;
        let on_a = Client::sign_in(&a.url(""), "bot").await.expect("session");
        let on_b = Client::with_token(&b.url(""), on_a.token().expect("token"));
        Pair { a, b, on_a, on_b }
    }
}

/// Sends each kind of keyed write once on `first` and again on `again`
/// (the same server, the same server restarted, or another server), and
/// checks that the repeats changed nothing.
struct Writes {
    room: String,
    frames_answer: u64,
    match_room: String,
    chat_id: u64,
}

async fn write_once(client: &Client, socket: &Socket) -> Writes {
    let room = client.create_room_keyed(&described("keyed"), "k-create").await.expect("created").id;
    let frames = [raw(r#"{"n":0}"#), raw(r#"{"n":1}"#)];
    let frames_answer = client.append_frames_keyed(&room, &frames, "k-frames").await.expect("appended");
    let match_room = client.quick_match_keyed(Some(3), "k-match").await.expect("matched").room.id;
    socket.join_room(&room).await.expect("joined");
    let chat_id = socket.send_chat_keyed(&room, "hello", "k-chat").await.expect("sent").id;
    Writes { room, frames_answer, match_room, chat_id }
}

async fn assert_repeats_change_nothing(first: &Writes, client: &Client, socket: &Socket, rooms_before: u64) {
    let again = client.create_room_keyed(&described("keyed"), "k-create").await.expect("the first answer");
    assert_eq!(again.id, first.room, "the same room, not a second one");
    let frames = [raw(r#"{"n":0}"#), raw(r#"{"n":1}"#)];
    let answer = client.append_frames_keyed(&first.room, &frames, "k-frames").await.expect("the first answer");
    assert_eq!(answer, first.frames_answer);
    let matched = client.quick_match_keyed(Some(3), "k-match").await.expect("the first answer");
    assert_eq!(matched.room.id, first.match_room);
    socket.join_room(&first.room).await.expect("joined");
    let message = socket.send_chat_keyed(&first.room, "hello", "k-chat").await.expect("the first answer");
    assert_eq!(message.id, first.chat_id);

    assert_eq!(room_count(client).await, rooms_before, "no room was created again");
    assert_eq!(frame_bodies(client, &first.room).await, [r#"{"n":0}"#, r#"{"n":1}"#], "each frame once");
    let chat = client.chat(&first.room, None, 100).await.expect("chat");
    assert_eq!(chat.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["hello"], "the message once");
}

#[tokio::test]
async fn a_repeated_write_gets_the_first_answer_and_writes_once() {
    let server = TestServer::start().await;
    let client = Client::sign_in(&server.url(""), "bot").await.expect("session");
    let (socket, _events) = Socket::open(&client);
    let first = write_once(&client, &socket).await;
    let rooms = room_count(&client).await;
    assert_eq!(rooms, 2, "the created room and the matched one");
    assert_repeats_change_nothing(&first, &client, &socket, rooms).await;

    // Without a key (or with a new one) the same write is a new write.
    let second = client.create_room(&described("keyed")).await.expect("created");
    assert_ne!(second.id, first.room);
    let count = client.append_frames(&first.room, &[raw("{}")]).await.expect("appended");
    assert_eq!(count, first.frames_answer + 1);
}

#[tokio::test]
async fn a_key_used_again_for_another_write_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let client = Client::sign_in(&server.url(""), "bot").await.expect("session");
    let room = client.create_room_keyed(&described("one"), "k").await.expect("created").id;
    let other = client.create_room_keyed(&described("two"), "k").await.expect_err("another body");
    assert_eq!(other.code(), Some(ErrorCode::Conflict), "{other}");
    let frames = client.append_frames_keyed(&room, &[raw("{}")], "k").await.expect_err("another write");
    assert_eq!(frames.code(), Some(ErrorCode::Conflict), "{frames}");
    assert_eq!(room_count(&client).await, 1);
    assert_eq!(client.room(&room).await.expect("room").frame_count, 0);

    let (socket, _events) = Socket::open(&client);
    socket.join_room(&room).await.expect("joined");
    socket.send_chat_keyed(&room, "hi", "chat-k").await.expect("sent");
    let edited = socket.send_chat_keyed(&room, "something else", "chat-k").await.expect_err("another text");
    assert_eq!(edited.code(), Some(ErrorCode::Conflict), "{edited}");
    let bad = socket.send_chat_keyed(&room, "hi", "no spaces allowed").await.expect_err("a bad key");
    assert_eq!(bad.code(), Some(ErrorCode::BadRequest), "{bad}");
    assert_eq!(client.chat(&room, None, 100).await.expect("chat").len(), 1);
}

#[tokio::test]
async fn a_bad_idempotency_header_is_a_bad_request_on_every_keyed_write() {
    let server = TestServer::start().await;
    let token = server.session("bot").await;
    let client = Client::with_token(&server.url(""), &token);
    let room = client.create_room(&described("target")).await.expect("created").id;
    let http = reqwest::Client::new();
    let writes =
        [("/api/rooms".to_string(), "{}"), (format!("/api/rooms/{room}/frames"), "[1]"), ("/api/match".into(), "{}")];
    let keys: [&[u8]; 4] = [b"", b"with space", &[b'k'; 256], b"caf\xc3\xa9"];
    for (path, body) in &writes {
        for key in keys {
            let answer = http
                .post(server.url(path))
                .bearer_auth(&token)
                .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(key).expect("a header value"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("answer");
            assert_eq!(answer.status(), 400, "{path} with key {key:?}");
            let error: serde_json::Value = answer.json().await.expect("json");
            assert_eq!(error["error"]["code"], "bad_request", "{error}");
            assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("idempotency key")), "{error}");
        }
    }
    assert_eq!(room_count(&client).await, 1, "nothing was created");
    assert_eq!(client.room(&room).await.expect("room").frame_count, 0, "nothing was appended");
}

#[tokio::test]
async fn a_repeated_match_keeps_its_room_after_its_seat_went_to_others() {
    let server = TestServer::start_with(&["--seat-grace-seconds", "0.3"]).await;
    let bot = Client::sign_in(&server.url(""), "bot").await.expect("session");
    let first = bot.quick_match_keyed(Some(2), "m").await.expect("matched").room.id;
    // The held seat lapses (the bot never joined); two others fill the room.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while bot.room(&first).await.expect("room").member_count > 0 {
        assert!(std::time::Instant::now() < deadline, "the held seat lapses");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut seated = Vec::new(); // connected until the test ends
    for name in ["ann", "ben"] {
        let other = Client::sign_in(&server.url(""), name).await.expect("session");
        let (socket, events) = Socket::open(&other);
        let room = other.quick_match(Some(2)).await.expect("matched").room.id;
        assert_eq!(room, first);
        socket.join_room(&room).await.expect("joined: the seat stays taken");
        seated.push((socket, events));
    }
    assert_eq!(bot.quick_match_keyed(Some(2), "m").await.expect("the first answer").room.id, first);
    assert_eq!(room_count(&bot).await, 1, "no room opened for the repeat");
    let fresh = bot.quick_match_keyed(Some(2), "m2").await.expect("a new match").room.id;
    assert_ne!(fresh, first, "a new key is a new match, in a new room: the room is full");
}

#[tokio::test]
async fn a_match_over_the_socket_sent_again_with_its_key_joins_the_first_room() {
    let server = TestServer::start().await;
    let (token, mut ws) = common::user(&server, "bot").await;
    let first = ws.request("match", json!({ "maxMembers": 2, "key": "ws-m" })).await;
    let room = assert_reply_ok(&first)["room"]["id"].as_str().expect("an id").to_string();
    // The room moves on (started, a match no longer joins it), and the
    // reply is lost with the connection.
    assert_reply_ok(&ws.request("room:start", json!({ "roomId": room })).await);
    ws.close().await;
    let mut again = server.ws(&token).await;
    let repeat = again.request("match", json!({ "maxMembers": 2, "key": "ws-m" })).await;
    let data = assert_reply_ok(&repeat);
    assert_eq!(data["room"]["id"], room.as_str(), "the first match's room, joined again: {data}");
    assert_eq!(data["role"], "member", "in the seat held for the bot");
    assert_reply_error(&again.request("match", json!({ "maxMembers": 3, "key": "ws-m" })).await, "conflict");
    for bad in ["", "with space"] {
        assert_reply_error(&again.request("match", json!({ "maxMembers": 2, "key": bad })).await, "bad_request");
    }
    let fresh = again.request("match", json!({ "maxMembers": 2, "key": "ws-m2" })).await;
    assert_ne!(assert_reply_ok(&fresh)["room"]["id"], room.as_str(), "a new key is a new match");
}

#[tokio::test]
async fn another_user_with_the_same_key_makes_its_own_write() {
    let server = TestServer::start().await;
    let alice = Client::sign_in(&server.url(""), "alice").await.expect("session");
    let bob = Client::sign_in(&server.url(""), "bob").await.expect("session");
    let hers = alice.create_room_keyed(&described("keyed"), "same").await.expect("created");
    let his = bob.create_room_keyed(&described("keyed"), "same").await.expect("created");
    assert_ne!(his.id, hers.id);
    assert_eq!(his.host_name.as_deref(), Some("bob"));
    let frames = [raw("{}")];
    assert_eq!(alice.append_frames_keyed(&hers.id, &frames, "f").await.expect("appended"), 1);
    assert_eq!(bob.append_frames_keyed(&hers.id, &frames, "f").await.expect("appended"), 2);
}

#[tokio::test]
async fn keys_hold_after_the_server_is_killed_and_restarted() {
    let mut server = TestServer::start().await;
    let client = Client::sign_in(&server.url(""), "bot").await.expect("session");
    let (socket, _events) = Socket::open(&client);
    let first = write_once(&client, &socket).await;
    let rooms = room_count(&client).await;
    server.restart().await; // SIGKILL, then the same database
    assert_repeats_change_nothing(&first, &client, &socket, rooms).await;
}

#[tokio::test]
async fn keys_hold_through_another_server_on_the_same_redis() {
    let Pair { a: _a, b: _b, on_a, on_b } = Pair::start().await;
    let (socket_a, _events_a) = Socket::open(&on_a);
    let (socket_b, _events_b) = Socket::open(&on_b);
    let first = write_once(&on_a, &socket_a).await;
    let rooms = room_count(&on_a).await;
    // B's list learns A's rooms from the overview channel.
    for _ in 0..100 {
        if room_count(&on_b).await == rooms {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_repeats_change_nothing(&first, &on_b, &socket_b, rooms).await;
}

#[tokio::test]
async fn one_creation_sent_to_two_servers_at_the_same_moment_makes_one_room() {
    let Pair { a: _a, b: _b, on_a, on_b } = Pair::start().await;
    // Without an id each server would pick its own: only the key makes
    // the two requests one creation.
    for n in 0..10 {
        let key = format!("k-both-{n}");
        let room = described("both");
        let (first, second) = tokio::join!(on_a.create_room_keyed(&room, &key), on_b.create_room_keyed(&room, &key));
        let (first, second) = (first.expect("created on a"), second.expect("created on b"));
        assert_eq!(first.id, second.id, "request {n}: one room, the same answer on both servers");
    }
}

#[tokio::test]
async fn a_retry_after_the_room_changed_still_gets_the_first_answer() {
    let server = TestServer::start_with(&["--chat-burst", "1"]).await;
    let alice = Client::sign_in(&server.url(""), "alice").await.expect("session");
    let bob = Client::sign_in(&server.url(""), "bob").await.expect("session");
    let room = alice.create_room(&described("changing")).await.expect("created").id;
    assert_eq!(alice.append_frames_keyed(&room, &[raw("{}")], "f").await.expect("appended"), 1);
    // Bob takes the temporary lock: new appends are refused, the retry is not.
    let (bobs, _bob_events) = Socket::open(&bob);
    bobs.join_room(&room).await.expect("joined");
    bobs.lock(&room, "mine now", 60).await.expect("locked");
    assert_eq!(alice.append_frames_keyed(&room, &[raw("{}")], "f").await.expect("the first answer"), 1);
    let refused = alice.append_frames_keyed(&room, &[raw("{}")], "g").await.expect_err("locked");
    assert_eq!(refused.code(), Some(ErrorCode::Locked), "{refused}");
    // One message per window: the retry is its first answer, not a second
    // message over the rate.
    let (alices, _alice_events) = Socket::open(&alice);
    alices.join_room(&room).await.expect("joined");
    let sent = alices.send_chat_keyed(&room, "once", "c").await.expect("sent");
    assert_eq!(alices.send_chat_keyed(&room, "once", "c").await.expect("the first answer"), sent);
    let limited = alices.send_chat_keyed(&room, "twice", "d").await.expect_err("over the rate");
    assert_eq!(limited.code(), Some(ErrorCode::RateLimited), "{limited}");
    assert_eq!(alice.room(&room).await.expect("room").frame_count, 1);
    assert_eq!(alice.chat(&room, None, 100).await.expect("chat").len(), 1);
}

#[tokio::test]
async fn a_retry_reaches_the_new_owner_after_the_first_server_died() {
    let Pair { mut a, b: _b, on_a, on_b } = Pair::start().await;
    let room = on_a.create_room(&described("owned by a")).await.expect("created").id;
    let frames = [raw(r#"{"n":0}"#)];
    assert_eq!(on_a.append_frames_keyed(&room, &frames, "k").await.expect("appended"), 1);
    a.kill(); // SIGKILL: b takes the room over from Redis
    // The retry waits out the take-over (`unavailable` is retried) and
    // finds the receipt the dead owner stored with the frames.
    assert_eq!(on_b.append_frames_keyed(&room, &frames, "k").await.expect("the first answer"), 1);
    assert_eq!(frame_bodies(&on_b, &room).await, [r#"{"n":0}"#]);
    assert_eq!(on_b.append_frames_keyed(&room, &frames, "k2").await.expect("a new write"), 2);
}
