//! Finite-difference gradient checks of the CPU backend, for every hidden activation × output;
//! and of the convolution and max-pool ops on their own (the last section, with its own oracle).
//!
//! The oracle is an independent forward pass written plainly below in f64 (no code shared with
//! the library): the loss of a batch is the mean over samples of `-ln softmax(z)[y]` or of
//! `mean_k (sigmoid(z_k) - y_k)²`. Its central differences are compared with the gradient the
//! backend applies in one plain-SGD step.
//!
//! How the analytic gradient is read out: with `Optimizer::Sgd` and a learning rate `LR` that
//! is a power of two, one step computes `p' = p - LR·g`, where `LR·g` is exact in f32, so
//! `g = (p - p') / LR` up to the one rounding of the subtraction. Computing `p - p'` in f64 is
//! exact, so that rounding (at most half an ulp of `p'`) is the only error: a large `LR` makes
//! `|p'| ≈ LR·|g|` and the read-out exact to f32's relative precision (2^-24), whereas a small
//! `LR` would divide an ulp of `p` by `LR` and amplify it.

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use soma::{
    Activation, Backend, CpuBackend, Dataset, Inputs, Network, Normalize, Optimizer, Output,
    Params, Targets, Weights,
};

/// Learning rate of the read-out step: a power of two (exact scaling), large so that the
/// rounding of `p - LR·g` is relative to `g`, not to `p` (see the module docs).
const LR: f32 = 65536.0;

/// Step of the central differences, in f64: truncation error O(h²·f''') ≈ 1e-10 and
/// cancellation error ≈ 1e-16/h ≈ 1e-11, both far below the tolerance.
const H: f64 = 1e-5;

/// Relative part of the gradient tolerance `|a - n| ≤ GRAD_ATOL + GRAD_RTOL · max(|a|, |n|)`:
/// the analytic side is computed in f32 (≈ 6e-8 relative per operation, a few dozen operations
/// deep), the numeric side in f64 is good to ≈ 1e-9; measured errors stay below 1e-5 relative,
/// while a real mistake (a wrong factor, derivative or index; even a leaky slope off by 10%)
/// shows up as ≥ 1e-3.
const GRAD_RTOL: f64 = 1e-4;

/// Absolute part: f32 sums over the batch of terms of size ≈ 0.1 that cancel leave absolute
/// errors of a few 1e-9 on small gradients (measured: at most 1.3e-8).
const GRAD_ATOL: f64 = 1e-7;

/// The backend's reported loss is a sum of f32 per-sample losses (each correct to ≈ 1e-7
/// relative, accumulated in f64): 1e-5 relative is two orders of magnitude above that.
const LOSS_RTOL: f64 = 1e-5;

/// ReLU kinks: every pre-activation of the batch must be at least this far from 0, so that a
/// perturbation of `H` (moving any `z` by at most `H · max|input|` ≪ this) never crosses a kink.
const KINK_MARGIN: f64 = 1e-3;

// ---------------------------------------------------------------------------------------------
// The f64 oracle

fn act64(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Tanh => z.tanh(),
        Activation::Relu => z.max(0.0),
        Activation::LeakyRelu => {
            if z > 0.0 {
                z
            } else {
                0.01 * z
            }
        }
    }
}

/// Parameters in f64: per layer, `w[i][o]` and `b[o]`.
#[derive(Clone)]
struct P64 {
    layers: Vec<(Vec<Vec<f64>>, Vec<f64>)>,
}

impl P64 {
    fn from(p: &Params) -> Self {
        P64 {
            layers: p
                .layers
                .iter()
                .map(|l| {
                    let w =
                        l.w.rows()
                            .into_iter()
                            .map(|r| r.iter().map(|&v| v as f64).collect())
                            .collect();
                    let b = l.b.iter().map(|&v| v as f64).collect();
                    (w, b)
                })
                .collect(),
        }
    }

    /// Every scalar as a mutable reference, in the order `layer, w row-major, then b`.
    fn scalars_mut(&mut self) -> Vec<&mut f64> {
        let mut out = Vec::new();
        for (w, b) in &mut self.layers {
            for row in w.iter_mut() {
                out.extend(row.iter_mut());
            }
            out.extend(b.iter_mut());
        }
        out
    }
}

/// What the oracle needs to know about a problem.
struct Problem {
    sizes: Vec<usize>,
    hidden: Activation,
    output: Output,
    x: Vec<Vec<f64>>,
    /// One-hot for softmax, values in [0, 1] for MSE.
    y: Vec<Vec<f64>>,
}

impl Problem {
    /// Pre-activations of every layer for every sample (for the kink check), and the loss.
    fn forward(&self, p: &P64) -> (Vec<Vec<Vec<f64>>>, f64) {
        let layers = self.sizes.len() - 1;
        let mut all_z = vec![Vec::new(); layers];
        let mut total = 0.0;
        for (x, y) in self.x.iter().zip(&self.y) {
            let mut a = x.clone();
            for (l, (w, b)) in p.layers.iter().enumerate() {
                let z: Vec<f64> = (0..b.len())
                    .map(|o| b[o] + (0..a.len()).map(|i| a[i] * w[i][o]).sum::<f64>())
                    .collect();
                all_z[l].push(z.clone());
                a = if l + 1 < layers {
                    z.iter().map(|&z| act64(self.hidden, z)).collect()
                } else {
                    z
                };
            }
            total += match self.output {
                Output::SoftmaxCrossEntropy => {
                    let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let lse = max + a.iter().map(|&z| (z - max).exp()).sum::<f64>().ln();
                    a.iter().zip(y).map(|(&z, &y)| y * (lse - z)).sum::<f64>()
                }
                Output::SigmoidMse => {
                    a.iter()
                        .zip(y)
                        .map(|(&z, &y)| {
                            let s = 1.0 / (1.0 + (-z).exp());
                            (s - y) * (s - y)
                        })
                        .sum::<f64>()
                        / a.len() as f64
                }
                Output::LinearMse => {
                    a.iter()
                        .zip(y)
                        .map(|(&z, &y)| (z - y) * (z - y))
                        .sum::<f64>()
                        / a.len() as f64
                }
            };
        }
        (all_z, total / self.x.len() as f64)
    }

