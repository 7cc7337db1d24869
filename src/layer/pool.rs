//! The 2×2, stride-2 max-pool, `pool` (or `maxpool`); the math is [`crate::ops::pool`]. Its
//! forward pass keeps each window's arg-max, which its backward pass sends the gradient to. An
//! activation does not follow it: every activation is non-decreasing, so it commutes with the
//! maximum and belongs before the pool, fused into the layer that produces the pool's input.

use super::op::{Backward, Forward, Op};
use crate::cpu::pool;
#[cfg(feature = "gpu")]
use crate::gpu::plan::{At, Bind, Grid, KernelId, Lowering};
#[cfg(feature = "gpu")]
use crate::gpu::spatial::{PoolDims, PoolKernel};
use crate::ops::pool::PoolShape;
use crate::shape::Chw;

/// The token's syntax, for the layer string's error message.
pub const SYNTAX: &str = "pool";

/// `pool` or `maxpool` read on `input`, or `None` when `token` is not one.
pub fn from_token(token: &str, input: Chw) -> Option<Result<PoolShape, String>> {
    matches!(token, "pool" | "maxpool").then(|| PoolShape::new(input).map_err(|e| e.to_string()))
}

/// The pool's record with its rows from the step record, and its grid: a thread per window.
#[cfg(feature = "gpu")]
fn planned(s: &PoolShape) -> (PoolDims, Grid) {
    let dims = PoolDims {
        rows_from_step: 1,
        ..PoolDims::new(s, 0)
    };
    let per_row = s.output().len() as u32;
    (dims, Grid::Values { per_row })
}

impl Op for PoolShape {
    fn input(&self) -> Chw {
        PoolShape::input(self)
    }

    fn output(&self) -> Chw {
        PoolShape::output(self)
    }

    fn needs_image(&self) -> bool {
        true
    }

    fn fuses_activation(&self) -> bool {
        false
    }

    fn token(&self) -> String {
        "pool".into()
    }

    fn describe(&self) -> String {
        "max-pool 2×2".into()
    }

    fn macs_per_sample(&self) -> u64 {
        0
    }

    /// Each window's arg-max.
    fn keep_per_row(&self) -> usize {
        PoolShape::output(self).len()
    }

    fn cpu_forward(&self, f: Forward<'_>) {
        pool::forward(self, f.x, f.out, f.keep);
    }

    fn cpu_backward(&self, b: Backward<'_>) {
        if let Some(dx) = b.input_grad {
            pool::backward(b.delta, b.keep, dx);
        }
    }

    #[cfg(feature = "gpu")]
    fn lower_forward(&self, at: &At, to: &mut Lowering) {
        let (dims, grid) = planned(self);
        to.push(
            at.label("max-pool", "forward"),
            KernelId::Pool(PoolKernel::Forward),
            vec![
                Bind::Acts(at.j),
                Bind::Acts(at.j + 1),
                Bind::Keep(at.j),
                Bind::Dummy,
            ],
            &dims,
            grid,
        );
    }

    /// The gradient to each window's arg-max, ⊙ f′ of the layer before.
    #[cfg(feature = "gpu")]
    fn lower_backward(&self, at: &At, to: &mut Lowering) {
        let Some(before) = at.before else { return };
        let (dims, grid) = planned(self);
        to.push(
            at.label("max-pool", "grad"),
            KernelId::Pool(PoolKernel::Backward(before)),
            vec![
                Bind::Deltas(at.j),
                Bind::Deltas(at.j - 1),
                Bind::Keep(at.j),
                Bind::Acts(at.j),
            ],
            &dims,
            grid,
        );
    }
}
