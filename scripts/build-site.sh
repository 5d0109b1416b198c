#!/usr/bin/env bash
# Builds the server and the site with plain cargo, the pinned wasm-bindgen
# CLI and binaryen's wasm-opt: no cargo-leptos (which takes ~16 min to
# compile on a fresh machine). `cargo leptos watch` stays the way to develop.
#
#   scripts/build-site.sh            debug: server and WASM as tests use them
#   scripts/build-site.sh --release  release: optimised server, WASM shrunk
#                                    with wasm-opt
#
# The site goes to target/site: public/ as it is, and in pkg/ the JS, WASM
# and CSS named roomcast.<hash>.* (a hash of their content), which the
# server finds at start and serves as immutable for a year.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
say() { printf '\033[1m[build]\033[0m %s\n' "$*"; }

release=false
[ "${1:-}" = --release ] && release=true
if $release; then
  server_args=(--release) wasm_profile=wasm-release
else
  server_args=() wasm_profile=debug
fi
site=target/site
pkg="$site/pkg"

# Three jobs at once, so that neither core waits at another's serial
# tail: the server builds from the start; the wasm target and npm
# packages are fetched meanwhile (downloads); then the wasm-bindgen CLI
# is compiled when missing while the front end builds in a target
# directory of its own (one directory would make the builds take turns).
say "server (cargo build ${server_args[*]:-}), in the background"
server_log=$(mktemp)
cargo build --quiet -p roomcast --bin roomcast "${server_args[@]}" >"$server_log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
scripts/setup.sh site
tools_log=$(mktemp)
scripts/setup.sh wasm-bindgen >"$tools_log" 2>&1 &
tools=$!
trap 'kill $server $tools 2>/dev/null || true' EXIT
front_dir="$CARGO_TARGET_DIR/front"
say "front end (cargo build --target wasm32-unknown-unknown, profile ${wasm_profile})"
if $release && [ -n "${ROOMCAST_NIGHTLY:-}" ]; then
  # Smaller (356 KB gzipped instead of ~420 KB): a nightly rebuilds std for
  # size, and panics abort without a message. Opt in with e.g.
  # ROOMCAST_NIGHTLY=nightly-2026-05-20 (rustup toolchain install it with
  # --component rust-src); RUSTFLAGS replaces .cargo/config.toml's flag.
  RUSTFLAGS="--cfg erase_components -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" \
    cargo "+$ROOMCAST_NIGHTLY" build -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release \
    --target-dir "$front_dir" -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
elif $release; then
  cargo build -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release --target-dir "$front_dir"
else
  cargo build -p frontend --lib --target wasm32-unknown-unknown --target-dir "$front_dir"
fi
if ! wait $server; then
  cat "$server_log"
  exit 1
fi
say "server built"
if ! wait $tools; then
  cat "$tools_log"
  exit 1
fi
cat "$tools_log"
trap - EXIT
rm -f "$server_log" "$tools_log"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
say "wasm-bindgen"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name roomcast \
  "$front_dir/wasm32-unknown-unknown/$wasm_profile/frontend.wasm"
if $release; then
  # One -Oz pipeline: --converge (repeat until nothing shrinks) took a
  # minute more for under 1% of the size.
  say "wasm-opt -Oz"
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$out/roomcast_bg.wasm" -o "$out/roomcast_bg.wasm"
fi

hash=$(cat "$out/roomcast.js" "$out/roomcast_bg.wasm" style/main.css | sha256sum | cut -c1-16)
rm -rf "$site"
mkdir -p "$pkg"
cp -R public/. "$site/"
cp "$out/roomcast.js" "$pkg/roomcast.$hash.js"
cp "$out/roomcast_bg.wasm" "$pkg/roomcast.$hash.wasm"
cp style/main.css "$pkg/roomcast.$hash.css"
say "site in $site (assets roomcast.$hash.*, wasm $(stat -c %s "$pkg/roomcast.$hash.wasm") bytes)"
