//! Creating a room and joining one by its code. Both are plain HTML forms
//! (`POST /create`, `GET /join`) that work without JavaScript; once the
//! page is live they submit through the client instead and stay on the
//! one socket. A failed plain post comes back as `/?create_error=…` (or
//! `join_error`) with what was typed, and the forms show it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::CreateRoom;
use crate::client::use_actions;
use crate::components::error_text::error_text;
use crate::error::{ErrorBody, ErrorCode};
use crate::ids::{MAX_DESCRIPTION_CHARS, MAX_ID_LEN, is_valid_room_id};

fn optional(text: String) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// What is wrong with a typed room id, if anything (empty is fine: the
/// server generates one).
pub fn id_problem(id: &str) -> Option<String> {
    let id = id.trim();
    if id.is_empty() || is_valid_room_id(id) {
        return None;
    }
    Some(if id.len() > MAX_ID_LEN {
        format!("At most {MAX_ID_LEN} characters.")
    } else {
        "Use letters, digits, - and _ only, starting with a letter or digit.".to_string()
    })
}

/// What is wrong with a description, if anything.
pub fn description_problem(text: &str) -> Option<String> {
    let n = text.chars().count();
    (n > MAX_DESCRIPTION_CHARS)
        .then(|| format!("At most {MAX_DESCRIPTION_CHARS} characters: remove {}.", n - MAX_DESCRIPTION_CHARS))
}

/// A query parameter of the page's URL.
fn from_url(name: &'static str) -> String {
    use_query_map().with_untracked(|q| q.get(name).unwrap_or_default())
}

/// Puts a server's answer next to the field it is about (`id`: the id
/// typed).
fn place_error(e: ErrorBody, id: &str, id_error: RwSignal<Option<String>>, form_error: RwSignal<Option<String>>) {
    match (e.code, id_problem(id)) {
        (ErrorCode::Conflict, _) => {
            id_error.set(Some("A room with this id already exists: choose another, or leave it empty.".into()))
        }
        (ErrorCode::BadRequest, Some(problem)) => id_error.set(Some(problem)),
        _ => form_error.set(Some(error_text(&e))),
    }
}

#[component]
pub fn CreateRoomForm() -> impl IntoView {
    let id = RwSignal::new(from_url("id"));
    let description = RwSignal::new(from_url("description"));
    let hidden = RwSignal::new(false);
    let form_error = RwSignal::new(None::<String>);
    let id_error = RwSignal::new(None::<String>);
    if let Some(message) = optional(from_url("create_error")) {
        let code = ErrorCode::from_name(&from_url("create_code")).unwrap_or(ErrorCode::BadRequest);
        place_error(ErrorBody::new(code, message), &id.get_untracked(), id_error, form_error);
    }
    let busy = RwSignal::new(false);
    let actions = use_actions();
    let navigate = use_navigate();
    let id_hint = move || id_error.get().or_else(|| id.with(|i| id_problem(i)));
    let description_hint = move || description.with(|d| description_problem(d));
    let invalid = move || id_hint().is_some() || description_hint().is_some();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if invalid() {
            return;
        }
        let req = CreateRoom {
            id: optional(id.get_untracked()),
            description: optional(description.get_untracked()),
            hidden: Some(hidden.get_untracked()),
            ..Default::default()
        };
        let navigate = navigate.clone();
        busy.set(true);
        spawn_local(async move {
            match actions.create_room(&req).await {
                Ok(room) => {
                    form_error.set(None);
                    id.set(String::new());
                    description.set(String::new());
                    navigate(&format!("/rooms/{}", room.id), Default::default());
                }
                Err(e) => place_error(e, &id.get_untracked(), id_error, form_error),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="card create-room" data-testid="create-room" method="post" action="/create" on:submit=submit>
            <h2>"Create a room"</h2>
            <label>"Id (optional)"
                <input name="id" data-testid="create-id" placeholder="generated, like ROOM-7KQ2MX" autocomplete="off" value=id.get_untracked()
                    aria-invalid=move || id_hint().is_some().to_string() aria-describedby="create-id-error"
                    bind:value=id on:input=move |_| id_error.set(None)/>
            </label>
            <p id="create-id-error" class="field-error" data-testid="create-id-error">{id_hint}</p>
            <label>
                "Description"
                <input name="description" data-testid="create-description" value=description.get_untracked()
                    aria-invalid=move || description_hint().is_some().to_string()
                    aria-describedby="description-count" bind:value=description/>
                <span id="description-count" class="counter" data-testid="description-count" class:over=move || description_hint().is_some()>
                    {move || format!("{}/{MAX_DESCRIPTION_CHARS}", description.with(|d| d.chars().count()))}
                </span>
            </label>
            <p class="field-error" data-testid="create-description-error">{description_hint}</p>
            <label class="inline"><input type="checkbox" name="hidden" bind:checked=hidden/>"Hidden from the list"</label>
            <button type="submit" data-testid="create-submit" prop:disabled=move || busy.get() || invalid()>"Create"</button>
            <p class="error" role="alert" data-testid="create-error">{move || form_error.get()}</p>
        </form>
    }
}

#[component]
pub fn JoinByCode() -> impl IntoView {
    let code = RwSignal::new(from_url("code"));
    let error = RwSignal::new(optional(from_url("join_error")));
    let actions = use_actions();
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let input = code.get_untracked();
        if input.trim().is_empty() {
            return error.set(Some("Type the room's code, like 7KQ2MX.".into()));
        }
        let navigate = navigate.clone();
        spawn_local(async move {
            match actions.find_room(&input).await {
                Ok(Some(room)) => {
                    error.set(None);
                    code.set(String::new());
                    navigate(&format!("/rooms/{}", room.id), Default::default());
                }
                Ok(None) => error.set(Some(format!("No room has the code “{}”.", input.trim()))),
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    };
    view! {
        <form class="card join-code" data-testid="join-code" method="get" action="/join" on:submit=submit>
            <h2>"Join by code"</h2>
            <label>"Code" <input name="code" data-testid="join-input" placeholder="7KQ2MX or ROOM-7KQ2MX" autocomplete="off" value=code.get_untracked()
                aria-describedby="join-error" bind:value=code on:input=move |_| error.set(None)/></label>
            <button type="submit" data-testid="join-submit">"Join"</button>
            <p id="join-error" class="error" role="alert" data-testid="join-error">{move || error.get()}</p>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_as_the_server_does() {
        assert_eq!(id_problem(""), None);
        assert_eq!(id_problem("  "), None);
        assert_eq!(id_problem("my-room_2"), None);
        assert!(id_problem("no spaces").unwrap().contains("letters, digits"));
        assert!(id_problem("-first").is_some());
        assert!(id_problem(&"a".repeat(65)).unwrap().contains("64"));
    }

    #[test]
    fn descriptions_count_characters_not_bytes() {
        assert_eq!(description_problem(&"é".repeat(500)), None);
        assert_eq!(description_problem(&"é".repeat(503)).unwrap(), "At most 500 characters: remove 3.");
    }
}
