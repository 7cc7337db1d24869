//! The dense (fully connected) layer, `dense128`: `z = x·W + b` on the flattened input, `W`
//! stored `[in, out]`. On the GPU each pass is one matmul whose epilogue does the rest: bias and
//! activation forward, ⊙ f′ for the input gradient, and the optimizer on `[W; b]` for the
//! weight gradient (its ones-row adds the bias gradient).

use super::op::{Backward, Forward, Op};
use crate::cpu::linalg::gemm;
#[cfg(feature = "gpu")]
use crate::gpu::plan::{At, Bind, Grid, Lowering, matmul_kernel};
#[cfg(feature = "gpu")]
use crate::ops::activation::Activation;
use crate::ops::matmul::bias_activation;
#[cfg(feature = "gpu")]
use crate::ops::matmul::{Epilogue, MatmulDims, RowsDim};
use crate::ops::reduce::column_sums;
use crate::shape::{Chw, WeightShape};

/// A dense layer of `units` outputs over `inputs` values (whatever shape they came in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    pub inputs: usize,
    pub units: usize,
}

/// The token's syntax, for the layer string's error message.
pub const SYNTAX: &str = "denseN (e.g. dense128)";

/// `denseN` read on `input` (which it flattens), or `None` when `token` is not one.
pub fn from_token(token: &str, input: Chw) -> Option<Result<Dense, String>> {
    let units = super::number(token.strip_prefix("dense")?)?;
    Some(if units == 0 {
        Err("a dense layer needs at least 1 unit".into())
    } else {
        Ok(Dense {
            inputs: input.len(),
            units,
        })
    })
}

#[cfg(feature = "gpu")]
impl Dense {
    fn rows_dims(&self, n: usize, k: usize) -> MatmulDims {
        MatmulDims {
            n: n as u32,
            k: k as u32,
            rows_dim: RowsDim::M as u32,
            ..Default::default()
        }
    }
}

impl Op for Dense {
    fn input(&self) -> Chw {
        Chw::new(self.inputs, 1, 1)
    }

    fn output(&self) -> Chw {
        Chw::new(self.units, 1, 1)
    }

    fn needs_image(&self) -> bool {
        false
    }

    fn flattens(&self) -> bool {
        true
    }

    fn weights(&self) -> Option<WeightShape> {
        let (i, o) = (self.inputs, self.units);
        Some(WeightShape::trained(i, o, o, (i, o)))
    }

    fn token(&self) -> String {
        format!("dense{}", self.units)
    }

    fn describe(&self) -> String {
        "dense".into()
    }

    fn macs_per_sample(&self) -> u64 {
        self.inputs as u64 * self.units as u64
    }

    fn cpu_forward(&self, f: Forward<'_>) {
        let p = f.weights.expect("a dense layer has weights");
        let mut out = f.out;
        gemm(1.0, f.x, p.w, 0.0, out.view_mut(), 1);
        bias_activation(out, p.b, f.act);
    }

    fn cpu_backward(&self, b: Backward<'_>) {
        let (mut dw, db) = b.grads.expect("a dense layer has weights");
        gemm(1.0, b.x.t(), b.delta, 0.0, dw.view_mut(), 1);
        column_sums(b.delta, db);
        if let Some(dx) = b.input_grad {
            let w = b.weights.expect("a dense layer has weights").w;
            gemm(1.0, b.delta, w.t(), 0.0, dx, 1);
        }
    }

    /// `a_{j+1} = f(a_j · W + b)` (the logits for the last layer, which has no activation).
    #[cfg(feature = "gpu")]
    fn lower_forward(&self, at: &At, to: &mut Lowering) {
        let (i, o) = (self.inputs, self.units);
        let dims = MatmulDims {
            lda: i as u32,
            ldb: o as u32,
            ldc: o as u32,
            epilogue: Epilogue::BiasAct as u32,
            act: Activation::code_of(at.act),
            bias_offset: (i * o) as u32,
            ..self.rows_dims(o, i)
        };
        let tile = to.tile(to.rows, o as u32, i as u32);
        let t = at.tensor.expect("a dense layer has weights");
        to.push(
            at.label("dense", "forward"),
            matmul_kernel(tile, false, false, &dims),
            vec![
                Bind::Acts(at.j),
                Bind::Tensor(t),
                Bind::Acts(at.j + 1),
                Bind::Dummy,
                Bind::Scratch,
            ],
            &dims,
            Grid::Matmul(dims, tile),
        );
    }

    /// `δ_{j-1} = (δ_j · Wᵀ) ⊙ f′(a_j)`, then `xᵀ·δ` over the batch is dW and the ones-row
    /// adds db: the gradient of `[W; b]`, handed straight to the optimizer in the epilogue.
    #[cfg(feature = "gpu")]
    fn lower_backward(&self, at: &At, to: &mut Lowering) {
        let (i, o) = (self.inputs, self.units);
        let t = at.tensor.expect("a dense layer has weights");
        if let Some(before) = at.before {
            let dims = MatmulDims {
                lda: o as u32,
                ldb: o as u32,
                ldc: i as u32,
                epilogue: Epilogue::MulDerivative as u32,
                act: Activation::code_of(before),
                ..self.rows_dims(i, o)
            };
            let tile = to.tile(to.rows, i as u32, o as u32);
            to.push(
                at.label("dense", "input grad"),
                matmul_kernel(tile, false, true, &dims),
                vec![
                    Bind::Deltas(at.j),
                    Bind::Tensor(t),
                    Bind::Deltas(at.j - 1),
                    Bind::Acts(at.j),
                    Bind::Scratch,
                ],
                &dims,
                Grid::Matmul(dims, tile),
            );
        }
        let dims = MatmulDims::weight_update(
            i as u32,
            o as u32,
            None,
            to.tensor_starts[t] as u32,
            to.optim,
        );
        let tile = to.tile(i as u32 + 1, o as u32, to.rows);
        to.push(
            at.label("dense", "weight grad + update"),
            matmul_kernel(tile, true, false, &dims),
            vec![
                Bind::Acts(at.j),
                Bind::Deltas(at.j),
                Bind::Tensor(t),
                Bind::Dummy,
                Bind::Slots,
            ],
            &dims,
            Grid::Matmul(dims, tile),
        );
    }
}