    fn loss(&self, p: &P64) -> f64 {
        self.forward(p).1
    }

    /// Central differences of the loss for every scalar, in `P64::scalars_mut` order.
    fn numeric_grad(&self, p: &P64) -> Vec<f64> {
        let n = p.clone().scalars_mut().len();
        (0..n)
            .map(|k| {
                let mut plus = p.clone();
                *plus.scalars_mut()[k] += H;
                let mut minus = p.clone();
                *minus.scalars_mut()[k] -= H;
                (self.loss(&plus) - self.loss(&minus)) / (2.0 * H)
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Building random problems

/// A random problem for `sizes` with `B` ∈ 4..=7 samples, resampled until no pre-activation is
/// within `KINK_MARGIN` of 0. Returns the problem, its f32 parameters and its dataset.
fn random_problem(
    sizes: &[usize],
    hidden: Activation,
    output: Output,
    seed: u64,
) -> (Problem, Params, Dataset) {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    for _attempt in 0..1000 {
        let b = rng.random_range(4..=7usize);
        let (inputs, outputs) = (sizes[0], *sizes.last().unwrap());
        let x: Vec<Vec<f32>> = (0..b)
            .map(|_| {
                (0..inputs)
                    .map(|_| rng.random_range(-1.0..1.0f32))
                    .collect()
            })
            .collect();
        let params = Params {
            layers: sizes
                .windows(2)
                .map(|io| Weights {
                    w: Array2::from_shape_fn((io[0], io[1]), |_| rng.random_range(-1.0..1.0f32)),
                    b: Array1::from_shape_fn(io[1], |_| rng.random_range(-0.5..0.5f32)),
                })
                .collect(),
        };
        let (y, data) = match output {
            Output::SoftmaxCrossEntropy => {
                let labels: Vec<u32> = (0..b)
                    .map(|_| rng.random_range(0..outputs) as u32)
                    .collect();
                let y = labels
                    .iter()
                    .map(|&l| {
                        (0..outputs)
                            .map(|k| (k == l as usize) as u8 as f64)
                            .collect()
                    })
                    .collect();
                let data = Dataset::new(
                    inputs,
                    Inputs::F32(x.concat()),
                    Targets::Labels {
                        labels,
                        classes: outputs,
                    },
                    Normalize::IDENTITY,
                )
                .unwrap();
                (y, data)
            }
            Output::SigmoidMse | Output::LinearMse => {
                // Sigmoid outputs aim within (0, 1); linear ones at standardised targets.
                let range = match output {
                    Output::LinearMse => -2.0..2.0f32,
                    _ => 0.0..1.0f32,
                };
                let t: Vec<Vec<f32>> = (0..b)
                    .map(|_| {
                        (0..outputs)
                            .map(|_| rng.random_range(range.clone()))
                            .collect()
                    })
                    .collect();
                let y = t
                    .iter()
                    .map(|r| r.iter().map(|&v| v as f64).collect())
                    .collect();
                (y, Dataset::from_rows(&x, &t).unwrap())
            }
        };
        let problem = Problem {
            sizes: sizes.to_vec(),
            hidden,
            output,
            x: x.iter()
                .map(|r| r.iter().map(|&v| v as f64).collect())
                .collect(),
            y,
        };
        let (zs, _) = problem.forward(&P64::from(&params));
        let hidden_layers = &zs[..zs.len() - 1];
        let near_kink = hidden_layers
            .iter()
            .flatten()
            .flatten()
            .any(|z| z.abs() < KINK_MARGIN);
        let kinked = matches!(hidden, Activation::Relu | Activation::LeakyRelu);
        if !(kinked && near_kink) {
            return (problem, params, data);
        }
    }
    panic!("no problem without a pre-activation near a kink in 1000 attempts");
}

/// The backend's gradient at `params` on all of `data` as one batch, in `P64::scalars_mut`
/// order, and the loss the backend reported for that batch.
fn analytic_grad(net: &Network, params: &Params, data: &Dataset) -> (Vec<f64>, f64) {
    let mut cpu = CpuBackend::new(net, params.clone(), Optimizer::Sgd).unwrap();
    cpu.set_train_data(data).unwrap();
    let order: Vec<u32> = (0..data.len() as u32).collect();
    cpu.train_batches(&order, order.len(), LR).unwrap();
    let stats = cpu.take_stats().unwrap();
    assert_eq!(stats.samples, data.len() as u64);
    let after = cpu.params().unwrap();
    let mut grad = Vec::new();
    for (before, after) in params.layers.iter().zip(&after.layers) {
        let diff = |p: &f32, q: &f32| (*p as f64 - *q as f64) / LR as f64;
        grad.extend(before.w.iter().zip(after.w.iter()).map(|(p, q)| diff(p, q)));
        grad.extend(before.b.iter().zip(after.b.iter()).map(|(p, q)| diff(p, q)));
    }
    (grad, stats.mean_loss())
}

/// Names scalar `k` of `net` (`layer 1 w[2][0]`) for messages.
fn scalar_name(sizes: &[usize], mut k: usize) -> String {
    for (l, io) in sizes.windows(2).enumerate() {
        let (i, o) = (io[0], io[1]);
        if k < i * o {
            return format!("layer {l} w[{}][{}]", k / o, k % o);
        }
        k -= i * o;
        if k < o {
            return format!("layer {l} b[{k}]");
        }
        k -= o;
    }
    unreachable!("scalar index out of range")
}

/// The error of `a` against `n` as a fraction of the tolerance: below 1 passes.
fn tol_ratio(a: f64, n: f64) -> f64 {
    (a - n).abs() / (GRAD_ATOL + GRAD_RTOL * a.abs().max(n.abs()))
}

/// The shapes checked for each output: one and two hidden layers, and several outputs for MSE
/// too (its gradient divides by the number of outputs).
fn shapes(output: Output) -> Vec<Vec<usize>> {
    match output {
        Output::SoftmaxCrossEntropy => vec![vec![5, 4, 3, 3], vec![5, 6, 4]],
        Output::SigmoidMse | Output::LinearMse => {
            vec![vec![5, 4, 3, 1], vec![5, 4, 3, 3], vec![5, 6, 2]]
        }
    }
}

const SEEDS: [u64; 3] = [1, 2, 3];

#[test]
fn every_weight_and_bias_matches_finite_differences_for_every_activation_and_output() {
    let mut checked = 0;
    for output in Output::ALL {
        for hidden in Activation::ALL {
            for sizes in shapes(output) {
                for seed in SEEDS {
                    let net = Network::new(&sizes, hidden, output).unwrap();
                    let (problem, params, data) = random_problem(&sizes, hidden, output, seed);
                    let (analytic, _) = analytic_grad(&net, &params, &data);
                    let numeric = problem.numeric_grad(&P64::from(&params));
                    assert_eq!(analytic.len(), net.parameter_count());
                    assert_eq!(numeric.len(), analytic.len());
                    let mut nonzero = 0;
                    for (k, (&a, &n)) in analytic.iter().zip(&numeric).enumerate() {
                        let ratio = tol_ratio(a, n);
                        assert!(
                            ratio < 1.0,
                            "{net} seed {seed} B={}: {}: analytic {a:e}, numeric {n:e}, \
                             error {:e} is {ratio:.1}× the tolerance",
                            data.len(),
                            scalar_name(&sizes, k),
                            (a - n).abs(),
                        );
                        nonzero += (n.abs() > 1e-6) as usize;
                        checked += 1;
                    }
                    // Guards against a vacuous pass (a net whose gradient is all zero).
                    assert!(
                        nonzero * 2 > numeric.len(),
                        "{net} seed {seed}: only {nonzero} of {} gradients are nonzero",
                        numeric.len()
                    );
                }
            }
        }
    }
    assert!(checked > 1000, "checked only {checked} scalars");
}

#[test]
fn networks_without_a_hidden_layer_match_finite_differences() {
    for (sizes, output) in [
        (vec![5, 3], Output::SoftmaxCrossEntropy),
        (vec![5, 1], Output::SigmoidMse),
        (vec![3, 2], Output::SigmoidMse),
    ] {
        for seed in SEEDS {
            let net = Network::new(&sizes, Activation::Sigmoid, output).unwrap();
            let (problem, params, data) = random_problem(&sizes, Activation::Sigmoid, output, seed);
            let (analytic, _) = analytic_grad(&net, &params, &data);
            let numeric = problem.numeric_grad(&P64::from(&params));
            for (k, (&a, &n)) in analytic.iter().zip(&numeric).enumerate() {
                assert!(
                    tol_ratio(a, n) < 1.0,
                    "{net} seed {seed}: {}: analytic {a:e}, numeric {n:e}",
                    scalar_name(&sizes, k),
                );
            }
        }
    }
}

#[test]
fn reported_loss_matches_the_f64_oracle() {
    for output in Output::ALL {
        for hidden in Activation::ALL {
            for sizes in shapes(output) {
                for seed in SEEDS {
                    let net = Network::new(&sizes, hidden, output).unwrap();
                    let (problem, params, data) = random_problem(&sizes, hidden, output, seed);
                    let (_, reported) = analytic_grad(&net, &params, &data);
                    let oracle = problem.loss(&P64::from(&params));
                    assert!(oracle > 1e-3, "{net}: degenerate oracle loss {oracle}");
                    let err = (reported - oracle).abs() / oracle;
                    assert!(
                        err < LOSS_RTOL,
                        "{net} seed {seed}: reported loss {reported}, oracle {oracle}, \
                         relative error {err:e}"
                    );

                    // `evaluate` reports the same loss, without taking a step.
                    let mut cpu = CpuBackend::new(&net, params.clone(), Optimizer::Sgd).unwrap();
                    let eval = cpu.evaluate(&data).unwrap().mean_loss();
                    let err = (eval - oracle).abs() / oracle;
                    assert!(
                        err < LOSS_RTOL,
                        "{net} seed {seed}: evaluated loss {eval}, oracle {oracle}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_oracle_itself_matches_hand_computed_values() {
    // One sample, a 2-2 softmax net with all-zero parameters: logits 0, 0, loss ln 2.
    let zero = Params {
        layers: vec![Weights {
            w: Array2::zeros((2, 2)),
            b: Array1::zeros(2),
        }],
    };
    let p = Problem {
        sizes: vec![2, 2],
        hidden: Activation::Sigmoid,
        output: Output::SoftmaxCrossEntropy,
        x: vec![vec![0.3, -0.7]],
        y: vec![vec![0.0, 1.0]],
    };
    assert!((p.loss(&P64::from(&zero)) - 2f64.ln()).abs() < 1e-15);
    // The same net with a sigmoid-MSE output and target (1, 0): outputs 0.5, loss 0.25.
    let p = Problem {
        output: Output::SigmoidMse,
        y: vec![vec![1.0, 0.0]],
        ..p
    };
    assert!((p.loss(&P64::from(&zero)) - 0.25).abs() < 1e-15);
    // Its numeric gradient w.r.t. b[0]: d/db0 of ((σ(b0)-1)² + σ(b1)²)/2 is (σ-1)·σ(1-σ) = -0.125.
    let g = p.numeric_grad(&P64::from(&zero));
    assert!((g[4] - -0.125).abs() < 1e-9, "numeric d/db0 = {}", g[4]);
}

// ---------------------------------------------------------------------------------------------
// Convolution and max-pooling (`soma::ops::{conv, pool}`), op by op
//
// No network uses these ops yet, so they are checked directly rather than through a backend
// step: the loss is `½ Σ (y - t)²` over the outputs `y` of a convolution, or of a convolution
// followed by a 2×2 max-pool, with random targets `t`. Its gradient with respect to `y` is
// `y - t`; the library's backward ops carry that back to the input, the weights and the bias
// (in f32), and central differences of an independent f64 forward pass are the oracle. The loss
// is quadratic in each single scalar (the convolution is linear in each of x, w, b, and the
// pool picks one value once no window is near a tie), so the central differences have no
// truncation error: only f64 rounding, ≈ 1e-16·|L|/H ≈ 1e-9 for |L| ≲ 100.

use soma::ops::conv::{ConvShape, Padding, conv2d, conv2d_input_grad, conv2d_param_grads};
use soma::ops::pool::{PoolShape, max_pool, max_pool_backward};
use soma::shape::Chw;

/// Absolute part of the convolution gradients' tolerance (`|a - n| ≤ CONV_ATOL + CONV_RTOL ·
/// max(|a|, |n|)`). The analytic side is f32 throughout, and its error is mostly the forward
/// outputs' rounding (≤ 3.1e-6 measured, see the forward test below) carried by `dy = y - t`
/// into the backward sums of up to C_out·k·k = 125 (input gradient) or B·OH·OW = 120 (weights)
/// terms with |w|, |x| ≤ 1: a random walk of ≈ √125 · 3e-6 ≈ 3.4e-5. Measured over every case
/// and seed: at most 1.8e-5 absolute (5×5 same, C_in 5, gradients up to 74).
const CONV_ATOL: f64 = 5e-5;

/// Relative part: the f32 rounding of the large gradients themselves (measured: at most 3.2e-5
/// relative on gradients above 0.1, all within the absolute part). A flipped or transposed
/// kernel index, a missing padding offset or a gradient sent to the wrong pool input moves a
/// gradient by O(1), ≥ 1e-1 relative (`a_flipped_kernel_in_the_input_gradient_fails_the_check`).
const CONV_RTOL: f64 = 1e-4;

/// A convolution, optionally followed by a max-pool, and its batch size.
#[derive(Clone, Copy, Debug)]
struct ConvCase {
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    padding: Padding,
    pool: bool,
    batch: usize,
}

impl ConvCase {
    fn shape(&self) -> ConvShape {
        ConvShape::new(
            Chw::new(self.c_in, self.h, self.w),
            self.c_out,
            self.k,
            self.padding,
        )
        .unwrap()
    }
}

impl std::fmt::Display for ConvCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "B={} {}×{}×{} → {} channels, {k}×{k} {}{}",
            self.batch,
            self.c_in,
            self.h,
            self.w,
            self.c_out,
            self.padding,
            if self.pool { " → max-pool" } else { "" },
            k = self.k
        )
    }
}

/// Odd sizes, C_in = 1, 3, 5, k = 1, 3, 5, a kernel as large as the input, both paddings, and a
/// pool after valid and same convolutions.
fn conv_cases() -> Vec<ConvCase> {
    use Padding::{Same, Valid};
    let case = |c_in, h, w, c_out, k, padding, pool, batch| ConvCase {
        c_in,
        h,
        w,
        c_out,
        k,
        padding,
        pool,
        batch,
    };
    vec![
        case(1, 7, 5, 2, 3, Valid, false, 3),
        case(3, 7, 5, 4, 3, Same, false, 2),
        case(5, 7, 5, 3, 5, Valid, false, 2),
        case(5, 7, 5, 3, 5, Same, false, 3),
        case(3, 5, 7, 2, 5, Same, false, 1),
        case(2, 3, 3, 3, 3, Valid, false, 4),
        case(3, 4, 5, 2, 1, Valid, false, 2),
        case(3, 8, 6, 2, 3, Valid, true, 3),
        case(1, 6, 8, 5, 5, Same, true, 2),
        case(5, 6, 10, 3, 3, Same, true, 2),
    ]
}

/// The f64 forward pass, from the definition with signed coordinates (a tap outside the image
/// reads 0): `y[n][co][oy][ox] = b[co] + Σ w[co][ci][ky][kx] · x[n][ci][oy+ky-p][ox+kx-p]`.
/// Returns `y` flat (channel-major per sample) and the output's (height, width).
fn conv64(c: &ConvCase, x: &[f64], w: &[f64], b: &[f64]) -> (Vec<f64>, (usize, usize)) {
    let p = match c.padding {
        Padding::Valid => 0,
        Padding::Same => (c.k as isize - 1) / 2,
    };
    let (oh, ow) = match c.padding {
        Padding::Valid => (c.h - c.k + 1, c.w - c.k + 1),
        Padding::Same => (c.h, c.w),
    };
    let mut y = Vec::with_capacity(c.batch * c.c_out * oh * ow);
    for n in 0..c.batch {
        for co in 0..c.c_out {
            for oy in 0..oh as isize {
                for ox in 0..ow as isize {
                    let mut sum = b[co];
                    for ci in 0..c.c_in {
                        for ky in 0..c.k as isize {
                            for kx in 0..c.k as isize {
                                let (iy, ix) = (oy + ky - p, ox + kx - p);
                                if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                                    continue;
                                }
                                let xv =
                                    x[((n * c.c_in + ci) * c.h + iy as usize) * c.w + ix as usize];
                                let wv =
                                    w[((co * c.c_in + ci) * c.k + ky as usize) * c.k + kx as usize];
                                sum += wv * xv;
                            }
                        }
                    }
                    y.push(sum);
                }
            }
        }
    }
    (y, (oh, ow))
}

/// The f64 2×2 max-pool of `planes` planes of h×w, and the smallest gap between a window's
/// maximum and its runner-up (how far the batch is from a tie).
fn pool64(planes: usize, h: usize, w: usize, y: &[f64]) -> (Vec<f64>, f64) {
    let mut out = Vec::new();
    let mut gap = f64::INFINITY;
    for plane in y.chunks(h * w).take(planes) {
        for oy in 0..h / 2 {
            for ox in 0..w / 2 {
                let mut v: Vec<f64> = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .map(|(dy, dx)| plane[(2 * oy + dy) * w + 2 * ox + dx])
                    .collect();
                v.sort_by(|a, b| b.total_cmp(a));
                gap = gap.min(v[0] - v[1]);
                out.push(v[0]);
            }
        }
    }
    (out, gap)
}

/// A case with random values: x, w in [-1, 1), b in [-0.5, 0.5), targets t in [-1, 1).
struct ConvProblem {
    case: ConvCase,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    t: Vec<f32>,
}

impl ConvProblem {
    /// Resampled until no pool window is within `KINK_MARGIN` of a tie: a perturbation of `H`
    /// moves a convolution output by at most `H` (every |x|, |w| ≤ 1), far less.
    fn random(case: ConvCase, seed: u64) -> ConvProblem {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let s = case.shape();
        let mut uniform =
            |n: usize, r: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-r..r)).collect() };
        for _attempt in 0..1000 {
            let x = uniform(case.batch * s.input().len(), 1.0);
            let w = uniform(s.weight_dims().0 * s.weight_dims().1, 1.0);
            let b = uniform(case.c_out, 0.5);
            let outputs = if case.pool {
                PoolShape::new(s.output()).unwrap().output().len()
            } else {
                s.output().len()
            };
            let t = uniform(case.batch * outputs, 1.0);
            let p = ConvProblem { case, x, w, b, t };
            if p.forward(&p.x64(), &p.w64(), &p.b64()).1 >= KINK_MARGIN {
                return p;
            }
        }
        panic!("{case}: no batch without a near-tie in a pool window in 1000 attempts");
    }

    fn x64(&self) -> Vec<f64> {
        self.x.iter().map(|&v| v as f64).collect()
    }
    fn w64(&self) -> Vec<f64> {
        self.w.iter().map(|&v| v as f64).collect()
    }
    fn b64(&self) -> Vec<f64> {
        self.b.iter().map(|&v| v as f64).collect()
    }

    /// The f64 outputs (after the pool, if any) and the smallest pool gap (∞ without a pool).
    fn forward(&self, x: &[f64], w: &[f64], b: &[f64]) -> (Vec<f64>, f64) {
        let c = &self.case;
        let (y, (oh, ow)) = conv64(c, x, w, b);
        if c.pool {
            pool64(c.batch * c.c_out, oh, ow, &y)
        } else {
            (y, f64::INFINITY)
        }
    }

    fn loss(&self, x: &[f64], w: &[f64], b: &[f64]) -> f64 {
        let (y, _) = self.forward(x, w, b);
        assert_eq!(y.len(), self.t.len());
        y.iter()
            .zip(&self.t)
            .map(|(&y, &t)| 0.5 * (y - t as f64).powi(2))
            .sum()
    }

    /// Central differences for every scalar of x, then w, then b.
    fn numeric_grad(&self) -> [Vec<f64>; 3] {
        let params = [self.x64(), self.w64(), self.b64()];
        std::array::from_fn(|which| {
            (0..params[which].len())
                .map(|k| {
                    let at = |d: f64| {
                        let mut p = params.clone();
                        p[which][k] += d;
                        self.loss(&p[0], &p[1], &p[2])
                    };
                    (at(H) - at(-H)) / (2.0 * H)
                })
                .collect()
        })
    }

    /// The library's gradients (x, w, b) in f32, with the input gradient computed from weights
    /// `w_back` (the real ones, except where a test plants a mistake), and its forward outputs.
    fn analytic_grad(&self, w_back: &[f32]) -> ([Vec<f64>; 3], Vec<f32>) {
        let c = &self.case;
        let s = c.shape();
        let x = Array2::from_shape_vec((c.batch, s.input().len()), self.x.clone()).unwrap();
        let w = Array2::from_shape_vec(s.weight_dims(), self.w.clone()).unwrap();
        let b = Array1::from_vec(self.b.clone());
        let mut y = Array2::zeros((c.batch, s.output().len()));
        conv2d(&s, x.view(), w.view(), b.view(), y.view_mut()).unwrap();
        let (out, dy) = if c.pool {
            let ps = PoolShape::new(s.output()).unwrap();
            let mut pooled = Array2::zeros((c.batch, ps.output().len()));
            let mut arg = Array2::zeros(pooled.dim());
            max_pool(&ps, y.view(), pooled.view_mut(), arg.view_mut()).unwrap();
            let t = Array2::from_shape_vec(pooled.dim(), self.t.clone()).unwrap();
            let d_pooled = &pooled - &t;
            let mut dy = Array2::zeros(y.dim());
            max_pool_backward(&ps, d_pooled.view(), arg.view(), dy.view_mut()).unwrap();
            (pooled, dy)
        } else {
            let t = Array2::from_shape_vec(y.dim(), self.t.clone()).unwrap();
            let dy = &y - &t;
            (y, dy)
        };
        let w_back = Array2::from_shape_vec(s.weight_dims(), w_back.to_vec()).unwrap();
        let mut dx = Array2::zeros(x.dim());
        conv2d_input_grad(&s, dy.view(), w_back.view(), dx.view_mut()).unwrap();
        let (mut dw, mut db) = (Array2::zeros(w.dim()), Array1::zeros(c.c_out));
        conv2d_param_grads(&s, x.view(), dy.view(), dw.view_mut(), db.view_mut()).unwrap();
        let f64s = |a: &[f32]| a.iter().map(|&v| v as f64).collect::<Vec<_>>();
        let grads = [
            f64s(dx.as_slice().unwrap()),
            f64s(dw.as_slice().unwrap()),
            f64s(db.as_slice().unwrap()),
        ];
        (grads, out.into_raw_vec_and_offset().0)
    }
}

/// The error of `a` against `n` as a fraction of the convolution tolerance: below 1 passes.
fn conv_tol_ratio(a: f64, n: f64) -> f64 {
    (a - n).abs() / (CONV_ATOL + CONV_RTOL * a.abs().max(n.abs()))
}

/// The worst scalar of a comparison: (its ratio to the tolerance, which of x/w/b, its index,
/// analytic, numeric).
fn worst_conv_scalar(
    analytic: &[Vec<f64>; 3],
    numeric: &[Vec<f64>; 3],
) -> (f64, &'static str, usize, f64, f64) {
    let mut worst = (0.0, "", 0, 0.0, 0.0);
    for (which, name) in ["x", "w", "b"].into_iter().enumerate() {
        assert_eq!(analytic[which].len(), numeric[which].len(), "{name}");
        for (k, (&a, &n)) in analytic[which].iter().zip(&numeric[which]).enumerate() {
            let r = conv_tol_ratio(a, n);
            if r > worst.0 || r.is_nan() {
                worst = (r, name, k, a, n);
            }
        }
    }
    worst
}

const CONV_SEEDS: [u64; 2] = [11, 12];

#[test]
fn conv_and_pool_gradients_match_finite_differences() {
    let mut checked = 0;
    for case in conv_cases() {
        for seed in CONV_SEEDS {
            let p = ConvProblem::random(case, seed);
            let (analytic, _) = p.analytic_grad(&p.w);
            let numeric = p.numeric_grad();
            let (ratio, name, k, a, n) = worst_conv_scalar(&analytic, &numeric);
            assert!(
                ratio < 1.0,
                "{case} seed {seed}: d{name}[{k}]: analytic {a:e}, numeric {n:e}, error {:e} \
                 is {ratio:.1}× the tolerance",
                (a - n).abs()
            );
            for (g, name) in numeric.iter().zip(["x", "w", "b"]) {
                // Guards against a vacuous pass. Under a pool, three inputs in four get no
                // gradient (and an input that no kept output reads, none either).
                let nonzero = g.iter().filter(|v| v.abs() > 1e-6).count();
                let needed = if case.pool && name == "x" {
                    g.len() / 5
                } else {
                    g.len() / 2
                };
                assert!(
                    nonzero > needed,
                    "{case} seed {seed}: only {nonzero} of {} d{name} are nonzero",
                    g.len()
                );
            }
            checked += analytic.iter().map(Vec::len).sum::<usize>();
        }
    }
    assert!(checked > 3000, "checked only {checked} scalars");
}

#[test]
fn conv_and_pool_forward_match_the_f64_oracle() {
    for case in conv_cases() {
        let p = ConvProblem::random(case, CONV_SEEDS[0]);
        let (_, out) = p.analytic_grad(&p.w);
        let (want, _) = p.forward(&p.x64(), &p.w64(), &p.b64());
        assert_eq!(out.len(), want.len(), "{case}");
        for (j, (&o, &w)) in out.iter().zip(&want).enumerate() {
            // f32 sums of ≤ 125 products, |x·w| ≈ 0.25 on average: a random walk of rounding
            // errors ≈ √125 · 6e-8 · 31 ≈ 2e-5; measured at most 3.1e-6.
            assert!(
                (o as f64 - w).abs() < 2e-5,
                "{case}: output {j}: {o} against {w}"
            );
        }
    }
}

/// The check is not vacuous: the input gradient computed with the kernel flipped left-right
/// (the classic convolution-vs-correlation mistake) or its rows swapped fails it by far.
#[test]
fn a_flipped_kernel_in_the_input_gradient_fails_the_check() {
    for case in conv_cases().into_iter().filter(|c| c.k > 1) {
        let p = ConvProblem::random(case, CONV_SEEDS[0]);
        let k = case.k;
        let remap = |f: &dyn Fn(usize, usize) -> (usize, usize)| -> Vec<f32> {
            let mut out = p.w.clone();
            for (patch, src) in out.chunks_mut(k * k).zip(p.w.chunks(k * k)) {
                for ky in 0..k {
                    for kx in 0..k {
                        let (sy, sx) = f(ky, kx);
                        patch[ky * k + kx] = src[sy * k + sx];
                    }
                }
            }
            out
        };
        let numeric = p.numeric_grad();
        for (what, w_back) in [
            ("flipped left-right", remap(&|y, x| (y, k - 1 - x))),
            ("transposed", remap(&|y, x| (x, y))),
        ] {
            let (analytic, _) = p.analytic_grad(&w_back);
            let (ratio, name, ..) = worst_conv_scalar(&analytic, &numeric);
            assert!(
                ratio > 100.0 && name == "x",
                "{case}: a kernel {what} in the input gradient went unnoticed \
                 (worst: d{name}, {ratio:.1}× the tolerance)"
            );
        }
    }
}

#[test]
fn the_conv_oracle_itself_matches_hand_computed_values() {
    // One 1×2×2 image, one 2×2 kernel, valid: a single dot product plus the bias.
    let case = ConvCase {
        c_in: 1,
        h: 2,
        w: 2,
        c_out: 1,
        k: 2,
        padding: Padding::Valid,
        pool: false,
        batch: 1,
    };
    let (y, dims) = conv64(&case, &[1., 2., 3., 4.], &[1., -1., 2., 0.5], &[0.25]);
    assert_eq!((y, dims), (vec![1. - 2. + 6. + 2. + 0.25], (1, 1)));
    // Same padding, 3×3 kernel with only its centre set: the identity.
    let case = ConvCase {
        k: 3,
        padding: Padding::Same,
        ..case
    };
    let mut w = vec![0.; 9];
    w[4] = 1.;
    let (y, _) = conv64(&case, &[1., 2., 3., 4.], &w, &[0.]);
    assert_eq!(y, vec![1., 2., 3., 4.]);
    // Its top-left tap alone shifts the image down-right, zeros coming in.
    let mut w = vec![0.; 9];
    w[0] = 1.;
    let (y, _) = conv64(&case, &[1., 2., 3., 4.], &w, &[0.]);
    assert_eq!(y, vec![0., 0., 0., 1.]);
    let (m, gap) = pool64(1, 2, 4, &[1., 5., 0., 0., 3., 2., 0., -1.]);
    assert_eq!((m, gap), (vec![5., 0.], 0.));
}

// ---------------------------------------------------------------------------------------------
// Whole convolutional networks through the CPU backend (its fast im2col path), against an f64
// oracle of the network written from the definitions: convolution with signed coordinates,
// 2×2 max-pool, flatten, dense, activations, softmax cross-entropy.

use soma::layer::{Dense, Layer};

/// The f64 forward pass of `net` on a batch: the logits, and the smallest distance of any
/// ReLU pre-activation from 0 or of any pool window's maximum from its runner-up (a kink).
/// Layer by layer, since batch norm reads the whole batch.
fn cnn64(net: &Network, p: &[Vec<f64>], xs: &[Vec<f64>]) -> (Vec<Vec<f64>>, f64) {
    let mut batch = xs.to_vec();
    let mut margin = f64::INFINITY;
    // The next weight tensor (w at 2·t, b at 2·t + 1 of `p`).
    let mut next = 0;
    // The node a layer is (activations are fused into the layer before): dropout's seed.
    let mut node = 0u32;
    for layer in net.layers() {
        node += u32::from(!matches!(layer, Layer::Activation(_)));
        let t = next;
        next += match layer {
            Layer::Conv(_) | Layer::Dense(_) => 1,
            // γ and β, then the running statistics (not read in training).
            Layer::BatchNorm(_) => 2,
            _ => 0,
        };
        if let Layer::BatchNorm(bn) = layer {
            batch_norm64(bn.groups(), &p[2 * t], &p[2 * t + 1], &mut batch);
            continue;
        }
        for (row, a) in batch.iter_mut().enumerate() {
            layer64(layer, p, (t, node, row as u32), a, &mut margin);
        }
    }
    (batch, margin)
}

/// Batch norm in training over `batch`: each channel normalised by the batch's mean and
/// biased variance, then scaled by γ and shifted by β.
fn batch_norm64(
    s: soma::ops::batchnorm::BnShape,
    gamma: &[f64],
    beta: &[f64],
    batch: &mut [Vec<f64>],
) {
    let eps = soma::ops::batchnorm::EPS as f64;
    for c in 0..s.channels {
        let values = |a: &Vec<f64>| (0..s.plane).map(|i| a[c * s.plane + i]).collect::<Vec<_>>();
        let all: Vec<f64> = batch.iter().flat_map(values).collect();
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let var = all.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        for a in batch.iter_mut() {
            for i in 0..s.plane {
                let v = &mut a[c * s.plane + i];
                *v = gamma[c] * (*v - mean) / (var + eps).sqrt() + beta[c];
            }
        }
    }
}

/// Layer `layer` on one sample `a` (its weights tensor `t`, its node, the sample's row).
fn layer64(
    layer: &Layer,
    p: &[Vec<f64>],
    (t, node, row): (usize, u32, u32),
    a: &mut Vec<f64>,
    margin: &mut f64,
) {
    {
        match layer {
            Layer::Conv(s) => {
                let (i, o, k) = (s.input(), s.output(), s.kernel() as isize);
                let pad = s.pad() as isize;
                let (w, b) = (&p[2 * t], &p[2 * t + 1]);
                let mut y = vec![0.0; o.len()];
                for co in 0..o.c {
                    for oy in 0..o.h as isize {
                        for ox in 0..o.w as isize {
                            let mut sum = b[co];
                            for ci in 0..i.c {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let (iy, ix) = (oy + ky - pad, ox + kx - pad);
                                        if iy < 0
                                            || ix < 0
                                            || iy >= i.h as isize
                                            || ix >= i.w as isize
                                        {
                                            continue;
                                        }
                                        let xv = a[(ci * i.h + iy as usize) * i.w + ix as usize];
                                        let wv = w[((co * i.c + ci) * k as usize + ky as usize)
                                            * k as usize
                                            + kx as usize];
                                        sum += wv * xv;
                                    }
                                }
                            }
                            y[(co * o.h + oy as usize) * o.w + ox as usize] = sum;
                        }
                    }
                }
                *a = y;
            }
            Layer::MaxPool(s) => {
                let i = s.input();
                let (pooled, gap) = pool64(i.c, i.h, i.w, a);
                *margin = margin.min(gap);
                *a = pooled;
            }
            Layer::AvgPool(pool) => {
                let (i, o) = (pool.shape.input(), pool.shape.output());
                let (wh, ww) = pool.shape.window();
                let mut y = vec![0.0; o.len()];
                for c in 0..o.c {
                    for oy in 0..o.h {
                        for ox in 0..o.w {
                            let mut sum = 0.0;
                            for y in wh * oy..wh * (oy + 1) {
                                for x in ww * ox..ww * (ox + 1) {
                                    sum += a[(c * i.h + y) * i.w + x];
                                }
                            }
                            y[(c * o.h + oy) * o.w + ox] = sum / (wh * ww) as f64;
                        }
                    }
                }
                *a = y;
            }
            Layer::Dense(Dense { inputs, units }) => {
                let (w, b) = (&p[2 * t], &p[2 * t + 1]);
                *a = (0..*units)
                    .map(|o| b[o] + (0..*inputs).map(|i| a[i] * w[i * units + o]).sum::<f64>())
                    .collect();
            }
            // Training's first step (1), this sample's row of the batch.
            Layer::Dropout(d) => {
                let rate = soma::ops::dropout::Rate::new(d.p);
                for (c, v) in a.iter_mut().enumerate() {
                    let kept = rate.keeps(node - 1, 1, row, c as u32);
                    *v = if kept { *v * rate.scale as f64 } else { 0.0 };
                }
            }
            Layer::Activation(f) => {
                if matches!(f, Activation::Relu | Activation::LeakyRelu) {
                    *margin = a.iter().fold(*margin, |m, z| m.min(z.abs()));
                }
                a.iter_mut().for_each(|z| *z = act64(*f, *z));
            }
            Layer::BatchNorm(_) => unreachable!("the batch's layer: cnn64 runs it"),
        }
    }
}

