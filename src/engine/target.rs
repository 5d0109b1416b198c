//! Where a room lives as this server knows it: owned here (its task) or
//! owned by another server (as last announced).

use std::sync::Arc;

use super::room::RoomHandle;

/// A room another server owns, as last announced.
#[derive(Clone, Debug)]
pub(super) struct RemoteRoom {
    pub id: Arc<str>,
    pub owner: Arc<str>,
    pub version: u64,
}

/// Where a room's commands go.
pub(super) enum Target {
    Local(RoomHandle),
    Remote(RemoteRoom),
}

impl Target {
    pub fn id(&self) -> &Arc<str> {
        match self {
            Target::Local(h) => &h.id,
            Target::Remote(r) => &r.id,
        }
    }
}
