//! What every [`Backend`] must do, run on both: each test below is written once against a
//! backend factory and instantiated as `cpu::<name>` (the ndarray reference), `gpu::<name>`
//! (wgpu, the backend's own choice of step path) and `gpu_fused::<name>` (the fused step), as
//! Burn's `burn-backend-tests` does. Training, evaluation and prediction, batching,
//! determinism, parameter and optimizer-state access, resuming from a checkpoint, bad input,
//! and one hand-computed step of each optimizer.
//!
//! The GPU halves need an adapter (lavapipe will do): without one they print
//! "SKIPPED: no GPU adapter" and pass, or fail under `SOMA_STRICT=1`.
//!
//! The hand computations here are in f64 on single-layer networks, where the gradient is
//! short enough to write out: softmax-CE `dz = (softmax(z) - y) / B`, sigmoid-MSE
//! `dz = 2(a - y)/(B·K) · a(1 - a)`, then `dW = Xᵀ·dz`, `db = Σ_rows dz`.
//!
//! "Bit-identical" claims compare two runs on the same backend, never the CPU with the GPU
//! (that comparison, with its tolerances, is `tests/parity.rs`).

#[path = "../common/mod.rs"]
mod common;
mod input;
mod state;
mod training;

use input::*;
use state::*;
use training::*;

use std::sync::Arc;

use common::data::{blob_net, blobs, mnist_like, train_config as cfg, xor};
use ndarray::{Array1, Array2, ArrayView2, array};
use soma::checkpoint::{self, Checkpoint};
use soma::gpu::{GpuBackend, StepPath};
use soma::ops::gather::gather_inputs;
use soma::train::{Schedule, TrainConfig, epoch_order, train};
use soma::{
    Activation, Backend, CpuBackend, Dataset, Error, Init, Inputs, Network, Normalize, OptimState,
    Optimizer, Output, Params, Stats, Targets,
};

/// Parameters of size ≈ 1 after a step, held in f32 (half an ulp ≈ 6e-8), updated by an f32
/// gradient (≈ 1e-7 relative on the CPU; the GPU kernels agree with the CPU to a few f32 ulps
/// per op, see tests/gpu_ops.rs, so also ≈ 1e-7): 1e-5 is two orders above the rounding on
/// either backend, far below any error in the math (which moves parameters by ≥ lr·|g| ≈ 1e-2
/// here).
const PARAM_TOL: f64 = 1e-5;
/// A sigmoid output against σ(x·w + b) in f64: the f32 result is within an ulp or two of a
/// value < 1 (≈ 1e-7) on the CPU; WGSL's `exp` may be off by a few ulps more (its accuracy is
/// 3 + 2·|x| ulp), still ≈ 1e-7 for the |z| < 3 here. An error in the math moves it by ≥ 1e-2.
const SIGMOID_TOL: f64 = 1e-6;
/// A probability row's sum: K = 3 or 10 f32 terms, each within a few ulps after the
/// normalising division, sum to 1 within ≈ 1e-6; a missing or doubled term is off by ≥ 1e-2.
const PROB_SUM_TOL: f32 = 1e-5;

/// Builds a backend of the kind under test from a network, its parameters and an optimizer.
type Make = dyn Fn(&Network, Params, Optimizer) -> soma::Result<Box<dyn Backend>>;

fn make_cpu(net: &Network, params: Params, opt: Optimizer) -> soma::Result<Box<dyn Backend>> {
    Ok(Box::new(CpuBackend::new(net, params, opt)?))
}

/// Runs `test` with a GPU factory on the shared context, training on `path` (`None`: the
/// backend's own choice); without an adapter, skips.
fn on_gpu(test: fn(&Make), path: Option<StepPath>) {
    let Some(ctx) = common::gpu::context() else {
        return;
    };
    test(&move |net: &Network, params, opt| {
        let mut g = GpuBackend::new(Arc::clone(&ctx), net, params, opt)?;
        if let Some(path) = path {
            g.use_path(path)?;
        }
        let b: Box<dyn Backend> = Box::new(g);
        Ok(b)
    });
}

/// Instantiates each generic test `fn name(&Make)` as `cpu::name` and `gpu::name`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod cpu {
            $(#[test]
            fn $test() {
                super::$test(&super::make_cpu)
            })*
        }
        mod gpu {
            $(#[test]
            fn $test() {
                super::on_gpu(super::$test, None)
            })*
        }
        /// The fused step, which a software adapter does not take by default.
        mod gpu_fused {
            $(#[test]
            fn $test() {
                super::on_gpu(super::$test, Some(soma::gpu::StepPath::Fused))
            })*
        }
    };
}

on_both_backends!(
    training_reduces_the_loss_and_learns_the_problem,
    evaluate_changes_neither_parameters_nor_optimizer_state,
    predict_gives_probabilities_for_softmax_and_sigmoids_for_mse,
    take_stats_counts_a_call_and_resets,
    the_seed_exercises_converge,
    one_full_batch_step_matches_the_hand_computed_update,
    a_final_partial_batch_is_one_smaller_step,
    the_same_seed_gives_bit_identical_training,
    set_params_and_params_round_trip,
    set_optim_state_checks_slots_and_shapes,
    resuming_from_a_checkpoint_is_bit_identical_with_momentum,
    resuming_from_a_checkpoint_is_bit_identical_with_adam,
    resuming_an_interrupted_cosine_run_is_bit_identical,
    data_of_the_wrong_width_is_a_shape_error,
    bad_training_arguments_are_errors,
    momentum_with_weight_decay_matches_two_hand_computed_steps,
    adams_first_step_moves_each_parameter_by_lr_times_the_gradient_sign,
);

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
            Output::LinearMse => (0..k)
                .map(|o| 2.0 * (z[o] - y[o]) / (b * k as f64))
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
