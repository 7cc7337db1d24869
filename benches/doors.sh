#!/usr/bin/env bash
# The same model trained on Fashion-MNIST through each of `train`'s doors (benches/doors.py
# writes them): the IDX files, a Keras-style .npz and a PNG folder with train/ and test/ (the
# same 60,000/10,000 split), and the CSV of all 70,000 rows (its own stratified 20% split). One
# JSON line per door, with the test accuracy.
#
#   benches/doors.sh OUT_DIR [train flags…]     # e.g. --model mlp --epochs 10 --backend cpu
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: benches/doors.sh OUT_DIR [train flags]}"
shift
fashion="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
[ -f "$out/fashion.npz" ] || python3 benches/doors.py "$out" --fashion "$fashion" >&2
cargo build --release --example train -q
for door in "$fashion" "$out/fashion.npz" "$out/png" "$out/fashion.csv"; do
    target/release/examples/train "$door" "$@" 2>/dev/null | tail -n 1
done