/// Mean softmax cross-entropy over the batch, and the smallest kink margin.
fn cnn_loss64(net: &Network, p: &[Vec<f64>], xs: &[Vec<f64>], labels: &[u32]) -> (f64, f64) {
    let (logits, margin) = cnn64(net, p, xs);
    let total: f64 = logits
        .iter()
        .zip(labels)
        .map(|(z, &y)| {
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - z[y as usize]
        })
        .sum();
    (total / xs.len() as f64, margin)
}

#[test]
fn whole_cnns_through_the_cpu_backend_match_finite_differences() {
    // C_in 1, 2 and 3; odd sizes, an even kernel, both paddings, a 1×1 kernel, pools after
    // convolutions and after a pool, a convolution after a pool, every activation; layers
    // without one (a linear convolution before a pool, a linear hidden dense layer) and hidden
    // dense layers with different ones.
    let nets = [
        (
            Chw::new(2, 8, 6),
            "conv3k3same,tanh,pool,conv4k3,relu,dense5,sigmoid,dense3",
        ),
        (Chw::new(1, 9, 7), "conv2k4,relu,pool,dense3"),
        (
            Chw::new(3, 8, 8),
            "conv3k1,leaky-relu,conv2k3same,sigmoid,pool,pool,dense4,tanh,dense3",
        ),
        (
            Chw::new(2, 6, 6),
            "conv3k3same,pool,conv2k3same,tanh,dense6,relu,dense5,dense4,sigmoid,dense3",
        ),
        // Average pools: 2×2 with an activation after it, and global.
        (
            Chw::new(2, 8, 8),
            "conv3k3same,relu,avgpool,tanh,conv4k3,sigmoid,gap,dense3",
        ),
        // Dropout on an image and on values, the first step's masks (after the pool: its zeros
        // in a pool window would be ties, a kink).
        (
            Chw::new(2, 6, 6),
            "conv3k3same,relu,pool,dropout0.3,dense6,tanh,dropout0.5,dense3",
        ),
        // Batch norm per channel on an image and per feature on values (over the batch's 3 to
        // 6 samples), its statistics the batch's. Each after an activation: the gradient of a
        // bias right before a batch norm is exactly 0 (the mean is subtracted), which f32 gives
        // as the rounding of the terms it cancels, scaled by 1/σ: nothing for a relative check
        // to hold (`conv,bn,relu` is held to the GPU in `tests/parity.rs`).
        (
            Chw::new(2, 6, 6),
            "conv3k3same,tanh,bn,pool,dense6,sigmoid,bn,dense3",
        ),
    ];
    let mut checked = 0;
    for (n, (image, text)) in nets.iter().enumerate() {
        let image = *image;
        let net = soma::layers::from_string(image, text, Output::SoftmaxCrossEntropy).unwrap();
        let mut rng = Pcg64Mcg::seed_from_u64(40 + n as u64);
        let (params, xs, labels) = (0..1000)
            .find_map(|_| {
                let b = rng.random_range(3..=6usize);
                let mut params = soma::Params::init(&net, soma::Init::Uniform, rng.random());
                for l in &mut params.layers {
                    l.w.mapv_inplace(|v| v * 2.0);
                }
                let xs: Vec<Vec<f32>> = (0..b)
                    .map(|_| {
                        (0..image.len())
                            .map(|_| rng.random_range(-1.0..1.0f32))
                            .collect()
                    })
                    .collect();
                let labels: Vec<u32> = (0..b).map(|_| rng.random_range(0..3)).collect();
                let p64 = params64(&params);
                let x64 = xs
                    .iter()
                    .map(|r| r.iter().map(|&v| v as f64).collect::<Vec<_>>());
                let (_, margin) = cnn_loss64(&net, &p64, &x64.collect::<Vec<_>>(), &labels);
                (margin >= KINK_MARGIN).then_some((params, xs, labels))
            })
            .expect("a batch away from every kink");
        let data = Dataset::new(
            image.len(),
            Inputs::F32(xs.concat()),
            Targets::Labels {
                labels: labels.clone(),
                classes: 3,
            },
            Normalize::IDENTITY,
        )
        .unwrap();
        let (analytic, loss) = analytic_grad(&net, &params, &data);
        let x64: Vec<Vec<f64>> = xs
            .iter()
            .map(|r| r.iter().map(|&v| v as f64).collect())
            .collect();
        let mut p64 = params64(&params);
        let (want_loss, _) = cnn_loss64(&net, &p64, &x64, &labels);
        assert!(
            (loss - want_loss).abs() <= LOSS_RTOL * want_loss.abs(),
            "{text}: loss {loss} vs {want_loss}"
        );
        // Running statistics are not trained, and the loss in training does not read them.
        let roles: Vec<_> = net.weight_shapes().map(|w| w.role).collect();
        let (mut k, mut skipped) = (0, 0);
        for t in 0..p64.len() {
            if roles[t / 2] == soma::shape::TensorRole::RunningAverage {
                (k, skipped) = (k + p64[t].len(), skipped + p64[t].len());
                continue;
            }
            for i in 0..p64[t].len() {
                let orig = p64[t][i];
                p64[t][i] = orig + H;
                let up = cnn_loss64(&net, &p64, &x64, &labels).0;
                p64[t][i] = orig - H;
                let down = cnn_loss64(&net, &p64, &x64, &labels).0;
                p64[t][i] = orig;
                let numeric = (up - down) / (2.0 * H);
                let r = tol_ratio(analytic[k], numeric);
                assert!(
                    r < 1.0,
                    "{text}: tensor {t} ({}) [{i}]: analytic {:e}, numeric {numeric:e} ({r:.1}× the tolerance)",
                    if t % 2 == 0 { "w" } else { "b" },
                    analytic[k]
                );
                k += 1;
            }
        }
        assert_eq!(k, net.parameter_count());
        let nonzero = analytic.iter().filter(|g| g.abs() > 1e-6).count();
        assert!(
            nonzero > analytic.len() / 2,
            "{text}: only {nonzero} of {k} gradients nonzero"
        );
        checked += k - skipped;
    }
    assert_eq!(
        checked, 1419,
        "every trained parameter of the seven networks"
    );
}

/// Each tensor of `params` flat in f64, in `analytic_grad`'s order (w then b per layer).
fn params64(params: &Params) -> Vec<Vec<f64>> {
    params
        .layers
        .iter()
        .flat_map(|l| {
            [
                l.w.iter().map(|&v| v as f64).collect(),
                l.b.iter().map(|&v| v as f64).collect(),
            ]
        })
        .collect()
}
