#!/usr/bin/env bash
# CPU throughput of the `cnn-bn` preset (convolutions, batch norm, dropout) next to PyTorch's on
# the same network (benches/peers/cnn_bn_torch.py), interleaved in one session (this machine's
# speed drifts by 30-40%, so only numbers taken side by side are compared): the first 12,000
# MNIST images, plain SGD at 0.05, batch 64 and 256, 2 threads, two rounds.
#
#   python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install numpy torch==2.15.0
#   cargo build --release --example bench
#   benches/cnn_bn_side_by_side.sh [OUT_DIR]   # about 5 minutes; results in OUT_DIR (benches/results)
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/benches/results}"
py="${PY:-/tmp/peers-venv/bin/python}"
threads="${THREADS:-2}"
export MNIST_DIR="${MNIST_DIR:-$root/../shared/data/mnist}"
mkdir -p "$out"
for rep in $(seq "${REPS:-2}"); do
    "$root/target/release/examples/bench" --model cnn-bn --backends cpu --batch-sizes 64,256 \
        --threads "$threads" --epochs 2 --warmup 1 --eval-repeats 1 --limit 12000 \
        --lr 0.05 --offline --json "$out/cnn-bn-soma-$rep.json" >"$out/cnn-bn-soma-$rep.txt" 2>/dev/null
    : >"$out/cnn-bn-torch-$rep.jsonl"
    for b in 64 256; do
        "$py" "$root/benches/peers/cnn_bn_torch.py" --epochs 2 --batch-size "$b" --lr 0.05 \
            --seed 0 --threads "$threads" --limit 12000 --data "$MNIST_DIR" \
            2>/dev/null >>"$out/cnn-bn-torch-$rep.jsonl"
    done
done
grep -h '^| cpu' "$out"/cnn-bn-soma-*.txt
cat "$out"/cnn-bn-torch-*.jsonl | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print("torch", r["batch_size"], round(r["samples_per_second_median"]), r["test_accuracy"])'
