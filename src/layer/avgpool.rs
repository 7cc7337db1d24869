//! Average pooling: `avgpool` (2×2 windows, stride 2) and `gap` (global average pooling: one
//! window over each channel's plane, C×H×W → C×1×1, Keras' `GlobalAveragePooling2D`); the
//! math is [`crate::ops::avgpool`]. A mean is not a maximum, so an activation after it is
//! fused into its forward kernel.

use super::op::{Backward, Forward, Op};
#[cfg(feature = "gpu")]
use crate::gpu::plan::{At, Bind, Grid, KernelId, Lowering};
#[cfg(feature = "gpu")]
use crate::gpu::spatial::{AvgPoolDims, AvgPoolKernel};
use crate::ops::avgpool::{AvgPoolShape, avg_pool, avg_pool_backward};
use crate::shape::Chw;

/// An average pool, and whether it was asked for as the global one (its token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool {
    pub shape: AvgPoolShape,
    pub global: bool,
}

/// The tokens' syntax, for the layer string's error message.
pub const SYNTAX: &str = "avgpool, gap";

/// `avgpool` or `gap` read on `input`, or `None` when `token` is neither.
pub fn from_token(token: &str, input: Chw) -> Option<Result<AvgPool, String>> {
    let (shape, global) = match token {
        "avgpool" => (AvgPoolShape::new(input, 2, 2), false),
        "gap" => (AvgPoolShape::global(input), true),
        _ => return None,
    };
    Some(
        shape
            .map(|shape| AvgPool { shape, global })
            .map_err(|e| e.to_string()),
    )
}

/// The pool's record with its rows from the step record, and its grid: `per_row` threads per
/// sample.
#[cfg(feature = "gpu")]
fn planned(s: &AvgPoolShape, per_row: usize) -> (AvgPoolDims, Grid) {
    let dims = AvgPoolDims {
        rows_from_step: 1,
        ..AvgPoolDims::new(s, 0)
    };
    let per_row = per_row as u32;
    (dims, Grid::Values { per_row })
}

impl Op for AvgPool {
    fn input(&self) -> Chw {
        self.shape.input()
    }

    fn output(&self) -> Chw {
        self.shape.output()
    }

    fn needs_image(&self) -> bool {
        true
    }

    fn token(&self) -> String {
        if self.global { "gap" } else { "avgpool" }.into()
    }

    fn describe(&self) -> String {
        let (wh, ww) = self.shape.window();
        if self.global {
            "global avg-pool".into()
        } else {
            format!("avg-pool {wh}×{ww}")
        }
    }

    /// The adds of the means (counted like multiply-adds, as frameworks count pooling).
    fn macs_per_sample(&self) -> u64 {
        self.shape.input().len() as u64
    }

    fn cpu_forward(&self, f: Forward<'_>) {
        let mut out = f.out;
        avg_pool(&self.shape, f.x, out.view_mut()).expect("shapes checked when built");
        if let Some(act) = f.act {
            out.mapv_inplace(|v| act.apply(v));
        }
    }

    fn cpu_backward(&self, b: Backward<'_>) {
        if let Some(dx) = b.input_grad {
            avg_pool_backward(&self.shape, b.delta, dx).expect("shapes checked when built");
        }
    }

    #[cfg(feature = "gpu")]
    fn lower_forward(&self, at: &At, to: &mut Lowering) {
        let (dims, grid) = planned(&self.shape, self.shape.output().len());
        to.push(
            at.label("avg-pool", "forward"),
            KernelId::AvgPool(AvgPoolKernel::Forward(at.act)),
            vec![Bind::Acts(at.j), Bind::Acts(at.j + 1), Bind::Dummy],
            &dims,
            grid,
        );
    }

    /// Each input's share of its window's gradient, ⊙ f′ of the layer before.
    #[cfg(feature = "gpu")]
    fn lower_backward(&self, at: &At, to: &mut Lowering) {
        let Some(before) = at.before else { return };
        let (dims, grid) = planned(&self.shape, self.shape.input().len());
        to.push(
            at.label("avg-pool", "grad"),
            KernelId::AvgPool(AvgPoolKernel::Backward(before)),
            vec![Bind::Deltas(at.j), Bind::Deltas(at.j - 1), Bind::Acts(at.j)],
            &dims,
            grid,
        );
    }
}
