#!/usr/bin/env bash
# Builds the soma library for the browser (wasm32-unknown-unknown, GPU backend on WebGPU).
#
#   web/build.sh            # release build of the library; extra arguments go to cargo
#   web/build.sh clippy     # clippy on the wasm32 library (a plain check on the Debian
#                           # route, which has no clippy)
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
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=wasm32-unknown-unknown
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/web}"
export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
action=build
if [ "${1:-}" = clippy ]; then
    action=clippy
    shift
fi

# The timeout: without a network rustup may retry its download for a long time.
if [ "${SOMA_WEB_ROUTE:-}" != debian ] && command -v rustup >/dev/null 2>&1 \
    && timeout 120 rustup target add "$TARGET" >/dev/null 2>&1; then
    echo "web/build.sh: rustup's $TARGET target" >&2
    exec cargo "$action" --release --target "$TARGET" --lib "$@"
fi

echo "web/build.sh: Debian's rustc-web with build-std (no rustup $TARGET here, or SOMA_WEB_ROUTE=debian)" >&2
if ! dpkg -s rustc-web cargo-web rust-web-src lld-22 >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y rustc-web cargo-web rust-web-src lld-22 >&2
fi
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc
if [ "$action" = clippy ]; then
    echo "web/build.sh: Debian's rustc-web has no clippy; checking without it" >&2
    action=check
fi
exec /usr/bin/cargo "$action" --release -Zbuild-std=std,panic_abort --target "$TARGET" --lib "$@"
