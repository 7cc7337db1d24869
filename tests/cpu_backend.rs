//! What only the CPU reference backend has: its thread count and the split of a batch into
//! row blocks. Everything the `Backend` trait promises is tested on both backends in
//! `tests/backend_suite.rs`. The networks here are tiny, so the tests that split batches lower
//! the work a block needs (`with_min_block_flops`); by default such networks stay on one thread.

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
            .with_threads(threads)
            .with_min_block_flops(0);
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
    // final batch of 4, which runs as one block (a row of 4-16-3 is 544 FLOPs: 37 rows hold
    // 20,128, 4 rows 2,176): every path of the split is exercised.
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
        .with_threads(threads)
        .with_min_block_flops(5_000);
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

#[test]
fn a_tiny_networks_batches_stay_on_one_thread_by_default() {
    // 4-16-3 at batch 64 is ~35 kFLOP a step, far under `MIN_BLOCK_FLOPS`: the split would cost
    // more than it gives, so two threads must train bit for bit as one does.
    let net = Network::new(
        &[4, 16, 3],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let data = blobs(256);
    let run = |threads: usize| {
        let mut cpu = CpuBackend::new(&net, Params::init(&net, Init::Uniform, 2), Optimizer::Sgd)
            .unwrap()
            .with_threads(threads);
        let config = TrainConfig {
            batch_size: 64,
            ..cfg(2, Schedule::Constant)
        };
        train(&mut cpu, &data, None, &config, 0, |_| {}).unwrap();
        cpu.params().unwrap()
    };
    assert_eq!(run(1), run(2));
    assert!(64 * net.train_flops_per_sample() < soma::cpu::MIN_BLOCK_FLOPS);
}

#[test]
fn mnist_sized_batches_split_once_each_block_holds_enough_work() {
    // 784-64-64-10 is 229,120 FLOPs a row: 16 rows (3.7 MFLOP) make a block, 8 do not. With a
    // split the sums run in another order, so the parameters differ in their last bits; without
    // one they are identical.
    let net = Network::new(
        &[784, 64, 64, 10],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let data = common::data::mnist_like(64, 3);
    let run = |threads: usize, batch_size: usize| {
        let mut cpu = CpuBackend::new(&net, Params::init(&net, Init::Uniform, 4), Optimizer::Sgd)
            .unwrap()
            .with_threads(threads);
        let config = TrainConfig {
            batch_size,
            ..cfg(1, Schedule::Constant)
        };
        train(&mut cpu, &data, None, &config, 0, |_| {}).unwrap();
        cpu.params().unwrap()
    };
    assert_eq!(
        run(1, 16),
        run(2, 16),
        "batch 16: blocks of 8 rows would hold too little work"
    );
    let (one, two) = (run(1, 32), run(2, 32));
    assert_ne!(one, two, "batch 32: two blocks of 16 rows");
    assert!(
        max_abs_diff(&one, &two) < 1e-5,
        "off by {}",
        max_abs_diff(&one, &two)
    );
}

#[test]
fn a_shorter_batch_split_into_fewer_blocks_still_fits_the_workspaces() {
    // Two cases where a shorter batch runs as one block longer than the blocks of a full one:
    // - training 784-64-10 in batches of 50 (two blocks of 25 rows), the last batch 26 rows,
    //   too little work for two blocks;
    // - evaluating 784-2-10 (6,392 FLOPs a row) in chunks of 1,024 rows (two blocks of 512),
    //   the last chunk 900 rows, one block.
    let run = |hidden: usize, len: usize, batch_size: usize| {
        let net = Network::new(
            &[784, hidden, 10],
            Activation::Sigmoid,
            Output::SoftmaxCrossEntropy,
        )
        .unwrap();
        let data = common::data::mnist_like(len, 9);
        let mut cpu = CpuBackend::new(&net, Params::init(&net, Init::Uniform, 1), Optimizer::Sgd)
            .unwrap()
            .with_threads(2);
        let config = TrainConfig {
            batch_size,
            ..cfg(1, Schedule::Constant)
        };
        train(&mut cpu, &data, None, &config, 0, |_| {}).unwrap();
        assert_eq!(cpu.evaluate(&data).unwrap().samples, len as u64);
    };
    run(64, 126, 50);
    run(2, 1_924, 64);
}
