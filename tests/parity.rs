//! The CPU reference and the GPU backend held together: whole training runs (same init, same
//! batch order) compared parameter by parameter, evaluation and prediction compared after
//! training, and one real MNIST epoch. Every GPU check runs on both training paths: the fused
//! step (3 dispatches) and the general one (`GpuBackend::use_path`). (What each
//! backend must do on its own is the generic suite in tests/backend_suite/.)
//! Needs a GPU adapter (lavapipe will do): without one the tests print
//! "SKIPPED: no GPU adapter" and pass, or fail under `SOMA_STRICT=1`. The full-epoch MNIST test
//! also needs `MNIST_DIR`.

mod common;

use std::sync::Arc;

use common::data::{mnist_like, regression};
use common::gpu::{assert_stats_agree, context};

use ndarray::Array2;
use soma::data::MnistFiles;
use soma::gpu::{GpuBackend, StepPath};
use soma::ops::gather::gather_inputs;
use soma::train::epoch_order;
use soma::{
    Activation, Backend, CpuBackend, Dataset, Init, Inputs, Network, Normalize, Optimizer, Output,
    Params, Stats, Targets,
};

/// Whole-run parameter parity, as max |gpu − cpu| / max |cpu param|. The kernels agree with
/// the CPU to a few f32 ulps per op (see tests/gpu_ops.rs); 100 steps of SGD/momentum carry
/// those differences forward roughly additively (lr·‖g‖ per step), staying near 1e-6 relative.
/// 1e-4 leaves a margin of ~100 while any real defect (a wrong index, a missed bias, an
/// optimizer term) moves parameters by ≥ 1e-2 relative.
const PARAM_REL_SGD: f32 = 1e-4;
/// Adam divides by √v̂: a gradient that is ~0 but not exactly 0 (rounding noise) still moves a
/// parameter by up to lr per step, and its sign can differ between backends. So Adam is held to
/// a bound in units of lr·steps: 0.1% of the largest possible total movement (100·lr). (Seen
/// on lavapipe: ~1e-7 absolute, i.e. ~1e-3 of this bound.)
const PARAM_ABS_ADAM_PER_LR_STEP: f32 = 1e-3;
/// Accuracy after one real MNIST epoch: the task's bound (0.5 points).
const MNIST_ACCURACY_POINTS: f64 = 0.5;

/// Both GPU training paths.
const PATHS: [StepPath; 2] = [StepPath::Fused, StepPath::General];

/// A GPU backend training on `path` (every network of these tests fits the fused step).
fn gpu(net: &Network, params: Params, opt: Optimizer, path: StepPath) -> Option<GpuBackend> {
    let ctx = context()?;
    let mut g = GpuBackend::new(ctx, net, params, opt).expect("GPU backend");
    g.use_path(path)
        .expect("every network here fits the fused step, or asks for the general one");
    assert_eq!(g.step_path(), path, "{net}: {:?}", g.fused_refusal());
    Some(g)
}

/// A step's dispatches on `path`: fused 3, general `3·layers + 1` for a dense stack; a CNN's
/// are counted by hand in its test.
fn dispatches(path: StepPath, net: &Network, backend: &GpuBackend) -> usize {
    match path {
        StepPath::Fused => 3,
        StepPath::General if net.dense_sizes().is_some() => 3 * net.nodes().len() + 1,
        StepPath::General => backend.dispatches_per_step(),
    }
}

/// (cpu params and stats), (gpu params and stats), and the GPU backend.
type Run = ((Params, Stats), (Params, Stats), Option<GpuBackend>);

