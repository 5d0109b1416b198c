//! `/`: start a room, join one by its code, or get matched with others.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::client::use_actions;
use crate::components::error_text::error_text;
use crate::components::room_forms::{CreateRoomForm, JoinByCode};

#[component]
fn QuickMatch() -> impl IntoView {
    let actions = use_actions();
    let navigate = use_navigate();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let play = move |seats: u32| {
        let navigate = navigate.clone();
        busy.set(true);
        spawn_local(async move {
            match actions.quick_match(seats).await {
                Ok(id) => navigate(&format!("/rooms/{id}"), Default::default()),
                Err(e) => error.set(Some(error_text(&e))),
            }
            busy.set(false);
        });
    };
    let buttons = [2u32, 4, 6]
        .into_iter()
        .map(|n| {
            let play = play.clone();
            view! {
                <button data-testid=format!("match-{n}") on:click=move |_| play(n) prop:disabled=move || busy.get()>
                    {format!("{n} players")}
                </button>
            }
        })
        .collect_view();
    view! {
        <div class="card quick-match" data-testid="quick-match">
            <h2>"Quick match"</h2>
            <p class="muted">"Join a waiting room with a free seat, or open one."</p>
            <div class="row">{buttons}</div>
            <p class="error" role="alert">{move || error.get()}</p>
        </div>
    }
}

#[component]
pub fn LobbyPage() -> impl IntoView {
    view! {
        <section class="lobby">
            <h1>"Roomcast"</h1>
            <p class="lead">"Live rooms: create one, join one by its code, get matched, or browse the " <A href="/rooms">"room list"</A> "."</p>
            <div class="cards">
                <CreateRoomForm/>
                <JoinByCode/>
                <QuickMatch/>
            </div>
        </section>
    }
}
