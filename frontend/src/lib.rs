//! The hydrate entry point: the browser half of Roomcast, compiled to WASM.
#![recursion_limit = "512"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // Release builds abort on panic without unwinding or a message (see
    // ROOMCAST_NIGHTLY in scripts/build-site.sh), so the hook would never run there.
    #[cfg(not(panic = "immediate-abort"))]
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
