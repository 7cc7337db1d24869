#!/usr/bin/env bash
# Runs one fuzz target on a scratch copy of its committed corpus (fuzz/corpus/TARGET), so runs
# never dirty the repository, and prints libFuzzer's final stats.
#
#   fuzz/run.sh TARGET [SECONDS | -runs=N] [more libFuzzer flags…]
#
# TARGET is idx, checkpoint, picture, layers, npy or csv; the default is 60 seconds. New inputs it finds stay in
# fuzz/work/TARGET, or FUZZ_WORK/TARGET (ignored by git; copy the useful ones into corpus/ by
# hand, `-merge=1` keeps it small); crashes go to fuzz/artifacts/TARGET. SANITIZER=none builds
# without ASan; JOBS=N runs N workers (libFuzzer's -fork), for the long runs.
#
# The limits: a reader may take at most 2048 MB of RSS and 512 MB in one allocation
# (-rss_limit_mb / -malloc_limit_mb). The largest legitimate input soma reads, a picture at
# predict's MAX_PIXELS (2^24), needs about 340 MB in all and 134 MB in one buffer, and the
# fuzz inputs are far smaller: a reader that goes past these limits allocated from what a
# header claimed, not from what the input holds. -timeout=5: every target's input is at most
# a few hundred KB, which any reader finishes in milliseconds, so 5 s is a hang.
set -euo pipefail
cd "$(dirname "$0")"

target="${1:?usage: fuzz/run.sh idx|checkpoint|picture|layers|csv|npy [SECONDS | -runs=N] [libFuzzer flags…]}"
shift
budget="${1:-60}"
[ $# -gt 0 ] && shift
case "$budget" in
    -runs=*) limit=("$budget") ;;
    *[!0-9]*) echo "run.sh: give SECONDS or -runs=N, not '$budget'" >&2; exit 2 ;;
    *) limit=("-max_total_time=$budget") ;;
esac
[ -d "corpus/$target" ] || { echo "run.sh: no corpus/$target (targets: $(ls corpus))" >&2; exit 2; }

# cargo-fuzz needs nightly-only flags (-Z sanitizer, coverage instrumentation); with only a
# stable toolchain, RUSTC_BOOTSTRAP lets stable rustc accept them.
export RUSTC_BOOTSTRAP=1
sanitizer=(); [ "${SANITIZER:-address}" = none ] && sanitizer=(--sanitizer none)
cargo fuzz build "${sanitizer[@]}" "$target"

work="${FUZZ_WORK:-work}/$target"
mkdir -p "$work"
cp -n "corpus/$target"/* "$work"/
dict=(); [ -f "$target.dict" ] && dict=("-dict=$target.dict")
fork=(); [ -n "${JOBS:-}" ] && fork=("-fork=$JOBS" -ignore_crashes=0)

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo fuzz run "${sanitizer[@]}" "$target" "$work" -- \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=5 \
    -print_final_stats=1 \
    "${dict[@]}" "${fork[@]}" "${limit[@]}" "$@" 2>&1 | tee "$log" | grep -E '^(#[0-9]+.*(INITED|DONE|pulse))|ERROR|panicked|SUMMARY|Test unit written|stat::' 
status=${PIPESTATUS[0]}
set -e
echo "== $target: exit $status; $(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1); corpus now $(ls "$work" | wc -l) files"
[ "$status" -eq 0 ] || { tail -40 "$log"; exit "$status"; }
