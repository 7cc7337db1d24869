#!/usr/bin/env bash
# CPU throughput of soma's convolutional networks next to PyTorch's (oneDNN convolutions) on the
# same networks, interleaved in one session (this machine's speed drifts by 30-40%, so only
# numbers taken side by side are compared): `tfjs` (TensorFlow.js's tutorial CNN, ~2 MFLOP a
# sample, bound by per-op overhead) on all of MNIST and `lenet` (~66 MFLOP a sample, bound by
# the convolutions' GEMMs) on its first 12,000 images, plain SGD, batch 64 and 256, 2 threads.
#
#   python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install numpy torch==2.15.0
#   cargo build --release --example bench
#   benches/cnn_side_by_side.sh [OUT_DIR]      # about 6 minutes; results in OUT_DIR (benches/results)
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/benches/results}"
peers="${PEERS:-$root/../shared/peers}"
py="${PY:-/tmp/peers-venv/bin/python}"
threads="${THREADS:-2}"
export MNIST_DIR="${MNIST_DIR:-$root/../shared/data/mnist}"
mkdir -p "$out"
cd "$peers"
for rep in 1 2; do
    : >"$out/cnn-torch-$rep.jsonl"
    for arch in tfjs lenet; do
        limit=0 soma_limit=()
        [ "$arch" = lenet ] && limit=12000 soma_limit=(--limit 12000)
        "$root/target/release/examples/bench" --model "$arch" --backends cpu --batch-sizes 64,256 \
            --threads "$threads" --epochs 2 --warmup 1 --eval-repeats 1 "${soma_limit[@]}" \
            --lr 0.05 --offline \
            --json "$out/cnn-soma-$arch-$rep.json" >"$out/cnn-soma-$arch-$rep.txt" 2>/dev/null
        for b in 64 256; do
            "$py" cnn_torch.py --arch "$arch" --epochs 2 --batch-size "$b" --lr 0.05 --seed 0 \
                --threads "$threads" --limit "$limit" --data "$MNIST_DIR" 2>/dev/null >>"$out/cnn-torch-$rep.jsonl"
        done
    done
done
