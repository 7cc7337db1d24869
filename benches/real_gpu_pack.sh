#!/usr/bin/env bash
# Builds and packs, on this machine, everything benches/real_gpu.sh needs on a lent GPU machine,
# where nothing should compile (the device tool's time is 15 minutes in all, start-up included):
# the release examples and the GPU test binaries (stripped, then xz'd together, since stripped
# they are ~62 MiB and the device tool carries 64 MiB in all, working tree included), the
# Vulkan/EGL loader packages (the device image may lack libvulkan), the MNIST files and the peers.
# Everything goes into one ignored folder, named in the `run` call's `carry`; the working tree
# and the folder together are checked against the 64 MiB limit, and the exact call is printed.
#
#   benches/real_gpu_pack.sh            # build and pack into .carry/real_gpu
#   benches/real_gpu_pack.sh --list     # what the pack holds and where each file comes from;
#                                       # builds nothing (tests/real_gpu_script.rs checks it)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# What benches/real_gpu.sh runs (its `--needs` lists the pack paths; the test checks both agree).
EXAMPLES=(adapter bench mnist)
TESTS=(gpu_ops parity fused_step gpu_async backend_suite)
# The device README's loader list: libvulkan1 for Vulkan, the rest for its EGL fallback.
DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
MNIST_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
shared="$(cd "${SHARED:-$root/../shared}" 2>/dev/null && pwd || echo "${SHARED:-$root/../shared}")"
pack_rel=".carry/real_gpu"
pack="$root/$pack_rel"
limit_mib=64
# The script's own cap on its phases (seconds), and the device call's limit with room to spare
# for unpacking, the report and the transfer; under the tool's 600 s per command.
budget_s=450
timeout_s=540

list=0
case "${1:-}" in
    --list) list=1 ;;
    "") ;;
    -h | --help)
        # The header comment, up to the first line of code.
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
    *)
        echo "error: unknown argument $1 (see --help)" >&2
        exit 2
        ;;
esac

# The source of example/test NAME: cargo's two layouts, a file or a folder with main.rs.
source_of() {
    local dir=$1 name=$2
    if [ -f "$dir/$name.rs" ]; then
        echo "$dir/$name.rs"
    elif [ -f "$dir/$name/main.rs" ]; then
        echo "$dir/$name/main.rs"
    else
        echo "MISSING:$dir/$name.rs"
    fi
}

# Every file of the peers folder except build outputs (a Rust peer's target/, Python caches).
peer_files() {
    (cd "$shared/peers" && find . -type f -not -path '*/target/*' -not -path '*/__pycache__/*' \
        -not -path '*/node_modules/*' | sed 's|^\./||' | LC_ALL=C sort)
}

# "PACK_PATH<TAB>SOURCE" for every file the pack holds. bin/* travel inside bin.tar.xz (with
# their checksums in bin.sha256); a source "built:" is made here, "apt:" downloaded.
listing() {
    local n f
    for n in "${EXAMPLES[@]}"; do printf 'bin/%s\t%s\n' "$n" "$(source_of examples "$n")"; done
    for n in "${TESTS[@]}"; do printf 'bin/%s\t%s\n' "$n" "$(source_of tests "$n")"; done
    printf 'bin.tar.xz\tbuilt:bin/*\nbin.sha256\tbuilt:bin/*\nMANIFEST\tbuilt:\n'
    for f in "${MNIST_FILES[@]}"; do printf 'mnist/%s\t%s\n' "$f" "$shared/data/mnist/$f"; done
    if [ -d "$shared/peers" ]; then
        peer_files | while read -r f; do printf 'peers/%s\t%s\n' "$f" "$shared/peers/$f"; done
    else
        printf 'peers/\tMISSING:%s\n' "$shared/peers"
    fi
    for n in "${DEBS[@]}"; do printf 'gl/%s.deb\tapt:%s\n' "$n" "$n"; done
}

if [ "$list" = 1 ]; then
    missing=0
    while IFS=$'\t' read -r dest src; do
        printf '%s\t%s\n' "$dest" "$src"
        case "$src" in
            MISSING:*) missing=1 ;;
            apt:* | built:*) ;;
            *) [ -f "$src" ] || missing=1 ;;
        esac
    done < <(listing)
    [ "$missing" = 0 ] || { echo "error: some sources above do not exist" >&2; exit 1; }
    exit 0
fi

fail() {
    echo "error: $*" >&2
    exit 1
}
for n in "${EXAMPLES[@]}"; do [[ "$(source_of examples "$n")" != MISSING:* ]] || fail "no example $n"; done
for n in "${TESTS[@]}"; do [[ "$(source_of tests "$n")" != MISSING:* ]] || fail "no test $n"; done
for f in "${MNIST_FILES[@]}"; do
    [ -f "$shared/data/mnist/$f" ] || fail "$shared/data/mnist/$f is missing (set SHARED=DIR)"
done
[ -f "$shared/peers/mlp_torch.py" ] || fail "$shared/peers/mlp_torch.py is missing"
for tool in cargo python3 strip xz sha256sum; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
[ "$(uname -m)" = x86_64 ] || fail "the device is x86-64 and this machine is $(uname -m): build there"

stage="$(mktemp -d "${TMPDIR:-/tmp}/soma-real-gpu-pack.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/pack/gl" "$stage/pack/mnist" "$stage/pack/peers"

