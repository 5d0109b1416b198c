//! `upload`: appends a file's frames in chunks under the room's temporary
//! lock, showing progress to everyone ("Uploading 300/1000 frames").
//!
//! Exactly once across failures: each chunk has its own idempotency key
//! (the upload's, and the chunk's number), so a chunk whose answer was
//! lost (the server died, the network failed) is sent again with the same
//! key, and the server stores it only if it had not.

use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use roomcast_client::app::error::ErrorBody;
use roomcast_client::app::error::ErrorCode;
use roomcast_client::{Client, Error, Socket};
use serde_json::value::RawValue;

/// How long the lock lives without a refresh.
const LOCK_TTL: u32 = 60;
/// How often the lock's message ("Uploading 300/1000 frames") changes at
/// most: often enough to watch, well within the socket's event rate.
const MESSAGE_EVERY: Duration = Duration::from_millis(500);
/// How long a lost server is waited for before giving up.
const PATIENCE: Duration = Duration::from_secs(120);

fn read_frames(file: &Path) -> Result<Vec<Box<RawValue>>, Error> {
    let bad = |why: String| Error::Api(ErrorBody::new(ErrorCode::BadRequest, format!("{}: {why}", file.display())));
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let frames: Vec<Box<RawValue>> =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a JSON array of frames ({e})")))?;
    if frames.is_empty() {
        return Err(bad("the array is empty".into()));
    }
    Ok(frames)
}

/// Retries `step` while it fails for a reason a retry can fix, for at
/// most [`PATIENCE`].
async fn patiently<T, F: Future<Output = Result<T, Error>>>(mut step: impl FnMut() -> F) -> Result<T, Error> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match step().await {
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            answer => return answer,
        }
    }
}

struct Upload<'a> {
    client: &'a Client,
    socket: Socket,
    room: &'a str,
    total: usize,
}

impl Upload<'_> {
    fn message(&self, done: usize) -> String {
        format!("Uploading {done}/{} frames", self.total)
    }

    /// Takes (or takes again, after a restart ended it) the lock.
    async fn lock(&self, done: usize) -> Result<(), Error> {
        let message = self.message(done);
        patiently(|| self.socket.lock(self.room, &message, LOCK_TTL)).await
    }

    /// Appends `chunk` (`done` frames of the file are stored before it)
    /// once, under `key`.
    async fn append(&self, chunk: &[Box<RawValue>], key: &str, done: usize) -> Result<(), Error> {
        patiently(|| async {
            let sent = self.client.append_frames_keyed(self.room, chunk, key).await;
            if let Err(e) = &sent
                && e.is_retryable()
            {
                // The server may have restarted, which ends the lock.
                eprintln!("the server was lost at frame {done} ({e}); sending the chunk again");
                self.lock(done).await?;
            }
            sent.map(drop)
        })
        .await
    }
}

pub async fn run(client: &Client, room: &str, file: &Path, chunk: usize) -> Result<(), Error> {
    let frames = read_frames(file)?;
    let (socket, _events) = Socket::open(client);
    // A lock is taken by a connection in the room (joined again after a
    // reconnect).
    socket.join_room(room).await?;
    let up = Upload { client, socket, room, total: frames.len() };
    up.lock(0).await?;
    let start = client.room(room).await?.frame_count;
    let upload = roomcast_client::new_key();
    let chunk = chunk.max(1);
    let bar = ProgressBar::new(frames.len() as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} frames ({eta})") {
        bar.set_style(style);
    }
    let mut done = 0;
    let mut told = tokio::time::Instant::now();
    let result = async {
        for part in frames.chunks(chunk) {
            up.append(part, &format!("{upload}-{}", done / chunk), done).await?;
            done += part.len();
            bar.set_position(done as u64);
            if done == up.total || told.elapsed() < MESSAGE_EVERY {
                continue;
            }
            told = tokio::time::Instant::now();
            // A restart of the server ends the lock: take it again.
            if up.socket.lock_message(room, &up.message(done)).await.is_err() {
                eprintln!("the lock was lost at frame {done}; taking it again");
                up.lock(done).await?;
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    bar.finish_and_clear();
    let _ = up.socket.unlock(room).await;
    result?;
    println!("{done} frames appended to {room} (frames {start}..{})", start + done as u64);
    Ok(())
}
