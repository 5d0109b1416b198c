#!/usr/bin/env bash
# Installs what is missing, then runs every check and test: formatting,
# clippy on each crate and feature set, unit and property tests, the
# integration tests over real HTTP/WebSocket, and Playwright in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
source scripts/env.sh
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cargo fmt"
cargo fmt --all --check

step "clippy (server + app/ssr, app alone, frontend + app/hydrate on wasm32, bench)"
cargo clippy -p roomcast --all-targets -- -D warnings
cargo clippy -p app --all-targets -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p roomcast-bench -- -D warnings

step "app: unit and property tests, decoder fuzzing (20000 cases per property)"
PROPTEST_CASES=20000 cargo test -p app

step "server: unit and integration tests (incl. SIGKILL crash rounds and 60 s convergence runs)"
cargo test -p roomcast -- --nocapture

step "build the site (cargo leptos build)"
cargo leptos build

step "Playwright end-to-end tests (Chromium)"
(cd end2end && ROOMCAST_BIN="$CARGO_TARGET_DIR/debug/roomcast" ROOMCAST_SITE_ROOT="$PWD/../target/site" npx playwright test)

step "benchmark smoke test (delivery counts only; figures in docs/benchmarks.md)"
cargo run -q -p roomcast-bench -- fanout --subscribers 50 --changes 50 --rate 0 --server-bin "$CARGO_TARGET_DIR/debug/roomcast"
cargo run -q -p roomcast-bench -- fanout --subscribers 50 --changes 20 --rate 0 --via rest --channel overview --server-bin "$CARGO_TARGET_DIR/debug/roomcast"
