#!/usr/bin/env bash
# The browser tests: soma in headless Chromium, on its WebGPU adapter.
#
#   web/test.sh                     # every suite below
#   web/test.sh wasm [ARGS]         # only the wasm-bindgen-test suites; ARGS go to their
#                                   # `cargo test` (e.g. `--test parity -- --nocapture`)
#   web/test.sh e2e                 # only the end-to-end page test
#
# wasm-bindgen-test suites (web/tests/*.rs, compiled to wasm32 and run in the page by
# wasm-bindgen-test-runner through chromedriver):
#   parity.rs   every GPU kernel against the CPU reference (the cases of tests/op_cases, shared
#               with the native tests/gpu_ops.rs), same inputs and tolerances
#   shaders.rs  every shader and pipeline variant created under error scopes: a shader Chrome's
#               WGSL compiler (Tint) rejects fails, named, with Chrome's message
#   own_data.rs the page's readers of tables and archives, and a table trained in the page
# End to end (web/e2e/test.mjs, Node.js + puppeteer-core from npm, pinned in package-lock.json):
#   the page built (web/build.sh) and served (examples/serve.rs) trains one epoch of real MNIST
#   ($MNIST_DIR, else ./data/mnist) as opened and on WebGPU, within 0.5 points of a native CPU
#   run; digits drawn with mouse events; checkpoints from the page read natively and back;
#   the page without WebGPU; a screenshot in target/web/e2e/page.png.
#   Then web/e2e/own.mjs: a folder of 3,000 colour MNIST pictures (one truncated) dropped on the
#   page and picked, listed, trained within 0.5 points of native `train` on it, a new picture
#   read as native `predict` reads it, a CSV dropped and trained as natively, and no request
#   after the page loaded.
#   Then web/e2e/soak.mjs: 20 epochs of 1,000 images on WebGPU, failing if the JS heap, the
#   wasm memory or soma's device buffers grow.
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
what=all
case "${1:-}" in
    wasm | e2e)
        what=$1
        shift
        ;;
esac

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

# The wasm32 route (rustup's target, or Debian's rustc-web with build-std: see web/build.sh),
# `web_cargo`, and wasm-bindgen-cli (the test runner comes with it) at Cargo.lock's version.
source web/toolchain.sh
ensure_wasm_bindgen || skip "cannot install wasm-bindgen-cli $(wasm_bindgen_version)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(command -v wasm-bindgen-test-runner)
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER
# The runner's limit on one suite (its default, 20 s, is less than a slow machine needs).
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}"
# With std built from source, panics abort, which test harnesses must be told.
abort_tests=()
[ "$WEB_ROUTE" = debian ] && abort_tests=(-Zpanic-abort-tests)

echo "web/test.sh: $("$browser" --version 2>/dev/null | head -n1), wasm-bindgen $(wasm_bindgen_version), $WEB_ROUTE route" >&2
start=$SECONDS

# ---- wasm-bindgen-test suites (web/tests/*.rs) ---------------------------------------------
# cargo runs each suite's runner in web/, where it reads web/webdriver.json.
if [ "$what" != e2e ]; then
    [ $# -gt 0 ] || set -- --tests
    (cd web && web_cargo test --release "${abort_tests[@]}" "$@")
fi

# ---- End to end: the page in Chromium, driven by puppeteer-core (web/e2e/test.mjs) ----------
if [ "$what" != wasm ]; then
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
        || skip "no Node.js for the end-to-end test (apt-get install -y nodejs npm)"
    MNIST_DIR="${MNIST_DIR:-$ROOT/data/mnist}"
    [ -d "$MNIST_DIR" ] || skip "no MNIST for the end-to-end test (set MNIST_DIR)"
    export MNIST_DIR
    # With --tests, cargo resolves features as the test build above did (wasm-bindgen-test, a
    # dev-dependency, turns some on, host-side ones included), so the page reuses that build's
    # soma and its dependencies instead of compiling them again; the page's code is the same.
    web/build.sh --tests "${abort_tests[@]}"
    # Native, as `cargo test --release` builds them: not with the wasm build's target dir
    # and flags (which would rebuild everything).
    env -u RUSTFLAGS CARGO_TARGET_DIR="$ROOT/target" \
        cargo build --release --example mnist --example predict --example serve \
        --example train --example pictures
    (cd web/e2e && npm ci --no-audit --no-fund --loglevel=error)
    CHROMIUM="$browser" node web/e2e/test.mjs target/web/e2e
    CHROMIUM="$browser" node web/e2e/own.mjs target/web/e2e/own
    # The page over 20 short epochs (~35 s): JS heap, wasm memory and soma's device buffers
    # must stay flat (web/e2e/soak.mjs).
    CHROMIUM="$browser" node web/e2e/soak.mjs 20 1000 target/web/e2e/soak.json
fi

echo "web/test.sh: all browser tests passed in $((SECONDS - start)) s" >&2
