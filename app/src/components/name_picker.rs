//! The user's name in the top bar, and a small form to change it. The
//! name is the session's: presence and chat show it to everyone.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::{use_actions, use_store};
use crate::components::error_text::error_text;

/// The longest name the server accepts, in characters.
const MAX_NAME: usize = 40;

#[component]
pub fn NamePicker() -> impl IntoView {
    let store = use_store();
    let actions = use_actions();
    let name = move || store.session.with(|s| s.as_ref().map(|s| s.user_name.clone()).unwrap_or_default());
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let open = move |_| {
        draft.set(name());
        error.set(None);
        editing.set(true);
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let wanted = draft.get_untracked();
        busy.set(true);
        spawn_local(async move {
            match actions.rename(&wanted).await {
                Ok(()) => editing.set(false),
                Err(e) => error.set(Some(error_text(&e))),
            }
            busy.set(false);
        });
    };

    move || {
        if editing.get() {
            view! {
                <form class="name-picker" data-testid="name-form" on:submit=save>
                    <label class="visually-hidden" for="name-input">"Your name"</label>
                    <input id="name-input" data-testid="name-input" maxlength=MAX_NAME.to_string() required
                        aria-invalid=move || error.with(Option::is_some).to_string()
                        aria-describedby="name-error" bind:value=draft/>
                    <button type="submit" data-testid="name-save" prop:disabled=move || busy.get()>"Save"</button>
                    <button type="button" class="quiet" on:click=move |_| editing.set(false)>"Cancel"</button>
                    <span id="name-error" class="field-error" role="alert" data-testid="name-error">{move || error.get()}</span>
                </form>
            }
            .into_any()
        } else {
            view! {
                <span class="name-picker">
                    <span class="user" data-testid="user-name">{name}</span>
                    <button class="quiet" data-testid="rename" on:click=open title="Change your name">"Change name"</button>
                </span>
            }
            .into_any()
        }
    }
}
