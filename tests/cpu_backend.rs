//! What only the CPU reference backend has: its thread count and the split of a batch into
//! row blocks. Everything the `Backend` trait promises is tested on both backends in
//! `tests/backend_suite.rs`.

mod common;

use common::data::{blobs, train_config as cfg};
use soma::train::{Schedule, TrainConfig, train};
use soma::{Activation, Backend, CpuBackend, Init, Network, Optimizer, Output, Params};

fn max_abs_diff(a: &Params, b: &Params) -> f64 {
    a.max_abs_diff(b) as f64
}

#[test]
fn several_threads_give_the_same_training_as_one() {
    let net = Network::new(
        &[4, 64, 32, 3],
        Activation::Relu,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let data = blobs(512);
    let run = |threads: usize| {
        let mut cpu = CpuBackend::new(&net, Params::init(&net, Init::He, 3), Optimizer::momentum())
            .unwrap()
            .with_threads(threads);
        let config = TrainConfig {
            batch_size: 128,
            ..cfg(2, Schedule::Constant)
        };
        train(&mut cpu, &data, None, &config, 0, |_| {}).unwrap();
        cpu.params().unwrap()
    };
    let (one, four) = (run(1), run(4));
    // Threads may change the order of the sums in the products: rounding-level differences only.
    assert!(
        max_abs_diff(&one, &four) < 1e-4,
        "off by {}",
        max_abs_diff(&one, &four)
    );
}

#[test]
fn uneven_row_blocks_match_one_thread() {
    // Batch 37 splits into blocks of 19 and 18 rows on two threads, and 300 samples leave a
    // final batch of 4, which runs as one block: every path of the split is exercised.
    let net = Network::new(
        &[4, 16, 3],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let data = blobs(300);
    let run = |threads: usize| {
        let mut cpu = CpuBackend::new(
            &net,
            Params::init(&net, Init::Uniform, 5),
            Optimizer::adam(),
        )
        .unwrap()
        .with_threads(threads);
        let config = TrainConfig {
            batch_size: 37,
            ..cfg(2, Schedule::Constant)
        };
        train(&mut cpu, &data, None, &config, 0, |_| {}).unwrap();
        let stats = cpu.evaluate(&data).unwrap();
        (cpu.params().unwrap(), stats)
    };
    let ((one, s1), (two, s2)) = (run(1), run(2));
    // Two partial sums instead of one: rounding-level differences, which Adam's normalised
    // steps keep at the size of lr·ε-scale noise over these 18 steps.
    assert!(
        max_abs_diff(&one, &two) < 1e-4,
        "off by {}",
        max_abs_diff(&one, &two)
    );
    assert_eq!(s1.samples, s2.samples);
    assert!((s1.mean_loss() - s2.mean_loss()).abs() < 1e-4);
}
