use leptos::prelude::*;

use crate::model::RoomMetadata;

/// Red for a permanently locked room, yellow with message and user for a
/// temporary lock, nothing otherwise. A plain function, not a component:
/// the room list renders one per row, and components are type-erased.
pub fn lock_pill(room: RwSignal<RoomMetadata>) -> impl IntoView {
    move || {
        room.with(|r| {
            if r.locked {
                Some(view! { <span class="pill pill-locked" data-lock="locked">"Locked"</span> }.into_any())
            } else {
                r.metadata_locked.as_ref().map(|lock| {
                    let text = match &lock.msg {
                        Some(msg) => format!("{msg} by {}", lock.user_name),
                        None => format!("Locked by {}", lock.user_name),
                    };
                    view! { <span class="pill pill-temporary" data-lock="temporary">{text}</span> }.into_any()
                })
            }
        })
    }
}
