//! Helpers shared by the integration tests: where the MNIST files are, and how to skip a test
//! that needs something this machine lacks (loudly, or as a failure under `SOMA_STRICT=1`).
#![allow(dead_code)]

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use soma::{Dataset, Inputs, Normalize, Targets};

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

/// MNIST-shaped data: 784 u8 pixels around a per-class template (with an always-black border,
/// as in MNIST, so some weights get exactly zero gradient), 10 classes.
pub fn mnist_like(len: usize, seed: u64) -> Dataset {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let templates: Vec<Vec<f32>> = (0..10)
        .map(|_| (0..784).map(|_| rng.random::<f32>() * 255.0).collect())
        .collect();
    let mut pixels = Vec::with_capacity(len * 784);
    let mut labels = Vec::with_capacity(len);
    for _ in 0..len {
        let c = rng.random_range(0..10u8);
        labels.push(c);
        for (j, &t) in templates[c as usize].iter().enumerate() {
            let (r, col) = (j / 28, j % 28);
            let border = !(2..26).contains(&r) || !(2..26).contains(&col);
            let v = if border {
                0.0
            } else {
                t * 0.6 + rng.random::<f32>() * 100.0
            };
            pixels.push(v.clamp(0.0, 255.0) as u8);
        }
    }
    Dataset::new(
        784,
        Inputs::U8(pixels),
        Targets::Labels {
            labels,
            classes: 10,
        },
        Normalize::UNIT,
    )
    .unwrap()
}

/// Real-valued inputs and targets in (0, 1) for a sigmoid-MSE net.
pub fn regression(len: usize, inputs: usize, outputs: usize, seed: u64) -> Dataset {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let x: Vec<f32> = (0..len * inputs)
        .map(|_| rng.random::<f32>() * 4.0)
        .collect();
    let y: Vec<f32> = (0..len * outputs).map(|_| rng.random::<f32>()).collect();
    Dataset::new(
        inputs,
        Inputs::F32(x),
        Targets::Values {
            values: y,
            width: outputs,
        },
        Normalize {
            scale: 0.5,
            shift: -1.0,
        },
    )
    .unwrap()
}
