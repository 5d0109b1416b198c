use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::ssr::set_status(404);
    view! {
        <section class="not-found" data-testid="not-found">
            <h1>"Not found"</h1>
            <p>"There is nothing here. It may have been deleted."</p>
            <A href="/rooms">"Back to the room list"</A>
        </section>
    }
}
