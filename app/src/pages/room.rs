//! `/rooms/:id`: one room, live (channel `room:<id>`).

use std::sync::{Arc, Mutex};

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::api::PatchRoom;
use crate::client::{Channel, initial, use_actions, use_socket, use_store};
use crate::components::chat::ChatPanel;
use crate::components::error_text::error_text;
use crate::components::frames::FrameViewer;
use crate::components::lock_pill::lock_pill;
use crate::components::presence::PresenceList;
use crate::components::room_forms::description_problem;
use crate::components::warning::WarningBanner;
use crate::error::ErrorCode;
use crate::ids::{MAX_DESCRIPTION_CHARS, room_key};
use crate::model::{DeleteReason, Role, RoomMetadata, RoomStatus};
use crate::pages::not_found::NotFound;

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
                    None => view! { <NotFound what=format!("There is no room {}: it may have been deleted, or the code is wrong.", id.get_untracked())/> }.into_any(),
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
    let actions = use_actions();
    let id = room.with_untracked(|r| r.id.clone());
    let is_host = move || {
        let me = store.session.with(|s| s.as_ref().map(|s| s.user_id.clone()));
        room.with(|r| r.host_user_id.is_some() && r.host_user_id == me)
    };
    let seats = move || {
        room.with(|r| match r.max_members {
            0 if r.member_count == 1 => "1 member, no limit".to_string(),
            0 => format!("{} members, no limit", r.member_count),
            max => format!("{}/{} seats", r.member_count, max),
        })
    };
    let status_error = RwSignal::new(None::<String>);
    let set_status = {
        let id = id.clone();
        move |start: bool| {
            let room_id = id.clone();
            spawn_local(async move {
                let result =
                    if start { actions.start_room(&room_id).await } else { actions.finish_room(&room_id).await };
                match result {
                    Ok(_) => status_error.set(None),
                    Err(e) => status_error.set(Some(error_text(&e))),
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
                <span class=move || room.with(|r| format!("badge status status-{}", r.status.as_str())) data-testid="status-badge">{move || room.with(|r| r.status.as_str())}</span>
                {lock_pill(room)}
                {move || room.with(|r| r.is_default).then(|| view! { <span class="badge default" data-testid="default-marker">"default"</span> })}
                {move || room.with(|r| r.hidden).then(|| view! { <span class="badge">"hidden"</span> })}
            </h1>
            <p class="description" data-testid="room-description">
                {move || room.with(|r| r.description.clone().unwrap_or_else(|| "No description".into()))}
            </p>
            <dl class="facts">
                <dt>"Host"</dt><dd data-testid="room-host">{move || room.with(|r| r.host_name.clone().unwrap_or_else(|| "nobody".into()))}</dd>
                <dt>"Seats"</dt><dd data-testid="seat-counter">{seats}</dd>
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
            {
                let id = id.clone();
                move || watching(&id).then(|| view! {
                    <p class="notice" data-testid="spectating">"Every seat is taken: you are watching as a spectator."</p>
                })
            }
            <Show when=joined>
                <h2>"Who is here"</h2>
                <PresenceList room/>
                <div class="room-grid">
                    <FrameViewer room/>
                    <ChatPanel room_id=chat_room.clone()/>
                </div>
            </Show>
        </section>
    }
}

/// Whether this tab is in the room as a spectator.
fn watching(id: &str) -> bool {
    let store = use_store();
    let Some(sid) = store.my_sid(id) else { return false };
    store.presence(id).iter().any(|p| p.sid == sid && p.role == Role::Spectator)
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
    let actions = use_actions();
    let id = room.with_untracked(|r| r.id.clone());
    let draft = RwSignal::new(room.with_untracked(|r| r.description.clone().unwrap_or_default()));
    let error = RwSignal::new(None::<String>);
    let confirm_delete = RwSignal::new(false);
    let confirm_lock = RwSignal::new(false);
    let locked = move || room.with(|r| r.locked);
    let draft_problem = move || draft.with(|d| description_problem(d));

    let run = move |action: std::pin::Pin<Box<dyn Future<Output = Result<(), crate::error::ErrorBody>>>>| {
        spawn_local(async move {
            match action.await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    };
    let patch = {
        let id = id.clone();
        move |p: PatchRoom| {
            let id = id.clone();
            run(Box::pin(async move { actions.patch_room(&id, &p).await }));
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
            run(Box::pin(async move { actions.make_default(make.then_some(id.as_str())).await }));
        }
    };
    let delete = {
        let id = id.clone();
        move |_| {
            if confirm_delete.get_untracked() {
                let id = id.clone();
                run(Box::pin(async move { actions.delete_room(&id).await }));
            } else {
                confirm_delete.set(true);
            }
        }
    };

    view! {
        <div class="card host-controls" data-testid="host-controls">
            <h2>"Host controls"</h2>
            <form class="row" on:submit=save>
                <label class="visually-hidden" for="description-input">"Description"</label>
                <input id="description-input" name="description" data-testid="description-input" bind:value=draft prop:disabled=locked
                    aria-invalid=move || draft_problem().is_some().to_string() aria-describedby="host-description-count"/>
                <button type="submit" data-testid="save-description" prop:disabled=move || locked() || draft_problem().is_some()>"Save description"</button>
            </form>
            <p id="host-description-count" class="counter" class:over=move || draft_problem().is_some()>
                {move || format!("{}/{MAX_DESCRIPTION_CHARS}", draft.with(|d| d.chars().count()))}
                " " {draft_problem}
            </p>
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
