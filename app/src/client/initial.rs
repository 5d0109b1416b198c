//! The data a page renders first: read from the engine on the server, and
//! fetched over REST when the browser navigates to the page itself. During
//! hydration the server's value is reused, so both sides render the same.

use crate::api::{RoomPage, RoomQuery};
use crate::model::RoomMetadata;

/// One page of the room list.
pub fn rooms(query: RoomQuery) -> impl Future<Output = RoomPage> + Send + 'static {
    #[cfg(feature = "ssr")]
    {
        let source = leptos::prelude::use_context::<crate::ssr::ServerData>();
        async move {
            match source {
                Some(s) => s.0.rooms(query).await,
                None => RoomPage::default(),
            }
        }
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        send_wrapper::SendWrapper::new(async move { super::rest::list_rooms(&query).await.unwrap_or_default() })
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        let _ = query;
        async move { RoomPage::default() }
    }
}

/// One room, `None` when it does not exist.
pub fn room(id: String) -> impl Future<Output = Option<RoomMetadata>> + Send + 'static {
    #[cfg(feature = "ssr")]
    {
        let source = leptos::prelude::use_context::<crate::ssr::ServerData>();
        async move {
            match source {
                Some(s) => s.0.room(id).await,
                None => None,
            }
        }
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        send_wrapper::SendWrapper::new(async move { super::rest::get_room(&id).await.ok().flatten() })
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        let _ = id;
        async move { None }
    }
}
