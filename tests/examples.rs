//! Runs the example programs as a user would, and checks what they print and how they exit.
//!
//! The binaries come from `tests/common/bins.rs`, which builds them once per test process.

#[path = "common/bins.rs"]
mod bins;
mod common;

use std::process::{Command, Output, Stdio};

use bins::{assert_ok, stderr, stdout};

/// Runs example `name` with `args`, stdin closed (so nothing prompts), and returns its output.
fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bins::binary(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run example {name}: {e}"))
}

/// The number at the end of the line starting with `prefix`.
fn number_after(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"));
    let last = line
        .rsplit(&[' ', ':'][..])
        .find(|s| !s.is_empty())
        .unwrap();
    last.parse()
        .unwrap_or_else(|e| panic!("{last:?} in {line:?} is not a number: {e}"))
}

/// The MSE of xor's last line, `final MSE: 0.000100 (accuracy 100%)`.
fn final_mse(text: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("final MSE: "))
        .unwrap_or_else(|| panic!("no final MSE in:\n{text}"));
    let number = line["final MSE: ".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    number
        .parse()
        .unwrap_or_else(|e| panic!("{number:?} is not a number: {e}"))
}

// ---------------------------------------------------------------------------------------------
// perceptron

#[test]
fn perceptron_predicts_the_new_situation_from_arguments() {
    let out = run("perceptron", &["--", "1", "0", "0"]);
    assert_ok("perceptron -- 1 0 0", &out);
    let text = stdout(&out);
    let p = number_after(&text, "Considering new situation [1, 0, 0]");
    assert!(p > 0.99 && p < 1.0, "prediction {p} for [1, 0, 0]");
    // The weights before and after training, with the bias, are printed.
    assert!(
        text.contains("Random starting weights: weights ["),
        "{text}"
    );
    assert!(text.contains("Weights after training: weights ["), "{text}");
    assert!(text.contains("bias"), "{text}");

    // A situation from the training table with output 0.
    let out = run("perceptron", &["0", "1", "1"]);
    assert_ok("perceptron 0 1 1", &out);
    let p = number_after(&stdout(&out), "Considering new situation [0, 1, 1]");
    assert!(p < 0.01, "prediction {p} for [0, 1, 1]");
}

#[test]
fn perceptron_without_arguments_or_terminal_uses_the_default_situation() {
    let out = run("perceptron", &["--iterations", "10000"]);
    assert_ok("perceptron", &out);
    let p = number_after(&stdout(&out), "Considering new situation [1, 0, 0]");
    assert!(p > 0.99, "prediction {p}");
    // Fewer iterations learn less: the count is honoured.
    let out = run("perceptron", &["--iterations", "10"]);
    assert_ok("perceptron --iterations 10", &out);
    let q = number_after(&stdout(&out), "Considering new situation [1, 0, 0]");
    assert!(q < p - 0.05, "10 iterations gave {q}, 10000 gave {p}");
}

#[test]
fn perceptron_rejects_bad_arguments() {
    for args in [
        &["1", "0"][..],
        &["1", "0", "0", "1"],
        &["--lr", "-1"],
        &["x"],
    ] {
        let out = run("perceptron", args);
        assert!(!out.status.success(), "perceptron {args:?} succeeded");
        assert!(stderr(&out).contains("error"), "{args:?}: {}", stderr(&out));
    }
}

// ---------------------------------------------------------------------------------------------
// xor

