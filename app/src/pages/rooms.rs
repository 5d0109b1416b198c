//! `/rooms`: the live room list (channel `overview:public`).

use leptos::prelude::*;

use crate::client::{Channel, initial, use_socket, use_store};
use crate::components::lock_pill::lock_pill;
use crate::components::room_forms::{CreateRoomForm, JoinByCode};
use crate::model::RoomMetadata;

#[component]
pub fn RoomsPage() -> impl IntoView {
    let store = use_store();
    let socket = use_socket();
    socket.enter(Channel::Overview);
    on_cleanup(move || socket.exit(Channel::Overview));

    let first = Resource::new(|| (), |_| initial::rooms());
    let show_hidden = RwSignal::new(false);
    let filter = RwSignal::new(String::new());
    let notice = move || store.notice.get();

    view! {
        <section class="rooms-page">
            <h1>"Rooms"</h1>
            {move || notice().map(|text| view! {
                <p class="notice" data-testid="notice" role="status">
                    {text}
                    <button class="link" on:click=move |_| store.notice.set(None)>"dismiss"</button>
                </p>
            })}
            <div class="cards">
                <CreateRoomForm/>
                <JoinByCode/>
            </div>
            <div class="list-tools">
                <input type="search" data-testid="filter" placeholder="Filter by id or description" bind:value=filter/>
                <label class="inline"><input type="checkbox" data-testid="show-hidden" bind:checked=show_hidden/>"Show hidden"</label>
            </div>
            <Suspense fallback=|| view! { <p>"Loading rooms…"</p> }>
                {move || Suspend::new(async move {
                    store.seed(first.await);
                    view! { <RoomTable show_hidden filter/> }
                })}
            </Suspense>
        </section>
    }
}

fn matches(room: &RoomMetadata, needle: &str) -> bool {
    needle.is_empty()
        || room.id.to_lowercase().contains(needle)
        || room.description.as_deref().is_some_and(|d| d.to_lowercase().contains(needle))
}

#[component]
fn RoomTable(show_hidden: RwSignal<bool>, filter: RwSignal<String>) -> impl IntoView {
    let store = use_store();
    let visible = move || {
        let needle = filter.get().trim().to_lowercase();
        let show_hidden = show_hidden.get();
        store
            .sorted_keys()
            .into_iter()
            .filter_map(|key| store.room(&key))
            .filter(|room| room.with(|r| (show_hidden || !r.hidden) && matches(r, &needle)))
            .collect::<Vec<_>>()
    };
    let count = move || store.sorted_keys().len();
    view! {
        <p class="muted" data-testid="room-count">{move || format!("{} rooms", count())}</p>
        <table class="rooms" data-testid="room-list">
            <thead>
                <tr>
                    <th>"Room"</th>
                    <th>"Description"</th>
                    <th class="num">"Frames"</th>
                    <th>"Status"</th>
                    <th class="num">"Members"</th>
                    <th class="num">"Spectators"</th>
                    <th class="num">"Connections"</th>
                    <th>"Lock"</th>
                </tr>
            </thead>
            <tbody>
                <For each=visible key=|room| room.with_untracked(|r| r.id.clone()) let:room>
                    {room_row(RwSignal::from(room))}
                </For>
            </tbody>
        </table>
    }
}

/// One row of the list. A plain function rather than a component, with a
/// plain link (the router still handles its clicks): builds erase every
/// component's view type (smaller WASM), and the server renders a thousand
/// rows faster when each keeps its concrete type.
fn room_row(room: RwSignal<RoomMetadata>) -> impl IntoView {
    let id = room.with_untracked(|r| r.id.clone());
    let href = format!("/rooms/{id}");
    let label = id.clone();
    let seats = move || {
        room.with(|r| match r.max_members {
            0 => format!("{}", r.member_count),
            max => format!("{}/{}", r.member_count, max),
        })
    };
    view! {
        <tr data-room-id=id class:hidden-room=move || room.with(|r| r.hidden)>
            <td>
                <a href=href>{label}</a>
                {move || room.with(|r| r.is_default).then(|| view! { <span class="badge default" data-testid="default-marker">"default"</span> })}
                {move || room.with(|r| r.hidden).then(|| view! { <span class="badge">"hidden"</span> })}
            </td>
            <td class="description" data-testid="description">{move || room.with(|r| r.description.clone().unwrap_or_default())}</td>
            <td class="num" data-testid="frame-count">{move || room.with(|r| r.frame_count)}</td>
            <td data-testid="status">{move || room.with(|r| r.status.as_str())}</td>
            <td class="num" data-testid="members">{seats}</td>
            <td class="num" data-testid="spectators">{move || room.with(|r| r.spectator_count)}</td>
            <td class="num" data-testid="connections">{move || room.with(|r| r.connection_count)}</td>
            <td>{lock_pill(room)}</td>
        </tr>
    }
}
