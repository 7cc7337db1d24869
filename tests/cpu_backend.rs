//! Behaviour of the CPU reference backend: training, evaluation and prediction, batching,
//! determinism, parameter and optimizer-state access, resuming from a checkpoint, bad input,
//! and one hand-computed step of each optimizer.
//!
//! The hand computations here are in f64 on single-layer networks, where the gradient is
//! short enough to write out: softmax-CE `dz = (softmax(z) - y) / B`, sigmoid-MSE
//! `dz = 2(a - y)/(B·K) · a(1 - a)`, then `dW = Xᵀ·dz`, `db = Σ_rows dz`.

use ndarray::{Array1, Array2, ArrayView2, array};
use soma::checkpoint::{self, Checkpoint};
use soma::train::{Schedule, TrainConfig, train};
use soma::{
    Activation, Backend, CpuBackend, Dataset, Error, Init, Inputs, Network, Normalize, OptimState,
    Optimizer, Output, Params, Targets,
};

/// Parameters of size ≈ 1 after a step, held in f32 (half an ulp ≈ 6e-8), updated by an f32
/// gradient (≈ 1e-7 relative): 1e-5 is two orders above the rounding, far below any error in
/// the math (which moves parameters by ≥ lr·|g| ≈ 1e-2 here).
const PARAM_TOL: f64 = 1e-5;

/// A learnable synthetic classification problem: 3 classes in 4 dimensions, the class decided
/// by which of three fixed directions the input is most aligned with. Deterministic.
fn blobs(n: usize) -> Dataset {
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
        labels.push(label as u8);
    }
    Dataset::new(
        4,
        Inputs::F32(x),
        Targets::Labels { labels, classes: 3 },
        Normalize::IDENTITY,
    )
    .unwrap()
}

fn blob_net() -> Network {
    Network::new(&[4, 8, 3], Activation::Tanh, Output::SoftmaxCrossEntropy).unwrap()
}

