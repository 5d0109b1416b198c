//! A connection present in a room, as the broker records it for a server
//! that takes the room over.

use std::sync::Arc;

use app::model::Role;
use serde::{Deserialize, Serialize};

use super::connection::User;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// The server the connection is on.
    pub node: Arc<str>,
    pub user: User,
    pub role: Role,
}
