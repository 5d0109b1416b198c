//! `watch` and interactive `chat`: a room's life as lines in the terminal.

use roomcast_client::app::model::{ChatMessage, Role, RoomMetadata};
use roomcast_client::app::protocol::ServerEvent;
use roomcast_client::{Client, Error, Event, Socket};
use tokio::io::AsyncBufReadExt;

fn describe(room: &RoomMetadata) -> String {
    let lock = match (&room.metadata_locked, room.locked) {
        (_, true) => " · locked".to_string(),
        (Some(lock), _) => format!(" · {} by {}", lock.msg.as_deref().unwrap_or("locked"), lock.user_name),
        _ => String::new(),
    };
    format!(
        "{} [{}] {} members, {} spectators, {} frames{lock}",
        room.id,
        room.status.as_str(),
        room.member_count,
        room.spectator_count,
        room.frame_count
    )
}

fn role(role: Role) -> &'static str {
    match role {
        Role::Member => "member",
        Role::Spectator => "spectator",
    }
}

fn chat_line(m: &ChatMessage) -> String {
    let edited = if m.edited_at.is_some() { " (edited)" } else { "" };
    format!("<{}> {}{edited}", m.user_name, m.text)
}

/// Prints what an event changed; false once the room is gone.
fn show(socket: &Socket, room_id: &str, event: &Event) -> bool {
    match event {
        Event::Server(ServerEvent::RoomUpdate(_)) | Event::Resynced { .. } => {
            if let Some(room) = socket.store().room(room_id) {
                println!("room     {}", describe(&room));
            }
        }
        Event::Server(ServerEvent::PresenceDiff(diff)) => {
            for p in &diff.joins {
                println!("joined   {} ({})", p.user_name, role(p.role));
            }
            if !diff.leaves.is_empty() {
                println!("left     {} connection(s)", diff.leaves.len());
            }
        }
        Event::Server(ServerEvent::ChatMessageNew(e)) | Event::Server(ServerEvent::ChatMessageUpdated(e)) => {
            println!("chat     {}", chat_line(&e.message))
        }
        Event::Server(ServerEvent::RoomWarning(w)) => println!("warning  {}", w.message),
        Event::Server(ServerEvent::RoomDelete(_)) | Event::Server(ServerEvent::RoomClosed(_)) => {
            println!("closed   the room is gone");
            return false;
        }
        Event::Disconnected { code } => println!("offline  connection lost ({code:?}); reconnecting"),
        Event::Connected => println!("online"),
        _ => {}
    }
    true
}

async fn joined(
    client: &Client,
    room_id: &str,
) -> Result<(Socket, tokio::sync::mpsc::UnboundedReceiver<Event>), Error> {
    let (socket, events) = Socket::open(client);
    let reply = socket.join_room(room_id).await?;
    println!("room     {}", describe(&reply.room));
    let names: Vec<&str> = reply.presence.iter().map(|p| p.user_name.as_str()).collect();
    println!("present  {}", names.join(", "));
    for m in &reply.chat {
        println!("chat     {}", chat_line(m));
    }
    Ok((socket, events))
}

/// Until the room is gone or Ctrl-C.
pub async fn run(client: &Client, room_id: &str) -> Result<(), Error> {
    let (socket, mut events) = joined(client, room_id).await?;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) if show(&socket, room_id, &event) => {}
                _ => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Shows the room and sends each line read from standard input.
pub async fn chat(client: &Client, room_id: &str) -> Result<(), Error> {
    let (socket, mut events) = joined(client, room_id).await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) if show(&socket, room_id, &event) => {}
                _ => return Ok(()),
            },
            line = lines.next_line() => match line {
                Ok(Some(text)) if !text.trim().is_empty() => {
                    if let Err(e) = socket.send_chat(room_id, &text).await {
                        eprintln!("not sent: {e}");
                    }
                }
                Ok(Some(_)) => {}
                _ => return Ok(()),
            },
        }
    }
}
