//! The soak (`examples/soak`): its growth check on synthetic series (a planted leak fails it,
//! allocator noise within the tolerance does not), soma's count of the GPU buffers alive, and
//! short soaks of the real example on both backends, clean and with a leak planted through its
//! test hooks, which must fail naming the series and the epoch.

#[path = "common/bins.rs"]
mod bins;
#[path = "../examples/soak/check.rs"]
mod check;
mod common;

use bins::{assert_error, assert_ok, stdout};
use check::{check_flat, check_resume};
use serde_json::Value;

const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// The check on synthetic series

/// Allocator-like noise: a warm-up ramp, then values that wander within ±300 KiB.
fn noisy(epochs: u64) -> Vec<(u64, u64)> {
    (1..=epochs)
        .map(|e| {
            let warm = 100 * MIB + e.min(4) * MIB / 2;
            let wander = [0, 300, 120, 0, 260, 40][e as usize % 6] * 1024;
            (e, warm + wander)
        })
        .collect()
}

#[test]
fn noise_within_the_tolerance_after_the_warm_up_passes() {
    let series = noisy(100);
    let flat = check_flat("RSS", &series, 5, 2 * MIB)
        .expect("long enough")
        .expect("flat");
    assert_eq!(flat.baseline_epoch, 5);
    assert!(flat.max_rise <= 300 * 1024, "{flat:?}");
    // The warm-up (epochs 1–4 rise by 2 MiB) is not judged.
    assert!(check_flat("RSS", &series, 1, MIB / 4).unwrap().is_err());
}

#[test]
fn a_planted_leak_fails_naming_the_first_epoch_over_the_tolerance() {
    // 40 KiB per epoch on top of the noise: over 2 MiB after 52 epochs past the baseline.
    let leaking: Vec<(u64, u64)> = noisy(100)
        .into_iter()
        .map(|(e, v)| (e, v + e * 40 * 1024))
        .collect();
    let growth = check_flat("RSS", &leaking, 5, 2 * MIB)
        .expect("long enough")
        .expect_err("a leak");
    assert_eq!(growth.baseline_epoch, 5);
    assert!(growth.value - growth.baseline > 2 * MIB);
    // The first epoch over it, not a later one.
    let before = leaking[(growth.epoch - 2) as usize].1;
    assert!(before - growth.baseline <= 2 * MIB, "{growth:?}");
    let text = growth.to_string();
    for needle in [
        "RSS grew by",
        "from epoch 5",
        &format!("to epoch {}", growth.epoch),
        "2.00 MiB",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text:?}");
    }
    // An exact count with tolerance 0: one buffer more is enough.
    let buffers = [(1, 4096), (2, 8192), (3, 8192), (4, 8192), (5, 8196)];
    let growth = check_flat("GPU buffer bytes", &buffers, 2, 0)
        .unwrap()
        .expect_err("4 bytes more");
    assert_eq!((growth.epoch, growth.value - growth.baseline), (5, 4));
    assert!(
        check_flat("GPU buffer bytes", &buffers[..4], 2, 0)
            .unwrap()
            .is_ok()
    );
}

#[test]
fn a_series_shorter_than_the_warm_up_is_not_judged_and_a_resume_must_match_either_way() {
    assert!(check_flat("RSS", &noisy(4), 5, MIB).is_none());
    assert_eq!(
        check_resume("RSS", (5, 100 * MIB), (55, 101 * MIB), 2 * MIB),
        Ok(MIB)
    );
    let higher = check_resume("RSS", (5, 100 * MIB), (55, 103 * MIB), 2 * MIB).unwrap_err();
    assert!(higher.to_string().contains("+3.00 MiB"), "{higher}");
    let lower = check_resume("RSS", (5, 100 * MIB), (55, 97 * MIB), 2 * MIB).unwrap_err();
    assert!(lower.to_string().contains("-3.00 MiB"), "{lower}");
}

// ---------------------------------------------------------------------------------------------
// soma's count of the device buffers alive

#[test]
fn the_gpu_counts_each_buffer_in_when_created_and_out_when_dropped() {
    let Some(ctx) = common::gpu::context() else {
        return;
    };
    // Other tests of this binary do not open buffers on the shared context; the example runs
    // in processes of its own.
    let before = ctx.buffers_alive();
    let usage = wgpu::BufferUsages::STORAGE;
    let a = ctx.buffer("counted a", 1000, usage).unwrap();
    let b = ctx.buffer("counted b", 6, usage).unwrap();
    let during = ctx.buffers_alive();
    // Sizes as created: rounded up to 4 bytes.
    assert_eq!(during.buffers, before.buffers + 2);
    assert_eq!(during.bytes, before.bytes + 1000 + 8);
    drop(a);
    assert_eq!(ctx.buffers_alive().bytes, before.bytes + 8);
    drop(b);
    assert_eq!(ctx.buffers_alive(), before);
}