/// Trains the same init with the same order on both backends; returns (cpu, gpu) params and
/// stats, or None without an adapter.
fn train_both(
    net: &Network,
    opt: Optimizer,
    data: &Dataset,
    (steps, batch, lr): (usize, usize, f32),
    path: StepPath,
) -> Option<Run> {
    let params = Params::init(net, Init::Uniform, 42);
    let mut g = gpu(net, params.clone(), opt, path)?;
    let mut c = CpuBackend::new(net, params, opt).unwrap();
    // Whole epochs plus a partial one, so the call also runs a smaller final batch.
    let mut order = Vec::new();
    let mut epoch = 0;
    while order.len() < steps * batch {
        order.extend(epoch_order(data.len(), 7, epoch));
        epoch += 1;
    }
    order.truncate(steps * batch - batch / 2);
    c.set_train_data(data).unwrap();
    g.set_train_data(data).unwrap();
    c.train_batches(&order, batch, lr).unwrap();
    g.train_batches(&order, batch, lr).unwrap();
    let cs = c.take_stats().unwrap();
    let gs = g.take_stats().unwrap();
    Some((
        (c.params().unwrap(), cs),
        (g.params().unwrap(), gs),
        Some(g),
    ))
}

fn max_abs(p: &Params) -> f32 {
    p.layers
        .iter()
        .flat_map(|l| l.w.iter().chain(l.b.iter()))
        .fold(0.0, |m, v| m.max(v.abs()))
}

fn check_run(what: &str, net: &Network, opt: Optimizer, data: &Dataset, batch: usize, lr: f32) {
    for path in PATHS {
        check_run_on(
            &format!("{what} ({})", path),
            net,
            opt,
            data,
            batch,
            lr,
            path,
        );
    }
}

fn check_run_on(
    what: &str,
    net: &Network,
    opt: Optimizer,
    data: &Dataset,
    batch: usize,
    lr: f32,
    path: StepPath,
) {
    let steps = 100;
    let Some(((cp, cs), (gp, gs), g)) = train_both(net, opt, data, (steps, batch, lr), path) else {
        return;
    };
    let diff = cp.max_abs_diff(&gp);
    match opt {
        Optimizer::Adam { .. } => {
            let bound = PARAM_ABS_ADAM_PER_LR_STEP * lr * steps as f32;
            assert!(
                diff <= bound,
                "{what}: params differ by {diff} (bound {bound})"
            );
        }
        _ => {
            let bound = PARAM_REL_SGD * max_abs(&cp);
            assert!(
                diff <= bound,
                "{what}: params differ by {diff} (bound {bound})"
            );
        }
    }
    assert!(diff > 0.0 || cp == gp);
    assert_stats_agree(what, cs, gs);
    let g = g.expect("gpu backend");
    let c = g.counters();
    assert_eq!(c.steps, steps as u64, "{what}: steps");
    assert_eq!(g.step_path(), path, "{what}: path");
    let per_step = dispatches(path, net, &g);
    assert_eq!(g.dispatches_per_step(), per_step, "{what}");
    assert_eq!(
        c.dispatches,
        (steps * per_step) as u64,
        "{what}: dispatches"
    );
    assert_eq!(
        c.submits,
        steps.div_ceil(256) as u64,
        "{what}: one submit per 256 steps"
    );
    eprintln!(
        "{what}: max |Δparam| = {diff:e}, loss cpu {} gpu {}",
        cs.loss_sum, gs.loss_sum
    );
}

fn optimizers() -> [(Optimizer, f32, Activation); 3] {
    [
        (Optimizer::Sgd, 0.1, Activation::Sigmoid),
        (
            Optimizer::momentum().with_weight_decay(5e-4),
            0.05,
            Activation::Relu,
        ),
        (
            Optimizer::adam().with_weight_decay(1e-4),
            1e-3,
            Activation::LeakyRelu,
        ),
    ]
}

#[test]
fn softmax_training_runs_agree_for_every_optimizer() {
    let data = mnist_like(2000, 11);
    for (opt, lr, act) in optimizers() {
        let net = Network::new(&[784, 64, 64, 10], act, Output::SoftmaxCrossEntropy).unwrap();
        check_run(
            &format!("softmax-CE {net} {opt:?}"),
            &net,
            opt,
            &data,
            64,
            lr,
        );
    }
}

