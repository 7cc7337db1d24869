#!/usr/bin/env bash
# The GPU path on the same adapter as Burn's wgpu backend, back to back. On a machine without a
# GPU that adapter is Mesa's lavapipe (the CPU): the numbers compare the two engines' overheads
# and kernels, not GPU speed.
#
#   (cd ../shared/peers/burn && CARGO_TARGET_DIR=/tmp/peers-rust-target/burn cargo build --release)
#   cargo build --release --example bench
#   benches/side_by_side_gpu.sh [OUT_DIR]
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/benches/results}"
peers="${PEERS:-$root/../shared/peers}"
burn="${BURN:-/tmp/peers-rust-target/burn/release/mlp_burn}"
limit="${LIMIT:-20000}"
export MNIST_DIR="${MNIST_DIR:-$root/../shared/data/mnist}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
mkdir -p "$out"
"$root/target/release/examples/bench" --backends gpu --limit "$limit" --epochs 2 --warmup 1 \
    --batch-sizes 64,1024 --json "$out/soma-gpu.json" >"$out/soma-gpu.txt" 2>/dev/null
: >"$out/burn-wgpu.jsonl"
for b in 64 1024; do
    (cd "$peers/burn" && "$burn" --backend wgpu --epochs 2 --batch-size "$b" --lr 0.1 --seed 0 \
        --threads 2 --limit "$limit" --data "$MNIST_DIR") 2>/dev/null >>"$out/burn-wgpu.jsonl"
done
