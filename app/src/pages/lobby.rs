use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::room_forms::{CreateRoomForm, JoinByCode};

/// `/`: start or find a room.
#[component]
pub fn LobbyPage() -> impl IntoView {
    view! {
        <section class="lobby">
            <h1>"Roomcast"</h1>
            <p class="lead">"Live rooms: create one, join one by its code, or browse the " <A href="/rooms">"room list"</A> "."</p>
            <div class="cards">
                <CreateRoomForm/>
                <JoinByCode/>
            </div>
        </section>
    }
}
