//! Command-line flags, each with an environment fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Roomcast: live rooms over HTTP and one WebSocket per tab.
#[derive(Clone, Debug, Parser)]
#[command(name = "roomcast", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ROOMCAST_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// SQLite database file (created on first run).
    #[arg(long, env = "ROOMCAST_DB", default_value = "data/roomcast.db")]
    pub db: PathBuf,

    /// Directory of the built site (WASM, JS, CSS, assets).
    #[arg(long, env = "ROOMCAST_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Admin token guarding the default room, stats and metrics. Without it
    /// those endpoints are open (local mode).
    #[arg(long, env = "ROOMCAST_ADMIN_TOKEN")]
    pub admin_token: Option<String>,

    /// Mark the session cookie `Secure` (serve behind HTTPS).
    #[arg(long, env = "ROOMCAST_SECURE_COOKIE", default_value_t = false)]
    pub secure_cookie: bool,

    /// Largest WebSocket frame accepted, in bytes (larger: close 1009).
    #[arg(long, env = "ROOMCAST_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Bad frames tolerated within 10 s before closing with 1008.
    #[arg(long, env = "ROOMCAST_MAX_BAD_FRAMES", default_value_t = 20)]
    pub max_bad_frames: u32,

    /// Outbound messages a connection may fall behind before it is closed
    /// with 4008.
    #[arg(long, env = "ROOMCAST_OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,

    /// Seconds between WebSocket pings.
    #[arg(long, env = "ROOMCAST_PING_SECONDS", default_value_t = 25)]
    pub ping_seconds: u64,

    /// Seconds of silence after which a connection is closed.
    #[arg(long, env = "ROOMCAST_IDLE_CONNECTION_SECONDS", default_value_t = 60)]
    pub idle_connection_seconds: u64,

    /// Channels one connection may be in.
    #[arg(long, env = "ROOMCAST_MAX_CHANNELS", default_value_t = 64)]
    pub max_channels: usize,

    /// Rooms the server holds at most.
    #[arg(long, env = "ROOMCAST_MAX_ROOMS", default_value_t = 1000)]
    pub max_rooms: usize,
}

impl Config {
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_seconds.max(1))
    }

    pub fn idle_connection(&self) -> Duration {
        Duration::from_secs(self.idle_connection_seconds.max(1))
    }
}
