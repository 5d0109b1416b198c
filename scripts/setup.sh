#!/usr/bin/env bash
# Installs what Roomcast needs to build, run and test, skipping whatever is
# already there. Usage: scripts/setup.sh [site|wasm-bindgen|test|dev]
#   site: what scripts/build-site.sh needs: the wasm target, npm packages
#         (binaryen's wasm-opt), the wasm-bindgen CLI (compiled once)
#   wasm-bindgen: the wasm-bindgen CLI alone
#   test: all of that, plus Chromium and Redis from Debian (the default)
#   dev:  the same as test without Debian's packages, plus cargo-leptos
#         for `cargo leptos watch`
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# The wasm-bindgen CLI at Cargo.lock's exact version: only the
# `wasm-bindgen` binary, without the test runner's TLS (rustls and ring),
# unoptimised (opt-level 0, no LTO): it compiles in well under half the
# time of its defaults, and processes our WASM in seconds all the same.
install_wasm_bindgen() {
  local wbg
  wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
  if ! wasm-bindgen --version 2>/dev/null | grep -q " ${wbg}\$"; then
    say "cargo install wasm-bindgen-cli ${wbg}"
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      cargo install --quiet wasm-bindgen-cli --version "$wbg" --no-default-features --bin wasm-bindgen
  fi
}

if [ "$mode" = wasm-bindgen ]; then
  install_wasm_bindgen
  exit 0
fi

if [ "$mode" = test ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl) # a TLS server for the client's test
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

# cargo-leptos only for development (`cargo leptos watch`): the run and
# test scripts build without it (scripts/build-site.sh).
if [ "$mode" = dev ] && ! cargo leptos --version 2>/dev/null | grep -q '0\.3\.11'; then
  # Its locked dependencies need a newer rustc than stable 1.95.
  nightly="${ROOMCAST_NIGHTLY:-nightly-2026-05-20}"
  rustup run "$nightly" rustc --version >/dev/null 2>&1 || rustup toolchain install "$nightly" --profile minimal
  say "cargo +$nightly install cargo-leptos 0.3.11 (about 16 min, once)"
  cargo "+$nightly" install --locked cargo-leptos --version 0.3.11 --features no_downloads
fi

# npm packages: Playwright, and binaryen's wasm-opt for release builds.
if ! (cd end2end && npm ls --silent >/dev/null 2>&1); then
  say "npm ci (end2end)"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi
install_wasm_bindgen
say "ready"
