//! What a user can do, as the pages ask for it: each action sends the
//! right request (over the socket or REST), waits for its answer and puts
//! the result in the store. Pages and components call these and read the
//! store; the wire messages stay inside `client`.

use leptos::prelude::*;
use serde_json::value::RawValue;

use super::socket::Socket;
use super::store::Store;
use super::{rest, use_socket, use_store};
use crate::api::{CreateRoom, PatchRoom};
use crate::error::{ErrorBody, ErrorCode};
use crate::ids::code_candidates;
use crate::model::RoomMetadata;
use crate::protocol::{
    ChatEdit, ChatReply, ChatSend, ClientEvent, FrameSet, JoinRoomReply, LockAcquire, MatchRequest, RoomRef,
};

/// Frames sent per append request while uploading.
pub const UPLOAD_CHUNK: usize = 100;

/// How an upload is going: frames appended so far of all in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadProgress {
    pub done: usize,
    pub total: usize,
}

#[derive(Clone, Copy)]
pub struct Actions {
    socket: Socket,
    store: Store,
}

pub fn use_actions() -> Actions {
    Actions { socket: use_socket(), store: use_store() }
}

fn room(room_id: &str) -> RoomRef {
    RoomRef { room_id: room_id.to_string() }
}

impl Actions {
    /// Joins a waiting room with `seats` seats and a free one, or opens
    /// one; returns its id (the store already holds the joined room).
    pub async fn quick_match(&self, seats: u32) -> Result<String, ErrorBody> {
        let event = ClientEvent::Match(MatchRequest { max_members: Some(seats), key: Some(rest::new_key()) });
        let reply: JoinRoomReply = self.socket.request_keyed_as(event).await?;
        let id = reply.room.id.clone();
        self.store.joined(reply.sid, reply.presence, reply.chat, reply.frame, reply.room);
        Ok(id)
    }

    pub async fn create_room(&self, req: &CreateRoom) -> Result<RoomMetadata, ErrorBody> {
        rest::create_room(req).await
    }

    /// The room a typed code names (`7KQ2MX`, `room-7kq2mx`, an id), or
    /// `None` when there is no such room.
    pub async fn find_room(&self, code: &str) -> Result<Option<RoomMetadata>, ErrorBody> {
        for id in code_candidates(code) {
            if let Some(room) = rest::get_room(&id).await? {
                return Ok(Some(room));
            }
        }
        Ok(None)
    }

    pub async fn start_room(&self, room_id: &str) -> Result<(), ErrorBody> {
        self.socket.request(ClientEvent::RoomStart(room(room_id))).await.map(drop)
    }

    pub async fn finish_room(&self, room_id: &str) -> Result<(), ErrorBody> {
        self.socket.request(ClientEvent::RoomFinish(room(room_id))).await.map(drop)
    }

    pub async fn patch_room(&self, room_id: &str, patch: &PatchRoom) -> Result<(), ErrorBody> {
        rest::patch_room(room_id, patch).await.map(drop)
    }

    pub async fn delete_room(&self, room_id: &str) -> Result<(), ErrorBody> {
        rest::delete_room(room_id).await
    }

    pub async fn make_default(&self, room_id: Option<&str>) -> Result<(), ErrorBody> {
        rest::set_default_room(room_id).await
    }

    /// Resets the room's idle countdown.
    pub async fn keep_room(&self, room_id: &str) -> Result<(), ErrorBody> {
        self.socket.request(ClientEvent::KeepAlive(room(room_id))).await?;
        self.store.warning.set(None);
        Ok(())
    }

    /// Becomes the room's presenter and shows everyone `frame`.
    pub async fn present(&self, room_id: &str, frame: Option<u64>) -> Result<(), ErrorBody> {
        self.socket.request(ClientEvent::PresenterRequest(room(room_id))).await?;
        match frame {
            Some(frame) => self.show_frame(room_id, frame).await,
            None => Ok(()),
        }
    }