# Cargo's JSON messages name each built executable: "NAME<TAB>PATH" for targets of KIND.
executables() {
    python3 -c '
import json, sys
kind = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and m.get("executable") and kind in t.get("kind", []):
        print(t["name"] + "\t" + m["executable"])
' "$1"
}

echo "building the release examples: ${EXAMPLES[*]}" >&2
args=()
for n in "${EXAMPLES[@]}"; do args+=(--example "$n"); done
cargo build --release --message-format=json "${args[@]}" | executables example >"$stage/examples.tsv"
echo "building the test binaries: ${TESTS[*]}" >&2
args=()
for n in "${TESTS[@]}"; do args+=(--test "$n"); done
cargo test --release --no-run --message-format=json "${args[@]}" | executables test >"$stage/tests.tsv"

# Stripped: the line tables and symbols are most of each binary (53-79 MiB → 5-12 MiB).
for n in "${EXAMPLES[@]}" "${TESTS[@]}"; do
    exe="$(awk -F'\t' -v n="$n" '$1 == n { print $2 }' "$stage/examples.tsv" "$stage/tests.tsv" | head -n1)"
    if [ -z "$exe" ] || [ ! -f "$exe" ]; then fail "cargo reported no executable for $n"; fi
    strip -o "$stage/bin/$n" "$exe"
done
(cd "$stage" && sha256sum bin/*) >"$stage/pack/bin.sha256"
echo "compressing the binaries (xz)" >&2
tar -C "$stage" -cf - bin | xz -6 -T0 >"$stage/pack/bin.tar.xz"

cp "${MNIST_FILES[@]/#/$shared/data/mnist/}" "$stage/pack/mnist/"
peer_files | while read -r f; do
    mkdir -p "$stage/pack/peers/$(dirname "$f")"
    cp "$shared/peers/$f" "$stage/pack/peers/$f"
done

# The loaders, as the device README downloads them (its own package lists, amd64, whatever the
# host's architecture), each renamed to PACKAGE.deb so that the scripts name it without a
# version. Kept from an earlier pack when all are there, so a re-pack needs no network.
have_debs() {
    local n
    for n in "${DEBS[@]}"; do [ -f "$pack/gl/$n.deb" ] || return 1; done
}
if have_debs; then
    cp "$pack"/gl/*.deb "$stage/pack/gl/"
else
    echo "downloading the loader packages: ${DEBS[*]}" >&2
    lists="$stage/apt-lists"
    mkdir -p "$lists/partial" "$stage/debs"
    # As root, apt drops to its _apt user, who cannot write into this private temporary
    # folder: it warns and downloads as root anyway; saying so up front keeps it quiet.
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
    [ "$(id -u)" = 0 ] && o+=(-oAPT::Sandbox::User=root)
    apt-get "${o[@]}" update -qq >&2 || fail "apt-get update failed"
    (cd "$stage/debs" && apt-get "${o[@]}" download "${DEBS[@]}" >&2) ||
        fail "apt-get download ${DEBS[*]} failed"
    for n in "${DEBS[@]}"; do
        src=("$stage/debs/${n}_"*.deb)
        [ -f "${src[0]}" ] || fail "apt-get download gave no $n"
        mv "${src[0]}" "$stage/pack/gl/$n.deb"
    done
fi
# The Vulkan loader must be in it, or the device falls back to nothing.
contents="$(dpkg-deb -c "$stage/pack/gl/libvulkan1.deb")"
grep -q 'libvulkan\.so\.1' <<<"$contents" || fail "gl/libvulkan1.deb holds no libvulkan.so.1"

{
    echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD -- src shaders examples tests Cargo.toml Cargo.lock 2>/dev/null || echo ' (with uncommitted changes to the sources)')"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(rustc --version)"
    for n in "${DEBS[@]}"; do
        echo "gl/$n.deb $(dpkg-deb -f "$stage/pack/gl/$n.deb" Package Version Architecture | tr '\n' ' ')"
    done
    echo "raw binary bytes (stripped):"
    (cd "$stage/bin" && stat -c '  bin/%n %s' -- *)
} >"$stage/pack/MANIFEST"

rm -rf "$pack"
mkdir -p "$(dirname "$pack")"
mv "$stage/pack" "$pack"

# What travels: the working tree (tracked files and untracked ones git does not ignore) and the
# carried folder.
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
tree_bytes="$(git ls-files -z --cached --others --exclude-standard |
    xargs -0 stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')"
pack_bytes="$(du -sb "$pack" | cut -f1)"
total=$((tree_bytes + pack_bytes))
part() { du -sb "$pack/$1" | cut -f1; }
echo "pack $pack_rel: $(mib "$pack_bytes") MiB (bin.tar.xz $(mib "$(part bin.tar.xz)"), mnist $(mib "$(part mnist)"), peers $(mib "$(part peers)"), gl $(mib "$(part gl)")); working tree $(mib "$tree_bytes") MiB; together $(mib "$total") of $limit_mib MiB"
[ "$total" -le $((limit_mib * 1048576)) ] || fail "over the device tool's $limit_mib MiB"

command="bash benches/real_gpu.sh --budget $budget_s \"\$OUT\""
[ "${#command}" -le 2000 ] || fail "the command is over 2,000 characters"
echo "the device run call:"
python3 -c 'import json, sys; print(json.dumps({"command": sys.argv[1], "carry": [sys.argv[2]], "timeout_s": int(sys.argv[3])}))' \
    "$command" "$pack_rel" "$timeout_s"
