//! `benches/real_gpu.sh` and its pack step, checked without a GPU and without building the pack:
//! both scripts parse, the pack's file list (`--list`, which builds nothing) names real files and
//! holds everything the run script reads (`--needs`), the report script turns a run's logs into
//! its table and verdicts, and the `adapter` example (the run's first phase) says what it picked
//! and refuses a software adapter when asked to.
//!
//! The end-to-end dry run (pack, then the script on lavapipe) takes minutes, so it is not run
//! here; its output is committed as `benches/results/real_gpu-dryrun.{md,json}`.

#[path = "common/bins.rs"]
mod bins;
mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bins::{assert_ok, stderr, stdout};
use serde_json::Value;

const RUN: &str = "benches/real_gpu.sh";
const PACK: &str = "benches/real_gpu_pack.sh";
const REPORT: &str = "benches/real_gpu_report.py";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program` with `args` in the repository root, stdin closed.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program} {args:?}: {e}"))
}

fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn scripts_parse_and_answer_help_and_bad_flags() {
    for script in [RUN, PACK] {
        assert_ok(&format!("bash -n {script}"), &run("bash", &["-n", script]));
        let help = run("bash", &[script, "--help"]);
        assert_ok(&format!("{script} --help"), &help);
        assert!(
            stdout(&help).contains("benches/real_gpu"),
            "{}",
            stdout(&help)
        );
        let bad = run("bash", &[script, "--no-such-flag"]);
        assert_eq!(bad.status.code(), Some(2), "{script}: {}", stderr(&bad));
        assert!(stderr(&bad).contains("error: unknown"), "{}", stderr(&bad));
    }
    let budget = run("bash", &[RUN, "--budget", "soon"]);
    assert_eq!(budget.status.code(), Some(2), "{}", stderr(&budget));
    let phases = run("bash", &[RUN, "--phases", "tests,nap"]);
    assert_eq!(phases.status.code(), Some(2), "{}", stderr(&phases));
    assert!(
        stderr(&phases).contains("unknown phase nap"),
        "{}",
        stderr(&phases)
    );
    // Lint too where shellcheck is installed (CI does not install it; `apt-get install
    // shellcheck` does).
    if has("shellcheck") {
        assert_ok("shellcheck", &run("shellcheck", &[RUN, PACK]));
    }
}

#[test]
fn pack_list_names_real_files_and_all_the_run_needs() {
    let shared = root().join("../shared");
    if !shared.join("data/mnist").is_dir() || !shared.join("peers").is_dir() {
        common::skip("../shared/data/mnist or ../shared/peers is missing");
        return;
    }
    let list = run("bash", &[PACK, "--list"]);
    assert_ok(&format!("{PACK} --list"), &list);
    let text = stdout(&list);
    let mut packed = HashSet::new();
    for line in text.lines() {
        let (dest, source) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("not PATH<TAB>SOURCE: {line:?}"));
        packed.insert(dest.to_string());
        if source.starts_with("apt:") || source.starts_with("built:") {
            continue;
        }
        let path = root().join(source); // an absolute source stays as it is
        assert!(path.is_file(), "{dest}: its source {source} is not a file");
    }
    for want in [
        "bin/adapter",
        "bin/bench",
        "bin/mnist",
        "bin/backend_suite",
        "mnist/train-images-idx3-ubyte.gz",
        "peers/mlp_torch.py",
        "peers/cnn_torch.py",
        "gl/libvulkan1.deb",
    ] {
        assert!(packed.contains(want), "the pack lacks {want}:\n{text}");
    }
    let needs = run("bash", &[RUN, "--needs"]);
    assert_ok(&format!("{RUN} --needs"), &needs);
    for need in stdout(&needs).lines() {
        assert!(
            packed.contains(need),
            "{RUN} reads {need}, which {PACK} does not pack"
        );
    }
}