    pub async fn stop_presenting(&self, room_id: &str) -> Result<(), ErrorBody> {
        self.socket.request(ClientEvent::PresenterRelease(room(room_id))).await.map(drop)
    }

    /// The presenter moves everyone to `frame`.
    pub async fn show_frame(&self, room_id: &str, frame: u64) -> Result<(), ErrorBody> {
        let event = ClientEvent::FrameSet(FrameSet { room_id: room_id.to_string(), frame });
        self.socket.request(event).await.map(drop)
    }

    pub async fn send_chat(&self, room_id: &str, text: String) -> Result<(), ErrorBody> {
        let event = ClientEvent::ChatSend(ChatSend { room_id: room_id.to_string(), text, key: Some(rest::new_key()) });
        let reply: ChatReply = self.socket.request_keyed_as(event).await?;
        self.store.chat_message(reply.message);
        Ok(())
    }

    pub async fn edit_chat(&self, room_id: &str, message_id: u64, text: String) -> Result<(), ErrorBody> {
        let event = ClientEvent::ChatEdit(ChatEdit { room_id: room_id.to_string(), message_id, text });
        let reply: ChatReply = self.socket.request_as(event).await?;
        self.store.chat_message(reply.message);
        Ok(())
    }

    /// Loads 50 messages older than the oldest the store holds.
    pub async fn load_older_chat(&self, room_id: &str) -> Result<(), ErrorBody> {
        let Some(before) = self.store.chat(room_id).first().map(|m| m.id) else {
            return Ok(());
        };
        let older = rest::chat_before(room_id, before, 50).await?;
        self.store.older_chat(room_id, older);
        Ok(())
    }

    /// Takes the room's temporary lock ("Uploading 200/1000 frames by
    /// alice" for everyone), appends `frames` in chunks, reporting each to
    /// `progress`, and releases the lock, also after a failure.
    pub async fn upload_frames(
        &self,
        room_id: &str,
        frames: &[Box<RawValue>],
        progress: impl Fn(UploadProgress),
    ) -> Result<u64, ErrorBody> {
        let total = frames.len();
        self.lock(room_id, UploadProgress { done: 0, total }).await?;
        progress(UploadProgress { done: 0, total });
        let mut result = Ok(0);
        let mut done = 0;
        let upload = rest::new_key();
        for (n, chunk) in frames.chunks(UPLOAD_CHUNK).enumerate() {
            // Each chunk once, however often it has to be sent.
            result = rest::append_frames(room_id, chunk, &format!("{upload}-{n}")).await;
            if result.is_err() {
                break;
            }
            done += chunk.len();
            progress(UploadProgress { done, total });
            if done < total {
                let _ = self.lock(room_id, UploadProgress { done, total }).await;
            }
        }
        let _ = self.socket.request(ClientEvent::LockRelease(room(room_id))).await;
        result
    }

    async fn lock(&self, room_id: &str, at: UploadProgress) -> Result<(), ErrorBody> {
        let event = ClientEvent::LockAcquire(LockAcquire {
            room_id: room_id.to_string(),
            msg: Some(format!("Uploading {}/{} frames", at.done, at.total)),
            ttl_seconds: Some(60),
        });
        self.socket.request(event).await.map(drop)
    }

    /// Renames the user for this session. Presence and chat use the new
    /// name from the socket's next connection, so the socket reconnects
    /// (its rooms keep the user's seats across the reconnect).
    pub async fn rename(&self, name: &str) -> Result<(), ErrorBody> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ErrorBody::new(ErrorCode::BadRequest, "a name needs at least one character"));
        }
        if self.store.session.with_untracked(Option::is_none) {
            rest::guest_session().await?;
        }
        let info = rest::rename(name).await?;
        self.store.session.set(Some(info));
        self.socket.reconnect();
        Ok(())
    }
}
