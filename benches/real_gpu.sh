#!/usr/bin/env bash
# soma on a real GPU, in one command, from the pack benches/real_gpu_pack.sh made (nothing is
# compiled here: a lent GPU machine has 15 minutes in all, start-up included). In order:
#   1. adapter  the adapter wgpu picks (name, backend, driver, type); a software one (lavapipe)
#               fails the run at once unless --allow-software. Vulkan first, then Vulkan with
#               the NVIDIA ICD named (VK_DRIVER_FILES), then GL through NVIDIA's EGL.
#   2. tests    the GPU test binaries, strict (SOMA_STRICT=1): gpu_ops, parity, fused_step,
#               gpu_async and backend_suite's gpu:: cases: every kernel and the 100-step runs
#               against the CPU reference, on this hardware.
#   3. bench    `bench --backends gpu` at batch 64, 256, 1024, 4096 on both step paths (fused,
#               general): samples/s, ms/epoch, dispatches and submits, GPU time per kernel, CPU
#               recording time.
#   4. mnist    the `mnist` defaults (10 epochs) on the GPU, then on the CPU for the accuracy
#               to match.
#   5. cnn      the TensorFlow.js tutorial's CNN (`--model tfjs`): `bench --backends gpu` at
#               batch 64, 256, 1024 beside ../shared/peers/cnn_torch.py --device cuda (eager),
#               and the `cnn` preset's 10 epochs on the GPU for its accuracy (issue 19's
#               ≥ 99.3%); `--phases tests,cnn` runs the CNN story alone.
#   6. torch    ../shared/peers/mlp_torch.py --device cuda at the same batch sizes as bench,
#               eager, then --compile (last: it is the slowest to start, and the first to give
#               way).
# Every phase has its own timeout, capped by what is left of --budget; a failing phase is
# recorded (with its log's tail) and the next one runs. After each phase the report is
# rewritten under OUT_DIR: real_gpu.md (printed last), real_gpu.json and real_gpu-logs.tar.gz
# (real_gpu-dryrun.* with --dry-run), so a run cut short still leaves one.
#
#   benches/real_gpu.sh [flags] [OUT_DIR]      OUT_DIR: default $OUT, else target/real_gpu
#     --dry-run         cut-down sizes (--limit 4096, 1 epoch) for a software adapter, such as
#                       lavapipe here; implies --allow-software
#     --allow-software  accept a software adapter
#     --no-torch        skip the PyTorch peer;  --no-compile  skip only its --compile runs
#     --phases LIST     of tests,bench,mnist,torch,cnn (default all; the adapter always runs)
#     --budget S        seconds for all phases (default 480)
#     --adapter NAME    the adapter whose name contains NAME
#     --pack DIR        the pack (default .carry/real_gpu)
#     --needs           print the pack paths this script uses, and exit
#
# Exit status: 0 when every phase asked for passed, 1 when one failed, timed out or was cut by
# the budget, 2 for bad flags.
set -uo pipefail # not -e: a phase that fails is recorded, and the run goes on

root="$(cd "$(dirname "$0")/.." && pwd)"
pack="$root/.carry/real_gpu"
out=""
budget=480
dry_run=0
allow_software=0
torch=1
compile=1
phases="tests,bench,mnist,torch,cnn"
adapter_name=""

EXAMPLES=(adapter bench mnist)
TESTS=(gpu_ops parity fused_step gpu_async backend_suite)
BATCHES=(64 256 1024 4096)
CNN_BATCHES=(64 256 1024)
MNIST_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
# Where the device image keeps NVIDIA's driver files (the device README's fallback).
NV_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
NV_EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json

# The header comment, up to the first line of code.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

needs() {
    local n
    echo bin.tar.xz
    echo bin.sha256
    for n in "${EXAMPLES[@]}" "${TESTS[@]}"; do echo "bin/$n"; done
    for n in "${MNIST_FILES[@]}"; do echo "mnist/$n"; done
    echo peers/mlp_torch.py
    echo peers/cnn_torch.py
    echo peers/peer_common.py
    for n in "${DEBS[@]}"; do echo "gl/$n.deb"; done
}

flags="" # the options, for the report (not OUT_DIR, which differs from machine to machine)
while [ $# -gt 0 ]; do
    [[ "$1" == -* ]] && flags+="${flags:+ }$1"
    case "$1" in
        --dry-run) dry_run=1 allow_software=1 ;;
        --allow-software) allow_software=1 ;;
        --no-torch) torch=0 ;;
        --no-compile) compile=0 ;;
        --phases | --budget | --adapter | --pack)
            [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }
            case "$1" in
                --phases) phases=$2 flags+=" $2" ;;
                --budget) budget=$2 flags+=" $2" ;;
                --adapter) adapter_name=$2 flags+=" $2" ;;
                --pack) pack=$2 ;;
            esac
            shift
            ;;
        --needs) needs; exit 0 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "error: unknown flag $1 (see --help)" >&2; exit 2 ;;
        *) out=$1 ;;
    esac
    shift