/// Writes a run's logs as `real_gpu.sh` leaves them: phases.tsv and each phase's output.
fn fake_logs(dir: &Path) {
    let phases = [
        ("adapter", "ok", "0", ""),
        ("tests:gpu_ops", "ok", "0", ""),
        ("tests:parity", "failed", "101", ""),
        ("bench:fused", "timeout", "124", ""),
        ("mnist:gpu", "ok", "0", ""),
        ("mnist:cpu", "ok", "0", ""),
        ("torch", "skipped", "", "--no-torch"),
        ("bench:cnn", "ok", "0", ""),
        ("torch:cnn:64", "ok", "0", ""),
        ("mnist:cnn", "ok", "0", ""),
    ];
    let tsv: String = phases
        .iter()
        .map(|(name, status, rc, note)| {
            let secs = if *status == "skipped" { "0" } else { "1.5" };
            format!("{name}\t{status}\t{rc}\t{secs}\t180\t{note}\tcmd\n")
        })
        .collect();
    fs::write(dir.join("phases.tsv"), tsv).unwrap();
    fs::write(
        dir.join("adapter.json"),
        r#"{"name":"NVIDIA H100","backend":"Vulkan","device_type":"DiscreteGpu","driver":"NVIDIA","driver_info":"580","software":false,"timestamp_query":true}"#,
    )
    .unwrap();
    fs::write(
        dir.join("tests-gpu_ops.out"),
        "test a ... ok\n\ntest result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s\n",
    )
    .unwrap();
    fs::write(
        dir.join("tests-parity.out"),
        "test runs_match ... FAILED\n\ntest result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 2.00s\n",
    )
    .unwrap();
    fs::write(dir.join("bench-fused.err"), "").unwrap();
    let mnist = |acc: f64| {
        format!(
            "progress\n{{\"backend\":\"x\",\"epochs\":10,\"test_accuracy\":{acc},\"train_seconds\":1.25}}\n"
        )
    };
    fs::write(dir.join("mnist-gpu.out"), mnist(0.9812)).unwrap();
    fs::write(dir.join("mnist-cpu.out"), mnist(0.9809)).unwrap();
    fs::write(dir.join("mnist-cnn.out"), mnist(0.9941)).unwrap();
    fs::write(
        dir.join("bench-cnn.json"),
        r#"{"rows":[{"batch":64,"samples_per_second":{"median":12000.0},"epoch_seconds_median":5.0,
            "train_samples":60000,"dispatches_per_step":14.0,"submits_per_epoch":3.0,
            "gpu_kernel_ms":[{"kernel":"conv 1","ms_per_step":0.25}]}]}"#,
    )
    .unwrap();
    fs::write(
        dir.join("torch-cnn-64.out"),
        "{\"samples_per_second_median\": 6000.0, \"test_accuracy\": 0.9}\n",
    )
    .unwrap();
}

#[test]
fn report_turns_logs_into_the_table_and_verdicts() {
    if !has("python3") {
        common::skip("python3 is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fake_logs(dir.path());
    let base = dir.path().join("real_gpu");
    let out = run(
        "python3",
        &[
            REPORT,
            "--logs",
            dir.path().to_str().unwrap(),
            "--out",
            base.to_str().unwrap(),
            "--budget",
            "480",
            "--flags=--no-torch",
            "--final",
        ],
    );
    assert_ok(REPORT, &out);
    let md = fs::read_to_string(base.with_extension("md")).unwrap();
    for want in [
        "# soma on a real GPU: NVIDIA H100",
        "2 of 10 phases did not pass: tests:parity, bench:fused",
        "| tests:gpu_ops | ok | 1.5 | 12 passed, 0 failed |",
        "| tests:parity | failed | 1.5 | 3 passed, 1 failed: runs_match |",
        "| bench:fused | timeout | 1.5 | timed out after 180 s",
        "| mnist:gpu | ok | 1.5 | 98.12% test accuracy after 10 epochs, 1.25 s of training |",
        "| torch | skipped | 0.0 | --no-torch |",
        "| the same test accuracy as the CPU backend (mnist defaults) | GPU 98.12%, CPU 98.09% | held |",
        "| ≥ 5× PyTorch eager at batch 64 | – | not measured |",
        "| torch:cnn:64 | ok | 1.5 | 6,000 samples/s, test accuracy 90.00% |",
        "| 64 | 12,000 | 6,000 | 2.00 | 5000.0 | 14 | 3 | 0.250 |",
        "| batch | conv 1 |",
        "| the cnn preset ≥ 99.3% test accuracy on the GPU backend (issue 19) | 99.41% after 10 epochs | held |",
    ] {
        assert!(md.contains(want), "no {want:?} in:\n{md}");
    }
    let doc: Value =
        serde_json::from_str(&fs::read_to_string(base.with_extension("json")).unwrap()).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(
        doc["failed_phases"],
        serde_json::json!(["tests:parity", "bench:fused"])
    );
    assert_eq!(doc["tests"]["parity"]["failures"][0], "runs_match");
    assert_eq!(doc["mnist"]["cpu"]["test_accuracy"], 0.9809);
}

#[test]
fn adapter_example_prints_its_choice_and_refuses_software_when_asked() {
    let out = bins::run("adapter", &[], None);
    if !out.status.success() {
        common::skip(&format!("no GPU adapter: {}", stderr(&out).trim()));
        return;
    }
    let line: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {}", stdout(&out)));
    for key in ["name", "backend", "device_type", "driver"] {
        assert!(line[key].is_string(), "{key} in {line}");
    }
    assert!(
        !line["adapters_seen"].as_array().unwrap().is_empty(),
        "{line}"
    );
    let software = line["software"].as_bool().expect("software is a bool");
    let strict = bins::run("adapter", &["--require-hardware"], None);
    if software {
        bins::assert_error(
            "adapter --require-hardware",
            &strict,
            &["is a software adapter"],
        );
        // The JSON line comes first all the same, so the script can say what it found.
        assert!(stdout(&strict).contains(&format!("\"name\":{}", line["name"])));
    } else {
        assert_ok("adapter --require-hardware", &strict);
    }
}
