# Sourced by the other scripts: where builds go and which tools are used.
# Compiled artifacts live outside the checkout so that fresh clones (CI)
# reuse them; the built site stays in ./target/site.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast/target}"
# The nightly that builds cargo-leptos and the release WASM (std rebuilt
# for size); pinned so that every machine builds the same front end.
export ROOMCAST_NIGHTLY="${ROOMCAST_NIGHTLY:-nightly-2026-05-20}"
export PATH="$PWD/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
