#!/usr/bin/env bash
# The browser tests: soma in headless Chromium, on its WebGPU adapter.
#
#   web/test.sh                 # every suite below
#   web/test.sh --test parity   # extra arguments go to `cargo test` of the wasm-bindgen-test
#                               # suites (e.g. one suite, or `-- --nocapture` for their logs)
#
# wasm-bindgen-test suites (web/tests/*.rs, compiled to wasm32 and run in the page by
# wasm-bindgen-test-runner through chromedriver):
#   parity.rs   every GPU kernel against the CPU reference (the cases of tests/op_cases, shared
#               with the native tests/gpu_ops.rs), same inputs and tolerances
#   shaders.rs  every shader and pipeline variant created under error scopes: a shader Chrome's
#               WGSL compiler (Tint) rejects fails, named, with Chrome's message
#
# Needs: the wasm32 target (rustup's, or Debian's rustc-web as in web/build.sh), chromium and
# chromedriver (`apt-get install -y chromium chromium-driver`), and wasm-bindgen-test-runner
# at the version of the wasm-bindgen crate in Cargo.lock (installed here if missing).
# Without chromium or chromedriver the script skips (exit 0, with a message), or fails under
# SOMA_STRICT=1; SOMA_STRICT=1 also makes a test that finds no WebGPU adapter in the browser
# fail instead of skipping (it is read when the tests are compiled).
#
# The browser gets --enable-unsafe-webgpu from web/webdriver.json (without it Chromium offers
# no adapter on a machine without a GPU: its software adapter, SwiftShader, is blocklisted).
# Output goes to target/web, as web/build.sh's, with the same RUSTFLAGS (-D warnings).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=wasm32-unknown-unknown

strict() { [ "${SOMA_STRICT:-}" = 1 ]; }

# Skips everything (a missing tool), or fails under SOMA_STRICT=1.
skip() {
    if strict; then
        echo "web/test.sh: FAILED: SOMA_STRICT=1 forbids skipping: $1" >&2
        exit 1
    fi
    echo "web/test.sh: SKIPPED: $1" >&2
    exit 0
}

# ---- Prerequisites -------------------------------------------------------------------------

browser=""
for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then
        browser=$(command -v "$b")
        break
    fi
done
[ -n "$browser" ] || skip "no Chromium (apt-get install -y chromium chromium-driver)"
CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver || true)}
[ -n "$CHROMEDRIVER" ] && [ -x "$CHROMEDRIVER" ] \
    || skip "no chromedriver (apt-get install -y chromium-driver)"
export CHROMEDRIVER

# The runner must be exactly the wasm-bindgen version the tests link.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
[ -n "$want" ] || { echo "web/test.sh: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
runner_version() {
    wasm-bindgen-test-runner --version 2>/dev/null | awk '{ print $2 }' || true
}
PATH="$HOME/.cargo/bin:$PATH"
if [ "$(runner_version)" != "$want" ]; then
    echo "web/test.sh: installing wasm-bindgen-test-runner $want (wasm-bindgen-cli, ~2 min)" >&2
    # Not --locked: its lock file pins crates that a mirror may not offer.
    cargo install wasm-bindgen-cli --version "$want" --no-default-features --force >&2 \
        || skip "cannot install wasm-bindgen-cli $want (cargo install failed)"
fi
[ "$(runner_version)" = "$want" ] \
    || skip "wasm-bindgen-test-runner $want not found on PATH after installing it"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(command -v wasm-bindgen-test-runner)
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/web}"
export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
# The runner's limit on one suite (its default, 20 s, is less than a slow machine needs).
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}"

# `cargo test` for wasm32 by the route web/build.sh takes: rustup's target, or Debian's
# rustc-web with std built from source (whose panics abort, which test harnesses must be told).
if [ "${SOMA_WEB_ROUTE:-}" != debian ] && command -v rustup >/dev/null 2>&1 \
    && { rustup target list --installed 2>/dev/null | grep -qx "$TARGET" \
        || timeout 120 rustup target add "$TARGET" >/dev/null 2>&1; }; then
    route="rustup's $TARGET target"
    wasm_test=(cargo test --release --target "$TARGET")
elif dpkg -s rustc-web cargo-web rust-web-src lld-22 >/dev/null 2>&1; then
    route="Debian's rustc-web with build-std"
    export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc
    wasm_test=(/usr/bin/cargo test --release -Zbuild-std=std,panic_abort -Zpanic-abort-tests
        --target "$TARGET")
else
    skip "no $TARGET standard library (rustup target add $TARGET, or see web/build.sh)"
fi

echo "web/test.sh: $("$browser" --version 2>/dev/null | head -n1), runner $want, $route" >&2
start=$SECONDS

# ---- wasm-bindgen-test suites (web/tests/*.rs) ---------------------------------------------
# Every suite unless arguments choose; cargo runs each suite's runner in web/, where it reads
# web/webdriver.json.
[ $# -gt 0 ] || set -- --tests
(cd web && "${wasm_test[@]}" "$@")

# ---- Further browser tests go here (each its own section, failing the script on failure) ----

echo "web/test.sh: all browser tests passed in $((SECONDS - start)) s" >&2
