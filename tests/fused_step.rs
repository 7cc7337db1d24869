//! The fused training step (3 dispatches) next to the general one: which networks take it,
//! that it records exactly its dispatches, that it matches the CPU reference on shapes that fit
//! no block (odd widths, 129-row batches, a short final batch, shifted images, one sigmoid
//! output), and that a run is bit-for-bit reproducible on both paths. The whole-run parity of
//! every optimizer and output on both paths is in `tests/parity.rs`.
//! Needs a GPU adapter (lavapipe will do), like `tests/parity.rs`.

mod common;

use std::sync::Arc;

use common::gpu::{LOSS_REL, context};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use soma::gpu::{GpuBackend, GpuContext, StepPath};
use soma::train::{add_shifts, epoch_order};
use soma::{
    Activation, Backend, CpuBackend, Dataset, Init, Inputs, Network, Normalize, Optimizer, Output,
    Params, Stats, Targets,
};

/// `tests/parity.rs`'s whole-run bound (see its justification there): max |gpu − cpu| over the
/// parameters ≤ 1e-4 of the largest CPU parameter, for SGD and momentum.
const PARAM_REL: f32 = 1e-4;

fn gpu(
    ctx: &Arc<GpuContext>,
    net: &Network,
    p: Params,
    opt: Optimizer,
    path: StepPath,
) -> GpuBackend {
    let mut g = GpuBackend::new(Arc::clone(ctx), net, p, opt).unwrap();
    g.use_path(path).unwrap();
    g
}

/// `len` samples of `inputs` f32 features in [0, 1) and labels of `classes` classes.
fn labelled(len: usize, inputs: usize, classes: usize, seed: u64) -> Dataset {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let x = (0..len * inputs).map(|_| rng.random::<f32>()).collect();
    let labels = (0..len)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    Dataset::new(
        inputs,
        Inputs::F32(x),
        Targets::Labels { labels, classes },
        Normalize {
            scale: 2.0,
            shift: -1.0,
        },
    )
    .unwrap()
}

/// Trains `order` in batches of `batch` on `b`; its parameters and stats.
fn run(
    b: &mut dyn Backend,
    data: &Dataset,
    order: &[u32],
    batch: usize,
    lr: f32,
) -> (Params, Stats) {
    b.set_train_data(data).unwrap();
    b.train_batches(order, batch, lr).unwrap();
    let s = b.take_stats().unwrap();
    (b.params().unwrap(), s)
}

/// CPU against both GPU paths on `order` (whose length need not be a multiple of `batch`).
fn agree(
    what: &str,
    net: &Network,
    opt: Optimizer,
    data: &Dataset,
    order: &[u32],
    batch: usize,
    lr: f32,
) {
    let Some(ctx) = context() else { return };
    let params = Params::init(net, Init::Uniform, 3);
    let (cp, cs) = run(
        &mut CpuBackend::new(net, params.clone(), opt).unwrap(),
        data,
        order,
        batch,
        lr,
    );
    let max = cp
        .layers
        .iter()
        .flat_map(|l| l.w.iter().chain(l.b.iter()))
        .fold(0.0f32, |m, v| m.max(v.abs()));
    for path in [StepPath::Fused, StepPath::General] {
        let mut g = gpu(&ctx, net, params.clone(), opt, path);
        let (gp, gs) = run(&mut g, data, order, batch, lr);
        assert_eq!(g.step_path(), path, "{what}");
        let diff = cp.max_abs_diff(&gp);
        eprintln!("{what} ({}): max |Δparam| = {diff:e}", path);
        assert!(
            diff <= PARAM_REL * max,
            "{what} ({}): params differ by {diff}",
            path
        );
        assert_eq!(cs.samples, gs.samples, "{what}");
        let rel = (cs.loss_sum - gs.loss_sum).abs() / cs.loss_sum.abs();
        assert!(
            rel <= LOSS_REL,
            "{what}: loss cpu {} gpu {}",
            cs.loss_sum,
            gs.loss_sum
        );
    }
}

#[test]
fn the_fused_path_is_taken_where_it_fits() {
    let Some(ctx) = context() else { return };
    let software = ctx.info.device_type == wgpu::DeviceType::Cpu;
    let backend = |sizes: &[usize]| {
        let net = Network::new(sizes, Activation::Relu, Output::SoftmaxCrossEntropy).unwrap();
        let params = Params::init(&net, Init::Uniform, 1);
        GpuBackend::new(Arc::clone(&ctx), &net, params, Optimizer::Sgd).unwrap()
    };
    let mut g = backend(&[784, 64, 64, 10]);
    // By default a software adapter trains on the general path (measured faster there), a
    // hardware one on the fused step; either can be asked for the fused step, which fits.
    if software {
        assert_eq!(g.step_path(), StepPath::General, "{}", g.details());
        assert!(g.fused_refusal().unwrap().contains("software adapter"));
    }
    g.use_path(StepPath::Fused).unwrap();
    assert_eq!(
        (g.step_path(), g.dispatches_per_step()),
        (StepPath::Fused, 3)
    );
    assert!(g.details().contains("fused"), "{}", g.details());
    g.use_path(StepPath::General).unwrap();
    assert_eq!(
        (g.step_path(), g.dispatches_per_step()),
        (StepPath::General, 10)
    );
    // 784 + 4096 + 10 activations and two 4096-wide deltas pass 16 KiB of workgroup memory.
    let mut g = backend(&[784, 4096, 10]);
    assert_eq!(
        (g.step_path(), g.dispatches_per_step()),
        (StepPath::General, 7)
    );
    let err = g.use_path(StepPath::Fused).unwrap_err().to_string();
    assert!(err.contains("workgroup memory"), "{err}");
    // Nine layers: more than the fused records describe.
    let mut g = backend(&[4; 10]);
    assert_eq!(g.step_path(), StepPath::General);
    assert!(g.use_path(StepPath::Fused).is_err());
}