#[test]
fn xor_converges_with_its_defaults() {
    let out = run("xor", &[]);
    assert_ok("xor", &out);
    let text = stdout(&out);
    let mse = final_mse(&text);
    assert!(mse < 0.01, "final MSE {mse}\n{text}");
    // The loss is printed along the way, and goes down.
    let losses: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("epoch"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(losses.len() >= 5, "{text}");
    assert!(losses.last().unwrap() < &(0.1 * losses[0]), "{losses:?}");
    // The four predictions are on the right side of 0.5.
    for (pair, target) in [
        ("0 xor 0", 0),
        ("0 xor 1", 1),
        ("1 xor 0", 1),
        ("1 xor 1", 0),
    ] {
        let p = number_after(&text, pair);
        assert_eq!((p > 0.5) as i32, target, "{pair}: {p}");
    }
}

#[test]
fn xor_converges_with_every_optimizer() {
    for opt in ["sgd", "momentum", "adam"] {
        let out = run("xor", &["--optimizer", opt, "--seed", "3"]);
        assert_ok(opt, &out);
        let mse = final_mse(&stdout(&out));
        assert!(mse < 0.01, "{opt}: final MSE {mse}");
    }
}

#[test]
fn xor_rejects_bad_flags_and_reports_backend_errors() {
    for args in [
        &["--backend", "tpu"][..],
        &["--optimizer", "rmsprop"],
        &["--lr", "0"],
        &["--epochs", "0"],
    ] {
        let out = run("xor", args);
        assert_eq!(out.status.code(), Some(2), "xor {args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("error"), "{args:?}");
    }
    // The GPU backend either trains or fails with a message (not a panic).
    let out = run("xor", &["--backend", "gpu"]);
    if out.status.success() {
        let text = stdout(&out);
        let line = text.lines().find(|l| l.starts_with("final MSE: ")).unwrap();
        assert!(line.contains("accuracy 100%"), "{text}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    }
}

// ---------------------------------------------------------------------------------------------
// mnist

#[test]
fn mnist_rejects_bad_flags_before_touching_data() {
    for args in [
        &["--batch-size", "0"][..],
        &["--lr", "-1"], // clap reads `-1` as an unknown flag: still a usage error
        &["--lr=-1"],
        &["--lr", "0"],
        &["--hidden", ""],
        &["--hidden", "64,0"],
        &["--backend", "tpu"],
        &["--epochs", "0"],
        &["--activation", "swish"],
    ] {
        // A data directory that does not exist: were the flags accepted, loading would fail
        // with exit code 1 instead of clap's usage-error code 2.
        let mut all = args.to_vec();
        all.extend(["--offline", "--data", "/nonexistent/soma-test"]);
        let out = run("mnist", &all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "mnist {args:?}: {err}");
        assert!(err.starts_with("error: "), "mnist {args:?}: {err}");
        assert!(err.contains("--help"), "mnist {args:?}: {err}");
        assert!(
            stdout(&out).is_empty(),
            "mnist {args:?} printed {}",
            stdout(&out)
        );
    }
    // Sanity of the setup above: with good flags the same command gets past clap and fails on
    // the missing data instead (exit 1).
    let out = run("mnist", &["--offline", "--data", "/nonexistent/soma-test"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// Runs the mnist example with `args` on `$MNIST_DIR` and returns its JSON summary, after
/// checking the exit status and every key.
fn mnist_summary(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(bins::binary("mnist"))
        .args(args)
        .env("MNIST_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run the mnist example");
    assert_ok("mnist", &out);
    let text = stdout(&out);
    let last = text.lines().last().expect("some stdout");
    let json: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last stdout line is not JSON ({e}): {last}"));
    for key in [
        "backend",
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "test_accuracy",
        "train_seconds",
        "samples_per_second",
        "final_train_loss",
    ] {
        assert!(json.get(key).is_some(), "key {key} missing from {last}");
    }
    assert_eq!(json["backend"], "cpu");
    assert_eq!(json["batch_size"], 64);
    assert_eq!(json["optimizer"], "momentum");
    let loss = json["final_train_loss"].as_f64().expect("a number");
    assert!(loss.is_finite() && loss > 0.0, "final train loss {loss}");
    let sps = json["samples_per_second"].as_f64().expect("a number");
    assert!(sps > 0.0, "samples per second {sps}");
    json
}

#[test]
fn mnist_trains_and_prints_a_json_summary() {
    let Some(dir) = common::mnist_dir() else {
        common::skip("MNIST_DIR is not set: the MNIST example runs are skipped");
        return;
    };
    let base = ["--backend", "cpu", "--limit", "6000", "--offline"];
    // One epoch of 6000 images: 94 steps, with the cosine rate decaying to 0 within them, and a
    // sigmoid network that starts slowly; measured 0.676 test accuracy (chance is 0.1).
    let one = mnist_summary(&dir, &[&base[..], &["--epochs", "1"]].concat());
    assert_eq!(one["epochs"], 1);
    let acc = one["test_accuracy"].as_f64().expect("a number");
    assert!(acc > 0.5 && acc <= 1.0, "1 epoch: test accuracy {acc}");
    // Three epochs of the same images: measured 0.891.
    let three = mnist_summary(&dir, &[&base[..], &["--epochs", "3"]].concat());
    assert_eq!(three["epochs"], 3);
    let acc3 = three["test_accuracy"].as_f64().expect("a number");
    assert!(
        acc3 > 0.8 && acc3 > acc,
        "3 epochs: test accuracy {acc3} (1 epoch: {acc})"
    );
}
