#!/usr/bin/env bash
# CI's brief fuzz pass (.ci/run): installs the pinned cargo-fuzz if missing, builds the targets
# and runs each a fixed number of executions (a few seconds each) from its committed corpus, in
# a scratch corpus directory, with a fixed seed, under run.sh's limits. It catches a reader
# that breaks on inputs near the seeds; the long runs that find deep bugs are SECURITY.md's.
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

FUZZ_WORK="$(mktemp -d)"
export FUZZ_WORK
trap 'rm -rf "$FUZZ_WORK"' EXIT
# Executions per target: a few seconds each at the short runs' speed (SECURITY.md).
declare -A runs=([idx]=30000 [checkpoint]=50000 [picture]=15000 [layers]=100000 [csv]=20000 [npy]=30000)
for target in idx checkpoint picture layers csv npy; do
    ./run.sh "$target" "-runs=${runs[$target]}" -seed=1
done
