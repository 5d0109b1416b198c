use leptos::prelude::*;

use crate::client::use_socket;

/// Shows whether the tab's socket is connected or reconnecting.
#[component]
pub fn ConnectionIndicator() -> impl IntoView {
    let socket = use_socket();
    let state = move || socket.status.get().as_str();
    view! {
        <span class="connection" data-testid="connection" data-state=state>
            <span class="dot"></span>
            {state}
        </span>
    }
}
