#!/usr/bin/env bash
# Installs what is missing, builds a release, and runs Roomcast on its
# embedded SQLite storage (data/roomcast.db). Extra arguments go to the
# server (see `roomcast --help`), e.g. scripts/run.sh --addr 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-site.sh --release
source scripts/env.sh
exec "$CARGO_TARGET_DIR/release/roomcast" --site-root target/site "$@"
