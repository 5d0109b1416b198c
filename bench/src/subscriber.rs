//! One benchmark subscriber: tungstenite's protocol state over a
//! non-blocking tokio `TcpStream`, driven by socket readiness.
//!
//! The load tool shares the machine with the server it measures, so every
//! microsecond it spends per message is taken from the server. tungstenite
//! zeroes the free part of its read buffer before every read: with the
//! default 128 KiB buffer that memset was 44% of the tool's CPU samples.
//! A 4 KiB buffer, and tungstenite driven directly on socket readiness
//! instead of through tokio-tungstenite's stream adapter (which wraps the
//! task's waker on every poll), took the tool from 6.0 to about 4.7 us of
//! CPU per delivery, and the p99 of 5,000 `overview:public` subscribers at
//! 36 changes/s from 267 ms to 113-149 ms (3 runs).

use std::io::{self, Read, Write};

use tokio::net::TcpStream;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// A tokio socket as the blocking-style `Read + Write` tungstenite expects:
/// `WouldBlock` when it is not ready.
pub struct Io(TcpStream);

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub struct Subscriber {
    ws: WebSocket<Io>,
    /// The code of the close frame the server sent, if it sent one.
    pub close_code: Option<u16>,
}

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

impl Subscriber {
    /// Connects to `url` (`ws://host:port/path?query`) and completes the handshake.
    pub async fn connect(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("ws://").ok_or("only ws:// URLs")?;
        let host = rest.split('/').next().unwrap_or(rest);
        let tcp = TcpStream::connect(host).await.map_err(|e| format!("connect {host}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let mut attempt = tungstenite::client::client_with_config(url, Io(tcp), Some(config));
        loop {
            match attempt {
                Ok((ws, _)) => return Ok(Self { ws, close_code: None }),
                Err(HandshakeError::Interrupted(mid)) => {
                    // The request is a few hundred bytes on a fresh socket:
                    // what is left to wait for is the answer.
                    mid.get_ref().get_ref().0.readable().await.map_err(|e| e.to_string())?;
                    attempt = mid.handshake();
                }
                Err(HandshakeError::Failure(e)) => return Err(format!("handshake: {e}")),
            }
        }
    }

    /// Sends one text message.
    pub async fn send(&mut self, text: String) -> Result<(), String> {
        let mut result = self.ws.send(Message::Text(text.into()));
        loop {
            match result {
                Ok(()) => return Ok(()),
                Err(e) if would_block(&e) => {
                    self.ws.get_ref().0.writable().await.map_err(|e| e.to_string())?;
                    result = self.ws.flush();
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// The next text message; None when the connection ended.
    pub async fn next_text(&mut self) -> Option<tungstenite::Utf8Bytes> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => return Some(text),
                Ok(Message::Close(frame)) => self.close_code = frame.map(|f| f.code.into()),
                Ok(_) => continue,
                Err(e) if would_block(&e) => {
                    self.ws.get_ref().0.readable().await.ok()?;
                }
                Err(_) => return None,
            }
        }
    }
}
