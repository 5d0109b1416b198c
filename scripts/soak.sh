#!/usr/bin/env bash
# Soak run, loopback only: 100 normal users for SECONDS (default 300) on a
# calm server, then the same users for as long under hostile traffic (a
# session flood, half-open and idle connections, slow and oversized bodies,
# WebSocket event floods). Prints delivery p50/p99 of both runs, failed
# normal requests, the server's RSS and descriptors, and the limits hit.
# Takes about twice SECONDS plus the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seconds="${1:-300}"
cargo build --release -p roomcast -p roomcast-bench
timeout $((seconds * 2 + 300)) "$CARGO_TARGET_DIR/release/roomcast-bench" soak --seconds "$seconds" \
    --server-bin "$CARGO_TARGET_DIR/release/roomcast"
