use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn NotFound(
    /// What is missing, in a sentence.
    #[prop(optional, into)]
    what: Option<String>,
) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::ssr::set_status(404);
    view! {
        <section class="not-found" data-testid="not-found">
            <h1>"Not found"</h1>
            <p>{what.unwrap_or_else(|| "There is nothing at this address.".into())}</p>
            <A href="/rooms">"Back to the room list"</A>
        </section>
    }
}
