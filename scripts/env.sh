# Sourced by the other scripts: where builds go and which tools are used.
# Compiled artifacts live outside the checkout so that fresh clones (CI)
# reuse them; the built site stays in ./target/site.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast/target}"
export PATH="$PWD/end2end/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