// ---------------------------------------------------------------------------------------------
// The example, short

/// A short soak: 12 epochs of 500 images, baseline at epoch 3, a resume after epoch 6, one
/// thread (so that the RSS of a busy machine's test run stays small), plus `extra`.
fn soak(backend: &str, extra: &[&str]) -> Option<std::process::Output> {
    let Some(dir) = common::mnist_dir() else {
        common::skip("MNIST_DIR is not set");
        return None;
    };
    let mut args = vec![
        "--backends",
        backend,
        "--epochs",
        "12",
        "--limit",
        "500",
        "--test-limit",
        "500",
        "--settle",
        "3",
        "--resume-at",
        "6",
        "--threads",
        "1",
        "--offline",
    ];
    args.extend_from_slice(extra);
    Some(bins::run("soak", &args, Some(&dir)))
}

/// The one run of the JSON on the last line of stdout.
fn run_json(out: &std::process::Output) -> Value {
    let text = stdout(out);
    let last = text.lines().last().expect("a JSON line");
    let report: Value = serde_json::from_str(last).expect("JSON");
    report["runs"][0].clone()
}

fn check_clean_run(backend: &str, out: &std::process::Output) {
    assert_ok(&format!("soak --backends {backend}"), out);
    let run = run_json(out);
    assert_eq!(run["ok"], true, "{run:#}");
    let samples = run["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 12);
    assert_eq!(samples[6]["phase"], 1, "epoch 7 is the resumed backend's");
    // Each series checked before and after the resume.
    let checks = run["checks"].as_array().unwrap();
    for series in ["Rust heap bytes", "RSS"] {
        for part in [0, 1] {
            assert!(
                checks
                    .iter()
                    .any(|c| c["series"] == series && c["part"] == part && c["ok"] == true),
                "{series} part {part} in {checks:#?}"
            );
        }
    }
}

#[test]
fn a_short_soak_on_the_cpu_stays_flat_and_a_planted_host_leak_fails_it() {
    let Some(out) = soak("cpu", &[]) else { return };
    check_clean_run("cpu", &out);
    assert!(run_json(&out)["samples"][0]["gpu_buffers"].is_null());

    // 2 MiB more kept after every epoch.
    let out = soak("cpu", &["--leak-host-kib", "2048"]).unwrap();
    assert_error(
        "soak with a host leak",
        &out,
        &[
            "soak cpu: Rust heap bytes grew by 2.00 MiB from epoch 3",
            "to epoch 4",
        ],
    );
    let run = run_json(&out);
    assert_eq!(run["ok"], false);
    // RSS sees it too, later (its tolerance is larger: 4 MiB, passed at epoch 6).
    let failures = run["failures"].to_string();
    assert!(failures.contains("RSS grew by"), "{failures}");
}

#[test]
fn a_short_soak_on_the_gpu_stays_flat_and_a_planted_buffer_leak_fails_it() {
    // Skips without an adapter (fails under SOMA_STRICT=1); the soak opens its own device.
    if common::gpu::context().is_none() {
        return;
    }
    let Some(out) = soak("gpu", &[]) else { return };
    check_clean_run("gpu", &out);
    let run = run_json(&out);
    let samples = run["samples"].as_array().unwrap();
    let bytes: Vec<u64> = samples
        .iter()
        .map(|s| s["gpu_buffer_bytes"].as_u64().unwrap())
        .collect();
    assert!(bytes[0] > 0);
    assert!(
        bytes.iter().all(|&b| b == bytes[0]),
        "exactly flat: {bytes:?}"
    );
    let left = run["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["series"] == "GPU buffers left by the dropped backend")
        .expect("the drop check");
    assert_eq!(
        (left["buffers"].as_u64(), left["ok"].as_bool()),
        (Some(0), Some(true))
    );

    // One more 64 KiB buffer kept after every epoch.
    let out = soak("gpu", &["--leak-device-kib", "64"]).unwrap();
    assert_error(
        "soak with a device leak",
        &out,
        &[
            "soak gpu: GPU buffer bytes grew by 64.0 KiB from epoch 3",
            "to epoch 4",
        ],
    );
    // The buffers planted before the resume are on the device when the backend goes.
    let failures = run_json(&out)["failures"].to_string();
    assert!(
        failures.contains("the backend dropped after epoch 6 left 6 GPU buffers"),
        "{failures}"
    );
}
