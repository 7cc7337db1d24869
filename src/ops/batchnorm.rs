//! Batch normalisation: the CPU reference. The GPU twin is `shaders/batchnorm.wgsl`, planned by
//! `layer::batchnorm`.
//!
//! A layer normalises `channels` groups of `plane` values per sample: per channel after a
//! convolution (the plane is H·W), per feature after a dense layer (a plane of 1). Over a
//! training batch of B samples each group has `N = B·plane` values:
//!
//! ```text
//! μ = Σx / N        σ² = Σx² / N − μ²  (biased)        x̂ = (x − μ) / √(σ² + ε)
//! forward    y = γ·x̂ + β
//! backward   dγ = Σ dy·x̂     dβ = Σ dy     dx = γ / √(σ² + ε) · (dy − dβ/N − x̂·dγ/N)
//! running    m̄ ← (1 − m)·m̄ + m·μ       v̄ ← (1 − m)·v̄ + m·σ²·N/(N − 1)
//! evaluation y = γ·(x − m̄) / √(v̄ + ε) + β
//! ```
//!
//! with PyTorch's defaults `m` = [`MOMENTUM`] and `ε` = [`EPS`]. The sums are taken in f64,
//! per block of rows; a batch split over threads adds its blocks' sums (`Σx`, `Σx²`, then
//! `Σdy`, `Σdy·x̂`) before any block uses them, so every block normalises with the whole
//! batch's statistics.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// The weight of a batch's statistics in the running ones (PyTorch's `momentum`).
pub const MOMENTUM: f32 = 0.1;

/// Added to the variance before its square root (PyTorch's `eps`).
pub const EPS: f32 = 1e-5;

/// What a batch norm normalises: `channels` groups of `plane` values per sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BnShape {
    pub channels: usize,
    pub plane: usize,
}

impl BnShape {
    /// Values per sample.
    pub fn len(&self) -> usize {
        self.channels * self.plane
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A row's channels: each channel's plane of values, in order.
    fn planes<'a>(&self, row: &'a [f32]) -> std::slice::ChunksExact<'a, f32> {
        row.chunks_exact(self.plane)
    }
}

/// A row of a batch as a slice (the batches are standard-layout matrices).
fn slice<'a>(row: ndarray::ArrayView1<'a, f32>) -> &'a [f32] {
    row.to_slice().expect("contiguous rows")
}

/// `(Σv, Σv²)` of a plane, in f64.
fn moments(plane: &[f32]) -> (f64, f64) {
    plane.iter().fold((0.0, 0.0), |(s, q), &v| {
        let v = v as f64;
        (s + v, q + v * v)
    })
}

/// Adds a block's `Σx` (into `sums[c]`) and `Σx²` (into `sums[channels + c]`).
pub fn add_moments(s: BnShape, x: ArrayView2<f32>, sums: &mut [f64]) {
    for row in x.rows() {
        for (c, plane) in s.planes(slice(row)).enumerate() {
            let (sum, squares) = moments(plane);
            sums[c] += sum;
            sums[s.channels + c] += squares;
        }
    }
}

/// The mean and `1 / √(σ² + ε)` of each channel from the batch's moments over `n` values each,
/// into `mean` and `inv_std`; and the unbiased variance, for the running statistics.
pub fn batch_statistics(
    s: BnShape,
    sums: &[f64],
    n: usize,
    mean: &mut [f32],
    inv_std: &mut [f32],
    unbiased: &mut [f32],
) {
    let n = n as f64;
    for c in 0..s.channels {
        let mu = sums[c] / n;
        let var = (sums[s.channels + c] / n - mu * mu).max(0.0);
        mean[c] = mu as f32;
        inv_std[c] = (1.0 / (var + EPS as f64).sqrt()) as f32;
        unbiased[c] = if n > 1.0 {
            (var * n / (n - 1.0)) as f32
        } else {
            var as f32
        };
    }
}

