//! Small deterministic datasets (and the networks and run settings that go with them) shared
//! by the backend suite, the CPU-only tests and the parity runs.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use soma::train::{Schedule, TrainConfig};
use soma::{Activation, Dataset, Inputs, Network, Normalize, Output, Targets};

/// A learnable synthetic classification problem: 3 classes in 4 dimensions, the class decided
/// by which of three fixed directions the input is most aligned with. Deterministic.
pub fn blobs(n: usize) -> Dataset {
    let dirs = [
        [1.0, 0.5, -0.5, 0.0],
        [-1.0, 0.5, 0.0, 0.5],
        [0.0, -1.0, 0.5, -0.5],
    ];
    let mut x = Vec::with_capacity(n * 4);
    let mut labels = Vec::with_capacity(n);
    // A small LCG keeps the data independent of any crate's random stream.
    let mut s: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    for _ in 0..n {
        let row: Vec<f32> = (0..4).map(|_| next()).collect();
        let scores: Vec<f32> = dirs
            .iter()
            .map(|d| d.iter().zip(&row).map(|(a, b)| a * b).sum())
            .collect();
        let label = (0..3)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        x.extend(row);
        labels.push(label as u32);
    }
    Dataset::new(
        4,
        Inputs::F32(x),
        Targets::Labels { labels, classes: 3 },
        Normalize::IDENTITY,
    )
    .unwrap()
}

/// The network [`blobs`] is learned with.
pub fn blob_net() -> Network {
    Network::new(&[4, 8, 3], Activation::Tanh, Output::SoftmaxCrossEntropy).unwrap()
}

/// The run settings of the [`blobs`] tests: batches of 16, lr 0.1, seed 7, a tick every 3
/// batches (so an epoch spans several `train_batches` calls), no augmentation.
pub fn train_config(epochs: u64, schedule: Schedule) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        lr: 0.1,
        schedule,
        seed: 7,
        batches_per_tick: 3,
        augment: 0,
    }
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
        let c = rng.random_range(0..10u32);
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

/// The four XOR rows.
pub fn xor() -> Dataset {
    Dataset::from_rows(
        &[vec![0., 0.], vec![0., 1.], vec![1., 0.], vec![1., 1.]],
        &[vec![0.], vec![1.], vec![1.], vec![0.]],
    )
    .unwrap()
}
