//! The output layer and the loss, fused: softmax + cross-entropy, sigmoid + MSE or linear + MSE,
//! the gradient
//! with respect to the logits, and the batch's loss and correct count. The CPU twin of
//! `shaders/loss.wgsl`.

use bytemuck::{Pod, Zeroable};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};

use super::Shared;
use super::activation::exp;
use crate::named_enum;

/// Output layer and loss, fused as the math allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Output {
    /// Softmax outputs with cross-entropy loss (classification). The gradient with respect to
    /// the logits is `(softmax(z) - y) / B`.
    #[default]
    SoftmaxCrossEntropy,
    /// Sigmoid outputs with mean squared error `mean((a - y)^2)` over batch and outputs (the
    /// single-neuron and XOR exercises).
    SigmoidMse,
    /// Linear outputs (the logits themselves) with mean squared error `mean((z - y)^2)` over
    /// batch and outputs: regression on real-valued targets.
    LinearMse,
}

impl Output {
    /// Every output kind.
    pub const ALL: [Output; 3] = [
        Output::SoftmaxCrossEntropy,
        Output::SigmoidMse,
        Output::LinearMse,
    ];

    /// Whether the outputs are real values rather than classes: no correct count, and the
    /// metrics are RMSE and R².
    pub const fn is_regression(self) -> bool {
        matches!(self, Output::LinearMse)
    }
}

named_enum!(Output, "output", [
    "softmax-cross-entropy" => Output::SoftmaxCrossEntropy,
    "sigmoid-mse" => Output::SigmoidMse,
    "linear-mse" => Output::LinearMse,
]);

/// Loss and accuracy summed over the samples a backend has seen since they were last taken.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Sum over samples of each sample's loss.
    pub loss_sum: f64,
    /// Samples predicted correctly (arg-max, or the 0.5 threshold for one sigmoid output).
    pub correct: u64,
    /// Samples counted.
    pub samples: u64,
}

impl Stats {
    /// Mean loss per sample (NaN when empty).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples as f64
    }

    /// Fraction predicted correctly (NaN when empty).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples as f64
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: Stats) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.samples += other.samples;
    }
}

pub(crate) const WGSL: &str = include_str!("../../shaders/loss.wgsl");

/// Threads of the (single-workgroup) loss kernel: few, because on software adapters each SIMD
/// group is a coroutine switched at every barrier of the reduction (BENCHMARKS.md, "Kernel
/// parameters").
pub const LOSS_WG: u32 = 64;

/// How the loss kernel finds sample `i`'s targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum TargetKind {
    /// `targets[i]` is the class of sample `i`.
    Labels = 0,
    /// `targets[i·n + j]` are the f32 bits of the target values.
    Values = 1,
    /// Prediction: outputs only.
    None = 2,
}

impl Output {
    /// The code the loss kernel switches on.
    pub const fn code(self) -> u32 {
        match self {
            Output::SoftmaxCrossEntropy => 0,
            Output::SigmoidMse => 1,
            Output::LinearMse => 2,
        }
    }
}

pub(crate) const SHARED: &[Shared] = &[
    Shared::U32("SOFTMAX_CE", Output::SoftmaxCrossEntropy.code()),
    Shared::U32("SIGMOID_MSE", Output::SigmoidMse.code()),
    Shared::U32("LINEAR_MSE", Output::LinearMse.code()),
    Shared::U32("TARGET_LABELS", TargetKind::Labels as u32),
    Shared::U32("TARGET_VALUES", TargetKind::Values as u32),
    Shared::U32("TARGET_NONE", TargetKind::None as u32),
];

/// `shaders/loss.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LossDims {
    pub n: u32,
    pub kind: u32,
    pub target_kind: u32,
    pub rows: u32,
    pub rows_from_step: u32,
    pub index_offset: u32,
    /// 1 when the entries index images (and may carry shifts, [`crate::data::Sample`]).
    pub image: u32,
    pub _pad: u32,
}

