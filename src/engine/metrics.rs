//! Counters for `GET /api/stats` and `GET /metrics`: plain atomics, bumped
//! once per event or per fan-out, never locked.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use app::error::ErrorCode;

#[derive(Default)]
pub struct Metrics {
    pub connections: AtomicU64,
    pub events_in: AtomicU64,
    pub events_out: AtomicU64,
    pub deltas_sent: AtomicU64,
    errors: [AtomicU64; ErrorCode::ALL.len()],
    /// Connections per user, for the count of distinct users online.
    users: Mutex<HashMap<String, u32>>,
}

fn code_index(code: ErrorCode) -> usize {
    ErrorCode::ALL.iter().position(|c| *c == code).unwrap_or(0)
}

impl Metrics {
    pub fn error(&self, code: ErrorCode) {
        self.errors[code_index(code)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent(&self, frames: u64) {
        self.events_out.fetch_add(frames, Ordering::Relaxed);
    }

    pub fn deltas(&self, frames: u64) {
        self.deltas_sent.fetch_add(frames, Ordering::Relaxed);
        self.events_out.fetch_add(frames, Ordering::Relaxed);
    }

    pub fn connected(&self, user_id: &str) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        *users.entry(user_id.to_string()).or_default() += 1;
    }

    pub fn disconnected(&self, user_id: &str) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = users.get_mut(user_id) {
            *n -= 1;
            if *n == 0 {
                users.remove(user_id);
            }
        }
    }

    pub fn users(&self) -> usize {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The Prometheus text exposition of every counter.
    pub fn prometheus(&self, rooms: usize, by_status: [(&str, usize); 3]) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge("roomcast_rooms", "Rooms held by the server.", rooms as u64);
        gauge("roomcast_connections", "Open WebSocket connections.", self.connections.load(Ordering::Relaxed));
        gauge("roomcast_users", "Distinct users with an open connection.", self.users() as u64);
        let _ = writeln!(
            out,
            "# HELP roomcast_rooms_by_status Rooms by lifecycle status.\n# TYPE roomcast_rooms_by_status gauge"
        );
        for (status, n) in by_status {
            let _ = writeln!(out, "roomcast_rooms_by_status{{status=\"{status}\"}} {n}");
        }
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("roomcast_events_in_total", "Client events received.", self.events_in.load(Ordering::Relaxed));
        counter(
            "roomcast_events_out_total",
            "Server messages queued to connections.",
            self.events_out.load(Ordering::Relaxed),
        );
        counter(
            "roomcast_deltas_sent_total",
            "room:update deltas queued to connections.",
            self.deltas_sent.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP roomcast_errors_total Errors answered, by code.\n# TYPE roomcast_errors_total counter"
        );
        for code in ErrorCode::ALL {
            let n = self.errors[code_index(code)].load(Ordering::Relaxed);
            let _ = writeln!(out, "roomcast_errors_total{{code=\"{}\"}} {n}", code.as_str());
        }
        out
    }
}
