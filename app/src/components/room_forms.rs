//! Creating a room and joining one by its code.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

use crate::api::CreateRoom;
use crate::client::rest;
use crate::ids::code_candidates;

fn optional(text: String) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[component]
pub fn CreateRoomForm() -> impl IntoView {
    let id = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let hidden = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let req = CreateRoom {
            id: optional(id.get_untracked()),
            description: optional(description.get_untracked()),
            hidden: Some(hidden.get_untracked()),
            ..Default::default()
        };
        let navigate = navigate.clone();
        busy.set(true);
        spawn_local(async move {
            match rest::create_room(&req).await {
                Ok(room) => {
                    error.set(None);
                    id.set(String::new());
                    description.set(String::new());
                    navigate(&format!("/rooms/{}", room.id), Default::default());
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="card create-room" data-testid="create-room" on:submit=submit>
            <h2>"Create a room"</h2>
            <label>"Id (optional)" <input name="id" placeholder="generated, like ROOM-7KQ2MX" bind:value=id/></label>
            <label>
                "Description"
                <input name="description" maxlength="500" aria-describedby="description-count" bind:value=description/>
                <span id="description-count" class="counter" data-testid="description-count">
                    {move || format!("{}/500", description.with(|d| d.chars().count()))}
                </span>
            </label>
            <label class="inline"><input type="checkbox" name="hidden" bind:checked=hidden/>"Hidden from the list"</label>
            <button type="submit" disabled=move || busy.get()>"Create"</button>
            <p class="error" role="alert">{move || error.get()}</p>
        </form>
    }
}

#[component]
pub fn JoinByCode() -> impl IntoView {
    let code = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let input = code.get_untracked();
        let candidates = code_candidates(&input);
        let navigate = navigate.clone();
        spawn_local(async move {
            for id in &candidates {
                if let Ok(Some(room)) = rest::get_room(id).await {
                    error.set(None);
                    code.set(String::new());
                    navigate(&format!("/rooms/{}", room.id), Default::default());
                    return;
                }
            }
            error.set(Some(format!("No room with code “{}”", input.trim())));
        });
    };
    view! {
        <form class="card join-code" data-testid="join-code" on:submit=submit>
            <h2>"Join by code"</h2>
            <label>"Code" <input name="code" placeholder="7KQ2MX or ROOM-7KQ2MX" bind:value=code/></label>
            <button type="submit">"Join"</button>
            <p class="error" role="alert">{move || error.get()}</p>
        </form>
    }
}
