//! `roomcast-client` against the real server: every REST call typed, its
//! errors typed, and one socket that survives a server restart, joins its
//! rooms again and catches up on what it missed.

mod common;

use std::time::Duration;

use common::TestServer;
use roomcast_client::app::api::{CreateRoom, PatchRoom, RoomQuery};
use roomcast_client::app::error::ErrorCode;
use roomcast_client::app::protocol::ServerEvent;
use roomcast_client::{Client, Event, Socket};
use serde_json::value::RawValue;
use tokio::sync::mpsc::UnboundedReceiver;

fn base(server: &TestServer) -> String {
    server.url("")
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("json")
}

/// Waits for the first event `pick` accepts.
async fn until<T>(events: &mut UnboundedReceiver<Event>, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv()).await.expect("in time").expect("open");
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

#[tokio::test]
async fn every_rest_call_is_typed_and_so_are_its_errors() {
    let server = TestServer::start().await;
    let client = Client::sign_in(&base(&server), "bot").await.expect("session");
    assert_eq!(client.session().await.expect("session").user_name, "bot");

    let req =
        CreateRoom { id: Some("typed".into()), description: Some("from the client".into()), ..Default::default() };
    let room = client.create_room(&req).await.expect("created");
    assert_eq!((room.id.as_str(), room.host_name.as_deref()), ("typed", Some("bot")));
    let again = client.create_room(&req).await.expect_err("a second room with the id");
    assert_eq!(again.code(), Some(ErrorCode::Conflict));
    assert!(!again.is_retryable());
    assert_eq!(client.room("missing").await.expect_err("none").code(), Some(ErrorCode::NotFound));
    assert_eq!(client.room("not an id").await.expect_err("bad").code(), Some(ErrorCode::BadRequest));

    let patch = PatchRoom { description: Some(Some("patched".into())), ..Default::default() };
    assert_eq!(client.patch_room("typed", &patch).await.expect("patched").description.as_deref(), Some("patched"));
    assert_eq!(client.append_frames("typed", &[raw(r#"{"n":0}"#), raw(r#"{"n":1}"#)]).await.expect("appended"), 2);
    assert_eq!(client.frame("typed", 1).await.expect("frame")["n"], 1);
    assert_eq!(client.frames("typed", 0, 10).await.expect("frames").frame_count, 2);
    let page = client.rooms(&RoomQuery { q: Some("patched".into()), ..Default::default() }).await.expect("page");
    assert_eq!(page.rooms.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["typed"]);
    let matched = client.quick_match(Some(2)).await.expect("matched");
    assert_eq!(matched.room.member_count, 1);

    let stranger = Client::sign_in(&base(&server), "stranger").await.expect("session");
    assert_eq!(stranger.delete_room("typed").await.expect_err("not the host").code(), Some(ErrorCode::Forbidden));
    client.delete_room("typed").await.expect("deleted");
    let anonymous = Client::new(&base(&server));
    assert_eq!(anonymous.create_room(&req).await.expect_err("no session").code(), Some(ErrorCode::Unauthorized));
}

#[tokio::test]
async fn the_socket_survives_a_restart_joins_again_and_catches_up() {
    let mut server = TestServer::start().await;
    let client = Client::sign_in(&base(&server), "watcher").await.expect("session");
    let writer = Client::sign_in(&base(&server), "writer").await.expect("session");
    writer.create_room(&CreateRoom { id: Some("live".into()), ..Default::default() }).await.expect("room");
    let (socket, mut events) = Socket::open(&client);
    let joined = socket.join_room("live").await.expect("joined");
    assert_eq!(joined.room.id, "live");
    let message = socket.send_chat("live", "before").await.expect("sent");
    assert_eq!(socket.store().chat("live").last(), Some(&message));

    // A delta reaches the store.
    let patch = |text: &str| PatchRoom { description: Some(Some(text.into())), ..Default::default() };
    writer.patch_room("live", &patch("one")).await.expect("patched");
    until(&mut events, |e| matches!(e, Event::Server(ServerEvent::RoomUpdate(_))).then_some(())).await;
    assert_eq!(socket.store().room("live").and_then(|r| r.description).as_deref(), Some("one"));

    // The server dies: a request fails at its timeout (it does not hang;
    // `send_chat` would send again), the socket reconnects once the server
    // is back and joins the room again.
    server.kill();
    until(&mut events, |e| matches!(e, Event::Disconnected { .. }).then_some(())).await;
    let lost = socket.lock_message("live", "while down").await.expect_err("no server");
    assert!(lost.is_retryable(), "{lost}");
    server.restart().await;
    // Changes the socket cannot hear: it has not reconnected yet.
    let missed = writer.patch_room("live", &patch("two")).await.expect("patched");
    until(&mut events, |e| matches!(e, Event::Connected).then_some(())).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let caught_up = || socket.store().room("live").is_some_and(|r| r.version >= missed.version);
    while !caught_up() {
        assert!(tokio::time::Instant::now() < deadline, "the re-join brings the store up to date");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(socket.store().room("live").and_then(|r| r.description).as_deref(), Some("two"));

    // And it is in the room again: new deltas and chat arrive.
    writer.patch_room("live", &patch("three")).await.expect("patched");
    let text = until(&mut events, |e| match e {
        Event::Server(ServerEvent::RoomUpdate(d)) => d.description.clone().flatten(),
        _ => None,
    })
    .await;
    assert_eq!(text, "three");
    socket.send_chat("live", "after").await.expect("sent after the restart");
}

#[tokio::test]
async fn a_dropped_connection_rejoins_and_the_presence_page_follows() {
    let server = TestServer::start().await;
    let alice = Client::sign_in(&base(&server), "alice").await.expect("session");
    let bob = Client::sign_in(&base(&server), "bob").await.expect("session");
    alice.create_room(&CreateRoom { id: Some("pair".into()), ..Default::default() }).await.expect("room");
    let (a, mut a_events) = Socket::open(&alice);
    a.join_room("pair").await.expect("joined");
    let (b, _b_events) = Socket::open(&bob);
    b.join_room("pair").await.expect("joined");
    until(&mut a_events, |e| match e {
        Event::Server(ServerEvent::PresenceDiff(d)) if d.joins.iter().any(|p| p.user_name == "bob") => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(a.store().presence("pair").len(), 2);

    a.drop_connection();
    until(&mut a_events, |e| matches!(e, Event::Connected).then_some(())).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while a.store().presence("pair").len() != 2 {
        assert!(tokio::time::Instant::now() < deadline, "joined again with both present");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Replies' errors are typed like REST's.
    assert_eq!(a.join_room("missing").await.expect_err("no such room").code(), Some(ErrorCode::NotFound));
    assert_eq!(a.unlock("pair").await.expect_err("no lock held").code(), Some(ErrorCode::NotFound));
}

/// An HTTPS server with a certificate nobody vouches for (`openssl
/// s_server`, which `scripts/setup.sh test` installs).
struct UntrustedTls {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl UntrustedTls {
    async fn start() -> UntrustedTls {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "1", "-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (scripts/setup.sh test installs it)");
        assert!(made.success(), "a self-signed certificate");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept", &format!("127.0.0.1:{port}"), "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "s_server never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        UntrustedTls { port, child, _dir: dir }
    }
}

impl Drop for UntrustedTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn https_urls_speak_tls_and_an_untrusted_certificate_is_refused() {
    let tls = UntrustedTls::start().await;
    let refused = Client::sign_in(&format!("https://127.0.0.1:{}", tls.port), "bot").await.expect_err("untrusted");
    assert!(refused.is_retryable(), "a network failure: {refused}");
    assert!(refused.to_string().contains("certificate"), "the certificate is what was refused: {refused}");
}
