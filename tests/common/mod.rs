//! Helpers shared by the integration tests: where the MNIST files are, how to skip a test
//! that needs something this machine lacks (loudly, or as a failure under `SOMA_STRICT=1`),
//! the shared GPU context ([`gpu`]) and the synthetic datasets ([`data`]).
#![allow(dead_code)]

pub mod data;
pub mod gpu;

use std::path::PathBuf;

/// The MNIST directory from `$MNIST_DIR`, if set and nonempty.
pub fn mnist_dir() -> Option<PathBuf> {
    std::env::var_os("MNIST_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Whether skipping is forbidden (`SOMA_STRICT=1`, as in CI).
pub fn strict() -> bool {
    std::env::var("SOMA_STRICT").is_ok_and(|v| v == "1")
}

/// Skips the calling test: panics under `SOMA_STRICT=1`, else prints a loud message.
/// The caller returns right after.
pub fn skip(reason: &str) {
    if strict() {
        panic!("SOMA_STRICT=1 forbids skipping: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}