done
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "error: --budget takes whole seconds, not $budget" >&2; exit 2; }
for p in ${phases//,/ }; do
    case "$p" in tests | bench | mnist | torch | cnn) ;; *)
        echo "error: --phases: unknown phase $p (tests, bench, mnist, torch, cnn)" >&2
        exit 2
        ;;
    esac
done
wants() { [[ ",$phases," == *",$1,"* ]]; }

# Absolute: the phases' commands are recorded in the report as they ran.
pack="$(cd "$pack" 2>/dev/null && pwd || echo "$pack")"
out="${out:-${OUT:-$root/target/real_gpu}}"
base=real_gpu
[ "$dry_run" = 1 ] && base=real_gpu-dryrun
mkdir -p "$out" || { echo "error: cannot create $out" >&2; exit 1; }
out="$(cd "$out" && pwd)"
command -v python3 >/dev/null || { echo "error: python3 is needed for the report" >&2; exit 1; }

started=$(date +%s)
deadline=$((started + budget))
work="$(mktemp -d "${TMPDIR:-/tmp}/soma-real-gpu.XXXXXX")"
logs="$work/logs"
bin="$work/bin"
mkdir -p "$logs" "$bin"
# The unpacked binaries are ~62 MiB a run; the logs travel in OUT_DIR's tarball.
trap 'rm -rf "$work"' EXIT
: >"$logs/phases.tsv"
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR:-}" ]; then
    # wgpu's Vulkan and EGL probing warn without one.
    export XDG_RUNTIME_DIR="$work/xdg"
    mkdir -m 0700 "$XDG_RUNTIME_DIR"
fi
mnist="$pack/mnist"
export MNIST_DIR="$mnist"

# The report from what has been recorded so far (benches/real_gpu_report.py), and the logs.
# With `final`, the report also says the run is over (else: "in progress").
report() {
    python3 "$root/benches/real_gpu_report.py" --logs "$logs" --out "$out/$base" \
        --mode "$([ "$dry_run" = 1 ] && echo dry-run || echo run)" --budget "$budget" \
        --started "$started" --pack "$pack" --flags="$flags" ${1:+--final} \
        >"$logs/report.err" 2>&1 ||
        echo "warning: the report failed: $(tail -n 3 "$logs/report.err")" >&2
    tar -C "$logs" -czf "$out/$base-logs.tar.gz" . 2>/dev/null
}

# Appends one phase's outcome: NAME STATUS RC SECONDS LIMIT NOTE COMMAND...
record() {
    local name=$1 status=$2 rc=$3 secs=$4 limit=$5 note=$6 cmd=""
    shift 6
    [ $# -gt 0 ] && cmd="$(printf '%q ' "$@")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$limit" \
        "${note//$'\t'/ }" "${cmd//$'\t'/ }" >>"$logs/phases.tsv"
    printf '== %-20s %-8s %6ss %s\n' "$name" "$status" "$secs" "$note" >&2
}

# phase NAME LIMIT COMMAND...: runs COMMAND with stdout and stderr in logs/NAME.{out,err}
# under LIMIT seconds or what is left of the budget, whichever is less (GNU timeout kills the
# whole process group: bench's child processes too), records it, rewrites the report. A shell
# function (the setup steps, the adapter's attempts) runs as it is: timeout cannot run one, and
# each bounds its own commands.
phase() {
    local name=$1 limit=$2
    shift 2
    local slug=${name//:/-}
    local left=$((deadline - $(date +%s)))
    if [ "$left" -lt 10 ]; then
        record "$name" cut "" 0 "$limit" "out of time: the ${budget}s budget is spent" "$@"
        report
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local t0 t1 rc status
    t0=$(date +%s.%N)
    if [ "$(type -t "$1")" = function ]; then
        "$@" >"$logs/$slug.out" 2>"$logs/$slug.err" </dev/null
    else
        timeout -k 5 "$limit" "$@" >"$logs/$slug.out" 2>"$logs/$slug.err" </dev/null
    fi
    rc=$?
    t1=$(date +%s.%N)
    case $rc in
        0) status=ok ;;
        124 | 137) status=timeout ;;
        *) status=failed ;;
    esac
    record "$name" "$status" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" \
        "$limit" "" "$@"
    report
    [ "$rc" = 0 ]
}

skip() { # NAME NOTE: a phase not run, on purpose
    record "$1" skipped "" 0 0 "$2"
}

