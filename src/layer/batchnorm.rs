//! Batch normalisation, `bn`: per channel after a convolution (or any image), per feature
//! after a dense layer (values: `n×1×1`); the math is [`crate::ops::batchnorm`]. It has two
//! tensors: the trained scale and shift (`w` = γ as a 1×C row, `b` = β), and the running mean
//! and variance (`w` and `b` of the next tensor), which training updates as running averages
//! and evaluation normalises with. In training, a batch split over threads sums its blocks'
//! moments before normalising, and its gradient sums before the input gradient.
//!
//! On the GPU (`shaders/batchnorm*.wgsl`) training's forward pass is two dispatches: the
//! statistics (a workgroup per channel, which also updates the running ones) and the
//! normalisation (a thread per value, the activation fused); evaluation's is the normalisation
//! with the running statistics. Backward, three: the gradient sums (a workgroup per channel),
//! the input gradient (a thread per value), then the update of γ and β (a thread per channel).

use super::op::{Backward, Forward, Op, Pass};
#[cfg(feature = "gpu")]
use crate::gpu::batchnorm::{BN_WG, BnDims, BnKernel};
#[cfg(feature = "gpu")]
use crate::gpu::kernels::grid_1d;
#[cfg(feature = "gpu")]
use crate::gpu::plan::{At, Bind, Grid, KernelId, Lowering};
use crate::ops::batchnorm::{self as bn, BnShape};
use crate::shape::{Chw, TensorRole, WeightShape};

/// A batch norm over values shaped `shape`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNorm {
    pub shape: Chw,
}

/// The token's syntax, for the layer string's error message.
pub const SYNTAX: &str = "bn";

/// `bn` read on `input`, or `None` when `token` is not one.
pub fn from_token(token: &str, input: Chw) -> Option<Result<BatchNorm, String>> {
    (token == "bn").then_some(Ok(BatchNorm { shape: input }))
}

impl BatchNorm {
    /// Its groups: the channels of an image, or each value of an `n×1×1` row.
    pub fn groups(&self) -> BnShape {
        let s = self.shape;
        BnShape {
            channels: s.c,
            plane: s.plane(),
        }
    }

    /// What the forward pass keeps for the batch: each channel's mean, then `1 / √(σ² + ε)`.
    fn split(batch: &[f32], c: usize) -> (&[f32], &[f32]) {
        batch[..2 * c].split_at(c)
    }
}

impl Op for BatchNorm {
    fn input(&self) -> Chw {
        self.shape
    }

    fn output(&self) -> Chw {
        self.shape
    }

    fn needs_image(&self) -> bool {
        false
    }

    /// γ (a 1×C row) and β.
    fn weights(&self) -> Option<WeightShape> {
        let c = self.groups().channels;
        Some(WeightShape {
            role: TensorRole::TrainedFromOnes,
            ..WeightShape::trained(1, c, c, (1, 1))
        })
    }

    /// The running mean (a 1×C row) and variance.
    fn statistics(&self) -> Option<WeightShape> {
        let c = self.groups().channels;
        Some(WeightShape {
            role: TensorRole::RunningAverage,
            ..WeightShape::trained(1, c, c, (1, 1))
        })
    }

    fn token(&self) -> String {
        "bn".into()
    }

    fn describe(&self) -> String {
        "batch norm".into()
    }

    fn macs_per_sample(&self) -> u64 {
        2 * self.shape.len() as u64
    }

    /// Each channel's mean, `1 / √(σ² + ε)`, and unbiased variance (the CPU) or two gradient
    /// sums (the GPU).
    fn batch_state(&self) -> usize {
        4 * self.groups().channels
    }

    /// `Σx`, `Σx²` (forward), then `Σdy`, `Σdy·x̂` (backward), per channel.
    fn reduce_len(&self) -> usize {
        2 * self.groups().channels
    }

    fn cpu_forward(&self, f: Forward<'_>) {
        let g = self.groups();
        let c = g.channels;
        let p = f.weights.expect("batch norm has weights");
        let mut out = f.out;
        let (mean, rest) = f.batch[..3 * c].split_at_mut(c);
        match f.pass {
            Pass::Train { row0, .. } => {
                let sums = f.sums;
                sums.fill(0.0);
                bn::add_moments(g, f.x, sums);
                (f.reduce)(sums);
                let (inv_std, unbiased) = rest.split_at_mut(c);
                let n = f.batch_rows * g.plane;
                bn::batch_statistics(g, sums, n, mean, inv_std, &mut unbiased[..c]);
                if let Some((mut mw, mut mb)) = f.measured {
                    let first = row0 == 0;
                    for ch in 0..c {
                        mw[[0, ch]] = if first { mean[ch] } else { 0.0 };
                        mb[ch] = if first { unbiased[ch] } else { 0.0 };
                    }
                }
            }
            Pass::Infer => {
                let s = f.statistics.expect("batch norm has statistics");
                mean.copy_from_slice(s.w.as_slice().expect("a contiguous row"));
                bn::running_inv_std(s.b, &mut rest[..c]);
            }
        }
        let (mean, inv_std) = Self::split(f.batch, c);
        bn::normalize(g, f.x, mean, inv_std, p.w.row(0), p.b, out.view_mut());
        if let Some(act) = f.act {
            out.mapv_inplace(|v| act.apply(v));
        }
    }

