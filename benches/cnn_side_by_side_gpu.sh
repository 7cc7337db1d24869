#!/usr/bin/env bash
# The `tfjs` CNN on the GPU path and on Burn's wgpu backend, on the same adapter, back to back,
# then on soma's CPU backend for scale. On a machine without a GPU the adapter is Mesa's lavapipe
# (the CPU): the numbers compare the two engines' kernels and overheads, not GPU speed.
#
# The Burn program is benches/peers/burn_cnn.rs, built as a binary of a copy of the MLP peer
# (../shared/peers/burn, whose Cargo.lock pins Burn 0.22.1):
#   cp -r ../shared/peers/burn /tmp/burn-cnn && mkdir -p /tmp/burn-cnn/src/bin
#   cp benches/peers/burn_cnn.rs /tmp/burn-cnn/src/bin/cnn.rs
#   (cd /tmp/burn-cnn && cargo build --release)
#   cargo build --release --example bench
#   benches/cnn_side_by_side_gpu.sh [OUT_DIR]
# Both train plain SGD at lr 0.1, no shifts, over the first LIMIT images (default 4,096), two
# timed epochs after one untimed (soma) or a warm-up step per batch shape (Burn: its autotune).
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/benches/results}"
burn="${BURN_CNN:-/tmp/burn-cnn/target/release/cnn}"
limit="${LIMIT:-4096}"
export MNIST_DIR="${MNIST_DIR:-$root/../shared/data/mnist}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
mkdir -p "$out"
for b in 64 256; do
    "$root/target/release/examples/bench" --backends gpu --model tfjs --limit "$limit" \
        --epochs 2 --warmup 1 --batch-sizes "$b" --eval-repeats 1 \
        --json "$out/cnn-soma-gpu-b$b.json" >"$out/cnn-soma-gpu-b$b.txt" 2>/dev/null
    "$burn" --backend wgpu --epochs 2 --batch-size "$b" --lr 0.1 --seed 0 --threads 2 \
        --limit "$limit" --data "$MNIST_DIR" 2>/dev/null >"$out/cnn-burn-wgpu-b$b.jsonl"
done
"$root/target/release/examples/bench" --backends cpu --model tfjs --limit "$limit" --epochs 2 \
    --warmup 1 --batch-sizes 64,256 --threads 2 --eval-repeats 1 \
    --json "$out/cnn-soma-cpu-lavapipe-run.json" >"$out/cnn-soma-cpu-lavapipe-run.txt" 2>/dev/null
grep -h "^| gpu\|^| cpu" "$out"/cnn-soma-gpu-b*.txt "$out/cnn-soma-cpu-lavapipe-run.txt"
grep -ho '"batch_size":[0-9]*\|"samples_per_second_median":[0-9.]*\|"peak_rss_mb":[0-9.]*' \
    "$out"/cnn-burn-wgpu-b*.jsonl | paste - - -
