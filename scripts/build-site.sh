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

# One step after another: on two cores, building the server, the
# wasm-bindgen CLI and the front end at once took longer (each build's
# proc macros twice, in two target directories, and the three competing)
# than in turn, and so did the CLI beside the front end's build
# (docs/benchmarks.md).
scripts/setup.sh site
say "server (cargo build ${server_args[*]:-})"
cargo build -p roomcast --bin roomcast "${server_args[@]}"
say "front end (cargo build --target wasm32-unknown-unknown, profile ${wasm_profile})"
if $release && [ -n "${ROOMCAST_NIGHTLY:-}" ]; then
  # Smaller (356 KB gzipped instead of ~400 KB): a nightly rebuilds std for
  # size, and panics abort without a message. Opt in with e.g.
  # ROOMCAST_NIGHTLY=nightly-2026-05-20 (rustup toolchain install it with
  # --component rust-src); RUSTFLAGS replaces .cargo/config.toml's flag.
  RUSTFLAGS="--cfg erase_components -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" \
    cargo "+$ROOMCAST_NIGHTLY" build -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release \
    -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
elif $release; then
  cargo build -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release
else
  cargo build -p frontend --lib --target wasm32-unknown-unknown
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
say "wasm-bindgen"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name roomcast \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$wasm_profile/frontend.wasm"
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