/// `shaders/loss.wgsl`'s `Stats`: the device-side running totals.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct DeviceStats {
    pub loss: f32,
    pub loss_compensation: f32,
    pub correct: u32,
    pub samples: u32,
}

impl DeviceStats {
    /// The totals as [`Stats`].
    pub fn stats(&self) -> Stats {
        Stats {
            // Kahan: the compensation holds what the running sum lost.
            loss_sum: self.loss as f64 - self.loss_compensation as f64,
            correct: self.correct as u64,
            samples: self.samples as u64,
        }
    }
}

/// Turns the logits `out` (rows of a batch of `batch` rows) into outputs in place (softmax; the
/// sigmoid is the forward pass's, and linear outputs are the logits), writes the gradient of the
/// batch's mean loss with respect to the logits into `delta`, and returns the rows' summed loss
/// and correct count (none for linear outputs, which are not classes). `targets` holds one row per output row (one-hot for
/// labels).
pub fn output_delta(
    output: Output,
    mut out: ArrayViewMut2<f32>,
    targets: ArrayView2<f32>,
    mut delta: ArrayViewMut2<f32>,
    batch: usize,
) -> Stats {
    let mut stats = Stats {
        samples: out.nrows() as u64,
        ..Stats::default()
    };
    let k = out.ncols() as f32;
    for ((mut o, t), mut d) in out
        .rows_mut()
        .into_iter()
        .zip(targets.rows())
        .zip(delta.rows_mut())
    {
        let (loss, correct) = match output {
            Output::SoftmaxCrossEntropy => softmax_cross_entropy(o.view_mut(), t),
            Output::SigmoidMse => mse(o.view(), t),
            Output::LinearMse => (mse(o.view(), t).0, false),
        };
        stats.loss_sum += loss as f64;
        stats.correct += correct as u64;
        // Softmax-CE: (p - y)/B. MSE: d/dz mean((a-y)^2) = 2(a-y)/(B·K) · a′, where a′ is
        // a(1-a) for the sigmoid and 1 for linear outputs.
        Zip::from(&mut d).and(&o).and(&t).for_each(|d, &a, &y| {
            *d = match output {
                Output::SoftmaxCrossEntropy => (a - y) / batch as f32,
                Output::SigmoidMse => 2.0 * (a - y) / (batch as f32 * k) * a * (1.0 - a),
                Output::LinearMse => 2.0 * (a - y) / (batch as f32 * k),
            }
        });
    }
    stats
}

/// Index of the largest value (the first of equal ones), as the GPU kernel picks it.
pub fn argmax(v: impl IntoIterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, x) in v.into_iter().enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Replaces the logits `z` by `softmax(z)` (computed after subtracting the row max) and returns
/// the cross-entropy `Σ_k y_k (lse(z) - z_k)` and whether the arg-max matches the target's.
pub fn softmax_cross_entropy(mut z: ArrayViewMut1<f32>, y: ArrayView1<f32>) -> (f32, bool) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = z.iter().map(|&v| exp(v - max)).sum();
    let lse = sum.ln();
    let loss = z.iter().zip(y).map(|(&v, &y)| y * (lse - (v - max))).sum();
    let correct = argmax(z.iter().copied()) == argmax(y.iter().copied());
    z.mapv_inplace(|v| exp(v - max) / sum);
    (loss, correct)
}

/// Mean over outputs of `(a - y)²`, and whether the prediction matches (0.5 threshold for one
/// output, arg-max for several).
pub fn mse(a: ArrayView1<f32>, y: ArrayView1<f32>) -> (f32, bool) {
    let loss = a
        .iter()
        .zip(y)
        .map(|(&a, &y)| (a - y) * (a - y))
        .sum::<f32>()
        / a.len() as f32;
    let correct = if a.len() == 1 {
        (a[0] >= 0.5) == (y[0] >= 0.5)
    } else {
        argmax(a.iter().copied()) == argmax(y.iter().copied())
    };
    (loss, correct)
}
