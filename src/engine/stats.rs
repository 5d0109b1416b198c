//! `GET /api/stats`: rooms by status, connections, users, and when each
//! room owned here expires.

use std::sync::atomic::Ordering;

use app::ids::room_key;
use app::model::RoomStatus;
use serde::Serialize;

use super::clock::now_secs;
use super::registry::Engine;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub rooms: usize,
    pub max_rooms: usize,
    pub connections: u64,
    pub users: usize,
    pub by_status: ByStatus,
    pub room_details: Vec<RoomDetail>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ByStatus {
    pub waiting: usize,
    pub active: usize,
    pub finished: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomDetail {
    pub id: String,
    pub connection_count: u32,
    pub inactive_seconds: f64,
    /// `None` for rooms that never expire (default or locked).
    pub expires_in_seconds: Option<f64>,
}

impl Engine {
    pub async fn stats(&self) -> Stats {
        let rooms = self.list_rooms().await;
        let mut by_status = ByStatus::default();
        for r in &rooms {
            match r.status {
                RoomStatus::Waiting => by_status.waiting += 1,
                RoomStatus::Active => by_status.active += 1,
                RoomStatus::Finished => by_status.finished += 1,
            }
        }
        let now = now_secs();
        let idle = self.settings().room_idle.as_secs_f64();
        let room_details = rooms
            .iter()
            .filter_map(|r| {
                let h = self.inner.rooms.get(&room_key(&r.id))?;
                let inactive = (now - h.pulse.last_active()).max(0.0);
                let pinned = h.pulse.pinned.load(Ordering::Relaxed);
                Some(RoomDetail {
                    id: r.id.clone(),
                    connection_count: r.connection_count,
                    inactive_seconds: (inactive * 10.0).round() / 10.0,
                    expires_in_seconds: (!pinned).then(|| ((idle - inactive).max(0.0) * 10.0).round() / 10.0),
                })
            })
            .collect();
        let metrics = self.metrics();
        Stats {
            rooms: rooms.len(),
            max_rooms: self.settings().max_rooms,
            connections: metrics.connections.load(Ordering::Relaxed),
            users: metrics.users(),
            by_status,
            room_details,
        }
    }
}
