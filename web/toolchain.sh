# Sourced by web/build.sh and web/test.sh: finds a wasm32 toolchain (rustup's target, else
# Debian's rustc-web with build-std; see web/build.sh) and provides
#   web_cargo ARGS…        cargo for wasm32-unknown-unknown with CARGO_TARGET_DIR=target/web
#   ensure_wasm_bindgen    wasm-bindgen-cli at Cargo.lock's wasm-bindgen version on PATH
# and sets WEB_ROUTE (rustup or debian) and TARGET.

TARGET=wasm32-unknown-unknown
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/web}"
# Once: web/test.sh sources this and then runs web/build.sh, which sources it again, and a
# second `-D warnings` would change RUSTFLAGS and so rebuild everything.
case " ${RUSTFLAGS:-} " in
    *" -D warnings "*) ;;
    *) export RUSTFLAGS="${RUSTFLAGS:-} -D warnings" ;;
esac

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The timeout: without a network rustup may retry its download for a long time.
if [ "${SOMA_WEB_ROUTE:-}" != debian ] && command -v rustup >/dev/null 2>&1 \
    && timeout 120 rustup target add "$TARGET" >/dev/null 2>&1; then
    WEB_ROUTE=rustup
    echo "web: rustup's $TARGET target" >&2
else
    WEB_ROUTE=debian
    echo "web: Debian's rustc-web with build-std (no rustup $TARGET here, or SOMA_WEB_ROUTE=debian)" >&2
    if ! dpkg -s rustc-web cargo-web rust-web-src lld-22 >/dev/null 2>&1; then
        as_root apt-get install -y rustc-web cargo-web rust-web-src lld-22 >&2
    fi
fi

web_cargo() {
    local sub="$1"
    shift
    if [ "$WEB_ROUTE" = rustup ]; then
        cargo "$sub" --target "$TARGET" "$@"
    else
        RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo "$sub" \
            -Zbuild-std=std,panic_abort --target "$TARGET" "$@"
    fi
}

# The wasm-bindgen crate's version in Cargo.lock.
wasm_bindgen_version() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

ensure_wasm_bindgen() {
    local want have
    want="$(wasm_bindgen_version)"
    have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
    if [ "$have" != "$want" ]; then
        echo "web: installing wasm-bindgen-cli $want (found: ${have:-none})" >&2
        # No --locked: its lock file pins a webpki-roots release some registries lack.
        cargo install wasm-bindgen-cli --version "$want" --no-default-features >&2
    fi
}
