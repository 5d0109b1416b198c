//! `roomcast-cli` against the real server (`scripts/test.sh` builds it
//! first with `cargo build -p roomcast-cli`): an upload that survives the
//! server being killed twice, and the other commands with their exit codes.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::TestServer;
use serde_json::{Value, json};

/// The CLI built next to this test's own binary.
fn cli_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let bin = dir.join("roomcast-cli");
    assert!(bin.exists(), "{} is missing: run `cargo build -p roomcast-cli` first", bin.display());
    bin
}

fn cli(server: &TestServer, token: &str) -> Command {
    let mut cmd = Command::new(cli_bin());
    cmd.arg("--url").arg(server.url("")).arg("--token").arg(token);
    cmd
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run the cli")).await.expect("joined")
}

async fn frame_count(server: &TestServer, id: &str) -> u64 {
    let (_, room) = server.api(None).get(&format!("/api/rooms/{id}")).await;
    room["frameCount"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn an_upload_survives_two_kills_of_the_server_with_every_frame_once_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = TestServer::start_on(&dir.path().join("roomcast.db"), &[]).await;
    let token = server.session("uploader").await;
    server.api(Some(&token)).create_room(json!({ "id": "upload" })).await;
    let frames: Vec<Value> = (0..1000).map(|i| json!({ "n": i })).collect();
    let file = dir.path().join("frames.json");
    std::fs::write(&file, serde_json::to_string(&frames).expect("json")).expect("file");

    let mut upload = cli(&server, &token);
    // One frame a request: 1,000 durable appends leave seconds between the
    // kills and the end even on a busy machine.
    upload.args(["upload", "upload"]).arg(&file).args(["--chunk", "1"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = upload.spawn().expect("cli");
    for at in [100, 400] {
        while frame_count(&server, "upload").await < at {
            if child.try_wait().expect("cli").is_some() {
                let out = child.wait_with_output().expect("output");
                panic!("the upload ended before the kill at {at}: {}", String::from_utf8_lossy(&out.stderr));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(frame_count(&server, "upload").await < 1000, "the kill at {at} comes mid-upload");
        server.restart().await; // SIGKILL, then the same database and port
    }
    let done = tokio::task::spawn_blocking(move || child.wait_with_output().expect("cli")).await.expect("joined");
    let said = String::from_utf8_lossy(&done.stderr).to_string();
    assert!(done.status.success(), "{said}");

    let (_, page) = server.api(None).get("/api/rooms/upload/frames?offset=0&limit=1000").await;
    let stored: Vec<i64> =
        page["frames"].as_array().expect("frames").iter().map(|f| f["n"].as_i64().unwrap()).collect();
    assert_eq!(stored, (0..1000).collect::<Vec<i64>>(), "every frame once, in order");
    let (_, room) = server.api(None).get("/api/rooms/upload").await;
    assert_eq!(room["frameCount"], 1000);
    assert!(room["metadataLocked"].is_null(), "the lock is released");
}

#[tokio::test]
async fn the_commands_print_what_they_did_and_exit_with_clear_codes() {
    let server = TestServer::start().await;
    let token = server.session("script").await;

    let mut create = cli(&server, &token);
    create.args(["create", "--id", "from-cli", "--description", "made in a shell"]);
    let made = output(create).await;
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert_eq!(String::from_utf8_lossy(&made.stdout).trim(), "from-cli");

    let mut rooms = cli(&server, &token);
    rooms.args(["rooms", "--search", "shell"]);
    let listed = String::from_utf8_lossy(&output(rooms).await.stdout).to_string();
    assert!(listed.contains("from-cli") && listed.contains("1 of 1 rooms"), "{listed}");

    let mut chat = cli(&server, &token);
    chat.args(["chat", "from-cli", "hello from a shell"]);
    assert!(output(chat).await.status.success());
    let (_, page) = server.api(None).get("/api/rooms/from-cli/chat?limit=10").await;
    assert_eq!(page["messages"][0]["text"], "hello from a shell");

    let mut again = cli(&server, &token);
    again.args(["create", "--id", "from-cli"]);
    let refused = output(again).await;
    assert_eq!(refused.status.code(), Some(1), "the server refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("conflict"));

    let mut nowhere = Command::new(cli_bin());
    nowhere.args(["--url", "http://127.0.0.1:9", "--token", "x", "rooms"]);
    assert_eq!(output(nowhere).await.status.code(), Some(3), "no server there");
    let mut usage = Command::new(cli_bin());
    usage.arg("no-such-command");
    assert_eq!(output(usage).await.status.code(), Some(2));
}
