#!/usr/bin/env bash
# The release build (what scripts/run.sh serves): the server with stable
# Rust, the WASM front end with the pinned nightly, which rebuilds std for
# size, without panic messages or their source locations (a smaller
# download; a panic in the browser still stops the app, without a message).
# Both are built with type-erased components (.cargo/config.toml; RUSTFLAGS
# replaces the config's flags, so it repeats that one).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo leptos build --release --server-only
RUSTFLAGS="--cfg erase_components -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" \
  cargo "+$ROOMCAST_NIGHTLY" leptos build --release --frontend-only \
  --lib-cargo-args=-Zbuild-std=std,panic_abort --lib-cargo-args=-Zbuild-std-features=optimize_for_size
