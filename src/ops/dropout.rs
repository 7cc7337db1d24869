//! Dropout: the CPU reference and the mask's generator, which the GPU twin
//! (`shaders/dropout.wgsl`) computes bit for bit, so that both backends drop the same values.
//!
//! In training each value is kept with probability `1 − p` and scaled by `1 / (1 − p)`
//! (inverted dropout, as PyTorch's `nn.Dropout`), so evaluation and prediction pass the values
//! through unchanged:
//!
//! ```text
//! forward   y = x · m · s        m ∈ {0, 1}, s = 1 / (1 − p)
//! backward  dx = dy · m · s      (the same m: it is drawn again, not stored)
//! ```
//!
//! **The mask** is a counter-based draw: value `col` of batch row `row` at optimizer step `step`
//! (1-based) in the layer seeded `seed` is kept when `hash(seed, step, row, col) ≥ p · 2³²`,
//! with `hash` four rounds of the PCG hash (Jarzynski and Olano, "Hash Functions for GPU
//! Rendering", 2020), each mixing in one coordinate. Nothing is stored between the passes, no
//! generator state is carried, and a resumed run (whose checkpoint has the step) draws the
//! masks it would have drawn.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use super::Shared;

pub(crate) const WGSL: &str = include_str!("../../shaders/dropout.wgsl");

/// What a dropout pipeline computes (its `MODE` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropoutMode {
    /// Training: masked and scaled, then the activation.
    Train = 0,
    /// Evaluation and prediction: the values unchanged, then the activation.
    Infer = 1,
    /// The gradient through the same mask and scale, times the layer before's f′.
    Backward = 2,
}

pub(crate) const SHARED: &[Shared] = &[
    Shared::U32("DROPOUT_TRAIN", DropoutMode::Train as u32),
    Shared::U32("DROPOUT_INFER", DropoutMode::Infer as u32),
    Shared::U32("DROPOUT_BACKWARD", DropoutMode::Backward as u32),
];

/// One round of the PCG hash: a 32-bit LCG step, then a random xorshift and a multiply
/// (`pcg_hash` in `shaders/dropout.wgsl`).
#[inline]
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// A dropout rate `p` as what the mask compares against: the threshold `p · 2³²` and the
/// scale `1 / (1 − p)` of the kept values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub threshold: u32,
    pub scale: f32,
}

impl Rate {
    /// `p` in [0, 1).
    pub fn new(p: f32) -> Rate {
        Rate {
            threshold: (p as f64 * 4_294_967_296.0) as u32,
            scale: 1.0 / (1.0 - p),
        }
    }

    /// Whether value `col` of row `row` is kept at `step` in the layer seeded `seed`.
    #[inline]
    pub fn keeps(&self, seed: u32, step: u32, row: u32, col: u32) -> bool {
        let h = pcg_hash(pcg_hash(pcg_hash(pcg_hash(seed) ^ step) ^ row) ^ col);
        h >= self.threshold
    }
}

/// Where a block of rows sits in a training step: the draw's coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    pub seed: u32,
    /// The optimizer step being taken (1-based; wraps past 2³²).
    pub step: u32,
    /// The batch row of the block's first row.
    pub row0: u32,
}

/// Forward pass in training: `y = x · m · s` over a block of rows.
pub fn forward(rate: Rate, draw: Draw, x: ArrayView2<f32>, mut y: ArrayViewMut2<f32>) {
    for (r, (x, mut y)) in x.rows().into_iter().zip(y.rows_mut()).enumerate() {
        let row = draw.row0 + r as u32;
        for (c, (x, y)) in x.iter().zip(y.iter_mut()).enumerate() {
            let kept = rate.keeps(draw.seed, draw.step, row, c as u32);
            *y = if kept { x * rate.scale } else { 0.0 };
        }
    }
}

/// Backward pass: `dx = dy · m · s` with the mask [`forward`] drew at the same coordinates.
pub fn backward(rate: Rate, draw: Draw, dy: ArrayView2<f32>, dx: ArrayViewMut2<f32>) {
    forward(rate, draw, dy, dx);
}

/// Evaluation: the values through unchanged.
pub fn infer(x: ArrayView2<f32>, y: ArrayViewMut2<f32>) {
    Zip::from(y).and(x).for_each(|y, &x| *y = x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_pcg_and_the_masks_keep_one_minus_p() {
        // Reference values of the PCG hash (its LCG step and RXS-M-XS output).
        assert_eq!(pcg_hash(0), 129_708_002);
        assert_eq!(pcg_hash(1), 2_831_084_092);
        for p in [0.0f32, 0.1, 0.25, 0.5, 0.9] {
            let rate = Rate::new(p);
            let n = 200_000u32;
            let kept = (0..n)
                .filter(|&i| rate.keeps(3, 7, i / 100, i % 100))
                .count();
            let want = (1.0 - p as f64) * n as f64;
            // Binomial: 5 standard deviations.
            let sd = (n as f64 * p as f64 * (1.0 - p as f64)).sqrt();
            assert!(
                (kept as f64 - want).abs() <= 5.0 * sd + 1.0,
                "p {p}: {kept}"
            );
        }
        // Each coordinate changes the draw.
        let rate = Rate::new(0.5);
        let mask = |s, t, r| (0..64).map(|c| rate.keeps(s, t, r, c)).collect::<Vec<_>>();
        assert_ne!(mask(1, 1, 1), mask(2, 1, 1));
        assert_ne!(mask(1, 1, 1), mask(1, 2, 1));
        assert_ne!(mask(1, 1, 1), mask(1, 1, 2));
    }
}
