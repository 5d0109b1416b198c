//! The room's chat: history on join, live messages, editing one's own,
//! and older pages on demand.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::{use_actions, use_store};
use crate::components::error_text::error_text;
use crate::error::ErrorBody;
use crate::model::ChatMessage;

#[component]
pub fn ChatPanel(room_id: String) -> impl IntoView {
    let store = use_store();
    let actions = use_actions();
    let draft = RwSignal::new(String::new());
    // A message on its way (sent again while the connection comes back):
    // a second press would send it twice.
    let sending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let editing = RwSignal::new(None::<u64>);
    let edit_text = RwSignal::new(String::new());
    let me = move || store.session.with(|s| s.as_ref().map(|s| s.user_id.clone()));
    let messages = {
        let room_id = room_id.clone();
        move || store.chat(&room_id)
    };

    let take_reply = move |result: Result<(), ErrorBody>| match result {
        Ok(()) => {
            error.set(None);
            true
        }
        Err(e) => {
            error.set(Some(error_text(&e)));
            false
        }
    };

    let send = {
        let room_id = room_id.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let text = draft.get_untracked();
            if text.trim().is_empty() || sending.get_untracked() {
                return;
            }
            sending.set(true);
            let room_id = room_id.clone();
            spawn_local(async move {
                if take_reply(actions.send_chat(&room_id, text).await) {
                    draft.set(String::new());
                }
                sending.set(false);
            });
        }
    };
    let save_edit = {
        let room_id = room_id.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let Some(message_id) = editing.get_untracked() else { return };
            let (room_id, text) = (room_id.clone(), edit_text.get_untracked());
            spawn_local(async move {
                if take_reply(actions.edit_chat(&room_id, message_id, text).await) {
                    editing.set(None);
                }
            });
        }
    };
    let load_older = {
        let room_id = room_id.clone();
        move |_| {
            let room_id = room_id.clone();
            spawn_local(async move {
                if let Err(e) = actions.load_older_chat(&room_id).await {
                    error.set(Some(error_text(&e)));
                }
            });
        }
    };

    let row = move |m: ChatMessage| {
        let save_edit = save_edit.clone();
        let mine = me().as_deref() == Some(m.user_id.as_str());
        let id = m.id;
        let text = m.text.clone();
        view! {
            <li data-message-id=id.to_string() class:mine=mine>
                <time class="muted" data-testid="chat-time" datetime=format!("{}", m.timestamp)>{clock_time(m.timestamp)}</time>
                <span class="who">{m.user_name.clone()}</span>
                {move || if editing.get() == Some(id) {
                    view! {
                        <form class="row" on:submit=save_edit.clone()>
                            <input data-testid="chat-edit-input" bind:value=edit_text/>
                            <button type="submit">"Save"</button>
                            <button type="button" class="link" on:click=move |_| editing.set(None)>"cancel"</button>
                        </form>
                    }.into_any()
                } else {
                    let text = text.clone();
                    let start_edit = {
                        let text = text.clone();
                        move |_| {
                            edit_text.set(text.clone());
                            editing.set(Some(id));
                        }
                    };
                    view! {
                        <span class="text" data-testid="chat-text">{text}</span>
                        {m.edited_at.map(|_| view! { <span class="muted">" (edited)"</span> })}
                        {mine.then(|| view! { <button class="link" data-testid="chat-edit" on:click=start_edit>"edit"</button> })}
                    }.into_any()
                }}
            </li>
        }
    };

    view! {
        <section class="card chat" data-testid="chat">
            <h2>"Chat"</h2>
            <button class="link" data-testid="chat-older" on:click=load_older>"Load older"</button>
            <ul class="messages" data-testid="chat-messages">
                <For each=messages key=|m| (m.id, m.edited_at.map(f64::to_bits)) children=row/>
            </ul>
            <form class="row" on:submit=send>
                <input data-testid="chat-input" placeholder="Say something" maxlength="2000" bind:value=draft/>
                <button type="submit" data-testid="chat-send" disabled=move || sending.get()>"Send"</button>
            </form>
            <p class="error" role="alert">{move || error.get()}</p>
        </section>
    }
}

/// A message's time as the reader's clock shows it (`14:05`); on the
/// server, which does not know the reader's zone, in UTC.
fn clock_time(unix_seconds: f64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(unix_seconds * 1000.0));
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let minutes = (unix_seconds.max(0.0) as u64 / 60) % (24 * 60);
        format!("{:02}:{:02}", minutes / 60, minutes % 60)
    }
}