#[test]
fn each_path_records_exactly_its_dispatches() {
    let Some(ctx) = context() else { return };
    let net = Network::new(
        &[784, 64, 64, 10],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let data = common::data::mnist_like(300, 5);
    // 300 rows in batches of 64: four full steps and one of 44.
    let order = epoch_order(data.len(), 1, 0);
    for (path, per_step) in [(StepPath::Fused, 3), (StepPath::General, 3 * 3 + 1)] {
        let mut g = gpu(
            &ctx,
            &net,
            Params::init(&net, Init::Uniform, 1),
            Optimizer::Sgd,
            path,
        );
        g.set_train_data(&data).unwrap();
        let before = g.counters();
        g.train_batches(&order, 64, 0.1).unwrap();
        let after = g.counters();
        assert_eq!(after.steps - before.steps, 5, "{path:?}");
        assert_eq!(
            after.dispatches - before.dispatches,
            5 * per_step,
            "{path:?}"
        );
        assert_eq!(after.submits - before.submits, 1, "{path:?}");
        assert_eq!(g.dispatches_per_step() as u64, per_step, "{path:?}");
    }
}

#[test]
fn odd_widths_and_batches_agree_with_the_cpu() {
    // 13-7-129-5: widths that fit no block or warp; batches of 129 rows with a final one of
    // 64 (the gradient stage's splits then hold 26 and 13 rows, the last fewer).
    let data = labelled(300, 13, 5, 1);
    let net = Network::new(
        &[13, 7, 129, 5],
        Activation::Tanh,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let mut order: Vec<u32> = (0..6).flat_map(|e| epoch_order(data.len(), 2, e)).collect();
    order.truncate(129 * 12 + 64);
    let opt = Optimizer::momentum().with_weight_decay(1e-3);
    agree("13-7-129-5 momentum", &net, opt, &data, &order, 129, 0.05);
    // One sigmoid output (the 0.5 threshold) with MSE, batch 7.
    let net = Network::new(&[13, 7, 1], Activation::LeakyRelu, Output::SigmoidMse).unwrap();
    let values: Vec<f32> = (0..300).map(|i| (i % 3) as f32 * 0.4).collect();
    let Inputs::F32(x) = data.inputs().clone() else {
        unreachable!()
    };
    let d = Dataset::new(
        13,
        Inputs::F32(x),
        Targets::Values { values, width: 1 },
        data.normalize,
    )
    .unwrap();
    agree(
        "13-7-1 sgd",
        &net,
        Optimizer::Sgd,
        &d,
        &order[..7 * 40 + 3],
        7,
        0.5,
    );
    // The same targets as a regression: one linear output, nothing counted correct.
    let net = Network::new(&[13, 7, 1], Activation::LeakyRelu, Output::LinearMse).unwrap();
    agree(
        "13-7-1 linear sgd",
        &net,
        Optimizer::Sgd,
        &d,
        &order[..7 * 40 + 3],
        7,
        0.05,
    );
}

#[test]
fn shifted_images_agree_with_the_cpu() {
    // The fused gather reads the packed u8 pixels with each entry's shift.
    let mut data = common::data::mnist_like(500, 8);
    data.image = Some(soma::shape::Chw::new(1, 28, 28));
    let net = Network::new(
        &[784, 32, 10],
        Activation::Relu,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let mut order = epoch_order(data.len(), 3, 0);
    add_shifts(&mut order, 3, 3, 0);
    agree(
        "shifted 784-32-10",
        &net,
        Optimizer::Sgd,
        &data,
        &order,
        50,
        0.1,
    );
}

#[test]
fn the_same_seed_gives_bit_identical_parameters() {
    let Some(ctx) = context() else { return };
    let data = common::data::mnist_like(700, 9);
    let net = Network::new(
        &[784, 64, 64, 10],
        Activation::Relu,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let opt = Optimizer::adam();
    let order: Vec<u32> = (0..2).flat_map(|e| epoch_order(data.len(), 4, e)).collect();
    for path in [StepPath::Fused, StepPath::General] {
        let runs: Vec<(Params, Stats)> = (0..2)
            .map(|_| {
                let mut g = gpu(&ctx, &net, Params::init(&net, Init::Uniform, 6), opt, path);
                run(&mut g, &data, &order, 256, 1e-3)
            })
            .collect();
        assert!(
            runs[0].0 == runs[1].0,
            "{path:?}: parameters differ between runs"
        );
        assert_eq!(runs[0].1, runs[1].1, "{path:?}: stats differ between runs");
    }
}