    fn cpu_backward(&self, b: Backward<'_>) {
        let g = self.groups();
        let c = g.channels;
        let (mean, inv_std) = Self::split(b.batch, c);
        let sums = b.sums;
        sums.fill(0.0);
        bn::add_grad_sums(g, b.x, b.delta, mean, inv_std, sums);
        (b.reduce)(sums);
        if let Some(dx) = b.input_grad {
            let gamma = b.weights.expect("batch norm has weights").w;
            let n = b.batch_rows * g.plane;
            bn::input_grad(g, b.x, b.delta, mean, inv_std, gamma.row(0), sums, n, dx);
        }
        // The sums are the whole batch's: the block holding its first row gives them as the
        // gradients, every other block zeros, since the blocks' gradients are added.
        let (mut dw, mut db) = b.grads.expect("batch norm has weights");
        if matches!(b.pass, Pass::Train { row0: 0, .. }) {
            bn::param_grads(g, sums, dw, db);
        } else {
            dw.fill(0.0);
            db.fill(0.0);
        }
    }

    #[cfg(feature = "gpu")]
    fn lower_forward(&self, at: &At, to: &mut Lowering) {
        let out = Bind::Acts(at.j + 1);
        let (x, keep) = (Bind::Acts(at.j), Bind::Keep(at.j));
        let pair = Bind::TensorPair(at.tensor.expect("batch norm has weights"));
        if to.training {
            let binds = vec![x, Bind::Scratch, pair, keep];
            self.push(at, to, "statistics", BnKernel::Stats, binds);
            let binds = vec![x, out, pair, keep];
            self.push(at, to, "forward", BnKernel::Normalize(at.act), binds);
        } else {
            let binds = vec![x, out, pair, keep];
            self.push(at, to, "forward", BnKernel::NormalizeRunning(at.act), binds);
        }
    }

    /// The gradient sums, the input gradient ⊙ f′ of the layer before (with γ as it was),
    /// then γ and β's update.
    #[cfg(feature = "gpu")]
    fn lower_backward(&self, at: &At, to: &mut Lowering) {
        let (dy, x, keep) = (Bind::Deltas(at.j), Bind::Acts(at.j), Bind::Keep(at.j));
        let t = at.tensor.expect("batch norm has weights");
        let binds = vec![dy, Bind::Scratch, x, Bind::Tensor(t), keep];
        self.push(at, to, "grad sums", BnKernel::GradSums, binds);
        if let Some(before) = at.before {
            let binds = vec![dy, Bind::Deltas(at.j - 1), x, Bind::Tensor(t), keep];
            self.push(at, to, "input grad", BnKernel::InputGrad(before), binds);
        }
        let binds = vec![Bind::Tensor(t), keep, Bind::Slots];
        self.push(at, to, "update", BnKernel::Update(to.optim_kind), binds);
    }
}

#[cfg(feature = "gpu")]
impl BatchNorm {
    /// Adds one of its kernels, binding `binds` (the kernel file's bindings before the
    /// record).
    fn push(&self, at: &At, to: &mut Lowering, what: &str, kernel: BnKernel, binds: Vec<Bind>) {
        let t = at.tensor.expect("batch norm has weights");
        let s = at.statistics_tensor().expect("batch norm has statistics");
        let g = self.groups();
        let dims = BnDims {
            rows_from_step: 1,
            slot_base: to.tensor_starts[t] as u32,
            opt: to.optim,
            ..BnDims::new(g, (to.tensor_starts[s] - to.tensor_starts[t]) as u32, 0)
        };
        let grid = match kernel {
            BnKernel::Update(_) => {
                let (x, y) = grid_1d(g.channels as u64, BN_WG, to.max_groups);
                Grid::Fixed(x, y)
            }
            k if k.per_channel() => {
                let (x, y) = grid_1d(g.channels as u64, 1, to.max_groups);
                Grid::Fixed(x, y)
            }
            _ => Grid::PerValue {
                per_row: g.len() as u32,
                wg: BN_WG,
            },
        };
        let label = at.label("batch norm", what);
        to.push(label, KernelId::BatchNorm(kernel), binds, &dims, grid);
    }
}
