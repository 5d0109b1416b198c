//! `/rooms`: the live room list (channel `overview:public`).

use leptos::prelude::*;

use crate::api::{RoomQuery, RoomSort};
use crate::client::{Channel, initial, use_socket, use_store};
use crate::components::lock_pill::lock_pill;
use crate::components::room_forms::{CreateRoomForm, JoinByCode};
use crate::model::RoomMetadata;

/// Rooms on one page of the list.
const PAGE: u32 = 50;

/// The window the list shows: newest first, the search text, hidden rooms
/// only when asked, from a page's cursor. The first page is what the server
/// renders, so it is the same query with no search and no cursor.
fn list_query(search: &str, show_hidden: bool, after: Option<String>) -> RoomQuery {
    let search = search.trim();
    RoomQuery {
        q: (!search.is_empty()).then(|| search.to_string()),
        status: None,
        hidden: (!show_hidden).then_some(false),
        sort: Some(RoomSort::Newest),
        after,
        limit: Some(PAGE),
    }
}

#[component]
pub fn RoomsPage() -> impl IntoView {
    let store = use_store();
    let socket = use_socket();
    let search = RwSignal::new(String::new());
    let show_hidden = RwSignal::new(false);
    // Cursors of the pages after the first, as the user paged on.
    let cursors = RwSignal::new(Vec::<String>::new());
    let query = Memo::new(move |_| list_query(&search.get(), show_hidden.get(), cursors.with(|c| c.last().cloned())));
    Effect::new(move |_| socket.enter(Channel::Overview(query.get())));
    on_cleanup(move || socket.exit(Channel::Overview(RoomQuery::default())));

    let first = Resource::new(|| (), |_| initial::rooms(list_query("", false, None)));
    let notice = move || store.notice.get();
    let on_search = move |ev| {
        cursors.set(Vec::new());
        search.set(event_target_value(&ev));
    };

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
                <input type="search" data-testid="filter" aria-label="Search rooms" placeholder="Search by id or description"
                    prop:value=move || search.get() on:input=on_search/>
                <label class="inline">
                    <input type="checkbox" data-testid="show-hidden" bind:checked=show_hidden
                        on:change=move |_| cursors.set(Vec::new())/>
                    "Show hidden"
                </label>
            </div>
            <Suspense fallback=|| view! { <p>"Loading rooms…"</p> }>
                {move || Suspend::new(async move {
                    store.seed(first.await, RoomSort::Newest);
                    view! { <RoomTable cursors/> }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn RoomTable(cursors: RwSignal<Vec<String>>) -> impl IntoView {
    let store = use_store();
    let window = store.window;
    let visible = move || store.window_keys().into_iter().filter_map(|key| store.room(&key)).collect::<Vec<_>>();
    let first_shown = move || cursors.with(Vec::len) as u64 * u64::from(PAGE) + 1;
    let range = move || {
        let shown = window.keys.with(Vec::len) as u64;
        let total = window.total.get();
        match shown {
            0 if total == 0 => "No rooms".to_string(),
            0 => format!("No more rooms (of {total})"),
            n => format!("Rooms {}–{} of {total}", first_shown(), first_shown() + n - 1),
        }
    };
    let older = move |_| {
        if let Some(next) = window.next.get_untracked() {
            cursors.update(|c| c.push(next));
        }
    };
    let newer = move |_| cursors.update(|c| drop(c.pop()));
    view! {
        <p class="muted" data-testid="room-count" role="status">{range}</p>
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
        <nav class="pager" aria-label="Pages of rooms">
            <button data-testid="newer" disabled=move || cursors.with(Vec::is_empty) on:click=newer>"← Newer"</button>
            <button data-testid="older" disabled=move || window.next.with(Option::is_none) on:click=older>"Older →"</button>
        </nav>
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
            <td class="description" data-testid="description" data-label="Description">{move || room.with(|r| r.description.clone().unwrap_or_default())}</td>
            <td class="num" data-testid="frame-count" data-label="Frames">{move || room.with(|r| r.frame_count)}</td>
            <td data-testid="status" data-label="Status">{move || room.with(|r| r.status.as_str())}</td>
            <td class="num" data-testid="members" data-label="Members">{seats}</td>
            <td class="num" data-testid="spectators" data-label="Spectators">{move || room.with(|r| r.spectator_count)}</td>
            <td class="num" data-testid="connections" data-label="Connections">{move || room.with(|r| r.connection_count)}</td>
            <td>{lock_pill(room)}</td>
        </tr>
    }
}