/// A dense stack whose layers have activations of their own (one linear) trains alike on the
/// CPU and on both GPU paths: the fused step takes each layer's activation code. Smooth
/// activations only: at a ReLU's kink a pre-activation within rounding of 0 takes f′ = 0 on one
/// backend and 1 on the other, a discrete step that the bounds above do not cover.
#[test]
fn dense_layers_with_their_own_activations_agree() {
    let data = mnist_like(2000, 13);
    let image = soma::shape::Chw::new(1, 28, 28);
    let text = "dense64,sigmoid,dense32,tanh,dense16,dense10";
    let net = soma::layers::from_string(image, text, Output::SoftmaxCrossEntropy).unwrap();
    assert_eq!(net.dense_stack(), None, "no shared hidden activation");
    for (opt, lr, _) in optimizers() {
        check_run(&format!("{net} {opt:?}"), &net, opt, &data, 64, lr);
    }
}

#[test]
fn mse_training_runs_agree_for_every_optimizer() {
    let data = regression(95, 8, 3, 12);
    for output in [Output::SigmoidMse, Output::LinearMse] {
        for (opt, lr, _) in optimizers() {
            let net = Network::new(&[8, 16, 3], Activation::Tanh, output).unwrap();
            check_run(&format!("{output} {net} {opt:?}"), &net, opt, &data, 10, lr);
        }
    }
}

