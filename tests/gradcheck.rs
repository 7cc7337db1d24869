//! Finite-difference gradient checks of the CPU backend, for every hidden activation × output.
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
    Activation, Backend, CpuBackend, Dataset, Inputs, Layer, Network, Normalize, Optimizer, Output,
    Params, Targets,
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
                .map(|io| Layer {
                    w: Array2::from_shape_fn((io[0], io[1]), |_| rng.random_range(-1.0..1.0f32)),
                    b: Array1::from_shape_fn(io[1], |_| rng.random_range(-0.5..0.5f32)),
                })
                .collect(),
        };
        let (y, data) = match output {
            Output::SoftmaxCrossEntropy => {
                let labels: Vec<u8> = (0..b).map(|_| rng.random_range(0..outputs) as u8).collect();
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
            Output::SigmoidMse => {
                let t: Vec<Vec<f32>> = (0..b)
                    .map(|_| {
                        (0..outputs)
                            .map(|_| rng.random_range(0.0..1.0f32))
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
        Output::SigmoidMse => vec![vec![5, 4, 3, 1], vec![5, 4, 3, 3], vec![5, 6, 2]],
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
        layers: vec![Layer {
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
