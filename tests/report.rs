//! `mnist --report DIR`: the metrics file has one well-formed line per epoch, the three
//! pictures exist, decode as PNGs of the documented sizes and are not blank, the confusion
//! table is printed, and a directory that cannot be written is refused before training.

#[path = "common/bins.rs"]
mod bins;
mod common;

use std::path::Path;

use bins::{assert_error, assert_ok, run, stderr};

/// Decodes the PNG at `path`, checks its dimensions and that it holds a drawing (a share of
/// non-white pixels), and returns its size in bytes.
fn check_png(path: &Path, (w, h): (u32, u32), min_ink: f64) -> u64 {
    let bytes = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), (w, h), "{}", path.display());
    let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count() as f64;
    let share = ink / (w * h) as f64;
    assert!(
        share > min_ink,
        "{}: only {share:.3} of it drawn",
        path.display()
    );
    bytes
}

#[test]
fn report_writes_metrics_and_three_pictures() {
    let Some(data) = common::mnist_dir() else {
        common::skip("MNIST_DIR is not set: the report test is skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run1");
    let out = run(
        "mnist",
        &[
            "--backend",
            "cpu",
            "--limit",
            "3000",
            "--epochs",
            "3",
            "--offline",
            "--report",
            report.to_str().unwrap(),
        ],
        Some(&data),
    );
    assert_ok("mnist --report", &out);

    // metrics.jsonl: one object per epoch, every field a finite number in its range.
    let text = std::fs::read_to_string(report.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], i as u64 + 1);
        let num = |k: &str| {
            line[k]
                .as_f64()
                .unwrap_or_else(|| panic!("{k} missing in {line}"))
        };
        for k in ["train_accuracy", "test_accuracy"] {
            assert!((0.0..=1.0).contains(&num(k)), "{k} in {line}");
        }
        for k in [
            "train_loss",
            "test_loss",
            "lr",
            "seconds",
            "samples_per_second",
        ] {
            assert!(num(k).is_finite() && num(k) > 0.0, "{k} in {line}");
        }
        assert!(
            (num("samples_per_second") * num("seconds") - 3000.0).abs() < 1.0,
            "3000 samples per epoch: {line}"
        );
    }
    // The cosine schedule from 0.1: the first epoch starts at the peak, later ones lower.
    assert_eq!(lines[0]["lr"], 0.1);
    assert!(lines[2]["lr"].as_f64() < lines[1]["lr"].as_f64());

    // The pictures, at the sizes report.rs draws them. Sizes measured: curves about 80 kB,
    // confusion 60 kB, mistakes 140 kB; text alone is some kilobytes, so 10 kB rules out a
    // picture with axes but no content.
    for (name, dims, ink) in [
        ("curves.png", (1100, 460), 0.02),
        ("confusion.png", (770, 646), 0.1),
        ("mistakes.png", (920, 818), 0.1),
    ] {
        let bytes = check_png(&report.join(name), dims, ink);
        assert!(bytes > 10_000 && bytes < 2_000_000, "{name}: {bytes} bytes");
    }
    // Nothing else: no temporary file was left behind.
    let mut names: Vec<String> = std::fs::read_dir(&report)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "confusion.png",
            "curves.png",
            "metrics.jsonl",
            "mistakes.png"
        ]
    );

    // The confusion matrix as a table: a header and ten rows, each with its accuracy.
    let err = stderr(&out);
    let table: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.starts_with("test confusion matrix"))
        .skip(1)
        .take(11)
        .collect();
    assert!(
        table[0].contains("label") && table[0].contains("accuracy"),
        "{err}"
    );
    for (digit, row) in table[1..].iter().enumerate() {
        assert!(row.trim_start().starts_with(&digit.to_string()), "{row}");
        assert!(row.ends_with('%'), "{row}");
        let counts: u64 = row
            .split('|')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        assert!(counts > 800, "each digit has about 1000 test images: {row}");
    }
}

#[test]
fn an_unwritable_report_directory_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("report");
    // No data is needed: the report directory is checked first, so the missing data
    // directory never comes up.
    let out = run(
        "mnist",
        &[
            "--offline",
            "--data",
            "/nonexistent/soma-test",
            "--report",
            under_file.to_str().unwrap(),
        ],
        None,
    );
    let err = assert_error(
        "--report under a file",
        &out,
        &["--report", under_file.to_str().unwrap()],
    );
    assert!(!err.contains("/nonexistent/soma-test"), "{err}");
}

#[test]
fn a_resumed_run_keeps_the_epochs_before_it() {
    let Some(data) = common::mnist_dir() else {
        common::skip("MNIST_DIR is not set: the report test is skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (report, ckpt) = (dir.path().join("r"), dir.path().join("m.safetensors"));
    let (r, c) = (report.to_str().unwrap(), ckpt.to_str().unwrap());
    let base = ["--backend", "cpu", "--limit", "1000", "--offline"];
    let first = [&base[..], &["--epochs", "1", "--report", r, "--save", c]].concat();
    assert_ok("first epoch", &run("mnist", &first, Some(&data)));
    let first_line = std::fs::read_to_string(report.join("metrics.jsonl")).unwrap();
    let second = [&base[..], &["--epochs", "2", "--report", r, "--load", c]].concat();
    assert_ok("resumed", &run("mnist", &second, Some(&data)));
    let text = std::fs::read_to_string(report.join("metrics.jsonl")).unwrap();
    let epochs: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, [1, 2], "{text}");
    assert!(
        text.starts_with(&first_line),
        "epoch 1 kept as written:\n{text}"
    );

    // A metrics file that is not one is an error naming it, not silently replaced.
    std::fs::write(report.join("metrics.jsonl"), "not json\n").unwrap();
    let out = run("mnist", &second, Some(&data));
    assert_error("garbage metrics", &out, &["metrics.jsonl line 1"]);
}
