//! The example programs as built executables, for tests that run them as a user would.
//!
//! Cargo builds no example binaries for integration tests, so the first call runs
//! `cargo build --release --example …` (a no-op when they are up to date, never a stale binary)
//! and takes the paths from cargo's JSON messages, which works wherever the target directory is.
//! Include with `#[path = "common/bins.rs"] mod bins;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const EXAMPLES: [&str; 8] = [
    "perceptron",
    "xor",
    "mnist",
    "predict",
    "pictures",
    "adapter",
    "soak",
    "train",
];

/// The path of example `name` (one of [`EXAMPLES`]), built once per test process.
pub fn binary(name: &str) -> PathBuf {
    static BINS: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let bins = BINS.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--release",
            "--message-format=json",
        ]);
        without_cargo_test_env(&mut cmd);
        for name in EXAMPLES {
            cmd.args(["--example", name]);
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build for the examples");
        assert!(
            out.status.success(),
            "building the examples failed ({})",
            out.status
        );
        let mut bins = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let is_example = msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "example"));
            if let (true, Some(name), Some(exe)) = (
                is_example,
                msg["target"]["name"].as_str(),
                msg["executable"].as_str(),
            ) {
                bins.insert(name.to_string(), PathBuf::from(exe));
            }
        }
        bins
    });
    let path = bins
        .get(name)
        .unwrap_or_else(|| panic!("cargo reported no executable for example {name}"));
    assert!(path.is_file(), "{} does not exist", path.display());
    path.clone()
}

/// Removes the variables cargo sets for a test process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`,
/// …) from a nested cargo command. Some build scripts (ring's) re-run when these change, and
/// the outer `cargo test` runs without them: passing them on rebuilt ring and everything above
/// it on every run, once for the nested build and once more for the next outer one.
pub fn without_cargo_test_env(cmd: &mut Command) {
    const SET_FOR_TESTS: [&str; 8] = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if SET_FOR_TESTS.contains(&key.as_ref())
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
        {
            cmd.env_remove(key.as_ref());
        }
    }
}

/// Runs example `name` with `args`, stdin closed, `MNIST_DIR` as given (or removed), and a
/// private `XDG_RUNTIME_DIR` so that GPU probing does not complain.
pub fn run(name: &str, args: &[&str], mnist_dir: Option<&std::path::Path>) -> Output {
    let runtime = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new(binary(name));
    cmd.args(args)
        .stdin(Stdio::null())
        .env("XDG_RUNTIME_DIR", runtime.path());
    match mnist_dir {
        Some(dir) => cmd.env("MNIST_DIR", dir),
        None => cmd.env_remove("MNIST_DIR"),
    };
    cmd.output()
        .unwrap_or_else(|e| panic!("run example {name}: {e}"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a zero exit, showing both streams otherwise.
pub fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} exited with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Asserts exit status 1 with an `error: ` line on stderr containing every one of `needles`,
/// and returns stderr.
pub fn assert_error(what: &str, out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit {}\n{err}",
        out.status
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("error: ") && needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("{what}: no error line containing {needles:?} in:\n{err}"));
    assert!(!line.is_empty());
    err
}
