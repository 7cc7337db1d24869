#!/usr/bin/env python3
"""Training samples/s of two builds of `bench`, side by side in one session (this machine's speed
drifts by 30-40%, so only interleaved numbers are compared): mlp, tfjs and cnn on the CPU (2
threads) and on the GPU backend (lavapipe here: a proxy, not GPU speed), batch 64, the order of
the two builds alternating per round; prints a Markdown table of the medians.

    git worktree add /tmp/before <commit> && (cd /tmp/before && \\
        CARGO_TARGET_DIR=/tmp/before-target cargo build --release --example bench)
    cargo build --release --example bench
    benches/before_after.py /tmp/before-target/release/examples/bench \\
        target/release/examples/bench [ROUNDS]          # about 15 minutes for 2 rounds
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
env = dict(os.environ)
env.setdefault("MNIST_DIR", os.path.join(root, "..", "shared", "data", "mnist"))
bins = {"before": sys.argv[1], "after": sys.argv[2]}
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
# (backend, model, training images, timed epochs): each run takes about a minute.
configs = [
    ("cpu", "mlp", 60000, 3),
    ("cpu", "tfjs", 20000, 2),
    ("cpu", "cnn", 6000, 2),
    ("gpu", "mlp", 30000, 2),
    ("gpu", "tfjs", 6000, 2),
    ("gpu", "cnn", 3000, 2),
]
results = {}
with tempfile.TemporaryDirectory() as tmp:
    for r in range(rounds):
        for backend, model, limit, epochs in configs:
            for which in (["before", "after"] if r % 2 == 0 else ["after", "before"]):
                out = os.path.join(tmp, f"{which}-{backend}-{model}-{r}.json")
                subprocess.run([bins[which], "--backends", backend, "--model", model,
                                "--batch-sizes", "64", "--warmup", "1", "--threads", "2",
                                "--eval-repeats", "1", "--limit", str(limit),
                                "--epochs", str(epochs), "--offline", "--json", out],
                               env=env, check=True, capture_output=True)
                sps = json.load(open(out))["rows"][0]["samples_per_second"]["median"]
                results.setdefault((backend, model), {}).setdefault(which, []).append(sps)
                print(which, backend, model, r, round(sps), file=sys.stderr, flush=True)
print("| backend | model | before samples/s | after samples/s | after / before |")
print("|---|---|---:|---:|---:|")
for (backend, model), d in results.items():
    b, a = statistics.median(d["before"]), statistics.median(d["after"])
    print(f"| {backend} | {model} | {b:,.0f} | {a:,.0f} | {a / b:.3f} |")
