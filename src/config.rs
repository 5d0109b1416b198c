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

    /// Outbound bytes a connection may fall behind before it is closed
    /// with 4008.
    #[arg(long, env = "ROOMCAST_OUTBOUND_BYTES", default_value_t = 1024 * 1024)]
    pub outbound_bytes: usize,

    /// Kernel send buffer per connection, in bytes (default: the OS's,
    /// which grows on demand). A fixed size bounds memory per connection
    /// and makes a stalled client back up into its outbound queue sooner.
    #[arg(long, env = "ROOMCAST_TCP_SEND_BUFFER")]
    pub tcp_send_buffer: Option<usize>,

    /// Seconds between WebSocket pings.
    #[arg(long, env = "ROOMCAST_PING_SECONDS", default_value_t = 25)]
    pub ping_seconds: u64,

    /// Seconds of silence after which a connection is closed.
    #[arg(long, env = "ROOMCAST_IDLE_CONNECTION_SECONDS", default_value_t = 60)]
    pub idle_connection_seconds: u64,

    /// Events per second one connection may send (beyond: `rate_limited`).
    #[arg(long, env = "ROOMCAST_RATE_PER_SECOND", default_value_t = 50.0)]
    pub rate_per_second: f64,

    /// Burst of events one connection may send at once.
    #[arg(long, env = "ROOMCAST_RATE_BURST", default_value_t = 100.0)]
    pub rate_burst: f64,

    /// Channels one connection may be in.
    #[arg(long, env = "ROOMCAST_MAX_CHANNELS", default_value_t = 64)]
    pub max_channels: usize,

    /// Rooms the server holds at most.
    #[arg(long, env = "ROOMCAST_MAX_ROOMS", default_value_t = 1000)]
    pub max_rooms: usize,

    /// Seconds a seat (and the host role) is kept after its user's last
    /// connection leaves.
    #[arg(long, env = "ROOMCAST_SEAT_GRACE_SECONDS", default_value_t = 10.0)]
    pub seat_grace_seconds: f64,

    /// Seconds without activity after which a room is deleted.
    #[arg(long, env = "ROOMCAST_ROOM_IDLE_SECONDS", default_value_t = 7200.0)]
    pub room_idle_seconds: f64,

    /// Seconds before the idle deletion at which the room is warned.
    #[arg(long, env = "ROOMCAST_ROOM_WARNING_SECONDS", default_value_t = 600.0)]
    pub room_warning_seconds: f64,

    /// Largest frame-append request body, in bytes (larger: 413).
    #[arg(long, env = "ROOMCAST_MAX_APPEND_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_append_bytes: usize,

    /// Chat messages one user may send per chat window.
    #[arg(long, env = "ROOMCAST_CHAT_BURST", default_value_t = 5)]
    pub chat_burst: usize,

    /// The chat rate window, in seconds.
    #[arg(long, env = "ROOMCAST_CHAT_WINDOW_SECONDS", default_value_t = 5.0)]
    pub chat_window_seconds: f64,

    /// Most frames in one append request.
    #[arg(long, env = "ROOMCAST_MAX_APPEND_FRAMES", default_value_t = 1000)]
    pub max_append_frames: usize,

    /// Most SQLite writes that share one transaction and fsync (group
    /// commit); each is acknowledged once its commit is on disk. 1 commits
    /// every write alone.
    #[arg(long, env = "ROOMCAST_WRITE_BATCH", default_value_t = crate::sqlite::DEFAULT_WRITE_BATCH)]
    pub write_batch: usize,

    /// Redis server to share with other Roomcast servers (e.g.
    /// `redis://127.0.0.1:6379/0`). Without it the server runs alone on its
    /// SQLite file (`--db`).
    #[arg(long, env = "ROOMCAST_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so deployments can share a
    /// Redis server.
    #[arg(long, env = "ROOMCAST_REDIS_PREFIX", default_value = "roomcast")]
    pub redis_prefix: String,

    /// Seconds after which a server that stopped sending heartbeats is
    /// taken for dead: the others remove its connections from their rooms
    /// and take over its rooms (within this time and a quarter more).
    #[arg(long, env = "ROOMCAST_NODE_TTL_SECONDS", default_value_t = 5.0)]
    pub node_ttl_seconds: f64,
    /// Proxies whose `X-Forwarded-For` names the client (comma-separated
    /// addresses). From anyone else the header is ignored and the client is
    /// the peer of the TCP connection.
    #[arg(long, env = "ROOMCAST_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Origins whose pages may open the WebSocket besides the server's own
    /// (comma-separated, e.g. `https://rooms.example.com`; `*` for any).
    /// Others are closed with 4003. Clients that send no `Origin` (scripts,
    /// bots) are not browser pages and are let through.
    #[arg(long, env = "ROOMCAST_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// REST requests per second one client address may make (beyond:
    /// 429 `rate_limited`).
    #[arg(long, env = "ROOMCAST_REST_RATE_PER_SECOND", default_value_t = 20.0)]
    pub rest_rate_per_second: f64,

    /// Burst of REST requests one client address may make at once.
    #[arg(long, env = "ROOMCAST_REST_RATE_BURST", default_value_t = 200.0)]
    pub rest_rate_burst: f64,

    /// Sessions one client address may create per minute.
    #[arg(long, env = "ROOMCAST_SESSION_RATE_PER_MINUTE", default_value_t = 6.0)]
    pub session_rate_per_minute: f64,

    /// Burst of sessions one client address may create at once.
    #[arg(long, env = "ROOMCAST_SESSION_RATE_BURST", default_value_t = 20.0)]
    pub session_rate_burst: f64,

    /// Seconds a connection has to send a request's complete headers,
    /// counted from its opening or from its previous response (so also how
    /// long an idle keep-alive connection is kept).
    #[arg(long, env = "ROOMCAST_HEADER_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub header_timeout_seconds: f64,

    /// Seconds a request (its body included) has to arrive and be answered
    /// (beyond: 408 `timeout`).
    #[arg(long, env = "ROOMCAST_REQUEST_TIMEOUT_SECONDS", default_value_t = 30.0)]
    pub request_timeout_seconds: f64,

    /// Seconds a WebSocket upgrade has to complete once its request was
    /// read (the session looked up, the answer taken by the client).
    #[arg(long, env = "ROOMCAST_WS_HANDSHAKE_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub ws_handshake_timeout_seconds: f64,

    /// TCP connections the server holds at most (beyond: 503 and close).
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// TCP connections one client address may hold at once.
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: usize,

    /// WebSockets one user may hold at once (beyond: close 1013).
    #[arg(long, env = "ROOMCAST_MAX_SOCKETS_PER_USER", default_value_t = 32)]
    pub max_sockets_per_user: usize,

    /// Seconds a user closed for flooding (events past the rate limit,
    /// bad frames) must wait before opening another socket.
    #[arg(long, env = "ROOMCAST_ABUSE_COOLDOWN_SECONDS", default_value_t = 10.0)]
    pub abuse_cooldown_seconds: f64,

    /// Days a session is kept after its last use; then it is removed.
    #[arg(long, env = "ROOMCAST_SESSION_TTL_DAYS", default_value_t = 30.0)]
    pub session_ttl_days: f64,

    /// Chat messages kept per room; older ones are removed as new ones
    /// arrive.
    #[arg(long, env = "ROOMCAST_MAX_CHAT_PER_ROOM", default_value_t = 10_000)]
    pub max_chat_per_room: u64,

    /// Frames one room may hold (an append beyond: 413 `too_large`).
    #[arg(long, env = "ROOMCAST_MAX_FRAMES_PER_ROOM", default_value_t = 100_000)]
    pub max_frames_per_room: u64,
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() { s.max(0.0) } else { 0.0 })
}

