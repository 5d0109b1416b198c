#!/usr/bin/env bash
# Installs what Roomcast needs to build, run and test, skipping whatever is
# already there. Usage: scripts/setup.sh [run|test]   (default: test)
#   run:  the wasm target, cargo-leptos, wasm-bindgen-cli, npm packages (wasm-opt)
#   test: all of that, plus Chromium and Redis from Debian
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ "$mode" = test ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# A pinned nightly (scripts/env.sh) with the standard library's source:
# cargo-leptos 0.3.11's locked dependencies need a newer rustc than stable
# 1.95, and release builds compile the WASM front end's std for size.
source scripts/env.sh
if ! rustup run "$ROOMCAST_NIGHTLY" rustc --version >/dev/null 2>&1 \
  || ! rustup component list --installed --toolchain "$ROOMCAST_NIGHTLY" | grep -q '^rust-src'; then
  say "rustup toolchain install $ROOMCAST_NIGHTLY (with rust-src)"
  rustup toolchain install "$ROOMCAST_NIGHTLY" --profile minimal --component rust-src
fi
if ! cargo leptos --version 2>/dev/null | grep -q '0\.3\.11'; then
  say "cargo +$ROOMCAST_NIGHTLY install cargo-leptos 0.3.11 (takes a while, once)"
  cargo "+$ROOMCAST_NIGHTLY" install --locked cargo-leptos --version 0.3.11 --features no_downloads
fi

# cargo-leptos runs the wasm-bindgen CLI, which must match Cargo.lock exactly.
wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " ${wbg}\$"; then
  say "cargo install wasm-bindgen-cli ${wbg}"
  cargo install wasm-bindgen-cli --version "$wbg"
fi

# npm packages: Playwright, and binaryen's wasm-opt for release builds.
if ! (cd end2end && npm ls --silent >/dev/null 2>&1); then
  say "npm ci (end2end)"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi
say "ready"