#[test]
fn evaluation_agrees_after_training() {
    let data = mnist_like(1500, 13);
    let net = Network::new(
        &[784, 64, 10],
        Activation::Tanh,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let run = train_both(&net, Optimizer::Sgd, &data, (20, 32, 0.1), StepPath::Fused);
    let Some((_, (gp, _), Some(mut g))) = run else {
        return;
    };
    // Evaluate the GPU's parameters on both, so only the forward passes are compared; 1500
    // rows span two evaluation chunks.
    let mut c = CpuBackend::new(&net, gp, Optimizer::Sgd).unwrap();
    let cs = c.evaluate(&data).unwrap();
    let gs = g.evaluate(&data).unwrap();
    assert_stats_agree("evaluation", cs, gs);
    let mut x = Array2::zeros((1100, 784));
    gather_inputs(&data, &(0..1100).collect::<Vec<u32>>(), x.view_mut());
    let (pc, pg) = (c.predict(x.view()).unwrap(), g.predict(x.view()).unwrap());
    let d = (&pc - &pg).mapv(f32::abs).fold(0.0f32, |m, &v| m.max(v));
    assert!(d < 1e-5, "predictions differ by {d}");
}

#[test]
fn one_mnist_epoch_reaches_cpu_accuracy() {
    let Some(dir) = common::mnist_dir() else {
        common::skip("MNIST_DIR is not set");
        return;
    };
    let Some(ctx) = context() else { return };
    let files = match MnistFiles::in_dir(&dir) {
        Ok(f) => f,
        Err(missing) => {
            common::skip(&format!(
                "MNIST files missing in {}: {missing:?}",
                dir.display()
            ));
            return;
        }
    };
    let (train, test) = files.load().unwrap();
    let net = Network::new(
        &[784, 64, 64, 10],
        Activation::Relu,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let params = Params::init(&net, Init::Uniform, 1);
    let mut c = CpuBackend::new(&net, params.clone(), Optimizer::Sgd).unwrap();
    let mut fused =
        GpuBackend::new(Arc::clone(&ctx), &net, params.clone(), Optimizer::Sgd).unwrap();
    fused.use_path(StepPath::Fused).unwrap();
    let mut general = GpuBackend::new(ctx, &net, params, Optimizer::Sgd).unwrap();
    general.use_path(StepPath::General).unwrap();
    let order = epoch_order(train.len(), 1, 0);
    let mut accuracy = Vec::new();
    for b in [&mut c as &mut dyn Backend, &mut fused, &mut general] {
        let t = std::time::Instant::now();
        b.set_train_data(&train).unwrap();
        b.train_batches(&order, 64, 0.1).unwrap();
        let s = b.take_stats().unwrap();
        let e = b.evaluate(&test).unwrap();
        eprintln!(
            "{}: epoch loss {:.4}, test accuracy {:.2}% in {:.1?}",
            b.name(),
            s.mean_loss(),
            100.0 * e.accuracy(),
            t.elapsed()
        );
        accuracy.push(100.0 * e.accuracy());
    }
    assert!(accuracy[0] > 90.0, "CPU learns: {}", accuracy[0]);
    for (path, gpu) in PATHS.iter().zip(&accuracy[1..]) {
        assert!(
            (accuracy[0] - gpu).abs() <= MNIST_ACCURACY_POINTS,
            "test accuracy cpu {:.2}% vs gpu ({}) {gpu:.2}%",
            accuracy[0],
            path
        );
    }
    assert_eq!(fused.step_path(), StepPath::Fused);
    assert_eq!(general.step_path(), StepPath::General);
}

/// CNN runs are held to the dense runs' bounds over their first [`CNN_EXACT_STEPS`] steps, and
/// over 100 steps to [`CNN_PARAM_L2_REL`] of the parameters' norm. A max-pool is discontinuous
/// where two values of a window tie: the CPU's convolution (im2col + GEMM) and the GPU's (a
/// thread per output) round their sums differently, and once a near-tie falls the other way
/// on one backend, that window's gradient goes to another pixel — a jump of the size of the
/// gradient in a few weights, which momentum and Adam carry on. Measured on lavapipe (Vulkan
/// and GL alike) with `tfjs`, momentum at lr 0.02: max |Δparam| ≤ 1.4e-7 through step 80, then
/// 1e-5 at step 90, the jump of a flipped window, growing from there. So every weight is
/// compared before that can happen, and the whole run by its norm (2e-3): the runs below give
/// 8e-8 to 1.1e-7 without a flip and 1.3e-3 for `tfjs` with Adam, which had one, while a defect
/// (a wrong tap, a missed bias, a stale arg-max, an optimizer term) moves it by ≥ 1e-2.
const CNN_EXACT_STEPS: usize = 5;
const CNN_PARAM_L2_REL: f64 = 2e-3;

fn l2(p: &Params) -> f64 {
    p.layers
        .iter()
        .flat_map(|l| l.w.iter().chain(l.b.iter()))
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt()
}

fn l2_diff(a: &Params, b: &Params) -> f64 {
    let mut d = a.clone();
    for (x, y) in d.layers.iter_mut().zip(&b.layers) {
        x.w -= &y.w;
        x.b -= &y.b;
    }
    l2(&d)
}

fn check_cnn_run(what: &str, net: &Network, opt: Optimizer, data: &Dataset, lr: f32) {
    let path = StepPath::General;
    let Some(((cp, _), (gp, _), _)) = train_both(net, opt, data, (CNN_EXACT_STEPS, 33, lr), path)
    else {
        return;
    };
    let diff = cp.max_abs_diff(&gp);
    let bound = match opt {
        Optimizer::Adam { .. } => PARAM_ABS_ADAM_PER_LR_STEP * lr * CNN_EXACT_STEPS as f32,
        _ => PARAM_REL_SGD * max_abs(&cp),
    };
    assert!(
        diff <= bound,
        "{what}: {CNN_EXACT_STEPS} steps: params differ by {diff} (bound {bound})"
    );
    let steps = 100;
    let Some(((cp, cs), (gp, gs), g)) = train_both(net, opt, data, (steps, 33, lr), path) else {
        return;
    };
    let rel = l2_diff(&cp, &gp) / l2(&cp);
    assert!(
        rel <= CNN_PARAM_L2_REL,
        "{what}: ‖Δparams‖ / ‖params‖ = {rel:e}"
    );
    assert_stats_agree(what, cs, gs);
    let mut g = g.expect("gpu backend");
    let c = g.counters();
    assert_eq!(c.steps, steps as u64, "{what}: steps");
    assert_eq!(
        c.dispatches,
        (steps * g.dispatches_per_step()) as u64,
        "{what}: dispatches"
    );
    // Evaluation with the GPU's parameters (a batch norm's running statistics included) on
    // both: the evaluation forward passes agree.
    let mut cpu = CpuBackend::new(net, gp.clone(), opt).unwrap();
    let (ce, ge) = (cpu.evaluate(data).unwrap(), g.evaluate(data).unwrap());
    assert_stats_agree(&format!("{what}: evaluation"), ce, ge);
    assert_eq!(c.submits, 1, "{what}: one submit for 100 steps");
    eprintln!(
        "{what}: {CNN_EXACT_STEPS} steps max |Δparam| = {diff:e}; 100 steps ‖Δ‖/‖p‖ = {rel:e}, max |Δ| = {:e}, loss cpu {} gpu {}",
        cp.max_abs_diff(&gp),
        cs.loss_sum,
        gs.loss_sum
    );
}

/// CNNs on the general path (the fused step is for dense stacks): the `tfjs` preset with each
/// optimizer, and two layer lists that reach the other branches: a same-padded convolution
/// into a valid one (a convolution's input gradient ⊙ tanh′), sigmoid before a pool, two dense
/// layers after; and a pool on the images with a convolution last (the first dense layer's
/// input gradient ⊙ relu′, a pool whose input gradient is never formed). Bounds: see
/// [`CNN_PARAM_L2_REL`]. The dispatch counts are counted by hand from the plan.
#[test]
fn cnn_training_runs_agree_for_every_optimizer() {
    let data = mnist_like(600, 17);
    let image = soma::shape::Chw::new(1, 28, 28);
    let net = |layers: &str| {
        soma::layers::from_string(image, layers, Output::SoftmaxCrossEntropy).unwrap()
    };
    let tfjs = net(soma::layers::preset("tfjs").unwrap());
    let runs = [
        (tfjs.clone(), Optimizer::Sgd, 0.05, 14),
        (
            tfjs.clone(),
            Optimizer::momentum().with_weight_decay(5e-4),
            0.01,
            14,
        ),
        (tfjs, Optimizer::adam().with_weight_decay(1e-4), 1e-3, 14),
        (
            net("conv3k3same,tanh,conv5k3,sigmoid,pool,dense12,relu,dense10"),
            Optimizer::momentum(),
            0.05,
            15,
        ),
        (net("pool,conv4k3,relu,dense10"), Optimizer::adam(), 2e-3, 9),
        // Activations of the layers' own: a linear convolution before a pool (whose input
        // gradient is then not multiplied by any f′), a linear hidden dense layer.
        (
            net("conv4k3,pool,conv6k3same,leaky-relu,dense16,tanh,dense12,dense10"),
            Optimizer::momentum(),
            0.02,
            18,
        ),
        // Dropout on an image and on values: the same masks on both backends.
        (
            net("conv4k3same,relu,pool,dropout0.25,conv6k3,relu,dense16,relu,dropout0.5,dense10"),
            Optimizer::momentum(),
            0.02,
            19,
        ),
        // Batch norm per channel (conv, bn, tanh) and per feature, with dropout before the head.
        // Momentum, not Adam: the gradient of a bias right before a batch norm is exactly 0,
        // computed as rounding noise, which Adam would turn into steps of lr either way. Tanh,
        // not ReLU: normalised pre-activations crowd round 0, and with ReLUs a kink falls the
        // other way on one backend within the 100 steps, where with tanh the runs drift
        // smoothly (BENCHMARKS.md, "The new layers").
        (
            net("conv4k3same,bn,tanh,pool,conv6k3,bn,tanh,dense16,bn,tanh,dropout0.5,dense10"),
            Optimizer::momentum(),
            0.02,
            32,
        ),
        // Average pools: 2×2 with an activation fused after it, and global.
        (
            net("conv4k3same,relu,avgpool,sigmoid,conv6k3,leaky-relu,gap,dense10"),
            Optimizer::adam(),
            2e-3,
            14,
        ),
    ];
    for (net, opt, lr, dispatches) in runs {
        let what = format!("{net} {opt:?}");
        let Some(g) = gpu(
            &net,
            Params::init(&net, Init::Uniform, 42),
            opt,
            StepPath::General,
        ) else {
            return;
        };
        assert_eq!(g.dispatches_per_step(), dispatches, "{what}");
        drop(g);
        check_cnn_run(&what, &net, opt, &data, lr);
    }
}

/// Colour images (3 channels, each mapped by its own statistics, as `train` maps a picture
/// folder) through a CNN and a dense stack, with the order's entries shifted (augmentation):
/// the gathers move and map every channel alike on both backends, over the bounds above. A
/// dense stack on such images trains on the general program even where the fused step was
/// asked for (its gather reads one channel's map and plane), and says so after training.
#[test]
fn colour_images_with_shifts_agree() {
    let (len, image) = (300usize, soma::shape::Chw::new(3, 12, 12));
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let labels: Vec<u32> = (0..len).map(|_| (next() % 4) as u32).collect();
    // Each class lights a different channel and corner, so the runs learn something.
    let pixels: Vec<u8> = labels
        .iter()
        .flat_map(|&l| {
            let mut px = vec![0u8; image.len()];
            for (i, p) in px.iter_mut().enumerate() {
                let (c, y, x) = (i / 144, (i % 144) / 12, i % 12);
                let lit = c == (l as usize % 3) && (y < 6) == (l < 2) && (x < 6) == (l % 2 == 0);
                *p = if lit { 180 } else { 20 } + (next() % 60) as u8;
            }
            px
        })
        .collect();
    let mut data = Dataset::new(
        image.len(),
        Inputs::U8(pixels.clone()),
        Targets::Labels { labels, classes: 4 },
        Normalize::IDENTITY,
    )
    .unwrap();
    data.image = Some(image);
    data.set_channel_maps(soma::data::split::channel_maps(&pixels, image))
        .unwrap();
    let nets = [
        soma::layers::from_string(image, "conv4k3same,relu,pool,dense4", Output::default())
            .unwrap(),
        Network::new(&[image.len(), 16, 4], Activation::Tanh, Output::default()).unwrap(),
    ];
    for net in nets {
        let (opt, lr) = (Optimizer::momentum(), 0.02);
        let params = Params::init(&net, Init::Uniform, 42);
        let path = if net.dense_sizes().is_some() {
            StepPath::Fused
        } else {
            StepPath::General
        };
        let Some(mut g) = gpu(&net, params.clone(), opt, path) else {
            return;
        };
        let mut c = CpuBackend::new(&net, params, opt).unwrap();
        let mut order = epoch_order(len, 3, 0);
        soma::train::add_shifts(&mut order, 2, 3, 0);
        order.extend(epoch_order(len, 3, 1));
        c.set_train_data(&data).unwrap();
        g.set_train_data(&data).unwrap();
        c.train_batches(&order, 32, lr).unwrap();
        g.train_batches(&order, 32, lr).unwrap();
        let (cs, gs) = (c.take_stats().unwrap(), g.take_stats().unwrap());
        let (cp, gp) = (c.params().unwrap(), g.params().unwrap());
        let what = format!("{net} on {image} images");
        let rel = l2_diff(&cp, &gp) / l2(&cp);
        assert!(
            rel <= CNN_PARAM_L2_REL,
            "{what}: ‖Δparams‖ / ‖params‖ = {rel:e}"
        );
        assert_stats_agree(&what, cs, gs);
        assert!(cs.accuracy() > 0.5, "{what}: it learns ({})", cs.accuracy());
        if net.dense_sizes().is_some() {
            assert_eq!(g.step_path(), StepPath::General, "{what}");
        }
        eprintln!(
            "{what}: ‖Δ‖/‖p‖ = {rel:e}, max |Δ| = {:e}",
            cp.max_abs_diff(&gp)
        );
    }
}
