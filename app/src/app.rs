//! The document shell and the root component: the store and the one socket
//! are created here, above the router, so they live as long as the tab.

use leptos::prelude::*;
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::api::SessionInfo;
use crate::client::{Socket, Store};
use crate::components::connection::{ConnectionIndicator, OfflineBanner};
use crate::components::name_picker::NamePicker;
use crate::pages::lobby::LobbyPage;
use crate::pages::not_found::NotFound;
use crate::pages::room::RoomPage;
use crate::pages::rooms::RoomsPage;
use crate::pages::stats::StatsPage;

/// The HTML document around the app (server only). The session is written
/// on `<body>` so the browser starts from the same state the server
/// rendered with.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::ssr::content_security_policy();
    #[cfg(feature = "ssr")]
    let session = crate::ssr::request_session();
    #[cfg(not(feature = "ssr"))]
    let session: Option<SessionInfo> = None;
    let (user_id, user_name) = session.map(|s| (s.user_id, s.user_name)).unzip();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>"Roomcast"</title>
                <link rel="icon" type="image/png" href="/favicon.png"/>
                <link id="leptos" rel="stylesheet" href=format!("/pkg/{}.css", options.output_name)/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
            </head>
            <body data-user-id=user_id data-user-name=user_name>
                <App/>
            </body>
        </html>
    }
}

/// The session written on `<body>` by [`shell`].
fn initial_session() -> Option<SessionInfo> {
    #[cfg(feature = "ssr")]
    {
        crate::ssr::request_session()
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        let body = web_sys::window()?.document()?.body()?;
        let data = body.dataset();
        Some(SessionInfo { token: None, user_id: data.get("userId")?, user_name: data.get("userName")? })
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        None
    }
}

#[component]
pub fn App() -> impl IntoView {
    let store = Store::new(initial_session());
    provide_context(store);
    let socket = Socket::new(store);
    provide_context(socket);

    Effect::new(move |_| {
        socket.start();
        #[cfg(feature = "hydrate")]
        if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">"Roomcast"</A>
                <nav>
                    <A href="/rooms">"Rooms"</A>
                    <A href="/stats">"Stats"</A>
                </nav>
                <span class="spacer"></span>
                <NamePicker/>
                <ConnectionIndicator/>
            </header>
            <OfflineBanner/>
            <main>
                <Routes fallback=|| view! { <NotFound/> }>
                    <Route path=path!("/") view=LobbyPage/>
                    <Route path=path!("/rooms") view=RoomsPage ssr=SsrMode::Async/>
                    <Route path=path!("/rooms/:id") view=RoomPage ssr=SsrMode::Async/>
                    <Route path=path!("/stats") view=StatsPage/>
                </Routes>
            </main>
        </Router>
    }
}
