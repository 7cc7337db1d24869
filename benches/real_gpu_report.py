#!/usr/bin/env python3
"""The report of benches/real_gpu.sh: one Markdown file and one JSON file from its logs.

The script calls this after every phase, so the report is always as far as the run got; each
file is written to a temporary sibling and renamed, so none is ever half-written. Standard
library only: the device image's Python has no more to offer that is needed here.

  real_gpu_report.py --logs DIR --out BASE [--mode run|dry-run] [--budget S] [--started T]
                     [--pack DIR] [--flags "..."] [--final]

reads DIR/phases.tsv (one line per phase: name, status, exit code, seconds, limit, note,
command) and each phase's DIR/NAME.out and .err, and writes BASE.md and BASE.json.
"""
import argparse
import json
import os
import re
import time

# The targets on an H100 (issue 21).
TARGET_EPOCH_MS_B64 = 15.0
TARGET_X_EAGER_B64 = 5.0
# Two runs of the same recipe drift apart by f32 rounding: the CPU backend alone gives 98.09%
# on two threads and 98.18% on one (README). Within this many points counts as the same.
SAME_ACCURACY_POINTS = 0.3
MNIST_TRAIN = 60000
# Issue 19: the cnn preset's accuracy after its 10 epochs.
CNN_ACCURACY = 0.993


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def read_json(path):
    text = read(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def last_json_line(text):
    """The last line of `text` that parses as a JSON object (the examples' result line)."""
    for line in reversed((text or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def tail(text, n=25):
    lines = [l for l in (text or "").splitlines() if l.strip()]
    return lines[-n:]


def cell(text):
    """Safe inside a Markdown table cell."""
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|")


def thousands(v):
    return "–" if v is None else f"{v:,.0f}"


def num(v, digits):
    return "–" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return a / b if a and b else None


def phases_from(logs):
    rows = []
    for line in (read(os.path.join(logs, "phases.tsv")) or "").splitlines():
        f = line.split("\t")
        if len(f) < 7:
            continue
        name, status, rc, secs, limit, note, command = f[:7]
        slug = name.replace(":", "-")
        rows.append({
            "name": name,
            "status": status,
            "exit_code": int(rc) if rc.lstrip("-").isdigit() else None,
            "seconds": float(secs) if secs else 0.0,
            "limit_seconds": int(limit) if limit.isdigit() else None,
            "note": note,
            "command": command.strip(),
            "out": read(os.path.join(logs, slug + ".out")),
            "err": read(os.path.join(logs, slug + ".err")),
        })
    return rows


def test_counts(out):
    """libtest's summary of a test binary's stdout: counts and the names that failed."""
    m = None
    for m in re.finditer(r"test result: (\w+)\. (\d+) passed; (\d+) failed; (\d+) ignored; "
                         r"(\d+) measured; (\d+) filtered out", out or ""):
        pass
    failed = re.findall(r"^test (\S+) \.\.\. FAILED", out or "", re.M)
    if not m:
        return {"passed": None, "failed": None, "failures": failed}
    return {"passed": int(m.group(2)), "failed": int(m.group(3)), "ignored": int(m.group(4)),
            "filtered_out": int(m.group(6)), "failures": failed}


def first_error(p):
    """The line that says what went wrong: an `error:` line, a panic, else the last line."""
    text = (p["err"] or "") + "\n" + (p["out"] or "")
    for pattern in (r"^error: .*", r"panicked at .*", r"^\w*Error: .*", r".*Error: .*"):
        m = re.search(pattern, text, re.M)
        if m:
            return m.group(0).strip()[:300]
    lines = tail(text, 1)
    return lines[0][:300] if lines else ""


def adapter_text(a):
    if not a:
        return "none"
    driver = " ".join(x for x in (a.get("driver"), f"({a['driver_info']})" if a.get("driver_info") else "") if x)
    return f"{a.get('name')}, {a.get('backend')}, {a.get('device_type')}, {driver}"


def machine():
    cpu = None
    for line in (read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = None
    m = re.search(r"^MemTotal:\s+(\d+)", read("/proc/meminfo") or "", re.M)
    if m:
        mem = round(int(m.group(1)) / 1024)
    return {"cpu_model": cpu, "cores": os.cpu_count(), "mem_total_mib": mem,
            "arch": os.uname().machine}


def bench_rows(doc):
    return {r["batch"]: r for r in (doc or {}).get("rows", []) if "batch" in r}


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def sps(r):
    return (r.get("samples_per_second") or {}).get("median")


def gpu_ms(r):
    ks = r.get("gpu_kernel_ms")
    return sum(k.get("ms_per_step") or 0 for k in ks) if isinstance(ks, list) else None


def kernel_table(md, title, rows):
    """GPU time per kernel, one row per profiled batch size (nothing when none was profiled)."""
    profiled = [r for _, r in sorted(rows.items()) if isinstance(r.get("gpu_kernel_ms"), list)]
    if not profiled:
        return
    labels = [k["kernel"] for k in profiled[0]["gpu_kernel_ms"]]
    md.append(f"GPU time per kernel, {title} (ms per step, timestamp queries over one profiled epoch):")
    md.append("")
    md.append("| batch | " + " | ".join(labels) + " |")
    md.append("|---|" + "---|" * len(labels))
    for r in profiled:
        times = {k["kernel"]: k.get("ms_per_step") for k in r["gpu_kernel_ms"]}
        md.append(f"| {r['batch']} | " + " | ".join(num(times.get(l), 3) for l in labels) + " |")
    md.append("")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True, help="BASE: writes BASE.md and BASE.json")
    ap.add_argument("--mode", default="run")
    ap.add_argument("--budget", type=int, default=0)
    ap.add_argument("--started", type=float, default=time.time())
    ap.add_argument("--pack", default="")
    ap.add_argument("--flags", default="")
    ap.add_argument("--final", action="store_true")
    a = ap.parse_args()
    logs = a.logs
    dry = a.mode == "dry-run"

    phases = phases_from(logs)
    by_name = {p["name"]: p for p in phases}
    adapter = read_json(os.path.join(logs, "adapter.json"))
    # What each attempt opened (a software adapter, when no hardware one was found).
    tried = [read_json(os.path.join(logs, f)) for f in sorted(os.listdir(logs))
             if re.fullmatch(r"adapter-\d+\.json", f)]
    tried = [t for t in tried if t]
    adapter_env = (read(os.path.join(logs, "adapter.env")) or "").split()
    software = bool(adapter and adapter.get("software"))
    default_path = "general" if software else "fused"
    manifest = (read(os.path.join(a.pack, "MANIFEST")) or "").splitlines() if a.pack else []
    commit = next((l[len("commit "):] for l in manifest if l.startswith("commit ")), None)
    built = next((l[len("built "):] for l in manifest if l.startswith("built ")), None)
    nvidia_smi = [l for l in ((by_name.get("setup:nvidia-smi") or {}).get("out") or "").splitlines()
                  if l.strip()]

    tests = {}
    for p in phases:
        if p["name"].startswith("tests:"):
            tests[p["name"][len("tests:"):]] = test_counts(p["out"])
    # fused, general: the MLP's two step paths; cnn: the tfjs CNN (the general step).
    bench = {path: read_json(os.path.join(logs, f"bench-{path}.json")) for path in ("fused", "general", "cnn")}
    rows = {path: bench_rows(doc) for path, doc in bench.items()}
    mnist = {k: last_json_line((by_name.get(f"mnist:{k}") or {}).get("out")) for k in ("gpu", "cpu", "cnn")}
    # eager, compile: the MLP peer; cnn: the CNN peer (eager).
    torch = {"eager": {}, "compile": {}, "cnn": {}}
    for p in phases:
        m = re.match(r"torch:(eager|compile|cnn):(\d+)$", p["name"])
        if m:
            line = last_json_line(p["out"])
            if line:
                torch[m.group(1)][int(m.group(2))] = line
    torch_version = ((by_name.get("torch:cuda") or {}).get("out") or "").strip() or None

    # One result line per phase.
    for p in phases:
        name, res = p["name"], ""
        if p["status"] in ("skipped", "cut"):
            res = p["note"]
        elif p["status"] == "timeout":
            res = "; ".join(x for x in (f"timed out after {p['limit_seconds']} s", first_error(p)) if x)
        elif name == "setup:loaders":
            res = "; ".join(tail(p["out"], 3)) if p["status"] == "ok" else first_error(p)
        elif name == "setup:nvidia-smi":
            res = nvidia_smi[-1] if nvidia_smi else ""
        elif name == "adapter":
            if p["status"] == "ok" and adapter:
                res = adapter_text(adapter) + (" — software, allowed" if software else "")
            else:
                res = first_error(p)
        elif name.startswith("tests:"):
            t = tests[name[len("tests:"):]]
            if t["passed"] is None:
                res = "no test summary; " + first_error(p)
            else:
                res = f"{t['passed']} passed, {t['failed']} failed"
                if t["failures"]:
                    res += ": " + ", ".join(t["failures"])
        elif name.startswith("bench:"):
            rs = rows.get(name[len("bench:"):], {})
            bad = [f"batch {b}: {r['error']}" for b, r in rs.items() if "error" in r]
            res = f"{len(rs) - len(bad)} of {len(rs)} batch sizes measured"
            if bad:
                res += "; " + "; ".join(bad)
            if p["status"] != "ok":
                res += "; " + first_error(p)
        elif name.startswith("mnist:"):
            r = mnist.get(name[len("mnist:"):])
            if r and r.get("test_accuracy") is not None:
                res = (f"{100 * r['test_accuracy']:.2f}% test accuracy after {plural(r['epochs'], 'epoch')}, "
                       f"{r['train_seconds']:.2f} s of training")
            else:
                res = first_error(p)
        elif name.startswith("torch:") and name != "torch:cuda":
            m = re.match(r"torch:(eager|compile|cnn):(\d+)$", name)
            r = torch[m.group(1)].get(int(m.group(2))) if m else None
            if r:
                res = (f"{thousands(r.get('samples_per_second_median'))} samples/s, "
                       f"test accuracy {100 * r['test_accuracy']:.2f}%")
            else:
                res = first_error(p)
        elif name == "torch:cuda":
            res = torch_version or first_error(p)
        elif p["status"] != "ok":
            res = first_error(p)
        p["result"] = res

    # Throughput side by side, per batch size.
    batches = sorted(set(rows["fused"]) | set(rows["general"]) | set(torch["eager"]) | set(torch["compile"]))
    throughput = []
    for b in batches:
        f, g = rows["fused"].get(b, {}), rows["general"].get(b, {})

        soma = sps(f if default_path == "fused" else g)
        eager = (torch["eager"].get(b) or {}).get("samples_per_second_median")
        comp = (torch["compile"].get(b) or {}).get("samples_per_second_median")
        throughput.append({
            "batch": b,
            "soma_fused": sps(f), "soma_general": sps(g),
            "fused_over_general": ratio(sps(f), sps(g)),
            "torch_eager": eager, "torch_compile": comp,
            "soma_default_path": default_path,
            "soma_over_eager": ratio(soma, eager), "soma_over_compile": ratio(soma, comp),
            "epoch_ms": {"fused": f.get("epoch_seconds_median") and 1e3 * f["epoch_seconds_median"],
                         "general": g.get("epoch_seconds_median") and 1e3 * g["epoch_seconds_median"]},
            "train_samples": f.get("train_samples") or g.get("train_samples"),
            "dispatches_per_step": {"fused": f.get("dispatches_per_step"), "general": g.get("dispatches_per_step")},
            "submits_per_epoch": {"fused": f.get("submits_per_epoch"), "general": g.get("submits_per_epoch")},
            "gpu_ms_per_step": {"fused": gpu_ms(f), "general": gpu_ms(g)},
            "record_ms_per_epoch": {"fused": f.get("record_ms_per_epoch"), "general": g.get("record_ms_per_epoch")},
            "errors": {k: r["error"] for k, r in (("fused", f), ("general", g)) if "error" in r},
        })

    # The tfjs CNN side by side, per batch size.
    cnn = []
    for b in sorted(set(rows["cnn"]) | set(torch["cnn"])):
        r = rows["cnn"].get(b, {})
        eager = (torch["cnn"].get(b) or {}).get("samples_per_second_median")
        cnn.append({
            "batch": b, "soma": sps(r), "torch_eager": eager, "soma_over_eager": ratio(sps(r), eager),
            "epoch_ms": r.get("epoch_seconds_median") and 1e3 * r["epoch_seconds_median"],
            "train_samples": r.get("train_samples"),
            "dispatches_per_step": r.get("dispatches_per_step"),
            "submits_per_epoch": r.get("submits_per_epoch"),
            "gpu_ms_per_step": gpu_ms(r), "record_ms_per_epoch": r.get("record_ms_per_epoch"),
            "error": r.get("error"),
        })

    # The targets, each held, missed, or not measured.
    def verdict(ok):
        return "not measured" if ok is None else ("held" if ok else "missed")

    t64 = next((t for t in throughput if t["batch"] == 64), None)
    targets = []
    ms64 = t64 and t64["epoch_ms"]["fused"]
    n64 = t64 and t64["train_samples"]
    if ms64 and n64:
        full = ms64 * MNIST_TRAIN / n64
        targets.append({"target": f"MNIST epoch at batch 64 ≤ {TARGET_EPOCH_MS_B64:g} ms (fused step)",
                        "measured": f"{full:.1f} ms per 60,000 images" + ("" if n64 == MNIST_TRAIN else f" (scaled from {n64:,})"),
                        "verdict": verdict(full <= TARGET_EPOCH_MS_B64)})
    else:
        targets.append({"target": f"MNIST epoch at batch 64 ≤ {TARGET_EPOCH_MS_B64:g} ms", "measured": "–", "verdict": verdict(None)})
    x = t64 and t64["soma_over_eager"]
    targets.append({"target": f"≥ {TARGET_X_EAGER_B64:g}× PyTorch eager at batch 64",
                    "measured": f"{x:.2f}×" if x else "–",
                    "verdict": verdict(None if x is None else x >= TARGET_X_EAGER_B64)})
    xs = [(t["batch"], t["soma_over_compile"]) for t in throughput if t["soma_over_compile"]]
    targets.append({"target": "≥ PyTorch --compile at every batch size",
                    "measured": ", ".join(f"{b}: {v:.2f}×" for b, v in xs) or "–",
                    "verdict": verdict(None if len(xs) < len(batches) or not xs else all(v >= 1 for _, v in xs))})
    ga, ca = (mnist.get("gpu") or {}).get("test_accuracy"), (mnist.get("cpu") or {}).get("test_accuracy")
    targets.append({"target": "the same test accuracy as the CPU backend (mnist defaults)",
                    "measured": f"GPU {100 * ga:.2f}%, CPU {100 * ca:.2f}%" if ga is not None and ca is not None else "–",
                    "verdict": verdict(None if ga is None or ca is None else abs(ga - ca) * 100 <= SAME_ACCURACY_POINTS)})
    fg = [(t["batch"], t["fused_over_general"]) for t in throughput if t["fused_over_general"]]
    targets.append({"target": "the fused step faster than the general one",
                    "measured": ", ".join(f"{b}: {v:.2f}×" for b, v in fg) or "–",
                    "verdict": verdict(None if not fg else all(v > 1 for _, v in fg))})

    na = (mnist.get("cnn") or {}).get("test_accuracy")
    targets.append({"target": f"the cnn preset ≥ {100 * CNN_ACCURACY:.1f}% test accuracy on the GPU backend (issue 19)",
                    "measured": f"{100 * na:.2f}% after {plural(mnist['cnn']['epochs'], 'epoch')}" if na is not None else "–",
                    "verdict": verdict(None if na is None else na >= CNN_ACCURACY)})

    bad = [p["name"] for p in phases if p["status"] not in ("ok", "skipped")]
    wall = time.time() - a.started
    doc = {
        "mode": a.mode,
        "final": a.final,
        "ok": a.final and not bad,
        "failed_phases": bad,
        "wall_seconds": round(wall, 1),
        "budget_seconds": a.budget,
        "flags": a.flags,
        "commit": commit,
        "pack_built": built,
        "machine": machine(),
        "nvidia_smi": nvidia_smi,
        "adapter": adapter,
        "adapter_env": adapter_env,
        "adapter_attempts": tried,
        "phases": [{k: v for k, v in p.items() if k not in ("out", "err")} |
                   ({"log_tail": tail(p["err"]) + tail(p["out"])} if p["status"] not in ("ok", "skipped") else {})
                   for p in phases],
        "tests": tests,
        "throughput": throughput,
        "cnn": cnn,
        "targets": targets,
        "bench": bench,
        "mnist": mnist,
        "torch": {"version": torch_version, "eager": torch["eager"], "compile": torch["compile"],
                  "cnn": torch["cnn"]},
    }

    md = []
    title = adapter["name"] if adapter else "no adapter"
    if dry:
        md.append(f"# soma's real-GPU check, dry run on {title}")
        md.append("")
        md.append("A dry run (`--dry-run`): cut-down sizes on a software adapter, to show that "
                  "the script and its pack work end to end. **These numbers are not GPU speed.**")
    else:
        md.append(f"# soma on a real GPU: {title}")
    md.append("")
    state = "finished" if a.final else "in progress"
    verdict_line = ("every phase passed" if not bad else f"{len(bad)} of {len(phases)} phases did not pass: {', '.join(bad)}")
    md.append(f"Run {state} after {wall:.0f} s of a {a.budget} s budget: {verdict_line}.")
    md.append("")
    if not adapter and tried:
        md.append("- Adapter: none accepted; the attempts opened " + "; ".join(adapter_text(t) for t in tried))
    else:
        md.append(f"- Adapter: {adapter_text(adapter)}" + (f"; timestamp queries: {'yes' if adapter.get('timestamp_query') else 'no'}" if adapter else "")
                  + (f"; environment: `{' '.join(adapter_env)}`" if adapter_env else ""))
    if nvidia_smi:
        md.append(f"- nvidia-smi: {nvidia_smi[-1]}")
    mc = doc["machine"]
    md.append(f"- Machine: {mc['cpu_model']} ({mc['cores']} logical CPUs, {mc['mem_total_mib']} MiB), {mc['arch']}")
    md.append(f"- Build: commit {commit or '?'}; pack built {built or '?'}")
    md.append(f"- Flags: `{a.flags or '(none)'}`" + (f"; PyTorch {torch_version}" if torch_version else ""))
    md.append("")
    md.append("| phase | status | seconds | result |")
    md.append("|---|---|---|---|")
    for p in phases:
        md.append(f"| {p['name']} | {p['status']} | {p['seconds']:.1f} | {cell(p.get('result', ''))} |")
    md.append("")

    if throughput:
        n = next((t["train_samples"] for t in throughput if t["train_samples"]), None)
        md.append(f"Training throughput: 784-64-64-10 sigmoid, plain SGD lr 0.1, {n or '?':,} MNIST images"
                  if isinstance(n, int) else "Training throughput: 784-64-64-10 sigmoid, plain SGD lr 0.1")
        md.append(f"(samples/s, median over the timed epochs; soma ÷ PyTorch uses the {default_path} step, "
                  "the default on this adapter; pairs are fused / general):")
        md.append("")
        md.append("| batch | soma fused | soma general | fused ÷ general | torch eager | torch compile | "
                  "soma ÷ eager | soma ÷ compile | ms/epoch | dispatches/step | submits/epoch | "
                  "GPU ms/step | CPU recording ms/epoch |")
        md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")

        def pair(d, digits):
            return f"{num(d['fused'], digits)} / {num(d['general'], digits)}"

        for t in throughput:
            md.append(
                f"| {t['batch']} | {thousands(t['soma_fused'])} | {thousands(t['soma_general'])} | "
                f"{num(t['fused_over_general'], 2)} | {thousands(t['torch_eager'])} | "
                f"{thousands(t['torch_compile'])} | {num(t['soma_over_eager'], 2)} | "
                f"{num(t['soma_over_compile'], 2)} | {pair(t['epoch_ms'], 1)} | "
                f"{pair(t['dispatches_per_step'], 0)} | {pair(t['submits_per_epoch'], 0)} | "
                f"{pair(t['gpu_ms_per_step'], 3)} | {pair(t['record_ms_per_epoch'], 1)} |")
        md.append("")
        for path in ("fused", "general"):
            kernel_table(md, f"{path} step", rows[path])

    if cnn:
        n = next((t["train_samples"] for t in cnn if t["train_samples"]), None)
        md.append("Training throughput, the tfjs CNN (`--model tfjs`: conv 8 5×5 → max-pool → conv 16 5×5 → "
                  "max-pool → dense 10), plain SGD lr 0.1" + (f", {n:,} MNIST images" if isinstance(n, int) else "")
                  + ", soma's general step beside PyTorch eager (`cnn_torch.py --arch tfjs`), samples/s:")
        md.append("")
        md.append("| batch | soma | torch eager | soma ÷ eager | ms/epoch | dispatches/step | submits/epoch | "
                  "GPU ms/step | CPU recording ms/epoch |")
        md.append("|---|---|---|---|---|---|---|---|---|")
        for t in cnn:
            md.append(
                f"| {t['batch']} | {thousands(t['soma'])} | {thousands(t['torch_eager'])} | "
                f"{num(t['soma_over_eager'], 2)} | {num(t['epoch_ms'], 1)} | {num(t['dispatches_per_step'], 0)} | "
                f"{num(t['submits_per_epoch'], 0)} | {num(t['gpu_ms_per_step'], 3)} | "
                f"{num(t['record_ms_per_epoch'], 1)} |")
        md.append("")
        kernel_table(md, "the tfjs CNN", rows["cnn"])

    md.append("Targets (issue 21, set for an H100; the CNN's from issue 19)" + (" — a dry run on a software adapter judges none of them" if dry else "") + ":")
    md.append("")
    md.append("| target | measured | verdict |")
    md.append("|---|---|---|")
    for t in targets:
        md.append(f"| {cell(t['target'])} | {cell(t['measured'])} | {'–' if dry else t['verdict']} |")
    md.append("")

    base = a.out
    for path, text in ((base + ".json", json.dumps(doc, indent=2, sort_keys=False) + "\n"),
                       (base + ".md", "\n".join(md) + "\n")):
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
