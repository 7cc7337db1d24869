#!/usr/bin/env bash
# Builds the page's engine: soma (GPU backend on WebGPU) and its bindings (web/src, the
# soma-web crate) for wasm32-unknown-unknown, then wasm-bindgen's JavaScript glue, into web/pkg.
#
#   web/build.sh            # web/pkg/soma_web.js + soma_web_bg.wasm; extra arguments go to cargo
#   web/build.sh clippy     # clippy on soma (library) and soma-web (library and browser
#                           # tests) for wasm32 (a plain check on the
#                           # Debian route, which has no clippy)
#
# Then `cargo run --release --example serve` serves the page with the MNIST files.
#
# Two routes to a wasm32 standard library, tried in this order:
#   1. rustup: `rustup target add wasm32-unknown-unknown`, then a plain cargo build.
#   2. Debian's `rustc-web` (when rustup cannot fetch the target, e.g. without internet):
#      `apt-get install -y rustc-web cargo-web rust-web-src lld-22` (lld-22 provides rust-lld),
#      then std is built from source with `-Zbuild-std` (RUSTC_BOOTSTRAP lets a stable
#      compiler take that flag). Debian's cargo and rustc are called by absolute path because
#      rustup's ~/.cargo/bin comes first on PATH and would ask for rustup's rust-src.
# SOMA_WEB_ROUTE=debian skips the rustup route (to test the other one).
# Either way the output goes to target/web (CARGO_TARGET_DIR), so the native build in
# target/release is never rebuilt or disturbed by it. The build must have no warnings:
# RUSTFLAGS adds -D warnings.
#
# wasm-bindgen's command-line tool must be the exact version of the wasm-bindgen crate in
# Cargo.lock; when it is missing or another version, it is installed with cargo (~2 min).
set -euo pipefail
cd "$(dirname "$0")/.."
source web/toolchain.sh

action=build
if [ "${1:-}" = clippy ]; then
    action=clippy
    shift
fi
if [ "$action" = clippy ]; then
    [ "$WEB_ROUTE" = debian ] && action=check
    # soma's own tests and benches are native (threads, files); the browser's are soma-web's.
    web_cargo "$action" --release -p soma --lib "$@"
    web_cargo "$action" --release -p soma-web --lib --tests "$@"
    exit
fi
web_cargo build --release -p soma-web --lib "$@"
ensure_wasm_bindgen
rm -rf web/pkg
wasm-bindgen --target web --no-typescript --out-dir web/pkg \
    "$CARGO_TARGET_DIR/$TARGET/release/soma_web.wasm"
echo "web/build.sh: built web/pkg ($(du -h web/pkg/soma_web_bg.wasm | cut -f1) of wasm)" >&2