fn cfg(epochs: u64, schedule: Schedule) -> TrainConfig {
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

fn max_abs_diff(a: &Params, b: &Params) -> f64 {
    a.max_abs_diff(b) as f64
}

/// The gradient of a single-layer network's batch loss in f64 (see the module docs).
fn hand_grad(
    output: Output,
    p: &Params,
    x: &[Vec<f64>],
    y: &[Vec<f64>],
) -> (Array2<f64>, Array1<f64>) {
    let layer = &p.layers[0];
    let (i, k) = layer.w.dim();
    let b = x.len() as f64;
    let mut gw = Array2::<f64>::zeros((i, k));
    let mut gb = Array1::<f64>::zeros(k);
    for (x, y) in x.iter().zip(y) {
        let z: Vec<f64> = (0..k)
            .map(|o| layer.b[o] as f64 + (0..i).map(|j| x[j] * layer.w[[j, o]] as f64).sum::<f64>())
            .collect();
        let dz: Vec<f64> = match output {
            Output::SoftmaxCrossEntropy => {
                let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = z.iter().map(|z| (z - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                (0..k).map(|o| (e[o] / sum - y[o]) / b).collect()
            }
            Output::SigmoidMse => (0..k)
                .map(|o| {
                    let a = 1.0 / (1.0 + (-z[o]).exp());
                    2.0 * (a - y[o]) / (b * k as f64) * a * (1.0 - a)
                })
                .collect(),
        };
        for o in 0..k {
            gb[o] += dz[o];
            for j in 0..i {
                gw[[j, o]] += x[j] * dz[o];
            }
        }
    }
    (gw, gb)
}

/// Rows of a small regression problem: 5 samples, 3 inputs, 2 targets in [0, 1].
fn small_rows() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let x = vec![
        vec![0.5, -1.0, 0.25],
        vec![1.0, 0.75, -0.5],
        vec![-0.25, 0.5, 1.0],
        vec![0.0, -0.5, -1.0],
        vec![0.75, 0.25, 0.5],
    ];
    let y = vec![
        vec![1.0, 0.0],
        vec![0.0, 1.0],
        vec![0.25, 0.75],
        vec![1.0, 1.0],
        vec![0.5, 0.0],
    ];
    (x, y)
}

fn to64(rows: &[Vec<f32>]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

/// Checks `got` against `p - lr·(gw, gb)` computed in f64.
fn assert_sgd_step(what: &str, p: &Params, got: &Params, lr: f64, g: &(Array2<f64>, Array1<f64>)) {
    let (before, after) = (&p.layers[0], &got.layers[0]);
    for ((&w0, &w1), &gw) in before.w.iter().zip(after.w.iter()).zip(g.0.iter()) {
        let want = w0 as f64 - lr * gw;
        assert!(
            (w1 as f64 - want).abs() < PARAM_TOL,
            "{what}: weight {w1}, expected {want}"
        );
    }
    for ((&b0, &b1), &gb) in before.b.iter().zip(after.b.iter()).zip(g.1.iter()) {
        let want = b0 as f64 - lr * gb;
        assert!(
            (b1 as f64 - want).abs() < PARAM_TOL,
            "{what}: bias {b1}, expected {want}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Training, evaluation, prediction

#[test]
fn training_reduces_the_loss_and_learns_the_problem() {
    let net = blob_net();
    let data = blobs(512);
    let mut cpu = CpuBackend::new(
        &net,
        Params::init(&net, Init::Uniform, 3),
        Optimizer::momentum(),
    )
    .unwrap();
    let before = cpu.evaluate(&data).unwrap();
    let report = train(
        &mut cpu,
        &data,
        Some(&data),
        &cfg(20, Schedule::Constant),
        0,
        |_| {},
    )
    .unwrap();
    let after = cpu.evaluate(&data).unwrap();
    assert_eq!(report.epochs.len(), 20);
    assert!(
        after.mean_loss() < 0.25 * before.mean_loss(),
        "loss {} -> {}",
        before.mean_loss(),
        after.mean_loss()
    );
    assert!(after.accuracy() > 0.9, "accuracy {}", after.accuracy());
    // The per-epoch training loss goes down too, and every sample is counted once per epoch.
    let first = report.epochs[0].train;
    let last = report.epochs[19].train;
    assert_eq!(first.samples, 512);
    assert!(last.mean_loss() < 0.5 * first.mean_loss());
    // The loop's evaluation after the last epoch is the one we just made.
    assert_eq!(report.epochs[19].test, Some(after));
}

#[test]
fn evaluate_changes_neither_parameters_nor_optimizer_state() {
    let net = blob_net();
    let data = blobs(100);
    let mut cpu = CpuBackend::new(
        &net,
        Params::init(&net, Init::Uniform, 1),
        Optimizer::adam(),
    )
    .unwrap();
    cpu.set_train_data(&data).unwrap();
    cpu.train_batches(&(0..100).collect::<Vec<u32>>(), 10, 0.01)
        .unwrap();
    let (p, s) = (cpu.params().unwrap(), cpu.optim_state().unwrap());
    let stats_before = cpu.take_stats().unwrap();
    assert_eq!(stats_before.samples, 100);
    let e1 = cpu.evaluate(&data).unwrap();
    let e2 = cpu.evaluate(&blobs(3000)).unwrap(); // more rows than one evaluation chunk
    assert_eq!(e1.samples, 100);
    assert_eq!(e2.samples, 3000);
    assert_eq!(cpu.params().unwrap(), p);
    assert_eq!(cpu.optim_state().unwrap(), s);
    assert_eq!(cpu.evaluate(&data).unwrap(), e1, "evaluation is repeatable");
    // Evaluation does not count as training.
    assert_eq!(cpu.take_stats().unwrap().samples, 0);
}

#[test]
fn predict_gives_probabilities_for_softmax_and_sigmoids_for_mse() {
    let net = blob_net();
    let mut cpu =
        CpuBackend::new(&net, Params::init(&net, Init::Uniform, 2), Optimizer::Sgd).unwrap();
    let x = Array2::from_shape_fn((1500, 4), |(r, c)| ((r * 7 + c * 3) % 11) as f32 - 5.0);
    let p = cpu.predict(x.view()).unwrap();
    assert_eq!(p.dim(), (1500, 3));
    for row in p.rows() {
        let sum: f32 = row.sum();
        assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
        assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
    // Rows differ (the network is not constant) and a row's output does not depend on the
    // others in its chunk.
    assert_ne!(p.row(0), p.row(1));
    let single = cpu.predict(x.slice(ndarray::s![1200..1201, ..])).unwrap();
    assert_eq!(single.row(0), p.row(1200));

    // Sigmoid-MSE: each output in (0, 1), matching σ(x·w + b) by hand for a single layer.
    let net = Network::new(&[3, 2], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let params = Params::init(&net, Init::Uniform, 4);
    let mut cpu = CpuBackend::new(&net, params.clone(), Optimizer::Sgd).unwrap();
    let x = array![[0.5f32, -1.0, 2.0]];
    let y = cpu.predict(x.view()).unwrap();
    for o in 0..2 {
        let z: f64 = params.layers[0].b[o] as f64
            + (0..3)
                .map(|i| x[[0, i]] as f64 * params.layers[0].w[[i, o]] as f64)
                .sum::<f64>();
        let want = 1.0 / (1.0 + (-z).exp());
        assert!(
            (y[[0, o]] as f64 - want).abs() < 1e-6,
            "{} vs {want}",
            y[[0, o]]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Batching

#[test]
fn one_full_batch_step_matches_the_hand_computed_update() {
    let (x, y) = small_rows();
    let lr = 0.5;
    // Sigmoid-MSE with two outputs, and softmax-CE with labels (argmax of the targets).
    for output in Output::ALL {
        let net = Network::new(&[3, 2], Activation::Sigmoid, output).unwrap();
        let p = Params::init(&net, Init::Uniform, 9);
        let (data, y64) = match output {
            Output::SigmoidMse => (Dataset::from_rows(&x, &y).unwrap(), to64(&y)),
            Output::SoftmaxCrossEntropy => {
                let labels: Vec<u8> = y.iter().map(|r| (r[1] > r[0]) as u8).collect();
                let one_hot = labels
                    .iter()
                    .map(|&l| vec![(l == 0) as u8 as f64, (l == 1) as u8 as f64])
                    .collect();
                let data = Dataset::new(
                    3,
                    Inputs::F32(x.concat()),
                    Targets::Labels { labels, classes: 2 },
                    Normalize::IDENTITY,
                )
                .unwrap();
                (data, one_hot)
            }
        };
        let mut cpu = CpuBackend::new(&net, p.clone(), Optimizer::Sgd).unwrap();
        cpu.set_train_data(&data).unwrap();
        cpu.train_batches(&[0, 1, 2, 3, 4], 5, lr as f32).unwrap();
        let g = hand_grad(output, &p, &to64(&x), &y64);
        assert_sgd_step(output.name(), &p, &cpu.params().unwrap(), lr, &g);
        // A batch larger than the order is one batch of all of it.
        let mut big = CpuBackend::new(&net, p.clone(), Optimizer::Sgd).unwrap();
        big.set_train_data(&data).unwrap();
        big.train_batches(&[0, 1, 2, 3, 4], 64, lr as f32).unwrap();
        assert_eq!(big.params().unwrap(), cpu.params().unwrap());
    }
}

#[test]
fn a_final_partial_batch_is_one_smaller_step() {
    let (x, y) = small_rows();
    let net = Network::new(&[3, 2], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let data = Dataset::from_rows(&x, &y).unwrap();
    let p0 = Params::init(&net, Init::Uniform, 5);
    let lr = 1.0;
    let order = [4u32, 0, 3, 1, 2];

    // Batches of 2: [4, 0], [3, 1], then the remainder [2] as a batch of one.
    let mut cpu = CpuBackend::new(&net, p0.clone(), Optimizer::Sgd).unwrap();
    cpu.set_train_data(&data).unwrap();
    cpu.train_batches(&order, 2, lr as f32).unwrap();
    let stats = cpu.take_stats().unwrap();
    assert_eq!(stats.samples, 5);

    // The same three steps by hand, each with its own B (2, 2, then 1).
    let (x64, y64) = (to64(&x), to64(&y));
    let mut p = p0.clone();
    for batch in order.chunks(2) {
        let xb: Vec<_> = batch.iter().map(|&i| x64[i as usize].clone()).collect();
        let yb: Vec<_> = batch.iter().map(|&i| y64[i as usize].clone()).collect();
        let (gw, gb) = hand_grad(Output::SigmoidMse, &p, &xb, &yb);
        let l = &mut p.layers[0];
        l.w.zip_mut_with(&gw, |w, &g| *w = (*w as f64 - lr * g) as f32);
        l.b.zip_mut_with(&gb, |b, &g| *b = (*b as f64 - lr * g) as f32);
    }
    let got = cpu.params().unwrap();
    assert!(
        max_abs_diff(&got, &p) < PARAM_TOL,
        "partial batches: off by {}",
        max_abs_diff(&got, &p)
    );
    // And the remainder really was a step: stopping after 4 samples gives other parameters.
    let mut four = CpuBackend::new(&net, p0, Optimizer::Sgd).unwrap();
    four.set_train_data(&data).unwrap();
    four.train_batches(&order[..4], 2, lr as f32).unwrap();
    assert!(max_abs_diff(&four.params().unwrap(), &got) > 1e-4);
    // One call over the whole order equals one call per batch, bit for bit.
    let mut split =
        CpuBackend::new(&net, Params::init(&net, Init::Uniform, 5), Optimizer::Sgd).unwrap();
    split.set_train_data(&data).unwrap();
    for batch in order.chunks(2) {
        split.train_batches(batch, 2, lr as f32).unwrap();
    }
    assert_eq!(split.params().unwrap(), got);
}

// ---------------------------------------------------------------------------------------------
// Determinism, parameters and state

#[test]
fn the_same_seed_gives_bit_identical_training() {
    let net = blob_net();
    let data = blobs(300);
    let run = |seed: u64| {
        let mut cpu = CpuBackend::new(
            &net,
            Params::init(&net, Init::Uniform, seed),
            Optimizer::adam(),
        )
        .unwrap();
        let config = TrainConfig {
            seed,
            lr: 0.01,
            ..cfg(3, Schedule::Cosine { floor: 0.1 })
        };
        let report = train(&mut cpu, &data, None, &config, 0, |_| {}).unwrap();
        (cpu.params().unwrap(), report.epochs[2].train)
    };
    let (a, sa) = run(11);
    let (b, sb) = run(11);
    assert_eq!(a, b, "same seed, different parameters");
    assert_eq!(sa.loss_sum.to_bits(), sb.loss_sum.to_bits());
    let (c, _) = run(12);
    assert!(
        max_abs_diff(&a, &c) > 1e-3,
        "a different seed should train differently"
    );
}

#[test]
fn set_params_and_params_round_trip() {
    let net = blob_net();
    let mut cpu =
        CpuBackend::new(&net, Params::init(&net, Init::Uniform, 1), Optimizer::Sgd).unwrap();
    let other = Params::init(&net, Init::He, 99);
    assert_ne!(cpu.params().unwrap(), other);
    cpu.set_params(&other).unwrap();
    assert_eq!(cpu.params().unwrap(), other);
    // The new parameters are the ones used.
    let mut fresh = CpuBackend::new(&net, other.clone(), Optimizer::Sgd).unwrap();
    let x = Array2::from_elem((2, 4), 0.3f32);
    assert_eq!(
        cpu.predict(x.view()).unwrap(),
        fresh.predict(x.view()).unwrap()
    );
    // A wrong shape is refused and leaves the parameters alone.
    let wrong = Params::init(
        &Network::new(&[4, 9, 3], Activation::Tanh, Output::SoftmaxCrossEntropy).unwrap(),
        Init::Uniform,
        1,
    );
    assert!(matches!(cpu.set_params(&wrong), Err(Error::Shape { .. })));
    assert_eq!(cpu.params().unwrap(), other);
    // So is a wrong shape at construction.
    assert!(CpuBackend::new(&net, wrong, Optimizer::Sgd).is_err());
}

#[test]
fn set_optim_state_checks_slots_and_shapes() {
    let net = blob_net();
    let p = Params::init(&net, Init::Uniform, 1);
    let mut cpu = CpuBackend::new(&net, p.clone(), Optimizer::adam()).unwrap();
    let mut state = cpu.optim_state().unwrap();
    assert_eq!(state.slots.len(), 2);
    assert_eq!(state.step, 0);
    // Round trip of a modified state.
    state.step = 17;
    state.slots[1] = Params::init(&net, Init::Uniform, 5);
    cpu.set_optim_state(&state).unwrap();
    assert_eq!(cpu.optim_state().unwrap(), state);
    // Wrong number of slots: one (momentum's) or none (SGD's).
    for slots in [1, 0, 3] {
        let bad = soma::OptimState {
            step: 1,
            slots: vec![p.zeros_like(); slots],
        };
        let err = cpu.set_optim_state(&bad);
        assert!(
            matches!(err, Err(Error::Shape { .. })),
            "{slots} slots: {err:?}"
        );
    }
    // Right count, wrong shape.
    let other = Network::new(&[4, 5, 3], Activation::Tanh, Output::SoftmaxCrossEntropy).unwrap();
    let bad = soma::OptimState {
        step: 1,
        slots: vec![Params::zeros(&other); 2],
    };
    assert!(cpu.set_optim_state(&bad).is_err());
    assert_eq!(
        cpu.optim_state().unwrap(),
        state,
        "a refused state changes nothing"
    );
}

/// A backend that passes everything to a CPU backend, except that the first evaluation (the
/// loop runs one after each epoch when given a test set) snapshots the parameters and optimizer
/// state and then fails: a run of the full configuration interrupted after its first epoch.
struct Interrupted {
    inner: CpuBackend,
    snapshot: Option<(Params, OptimState)>,
}

impl Backend for Interrupted {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn network(&self) -> &Network {
        self.inner.network()
    }
    fn optimizer(&self) -> Optimizer {
        self.inner.optimizer()
    }
    fn set_train_data(&mut self, data: &Dataset) -> soma::Result<()> {
        self.inner.set_train_data(data)
    }
    fn train_batches(&mut self, order: &[u32], batch_size: usize, lr: f32) -> soma::Result<()> {
        self.inner.train_batches(order, batch_size, lr)
    }
    fn take_stats(&mut self) -> soma::Result<soma::Stats> {
        self.inner.take_stats()
    }
    fn evaluate(&mut self, _: &Dataset) -> soma::Result<soma::Stats> {
        self.snapshot = Some((self.inner.params()?, self.inner.optim_state()?));
        Err(Error::arg(
            "run",
            "no interruption",
            "interrupted after epoch 1",
        ))
    }
    fn predict(&mut self, inputs: ArrayView2<f32>) -> soma::Result<Array2<f32>> {
        self.inner.predict(inputs)
    }
    fn params(&mut self) -> soma::Result<Params> {
        self.inner.params()
    }
    fn set_params(&mut self, params: &Params) -> soma::Result<()> {
        self.inner.set_params(params)
    }
    fn optim_state(&mut self) -> soma::Result<OptimState> {
        self.inner.optim_state()
    }
    fn set_optim_state(&mut self, state: &OptimState) -> soma::Result<()> {
        self.inner.set_optim_state(state)
    }
}

/// How the first epoch of the split run is done.
#[derive(Clone, Copy, Debug)]
enum FirstEpoch {
    /// A run configured for 1 epoch, as `--epochs 1 --save` then `--epochs 2 --load` does.
    /// Only exact when the schedule does not depend on the total number of epochs.
    SeparateRun,
    /// The 2-epoch run itself, interrupted after epoch 1.
    Interrupted,
}

/// Two epochs in one go equal one epoch, a checkpoint saved and loaded into a fresh backend,
/// and one more epoch, bit for bit.
fn check_resume(optimizer: Optimizer, schedule: Schedule, first: FirstEpoch) {
    let net = blob_net();
    let data = blobs(200);
    let config = TrainConfig {
        lr: if optimizer.name() == "adam" {
            0.01
        } else {
            0.1
        },
        ..cfg(2, schedule)
    };
    let p0 = Params::init(&net, Init::Uniform, 21);

    let mut straight = CpuBackend::new(&net, p0.clone(), optimizer).unwrap();
    train(&mut straight, &data, None, &config, 0, |_| {}).unwrap();

    let (params, state) = match first {
        FirstEpoch::SeparateRun => {
            let mut cpu = CpuBackend::new(&net, p0, optimizer).unwrap();
            let one = TrainConfig {
                epochs: 1,
                ..config.clone()
            };
            train(&mut cpu, &data, None, &one, 0, |_| {}).unwrap();
            (cpu.params().unwrap(), cpu.optim_state().unwrap())
        }
        FirstEpoch::Interrupted => {
            let mut cpu = Interrupted {
                inner: CpuBackend::new(&net, p0, optimizer).unwrap(),
                snapshot: None,
            };
            let run = train(&mut cpu, &data, Some(&data), &config, 0, |_| {});
            assert!(run.is_err(), "the run should have been interrupted");
            cpu.snapshot.expect("snapshot after epoch 1")
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("after-1.safetensors");
    Checkpoint {
        network: net.clone(),
        params,
        optimizer,
        state,
        epoch: 1,
        model: None,
    }
    .save(&path)
    .unwrap();

    let ckpt = checkpoint::load_into(&path, &net).unwrap();
    assert_eq!(ckpt.epoch, 1);
    assert_eq!(ckpt.optimizer, optimizer);
    assert_eq!(
        ckpt.state.step, 13,
        "200 samples in batches of 16: 13 steps"
    );
    let mut resumed = CpuBackend::new(&net, ckpt.params, ckpt.optimizer).unwrap();
    resumed.set_optim_state(&ckpt.state).unwrap();
    let report = train(&mut resumed, &data, None, &config, ckpt.epoch, |_| {}).unwrap();
    assert_eq!(report.epochs.len(), 1);
    assert_eq!(report.epochs[0].epoch, 2);

    let (a, b) = (straight.params().unwrap(), resumed.params().unwrap());
    assert!(
        a == b,
        "{optimizer} {schedule:?} {first:?}: resumed run differs by {}",
        max_abs_diff(&a, &b)
    );
    assert_eq!(
        straight.optim_state().unwrap(),
        resumed.optim_state().unwrap()
    );
}

#[test]
fn resuming_from_a_checkpoint_is_bit_identical_with_momentum() {
    let opt = Optimizer::momentum().with_weight_decay(1e-3);
    check_resume(opt, Schedule::Constant, FirstEpoch::SeparateRun);
    check_resume(opt, Schedule::Constant, FirstEpoch::Interrupted);
}

#[test]
fn resuming_from_a_checkpoint_is_bit_identical_with_adam() {
    check_resume(
        Optimizer::adam(),
        Schedule::Constant,
        FirstEpoch::SeparateRun,
    );
    check_resume(
        Optimizer::adam(),
        Schedule::Constant,
        FirstEpoch::Interrupted,
    );
}

#[test]
fn resuming_an_interrupted_cosine_run_is_bit_identical() {
    // The cosine rate depends on the step's place in the whole run, so the interrupted run must
    // be the 2-epoch one (a separate 1-epoch run decays to the floor within its one epoch).
    let cosine = Schedule::Cosine { floor: 0.05 };
    check_resume(Optimizer::momentum(), cosine, FirstEpoch::Interrupted);
    check_resume(Optimizer::adam(), cosine, FirstEpoch::Interrupted);
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn data_of_the_wrong_width_is_a_shape_error() {
    let net = blob_net(); // 4 inputs, 3 outputs
    let mut cpu =
        CpuBackend::new(&net, Params::init(&net, Init::Uniform, 1), Optimizer::Sgd).unwrap();
    let wide = Dataset::from_rows(&[vec![0.0; 5]], &[vec![1.0, 0.0, 0.0]]).unwrap();
    let few_targets = Dataset::from_rows(&[vec![0.0; 4]], &[vec![1.0, 0.0]]).unwrap();
    for bad in [&wide, &few_targets] {
        assert!(matches!(cpu.set_train_data(bad), Err(Error::Shape { .. })));
        assert!(matches!(cpu.evaluate(bad), Err(Error::Shape { .. })));
        assert!(matches!(
            train(&mut cpu, bad, None, &cfg(1, Schedule::Constant), 0, |_| {}),
            Err(Error::Shape { .. })
        ));
    }
    let x = Array2::<f32>::zeros((2, 3));
    assert!(matches!(cpu.predict(x.view()), Err(Error::Shape { .. })));
}

#[test]
fn bad_training_arguments_are_errors() {
    let net = blob_net();
    let p = Params::init(&net, Init::Uniform, 1);
    let mut cpu = CpuBackend::new(&net, p.clone(), Optimizer::Sgd).unwrap();
    // No training set yet.
    assert!(matches!(
        cpu.train_batches(&[0], 1, 0.1),
        Err(Error::Argument { .. })
    ));
    cpu.set_train_data(&blobs(10)).unwrap();
    // Batch size 0, from the backend and from the loop.
    assert!(matches!(
        cpu.train_batches(&[0, 1], 0, 0.1),
        Err(Error::Argument { .. })
    ));
    let zero = TrainConfig {
        batch_size: 0,
        ..cfg(1, Schedule::Constant)
    };
    assert!(matches!(
        train(&mut cpu, &blobs(10), None, &zero, 0, |_| {}),
        Err(Error::Argument { .. })
    ));
    // An index past the end of the training set.
    assert!(matches!(
        cpu.train_batches(&[0, 10], 2, 0.1),
        Err(Error::Argument { .. })
    ));
    // None of the refused calls trained anything.
    assert_eq!(cpu.params().unwrap(), p);
    assert_eq!(cpu.take_stats().unwrap().samples, 0);
}

// ---------------------------------------------------------------------------------------------
// Optimizers, one step by hand

#[test]
fn momentum_with_weight_decay_matches_two_hand_computed_steps() {
    let (x, y) = small_rows();
    let net = Network::new(&[3, 2], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let data = Dataset::from_rows(&x, &y).unwrap();
    let p0 = Params::init(&net, Init::Uniform, 8);
    let (mu, wd, lr) = (0.9f32, 0.05f32, 0.5f32);
    let opt = Optimizer::Momentum {
        momentum: mu,
        weight_decay: wd,
    };
    let mut cpu = CpuBackend::new(&net, p0.clone(), opt).unwrap();
    cpu.set_train_data(&data).unwrap();
    let all = [0u32, 1, 2, 3, 4];
    let (x64, y64) = (to64(&x), to64(&y));
    let (mu, wd, lr) = (mu as f64, wd as f64, lr as f64);

    // Step 1: v = g + wd·p; p -= lr·v.  Step 2: v = μ·v + g + wd·p; p -= lr·v.
    let mut p = p0.clone();
    let mut vw = Array2::<f64>::zeros((3, 2));
    let mut vb = Array1::<f64>::zeros(2);
    for step in 1..=2 {
        cpu.train_batches(&all, 5, lr as f32).unwrap();
        let (gw, gb) = hand_grad(Output::SigmoidMse, &p, &x64, &y64);
        let l = &mut p.layers[0];
        for ((w, v), g) in l.w.iter_mut().zip(vw.iter_mut()).zip(gw.iter()) {
            *v = mu * *v + g + wd * *w as f64;
            *w = (*w as f64 - lr * *v) as f32;
        }
        for ((b, v), g) in l.b.iter_mut().zip(vb.iter_mut()).zip(gb.iter()) {
            *v = mu * *v + g + wd * *b as f64;
            *b = (*b as f64 - lr * *v) as f32;
        }
        let got = cpu.params().unwrap();
        assert!(
            max_abs_diff(&got, &p) < PARAM_TOL,
            "step {step}: off by {}",
            max_abs_diff(&got, &p)
        );
        // The velocity is the optimizer state.
        let state = cpu.optim_state().unwrap();
        assert_eq!(state.step, step);
        let v = &state.slots[0].layers[0];
        for (&got, &want) in v.w.iter().zip(vw.iter()).chain(v.b.iter().zip(vb.iter())) {
            assert!(
                (got as f64 - want).abs() < PARAM_TOL,
                "velocity {got} vs {want}"
            );
        }
    }
    // Weight decay mattered: without it the parameters differ.
    let mut plain = CpuBackend::new(&net, p0, Optimizer::momentum()).unwrap();
    plain.set_train_data(&data).unwrap();
    plain.train_batches(&all, 5, lr as f32).unwrap();
    plain.train_batches(&all, 5, lr as f32).unwrap();
    assert!(max_abs_diff(&plain.params().unwrap(), &p) > 1e-3);
}

#[test]
fn adams_first_step_moves_each_parameter_by_lr_times_the_gradient_sign() {
    let (x, y) = small_rows();
    let net = Network::new(&[3, 2], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let data = Dataset::from_rows(&x, &y).unwrap();
    let p0 = Params::init(&net, Init::Uniform, 6);
    let lr = 1e-3;
    let mut cpu = CpuBackend::new(&net, p0.clone(), Optimizer::adam()).unwrap();
    cpu.set_train_data(&data).unwrap();
    cpu.train_batches(&[0, 1, 2, 3, 4], 5, lr as f32).unwrap();
    let got = cpu.params().unwrap();
    let (gw, gb) = hand_grad(Output::SigmoidMse, &p0, &to64(&x), &to64(&y));
    let before = p0.layers[0].w.iter().chain(p0.layers[0].b.iter());
    let after = got.layers[0].w.iter().chain(got.layers[0].b.iter());
    let grads = gw.iter().chain(gb.iter());
    let mut checked = 0;
    for ((&p, &q), &g) in before.zip(after).zip(grads) {
        // m̂ = g and v̂ = g² after one step, so the move is lr·g/(|g| + ε) = lr·sign(g) up to
        // ε/|g| (≤ 1e-4 here) and the f32 rounding of p (≈ 6e-8, i.e. 6e-5 of lr).
        assert!(
            g.abs() > 1e-4,
            "gradient {g} too small to have a clear sign"
        );
        let moved = p as f64 - q as f64;
        let want = lr * g.signum();
        assert!(
            (moved - want).abs() < 1e-3 * lr + 1e-7,
            "moved {moved}, expected {want} (gradient {g})"
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
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

#[test]
fn the_seed_exercises_converge() {
    // The XOR network of the crate docs, with SGD as the tutorials train it.
    let net = Network::new(&[2, 4, 1], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let data = Dataset::from_rows(
        &[vec![0., 0.], vec![0., 1.], vec![1., 0.], vec![1., 1.]],
        &[vec![0.], vec![1.], vec![1.], vec![0.]],
    )
    .unwrap();
    let mut cpu =
        CpuBackend::new(&net, Params::init(&net, Init::Uniform, 0), Optimizer::Sgd).unwrap();
    cpu.set_train_data(&data).unwrap();
    for _ in 0..5000 {
        cpu.train_batches(&[0, 1, 2, 3], 4, 2.0).unwrap();
    }
    let stats = cpu.evaluate(&data).unwrap();
    assert!(stats.mean_loss() < 0.01, "XOR MSE {}", stats.mean_loss());
    assert_eq!(stats.correct, 4);
}