# ---- the pack: present, unpacked, intact ---------------------------------------------------
missing=()
for f in $(needs); do
    case "$f" in
        bin/*) ;; # inside bin.tar.xz
        gl/*) ;;  # only needed where libvulkan is missing (the loaders step checks)
        peers/*) [ "$torch" = 1 ] && { wants torch || wants cnn; } && [ ! -f "$pack/$f" ] && missing+=("$f") ;;
        *) [ -f "$pack/$f" ] || missing+=("$f") ;;
    esac
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "error: the pack $pack lacks ${missing[*]}; run benches/real_gpu_pack.sh (here: it builds)" >&2
    exit 1
fi
unpack() {
    # xz may be missing from a bare image; Python's tarfile reads xz itself.
    if command -v xz >/dev/null; then
        xz -dc "$pack/bin.tar.xz" | tar -x -C "$work"
    else
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "$pack/bin.tar.xz" "$work"
    fi && (cd "$work" && sha256sum -c --quiet "$pack/bin.sha256")
}
phase setup:unpack 120 unpack || {
    echo "error: unpacking $pack/bin.tar.xz failed (logs/setup-unpack.err):" >&2
    cat "$logs/setup-unpack.err" >&2
    exit 1
}

# ---- the loaders: the device README's packages, where the image has no libvulkan -------------
# The loader cache's line for libvulkan.so.1, if any (read whole: `grep -q` on a pipe could
# cut ldconfig off with SIGPIPE, which pipefail would count as "not found").
vulkan_loader() {
    local cache
    cache="$(ldconfig -p)"
    grep -m1 'libvulkan\.so\.1 ' <<<"$cache"
}
loaders() {
    if vulkan_loader >/dev/null; then
        echo "libvulkan.so.1 is installed ($(vulkan_loader | sed 's/.*=> //'))"
        return 0
    fi
    [ "$(id -u)" = 0 ] || { echo "libvulkan.so.1 is missing and unpacking the loaders into / needs root" >&2; return 1; }
    local n
    for n in "${DEBS[@]}"; do
        [ -f "$pack/gl/$n.deb" ] || { echo "the pack lacks gl/$n.deb" >&2; return 1; }
        dpkg -x "$pack/gl/$n.deb" / || return 1
        echo "unpacked gl/$n.deb into /"
    done
    ldconfig
    vulkan_loader || { echo "libvulkan.so.1 still missing after unpacking" >&2; return 1; }
}
phase setup:loaders 60 loaders
# The GPU and driver as NVIDIA's own tool sees them, where there is one (for the report).
if command -v nvidia-smi >/dev/null; then
    phase setup:nvidia-smi 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
fi

# ---- 1. the adapter -------------------------------------------------------------------------
# Each attempt: a label and the environment it adds. The first to open a hardware adapter wins;
# with --allow-software, the first to open any adapter if none is hardware.
attempts=("vulkan|WGPU_BACKEND=vulkan")
[ -f "$NV_ICD" ] && attempts+=("vulkan, NVIDIA ICD named|WGPU_BACKEND=vulkan VK_DRIVER_FILES=$NV_ICD")
[ -f "$NV_EGL" ] && attempts+=("gl, NVIDIA EGL named|WGPU_BACKEND=gl __EGL_VENDOR_LIBRARY_FILENAMES=$NV_EGL")
adapter_args=()
[ -n "$adapter_name" ] && adapter_args+=(--adapter "$adapter_name")
pick_adapter() {
    local i label envs fallback=""
    for i in "${!attempts[@]}"; do
        label=${attempts[$i]%%|*}
        envs=${attempts[$i]#*|}
        echo "attempt $((i + 1)) of ${#attempts[@]} ($label): $envs" >&2
        # shellcheck disable=SC2086 # envs is a list of NAME=VALUE words without spaces
        env $envs timeout 60 "$bin/adapter" --require-hardware "${adapter_args[@]}" \
            >"$logs/adapter-$((i + 1)).json"
        local rc=$?
        if [ $rc = 0 ]; then
            echo "$envs" >"$logs/adapter.env"
            cp "$logs/adapter-$((i + 1)).json" "$logs/adapter.json"
            echo "picked attempt $((i + 1)): $label" >&2
            return 0
        fi
        # A JSON line and status 1: an adapter opened, but a software one.
        if [ -z "$fallback" ] && [ -s "$logs/adapter-$((i + 1)).json" ]; then fallback=$i; fi
    done
    if [ "$allow_software" = 1 ] && [ -n "$fallback" ]; then
        echo "${attempts[$fallback]#*|}" >"$logs/adapter.env"
        cp "$logs/adapter-$((fallback + 1)).json" "$logs/adapter.json"
        echo "no hardware adapter; --allow-software: attempt $((fallback + 1)), ${attempts[$fallback]%%|*}" >&2
        return 0
    fi
    echo "no hardware adapter in ${#attempts[@]} attempt(s)" >&2
    return 1
}
if ! phase adapter 200 pick_adapter; then
    report final
    cat "$out/$base.md"
    echo "error: no usable GPU adapter: see the adapter row above, and adapter.err in $out/$base-logs.tar.gz" >&2
    exit 1
fi
# The winning attempt's environment, for every later phase.
read -ra adapter_env <"$logs/adapter.env"
for kv in "${adapter_env[@]}"; do export "${kv?}"; done

# ---- the cut-down sizes of a dry run ----------------------------------------------------------
bench_size=()
mnist_size=()
torch_size=()
if [ "$dry_run" = 1 ]; then
    bench_size=(--limit 4096 --epochs 1 --warmup 1 --eval-repeats 1)
    mnist_size=(--limit 4096 --epochs 1)
    torch_size=(--limit 4096 --epochs 1)
fi

# ---- 2. the tests, strict ---------------------------------------------------------------------
if wants tests; then
    for t in "${TESTS[@]}"; do
        filter=()
        [ "$t" = backend_suite ] && filter=(gpu::)
        phase "tests:$t" 180 env SOMA_STRICT=1 "$bin/$t" "${filter[@]}"
    done
else
    skip tests "not in --phases"
fi

# ---- 3. throughput on both step paths ---------------------------------------------------------
batches="$(IFS=,; echo "${BATCHES[*]}")"
if wants bench; then
    for path in fused general; do
        phase "bench:$path" 240 "$bin/bench" --backends gpu --batch-sizes "$batches" \
            --step-path "$path" --offline --data "$mnist" "${adapter_args[@]}" \
            "${bench_size[@]}" --json "$logs/bench-$path.json"
    done
else
    skip bench "not in --phases"
fi

# ---- 4. accuracy: the mnist defaults, on the GPU and then the CPU ------------------------------
if wants mnist; then
    phase mnist:gpu 180 "$bin/mnist" --backend gpu --offline --data "$mnist" \
        "${adapter_args[@]}" "${mnist_size[@]}"
    phase mnist:cpu 180 "$bin/mnist" --backend cpu --offline --data "$mnist" "${mnist_size[@]}"
else
    skip mnist "not in --phases"
fi

# Whether PyTorch with CUDA is here: asked once (the torch:cuda phase), for the MLP and the CNN.
torch_state=""
torch_ready() {
    if [ -z "$torch_state" ]; then
        if phase torch:cuda 60 python3 -c \
            'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'; then
            torch_state=yes
            # Inductor's compiled kernels, shared by the --compile runs.
            export TORCHINDUCTOR_CACHE_DIR="$work/inductor"
        else
            torch_state=no
            skip torch "no PyTorch with CUDA here (see torch-cuda.err)"
        fi
    fi
    [ "$torch_state" = yes ]
}

# ---- 5. CNNs: the tfjs network beside PyTorch's, and the cnn preset's accuracy -------------------
cnn_batches="$(IFS=,; echo "${CNN_BATCHES[*]}")"
if wants cnn; then
    phase bench:cnn 240 "$bin/bench" --backends gpu --model tfjs --batch-sizes "$cnn_batches" \
        --offline --data "$mnist" "${adapter_args[@]}" "${bench_size[@]}" \
        --json "$logs/bench-cnn.json"
    if [ "$torch" = 0 ]; then
        skip torch:cnn "--no-torch"
    elif torch_ready; then
        for b in "${CNN_BATCHES[@]}"; do
            phase "torch:cnn:$b" 90 python3 "$pack/peers/cnn_torch.py" --arch tfjs \
                --device cuda --batch-size "$b" --data "$mnist" "${torch_size[@]}"
        done
    fi
    phase mnist:cnn 240 "$bin/mnist" --backend gpu --model cnn --offline --data "$mnist" \
        "${adapter_args[@]}" "${mnist_size[@]}"
else
    skip cnn "not in --phases"
fi

# ---- 6. the PyTorch peer on the same machine ----------------------------------------------------
if [ "$torch" = 0 ]; then
    skip torch "--no-torch"
elif ! wants torch; then
    skip torch "not in --phases"
elif torch_ready; then
    for b in "${BATCHES[@]}"; do
        phase "torch:eager:$b" 90 python3 "$pack/peers/mlp_torch.py" --device cuda \
            --batch-size "$b" --data "$mnist" "${torch_size[@]}"
    done
    if [ "$compile" = 1 ]; then
        for b in "${BATCHES[@]}"; do
            phase "torch:compile:$b" 150 python3 "$pack/peers/mlp_torch.py" --device cuda \
                --compile --batch-size "$b" --data "$mnist" "${torch_size[@]}"
        done
    else
        skip torch:compile "--no-compile"
    fi
fi

report final
echo >&2
cat "$out/$base.md"
python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["ok"] else 1)' \
    "$out/$base.json"
