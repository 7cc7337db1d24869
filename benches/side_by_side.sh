#!/usr/bin/env bash
# CPU throughput of soma next to the NumPy and JAX peers, interleaved in one session (this
# machine's speed drifts by 30-40%, so only numbers taken side by side are compared).
#
#   python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install numpy==2.4.6 "jax[cpu]==0.10.2"
#   cargo build --release --example bench
#   benches/side_by_side.sh [OUT_DIR]      # about 5 minutes; results in OUT_DIR (benches/results)
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/benches/results}"
peers="${PEERS:-$root/../shared/peers}"
py="${PY:-/tmp/peers-venv/bin/python}"
export MNIST_DIR="${MNIST_DIR:-$root/../shared/data/mnist}"
mkdir -p "$out"
cd "$peers"
for rep in 1 2; do
    "$root/target/release/examples/bench" --backends cpu --batch-sizes 64,256,1024 --threads 1,2 \
        --epochs 5 --json "$out/soma-$rep-cpu.json" >"$out/soma-$rep-cpu.txt" 2>/dev/null
    : >"$out/peers-$rep.jsonl"
    for t in 1 2; do
        for impl in numpy jax; do
            "$py" "mlp_$impl.py" --epochs 5 --batch-size 64 --lr 0.1 --seed 0 --threads $t --data "$MNIST_DIR" 2>/dev/null >>"$out/peers-$rep.jsonl"
            "$py" "mlp_$impl.py" --epochs 3 --batch-size 256 --lr 0.5 --seed 0 --threads $t --data "$MNIST_DIR" 2>/dev/null >>"$out/peers-$rep.jsonl"
            "$py" "mlp_$impl.py" --epochs 3 --batch-size 1024 --lr 0.5 --seed 0 --threads $t --data "$MNIST_DIR" 2>/dev/null >>"$out/peers-$rep.jsonl"
        done
    done
done
