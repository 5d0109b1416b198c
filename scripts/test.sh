#!/usr/bin/env bash
# Installs what is missing, then runs every check and test: formatting,
# clippy on each crate and feature set, unit and property tests, the
# integration tests over real HTTP/WebSocket, and Playwright in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
source scripts/env.sh
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A Redis server on loopback for the scale-out tests (started here when
# none answers on the port, stopped at the end).
REDIS_PORT="${ROOMCAST_TEST_REDIS_PORT:-6390}"
export ROOMCAST_TEST_REDIS="redis://127.0.0.1:$REDIS_PORT/0"
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "/tmp/roomcast-test-redis-$REDIS_PORT.pid" --logfile "/tmp/roomcast-test-redis-$REDIS_PORT.log"
  trap 'redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true' EXIT
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -p "$REDIS_PORT" ping >/dev/null

step "cargo fmt"
cargo fmt --all --check

step "clippy (server + app/ssr, app alone and with its UI, frontend + app/hydrate on wasm32, bench, client and CLI)"
cargo clippy -p roomcast --all-targets -- -D warnings
cargo clippy -p app --all-targets -- -D warnings
cargo clippy -p app --all-targets --features ui -- -D warnings
cargo clippy -p app --all-targets --features schema -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p roomcast-bench -- -D warnings
cargo clippy -p roomcast-client -p roomcast-cli --all-targets -- -D warnings

step "app: unit and property tests, decoder fuzzing (20000 cases per property), then the UI's unit tests"
PROPTEST_CASES=20000 cargo test -p app
cargo test -p app --features ui --lib
# docs/protocol.schema.json is what the types generate.
cargo test -p app --features schema --test schema

step "server: unit and integration tests on SQLite (incl. SIGKILL crash rounds and 60 s convergence runs), and the two-server tests on Redis"
cargo test -p roomcast-cli -p roomcast-client  # their own unit tests; builds the CLI tests/cli.rs runs
cargo build -p roomcast-cli
cargo test -p roomcast -- --nocapture

step "server: the protocol integration tests again, on Redis"
ROOMCAST_TEST_BACKEND=redis cargo test -p roomcast --test rest_api --test websocket --test lifecycle --test collaboration

step "build the site (scripts/build-site.sh: cargo, wasm-bindgen)"
scripts/build-site.sh

step "Playwright end-to-end tests (Chromium)"
(cd end2end && ROOMCAST_BIN="$CARGO_TARGET_DIR/debug/roomcast" ROOMCAST_SITE_ROOT="$PWD/../target/site" npx playwright test)

step "benchmark smoke test (delivery counts only, one server and two on Redis; figures in docs/benchmarks.md)"
cargo test -q -p roomcast-bench
cargo run -q -p roomcast-bench -- fanout --subscribers 50 --changes 50 --rate 0 --server-bin "$CARGO_TARGET_DIR/debug/roomcast"
cargo run -q -p roomcast-bench -- fanout --subscribers 50 --changes 20 --rate 0 --via rest --channel overview --server-bin "$CARGO_TARGET_DIR/debug/roomcast"
cargo run -q -p roomcast-bench -- fanout --subscribers 50 --changes 20 --rate 0 --redis-url "$ROOMCAST_TEST_REDIS" --server-bin "$CARGO_TARGET_DIR/debug/roomcast"
cargo run -q -p roomcast-bench -- failover --rounds 1 --redis-url "$ROOMCAST_TEST_REDIS" --server-bin "$CARGO_TARGET_DIR/debug/roomcast"
cargo run -q -p roomcast-bench -- floor --subscribers 50 --changes 20 --rate 0
cargo run -q -p roomcast-bench -- list --rooms 500 --searches 20 --server-bin "$CARGO_TARGET_DIR/debug/roomcast"
cargo run -q -p roomcast-bench -- crowd --members 300 --churn 20 --churn-seconds 2 --server-bin "$CARGO_TARGET_DIR/debug/roomcast"
# Normal users under every kind of hostile traffic: none of their requests
# may fail and the attack's descriptors are given back (the 5-minute run
# is scripts/soak.sh).
cargo run -q -p roomcast-bench -- soak --seconds 10 --floods 1500 --server-bin "$CARGO_TARGET_DIR/debug/roomcast"
