//! The socket's state: a dot in the top bar, and a banner when the
//! connection has been lost for more than a moment.

use leptos::prelude::*;

use crate::client::{ConnectionStatus, use_socket};

/// How long a lost connection goes unmentioned (a reconnect after a rename
/// or a server restart usually takes less).
const QUIET_MS: u64 = 1500;

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

#[component]
pub fn OfflineBanner() -> impl IntoView {
    let socket = use_socket();
    let shown = RwSignal::new(false);
    Effect::new(move |_| {
        if socket.status.get() != ConnectionStatus::Reconnecting {
            shown.set(false);
            return;
        }
        set_timeout(
            move || shown.set(socket.status.get_untracked() == ConnectionStatus::Reconnecting),
            std::time::Duration::from_millis(QUIET_MS),
        );
    });
    move || {
        shown.get().then(|| {
            view! {
                <div class="banner offline" role="status" data-testid="offline">
                    "Connection lost. Reconnecting… Live updates resume, and you can act again, once it is back."
                </div>
            }
        })
    }
}
