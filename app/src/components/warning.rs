//! The idle warning: a live countdown and a button that keeps the room.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::{use_actions, use_store};
use crate::ids::room_key;

/// Milliseconds since the epoch in the browser; 0 on the server.
fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}

#[component]
pub fn WarningBanner(room_id: String) -> impl IntoView {
    let store = use_store();
    let actions = use_actions();
    let now = RwSignal::new(now_ms());
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || now.set(now_ms()), std::time::Duration::from_millis(250)) {
            on_cleanup(move || handle.clear());
        }
    });
    let key = room_key(&room_id);
    let mine = move || store.warning.get().filter(|w| w.key == key);
    let keep = {
        let room_id = room_id.clone();
        move |_| {
            let room_id = room_id.clone();
            spawn_local(async move {
                let _ = actions.keep_room(&room_id).await;
            });
        }
    };
    move || {
        mine().map(|w| {
            let keep = keep.clone();
            // The tick only re-renders; the time is read when rendering, so a
            // warning that just arrived never counts from a tick up to 250 ms
            // old (which showed one second too many).
            let left = move || {
                now.track();
                ((w.until_ms - now_ms()) / 1000.0).ceil().max(0.0) as u64
            };
            view! {
                <div class="warning" data-testid="idle-warning" role="alert">
                    <span>"This room closes in " <strong data-testid="countdown">{left}</strong> " s for inactivity."</span>
                    <button data-testid="keep-room" on:click=keep>"Keep this room"</button>
                </div>
            }
        })
    }
}