/// `y = γ·(x − mean)·inv_std + β` per channel.
pub fn normalize(
    s: BnShape,
    x: ArrayView2<f32>,
    mean: &[f32],
    inv_std: &[f32],
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
    mut y: ArrayViewMut2<f32>,
) {
    for (x, mut y) in x.rows().into_iter().zip(y.rows_mut()) {
        let y = y.as_slice_mut().expect("contiguous rows");
        for (c, (x, y)) in s
            .planes(slice(x))
            .zip(y.chunks_exact_mut(s.plane))
            .enumerate()
        {
            let (m, k, b) = (mean[c], gamma[c] * inv_std[c], beta[c]);
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = k * (x - m) + b);
        }
    }
}

/// Evaluation's `mean` and `inv_std` from the running statistics.
pub fn running_inv_std(var: ArrayView1<f32>, inv_std: &mut [f32]) {
    for (s, &v) in inv_std.iter_mut().zip(var.iter()) {
        *s = 1.0 / (v + EPS).sqrt();
    }
}

/// Adds a block's `Σdy` (into `sums[c]`) and `Σdy·x̂` (into `sums[channels + c]`).
pub fn add_grad_sums(
    s: BnShape,
    x: ArrayView2<f32>,
    dy: ArrayView2<f32>,
    mean: &[f32],
    inv_std: &[f32],
    sums: &mut [f64],
) {
    for (x, dy) in x.rows().into_iter().zip(dy.rows()) {
        for (c, (x, g)) in s.planes(slice(x)).zip(s.planes(slice(dy))).enumerate() {
            let (m, k) = (mean[c], inv_std[c]);
            let (sum, dot) = x.iter().zip(g).fold((0.0, 0.0), |(s, d), (&x, &g)| {
                (s + g as f64, d + g as f64 * ((x - m) * k) as f64)
            });
            sums[c] += sum;
            sums[s.channels + c] += dot;
        }
    }
}

/// `dx = γ·inv_std·(dy − Σdy/N − x̂·Σdy·x̂/N)` per channel, from the batch's gradient sums over
/// `n` values each.
#[allow(clippy::too_many_arguments)]
pub fn input_grad(
    s: BnShape,
    x: ArrayView2<f32>,
    dy: ArrayView2<f32>,
    mean: &[f32],
    inv_std: &[f32],
    gamma: ArrayView1<f32>,
    sums: &[f64],
    n: usize,
    mut dx: ArrayViewMut2<f32>,
) {
    let n = n as f64;
    for ((x, dy), mut dx) in x.rows().into_iter().zip(dy.rows()).zip(dx.rows_mut()) {
        let dx = dx.as_slice_mut().expect("contiguous rows");
        let planes = s.planes(slice(x)).zip(s.planes(slice(dy)));
        for (c, ((x, g), d)) in planes.zip(dx.chunks_exact_mut(s.plane)).enumerate() {
            let (m, k) = (mean[c], inv_std[c]);
            let (sum_dy, sum_dyx) = ((sums[c] / n) as f32, (sums[s.channels + c] / n) as f32);
            let scale = gamma[c] * k;
            for ((d, &x), &g) in d.iter_mut().zip(x).zip(g) {
                *d = scale * (g - sum_dy - (x - m) * k * sum_dyx);
            }
        }
    }
}

/// The trained tensor's gradients: `dγ` (as a 1×C row) and `dβ`, from the batch's sums.
pub fn param_grads(
    s: BnShape,
    sums: &[f64],
    mut dgamma: ArrayViewMut2<f32>,
    mut dbeta: ArrayViewMut1<f32>,
) {
    for c in 0..s.channels {
        dgamma[[0, c]] = sums[s.channels + c] as f32;
        dbeta[c] = sums[c] as f32;
    }
}

/// One running-average step: `p ← (1 − m)·p + m·v`.
pub fn running_average(mut p: ArrayViewMut1<f32>, v: &[f32]) {
    for (p, &v) in p.iter_mut().zip(v) {
        *p = (1.0 - MOMENTUM) * *p + MOMENTUM * v;
    }
}
