#!/usr/bin/env bash
# soma's data readers side by side with the Python ones a practitioner uses, on the same files
# in one session, readers interleaved (the machine's speed drifts; compare within a run):
#   csv:    soma's data::csv against polars (read_csv().to_numpy()) and pandas' C engine, each
#           with 2 threads (pandas has one), on Fashion-MNIST written out as CSV 4 times
#           (280,000 rows × 785 columns, ~520 MB);
#   npy:    soma's data::npy against numpy.load on x.npy (f32), data.npz (stored), data_z.npz
#           (deflated);
#   folder: soma's data::folder against PIL in a loop (and torchvision's ImageFolder through a
#           DataLoader of 2 workers, where torch is installed) on Fashion-MNIST as 70,000 PNGs
#           and on 5,000 64×64 colour JPEGs.
# Each reader runs in its own process, so that its peak RSS is its own.
#
#   benches/ingest_side_by_side.sh [WORK_DIR] [--only csv|npy|folder] [--rounds N]
#
# Needs python3 with numpy, polars, pandas and pillow (pip), and Fashion-MNIST's IDX files in
# $FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
# Writes JSON lines to WORK_DIR/ingest.jsonl and prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/soma-ingest}"
shift || true
only="" rounds=2
while [ $# -gt 0 ]; do
    case "$1" in
        --only) only="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
fashion="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
peers="$(cd ../shared/peers && pwd)"
mkdir -p "$work"
out="$work/ingest.jsonl"
: > "$out"
cargo build --release --example ingest -q
soma=target/release/examples/ingest
py() { python3 "$peers/ingest.py" "$@"; }
record() { tee -a "$out"; }

if [ -z "$only" ] || [ "$only" = csv ]; then
    [ -f "$work/fashion.csv" ] || py make-csv "$work/fashion.csv" --fashion "$fashion" --repeat 4 >&2
    for _ in $(seq "$rounds"); do
        "$soma" csv "$work/fashion.csv" --threads 2 | record
        py csv "$work/fashion.csv" --threads 2 --only polars | record
        py csv "$work/fashion.csv" --only pandas --repeats 1 | record
    done
fi
if [ -z "$only" ] || [ "$only" = npy ]; then
    [ -f "$work/npy/x.npy" ] || py make-npy "$work/npy" --fashion "$fashion" >&2
    for _ in $(seq "$rounds"); do
        "$soma" npy "$work/npy" | record
        py npy "$work/npy" | record
    done
fi
if [ -z "$only" ] || [ "$only" = folder ]; then
    [ -d "$work/png" ] || py make-folder "$work/png" --fashion "$fashion" >&2
    [ -d "$work/jpg64" ] || py make-folder "$work/jpg64" --fashion "$fashion" --limit 5000 --size 64 --colour >&2
    torch=$(python3 -c "import torchvision" 2>/dev/null && echo torchvision || echo pil)
    for dir in png jpg64; do
        for _ in $(seq "$rounds"); do
            "$soma" folder "$work/$dir" --threads 2 --repeats 2 | record
            py folder "$work/$dir" --only pil --repeats 1 | record
            if [ "$torch" = torchvision ]; then
                py folder "$work/$dir" --only torchvision --workers 2 --repeats 1 | record
            fi
        done
    done
fi
echo "results: $out" >&2