impl Config {
    /// The scale-out settings from these flags.
    pub fn redis_settings(&self) -> crate::redis::RedisSettings {
        crate::redis::RedisSettings { node_ttl: self.node_ttl(), request_timeout: Duration::from_secs(5) }
    }

    fn node_ttl(&self) -> Duration {
        seconds(self.node_ttl_seconds).max(Duration::from_millis(200))
    }

    /// The engine's settings from these flags.
    pub fn engine_settings(&self) -> crate::engine::EngineSettings {
        crate::engine::EngineSettings {
            max_rooms: self.max_rooms,
            seat_grace: seconds(self.seat_grace_seconds),
            room_idle: seconds(self.room_idle_seconds),
            room_warning: seconds(self.room_warning_seconds),
            chat_burst: self.chat_burst.max(1),
            chat_window: seconds(self.chat_window_seconds),
            node_ttl: self.node_ttl(),
            max_chat_per_room: self.max_chat_per_room.max(1),
            max_frames_per_room: self.max_frames_per_room,
            ..Default::default()
        }
    }

    pub fn request_timeout(&self) -> Duration {
        seconds(self.request_timeout_seconds).max(Duration::from_millis(100))
    }

    pub fn header_timeout(&self) -> Duration {
        seconds(self.header_timeout_seconds).max(Duration::from_millis(100))
    }

    pub fn ws_handshake_timeout(&self) -> Duration {
        seconds(self.ws_handshake_timeout_seconds).max(Duration::from_millis(100))
    }

    pub fn abuse_cooldown(&self) -> Duration {
        seconds(self.abuse_cooldown_seconds)
    }

    pub fn session_ttl(&self) -> Duration {
        seconds(self.session_ttl_days * 86_400.0).max(Duration::from_secs(1))
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_seconds.max(1))
    }

    pub fn idle_connection(&self) -> Duration {
        Duration::from_secs(self.idle_connection_seconds.max(1))
    }
}
