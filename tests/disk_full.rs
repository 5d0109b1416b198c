//! The database on a small filesystem that fills up: writes fail cleanly
//! with `unavailable`, what was stored stays intact, and writes succeed
//! again once space returns. Mounting the filesystem needs root (CI runs
//! as root on these machines).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestServer, assert_error};
use serde_json::{Value, json};

/// A 4 MiB tmpfs, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs failed: this test needs root");
        SmallDisk { path, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes a file until the disk is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![7u8; 16 * 1024];
    loop {
        if file.write_all(&chunk).and_then(|()| file.sync_all()).is_err() {
            return;
        }
    }
}

/// Frames large enough that appending them needs new pages on disk.
fn big_frames(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!({ "i": i, "pad": "x".repeat(4000) })).collect())
}

#[tokio::test]
async fn a_full_disk_fails_writes_cleanly_and_they_succeed_again_once_space_returns() {
    let disk = SmallDisk::mount();
    let db = disk.path.join("roomcast.db");
    let mut server = TestServer::start_on(&db, &[]).await;
    let token = server.session("writer").await;
    let api = server.api(Some(&token));
    let room = api.create_room(json!({ "description": "before" })).await;
    let id = room["id"].as_str().expect("id").to_string();
    let frames = format!("/api/rooms/{id}/frames");
    assert_eq!(api.post(&frames, json!([1, 2, 3])).await.1["frameCount"], 3);

    fill(&disk.path.join("filler"));
    let answer = api.post(&frames, big_frames(100)).await;
    assert_error(&answer, 503, "unavailable");
    assert!(answer.1["error"]["message"].as_str().is_some_and(|m| m.contains("full")), "{}", answer.1);
    let patch = api.patch(&format!("/api/rooms/{id}"), json!({ "description": "x".repeat(400) })).await;
    let created = api.post("/api/rooms", json!({ "description": "y".repeat(400) })).await;
    // Every write either failed cleanly or was stored in space the
    // database file already had; none answered anything but ok or 503.
    for answer in [&patch, &created] {
        assert!([200, 201, 503].contains(&answer.0), "{answer:?}");
    }
    let (_, now) = api.get(&format!("/api/rooms/{id}")).await;
    assert_eq!(now["frameCount"], 3, "the failed append left the room as it was");
    let (_, stored) = api.get(&format!("{frames}?offset=0&limit=10")).await;
    assert_eq!(stored["frames"], json!([1, 2, 3]));

    std::fs::remove_file(disk.path.join("filler")).expect("free the space");
    assert_eq!(api.post(&frames, big_frames(100)).await.1["frameCount"], 103, "writes work again");
    let (status, body) = api.patch(&format!("/api/rooms/{id}"), json!({ "description": "after" })).await;
    assert_eq!(status, 200, "{body}");

    server.restart().await;
    let api = server.api(Some(&token));
    let (_, room) = api.get(&format!("/api/rooms/{id}")).await;
    assert_eq!((room["description"].as_str(), room["frameCount"].as_u64()), (Some("after"), Some(103)), "{room}");
    let (_, page) = api.get(&format!("{frames}?offset=100&limit=10")).await;
    assert_eq!(page["frames"].as_array().map(Vec::len), Some(3));
    drop(server);
    let check = rusqlite::Connection::open(&db).expect("db");
    let integrity: String = check.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(integrity, "ok");
}
