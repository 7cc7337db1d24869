#!/usr/bin/env bash
# A machine with no GPU API at all (neither Vulkan nor EGL/GL), as a new user's box may be:
# the loader libraries wgpu opens at run time are hidden in a private mount namespace (root
# only), and a GPU test binary must then
#   - pass, printing SKIPPED, without SOMA_STRICT;
#   - fail under SOMA_STRICT=1 (CI's mode: a missing adapter is an error there, never a skip).
# Usage: .ci/no_adapter.sh (after `cargo test --release --no-run`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--inside" ]; then
    exec unshare --mount --propagation private "$0" --inside
fi

# Every copy the dynamic loader could find (/lib is /usr/lib on merged-/usr systems).
mapfile -t libs < <(ldconfig -p | awk '/lib(vulkan\.so\.1|EGL\.so\.1|GL\.so\.1|GLX\.so\.0) /{print $NF}' |
    xargs -r readlink -f | sort -u)
for lib in "${libs[@]}"; do
    mount --bind /dev/null "$lib"
done
echo "no_adapter: hid ${#libs[@]} loader libraries: ${libs[*]}"

run() { env -u WGPU_BACKEND "$@" cargo test -q --release --test gpu_ops -- --nocapture 2>&1; }

if ! out=$(run env -u SOMA_STRICT); then
    echo "$out"
    echo "no_adapter: FAILED: without an adapter and without SOMA_STRICT the tests must pass"
    exit 1
fi
grep -q "SKIPPED: no GPU adapter" <<<"$out" || {
    echo "$out"
    echo "no_adapter: FAILED: the tests passed without saying they skipped (was an adapter found?)"
    exit 1
}
if out=$(run SOMA_STRICT=1); then
    echo "$out"
    echo "no_adapter: FAILED: under SOMA_STRICT=1 a missing adapter must fail the tests"
    exit 1
fi
grep -q "no GPU adapter" <<<"$out" || {
    echo "$out"
    echo "no_adapter: FAILED: the strict run failed, but not for want of an adapter"
    exit 1
}
echo "no_adapter: ok (skips without SOMA_STRICT, fails with it)"
