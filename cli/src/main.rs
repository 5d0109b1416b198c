//! `roomcast-cli`: Roomcast from the terminal, on `roomcast-client`.
//!
//! Exit codes: 0 done, 1 the server refused (its error code is printed),
//! 2 bad usage, 3 the server could not be reached.

mod upload;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use roomcast_client::app::api::{CreateRoom, RoomQuery};
use roomcast_client::{Client, Error, Socket};

#[derive(Parser)]
#[command(name = "roomcast-cli", version, about = "Roomcast from the terminal")]
struct Cli {
    /// The server.
    #[arg(long, env = "ROOMCAST_URL", default_value = "http://127.0.0.1:3000", global = true)]
    url: String,
    /// An existing session's token (else a new session named --name).
    /// Tokens are base64url: one may start with `-`.
    #[arg(long, env = "ROOMCAST_TOKEN", global = true, allow_hyphen_values = true)]
    token: Option<String>,
    /// The name of the new session when no --token is given.
    #[arg(long, env = "ROOMCAST_NAME", default_value = "cli", global = true, allow_hyphen_values = true)]
    name: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List rooms (one page), or search them.
    Rooms {
        /// Search ids and descriptions.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Follow a room live: its metadata, who comes and goes, its chat.
    Watch { room: String },
    /// Create a room; prints its id.
    Create {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        hidden: bool,
        #[arg(long)]
        max_members: Option<u32>,
    },
    /// Append the frames of a JSON array file under the room's lock.
    Upload {
        room: String,
        file: std::path::PathBuf,
        /// Frames per request.
        #[arg(long, default_value_t = 100)]
        chunk: usize,
    },
    /// Send a message, or (without one) send each line typed and show the chat.
    Chat {
        room: String,
        #[arg(allow_hyphen_values = true)]
        message: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Api(_) | Error::Decode(_) => 1,
        Error::Network(_) | Error::Timeout(_) => 3,
    }
}

async fn client(cli: &Cli) -> Result<Client, Error> {
    match &cli.token {
        Some(token) => Ok(Client::with_token(&cli.url, token)),
        None => Client::sign_in(&cli.url, &cli.name).await,
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Rooms { search, limit } => {
            let query = RoomQuery { q: search.clone(), limit: Some(*limit), ..RoomQuery::default() };
            let page = Client::new(&cli.url).rooms(&query).await?;
            println!("{:<24} {:<9} {:>7} {:>7}  description", "id", "status", "members", "frames");
            for r in &page.rooms {
                let description = r.description.as_deref().unwrap_or("");
                println!(
                    "{:<24} {:<9} {:>7} {:>7}  {description}",
                    r.id,
                    r.status.as_str(),
                    r.member_count,
                    r.frame_count
                );
            }
            println!("{} of {} rooms", page.rooms.len(), page.total);
        }
        Command::Create { id, description, hidden, max_members } => {
            let req = CreateRoom {
                id: id.clone(),
                description: description.clone(),
                hidden: Some(*hidden),
                max_members: *max_members,
                ..CreateRoom::default()
            };
            println!("{}", client(&cli).await?.create_room(&req).await?.id);
        }
        Command::Watch { room } => watch::run(&client(&cli).await?, room).await?,
        Command::Upload { room, file, chunk } => upload::run(&client(&cli).await?, room, file, *chunk).await?,
        Command::Chat { room, message } => {
            let client = client(&cli).await?;
            match message {
                Some(text) => {
                    let (socket, _) = Socket::open(&client);
                    socket.join_room(room).await?;
                    socket.send_chat(room, text).await?;
                }
                None => watch::chat(&client, room).await?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_or_a_message_may_start_with_a_hyphen() {
        // One token in 64 starts with `-` (base64url): it once made an
        // upload in the CLI's tests fail with "unexpected argument '-c'".
        let cli = Cli::try_parse_from(["roomcast-cli", "--token", "-cX9_a", "chat", "demo", "-- hi"]).expect("parsed");
        assert_eq!(cli.token.as_deref(), Some("-cX9_a"));
        let Command::Chat { message, .. } = cli.command else { panic!("chat") };
        assert_eq!(message.as_deref(), Some("-- hi"));
        let named = Cli::try_parse_from(["roomcast-cli", "--name", "-me-", "rooms"]).expect("parsed");
        assert_eq!(named.name, "-me-");
    }
}
