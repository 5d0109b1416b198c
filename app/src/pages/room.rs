//! `/rooms/:id`: one room, live (channel `room:<id>`).

use std::sync::{Arc, Mutex};

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::api::PatchRoom;
use crate::client::{Channel, initial, rest, use_socket, use_store};
use crate::components::chat::ChatPanel;
use crate::components::frames::{FrameViewer, Upload};
use crate::components::lock_pill::lock_pill;
use crate::components::presence::PresenceList;
use crate::components::warning::WarningBanner;
use crate::error::ErrorCode;
use crate::ids::room_key;
use crate::model::{DeleteReason, RoomMetadata, RoomStatus};
use crate::pages::not_found::NotFound;
use crate::protocol::{ClientEvent, RoomRef};

fn reason_text(reason: DeleteReason) -> &'static str {
    match reason {
        DeleteReason::Deleted => "deleted",
        DeleteReason::Inactivity => "closed after inactivity",
        DeleteReason::Evicted => "evicted to make room for new rooms",
    }
}

#[component]
pub fn RoomPage() -> impl IntoView {
    let store = use_store();
    let socket = use_socket();
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").unwrap_or_default());

    // The socket follows the room in the URL.
    let joined: Arc<Mutex<Option<String>>> = Arc::default();
    let current = joined.clone();
    Effect::new(move |_| {
        let now = id.get();
        let mut joined = current.lock().unwrap_or_else(|e| e.into_inner());
        if joined.as_deref().is_some_and(|j| j.eq_ignore_ascii_case(&now)) {
            return;
        }
        if let Some(previous) = joined.take() {
            socket.exit(Channel::Room(previous));
        }
        socket.enter(Channel::Room(now.clone()));
        *joined = Some(now);
    });
    on_cleanup(move || {
        if let Some(previous) = joined.lock().unwrap_or_else(|e| e.into_inner()).take() {
            socket.exit(Channel::Room(previous));
        }
    });

    // Back to the list, with a notice, when the room goes away.
    let navigate = use_navigate();
    Effect::new(move |_| {
        let Some(removal) = store.removed.get() else {
            return;
        };
        let here = id.get_untracked();
        if removal.key == room_key(&here) {
            store.removed.set(None);
            store.notice.set(Some(format!("Room {here} was {}.", reason_text(removal.reason))));
            navigate("/rooms", Default::default());
        }
    });

    let first = Resource::new(move || id.get(), initial::room);
    view! {
        <Suspense fallback=|| view! { <p>"Loading room…"</p> }>
            {move || Suspend::new(async move {
                match first.await {
                    Some(room) => {
                        store.seed_room(room);
                        view! { <RoomView id=id.get_untracked()/> }.into_any()
                    }
                    None => view! { <NotFound/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn RoomView(id: String) -> impl IntoView {
    let store = use_store();
    let room_id = id.clone();
    move || match store.room(&room_id) {
        Some(room) => view! { <RoomDetails room=RwSignal::from(room)/> }.into_any(),
        None => view! { <p class="muted">"This room is gone."</p> }.into_any(),
    }
}

#[component]
fn RoomDetails(room: RwSignal<RoomMetadata>) -> impl IntoView {
    let store = use_store();
    let socket = use_socket();
    let id = room.with_untracked(|r| r.id.clone());
    let is_host = move || {
        let me = store.session.with(|s| s.as_ref().map(|s| s.user_id.clone()));
        room.with(|r| r.host_user_id.is_some() && r.host_user_id == me)
    };
    let seats = move || {
        room.with(|r| match r.max_members {
            0 => format!("{} members", r.member_count),
            max => format!("{}/{} seats", r.member_count, max),
        })
    };
    let status_error = RwSignal::new(None::<String>);
    let set_status = {
        let id = id.clone();
        move |start: bool| {
            let room_id = id.clone();
            spawn_local(async move {
                let room = RoomRef { room_id };
                let event = if start { ClientEvent::RoomStart(room) } else { ClientEvent::RoomFinish(room) };
                match socket.request(event).await {
                    Ok(_) => status_error.set(None),
                    Err(e) => status_error.set(Some(e.message)),
                }
            });
        }
    };
    let start = {
        let set_status = set_status.clone();
        move |_| set_status(true)
    };
    let finish = move |_| set_status(false);
    let joined = {
        let id = id.clone();
        move || store.join_error(&id).is_none()
    };
    let chat_room = id.clone();
    view! {
        <section class="room" data-testid="room" data-room-id=id.clone()>
            <WarningBanner room_id=id.clone()/>
            <h1>
                <span data-testid="room-id">{id.clone()}</span>
                <span class="badge status" data-testid="status-badge">{move || room.with(|r| r.status.as_str())}</span>
                {lock_pill(room)}
                {move || room.with(|r| r.is_default).then(|| view! { <span class="badge default" data-testid="default-marker">"default"</span> })}
                {move || room.with(|r| r.hidden).then(|| view! { <span class="badge">"hidden"</span> })}
            </h1>
            <p class="description" data-testid="room-description">
                {move || room.with(|r| r.description.clone().unwrap_or_else(|| "No description".into()))}
            </p>
            <dl class="facts">
                <dt>"Status"</dt><dd data-testid="room-status">{move || room.with(|r| r.status.as_str())}</dd>
                <dt>"Host"</dt><dd data-testid="room-host">{move || room.with(|r| r.host_name.clone().unwrap_or_else(|| "nobody".into()))}</dd>
                <dt>"Seats"</dt><dd data-testid="seat-counter">{seats}</dd>
                <dt>"Members"</dt><dd data-testid="member-count">{move || room.with(|r| r.member_count)}</dd>
                <dt>"Spectators"</dt><dd data-testid="spectator-count">{move || room.with(|r| r.spectator_count)}</dd>
                <dt>"Connections"</dt><dd data-testid="connection-count">{move || room.with(|r| r.connection_count)}</dd>
                <dt>"Frames"</dt><dd data-testid="room-frame-count">{move || room.with(|r| r.frame_count)}</dd>
            </dl>
            <Show when=is_host>
                <div class="row">
                    <button data-testid="start" on:click=start.clone() prop:disabled=move || room.with(|r| r.status == RoomStatus::Active)>"Start"</button>
                    <button data-testid="finish" on:click=finish.clone() prop:disabled=move || room.with(|r| r.status != RoomStatus::Active)>"Finish"</button>
                    <span class="error">{move || status_error.get()}</span>
                </div>
                <HostControls room/>
            </Show>
            <JoinProblem id=id.clone()/>
            <Show when=joined>
                <h2>"Who is here"</h2>
                <PresenceList room/>
                <div class="room-grid">
                    <div>
                        <FrameViewer room/>
                        <Upload room/>
                    </div>
                    <ChatPanel room_id=chat_room.clone()/>
                </div>
            </Show>
        </section>
    }
}

/// Why this tab is not in the room, and what the user can do about it.
#[component]
fn JoinProblem(id: String) -> impl IntoView {
    let store = use_store();
    let socket = use_socket();
    let problem = {
        let id = id.clone();
        move || store.join_error(&id)
    };
    let retry = move |_| {
        store.set_join_error(&id, None);
        socket.enter(Channel::Room(id.clone()));
    };
    move || {
        problem().map(|e| {
            let text = match e.code {
                ErrorCode::Full => {
                    "This room is full: every seat is taken and it does not allow spectators.".to_string()
                }
                ErrorCode::RateLimited => {
                    "Too many requests from you just now; wait a moment and try again.".to_string()
                }
                _ => format!("You could not join this room: {}", e.message),
            };
            let retry = retry.clone();
            view! {
                <div class="notice" role="alert" data-testid="join-problem" data-code=e.code.to_string()>
                    <p>{text}</p>
                    <div class="row">
                        <button data-testid="join-again" on:click=retry>"Try again"</button>
                        <a href="/rooms">"Back to the room list"</a>
                    </div>
                </div>
            }
        })
    }
}

/// Description, hide, lock, default and delete, for the host.
#[component]
fn HostControls(room: RwSignal<RoomMetadata>) -> impl IntoView {
    let id = room.with_untracked(|r| r.id.clone());
    let draft = RwSignal::new(room.with_untracked(|r| r.description.clone().unwrap_or_default()));
    let error = RwSignal::new(None::<String>);
    let confirm_delete = RwSignal::new(false);
    let confirm_lock = RwSignal::new(false);
    let locked = move || room.with(|r| r.locked);

    let run = move |action: std::pin::Pin<Box<dyn Future<Output = Result<(), crate::error::ErrorBody>>>>| {
        spawn_local(async move {
            match action.await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let patch = {
        let id = id.clone();
        move |p: PatchRoom| {
            let id = id.clone();
            run(Box::pin(async move { rest::patch_room(&id, &p).await.map(|_| ()) }));
        }
    };
    let save = {
        let patch = patch.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let text = draft.get_untracked();
            let description = (!text.trim().is_empty()).then(|| text.trim().to_string());
            patch(PatchRoom { description: Some(description), ..Default::default() });
        }
    };
    let toggle_hidden = {
        let patch = patch.clone();
        move |_| patch(PatchRoom { hidden: Some(!room.get_untracked().hidden), ..Default::default() })
    };
    let lock = {
        let patch = patch.clone();
        move |_| {
            if confirm_lock.get_untracked() {
                confirm_lock.set(false);
                patch(PatchRoom { locked: Some(true), ..Default::default() });
            } else {
                confirm_lock.set(true);
            }
        }
    };
    let toggle_default = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            let make = !room.get_untracked().is_default;
            run(Box::pin(async move { rest::set_default_room(make.then_some(id.as_str())).await }));
        }
    };
    let delete = {
        let id = id.clone();
        move |_| {
            if confirm_delete.get_untracked() {
                let id = id.clone();
                run(Box::pin(async move { rest::delete_room(&id).await }));
            } else {
                confirm_delete.set(true);
            }
        }
    };

    view! {
        <div class="card host-controls" data-testid="host-controls">
            <h2>"Host controls"</h2>
            <form class="row" on:submit=save>
                <input name="description" data-testid="description-input" maxlength="500" bind:value=draft prop:disabled=locked/>
                <button type="submit" data-testid="save-description" prop:disabled=locked>"Save description"</button>
            </form>
            <div class="row">
                <button data-testid="toggle-hidden" on:click=toggle_hidden>
                    {move || if room.with(|r| r.hidden) { "Show in list" } else { "Hide from list" }}
                </button>
                <button data-testid="toggle-default" on:click=toggle_default>
                    {move || if room.with(|r| r.is_default) { "Clear default" } else { "Make default" }}
                </button>
                <button data-testid="lock" class="danger" on:click=lock prop:disabled=locked>
                    {move || if confirm_lock.get() { "Really lock for good?" } else { "Lock permanently" }}
                </button>
                <button data-testid="delete" class="danger" on:click=delete prop:disabled=locked>
                    {move || if confirm_delete.get() { "Really delete?" } else { "Delete room" }}
                </button>
            </div>
            <p class="error" role="alert">{move || error.get()}</p>
        </div>
    }
}
