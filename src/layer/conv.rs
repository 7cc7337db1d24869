//! The 2-D convolution, `conv32k5same`: stride 1, a k×k kernel, valid or same padding, a bias
//! per output channel; the math is [`crate::ops::conv`]. On the CPU a group of samples is one
//! GEMM over their im2col matrix ([`crate::cpu::conv`]); on the GPU `shaders/conv.wgsl` runs the
//! forward pass with the activation, the input gradient ⊙ f′, and the update (the weight
//! gradients summed and the optimizer applied in place).

use super::op::{Backward, Forward, Op};
use crate::cpu::conv;
#[cfg(feature = "gpu")]
use crate::gpu::kernels::grid_1d;
#[cfg(feature = "gpu")]
use crate::gpu::plan::{At, Bind, Grid, KernelId, Lowering};
#[cfg(feature = "gpu")]
use crate::gpu::spatial::{ConvDims, ConvKernel};
use crate::ops::conv::{ConvShape, Padding};
use crate::shape::{Chw, WeightShape};

/// The token's syntax, for the layer string's error message.
pub const SYNTAX: &str = "convCkK[same|valid] (e.g. conv8k5)";

/// `convCkK[same|valid]` read on `input`, or `None` when `token` is not one.
pub fn from_token(token: &str, input: Chw) -> Option<Result<ConvShape, String>> {
    let rest = token.strip_prefix("conv")?;
    let (channels, rest) = rest.split_once('k')?;
    let (kernel, padding) = match rest.strip_suffix("same") {
        Some(k) => (k, Padding::Same),
        None => (rest.strip_suffix("valid").unwrap_or(rest), Padding::Valid),
    };
    let (channels, kernel) = (super::number(channels)?, super::number(kernel)?);
    Some(ConvShape::new(input, channels, kernel, padding).map_err(|e| e.to_string()))
}

/// A convolution's record with its rows from the step record.
#[cfg(feature = "gpu")]
fn dims(s: &ConvShape) -> ConvDims {
    ConvDims {
        rows_from_step: 1,
        ..ConvDims::new(s, 0)
    }
}

impl Op for ConvShape {
    fn input(&self) -> Chw {
        ConvShape::input(self)
    }

    fn output(&self) -> Chw {
        ConvShape::output(self)
    }

    fn needs_image(&self) -> bool {
        true
    }

    /// `C_out × C_in·k·k` (fan-in C_in·k·k, fan-out C_out·k·k, as PyTorch counts them).
    fn weights(&self) -> Option<WeightShape> {
        let (rows, cols) = self.weight_dims();
        let fan_out = rows * self.kernel() * self.kernel();
        Some(WeightShape::trained(rows, cols, rows, (cols, fan_out)))
    }

    fn token(&self) -> String {
        let pad = if self.padding() == Padding::Same {
            "same"
        } else {
            ""
        };
        format!("conv{}k{}{pad}", ConvShape::output(self).c, self.kernel())
    }

    fn describe(&self) -> String {
        format!("conv2d {k}×{k} {}", self.padding(), k = self.kernel())
    }

    fn macs_per_sample(&self) -> u64 {
        ConvShape::macs_per_sample(self)
    }

    fn scratch_len(&self, rows: usize) -> usize {
        conv::scratch_len(self, rows)
    }

    fn cpu_forward(&self, f: Forward<'_>) {
        let p = f.weights.expect("a convolution has weights");
        let scratch = conv::Scratch {
            cols: &mut f.scratch.cols,
            wide: &mut f.scratch.wide,
        };
        conv::forward(self, f.act, f.x, p.w, p.b, f.out, scratch);
    }

    fn cpu_backward(&self, b: Backward<'_>) {
        let (dw, db) = b.grads.expect("a convolution has weights");
        let w = b.weights.expect("a convolution has weights").w;
        let scratch = conv::Scratch {
            cols: &mut b.scratch.cols,
            wide: &mut b.scratch.wide,
        };
        conv::backward(self, b.x, b.delta, w, dw, db, b.input_grad, scratch);
    }

    #[cfg(feature = "gpu")]
    fn lower_forward(&self, at: &At, to: &mut Lowering) {
        to.push(
            at.label("conv", "forward"),
            KernelId::Conv(ConvKernel::Forward(at.act)),
            vec![
                Bind::Acts(at.j),
                Bind::Tensor(at.tensor.expect("a convolution has weights")),
                Bind::Acts(at.j + 1),
                Bind::Dummy,
                Bind::Scratch,
            ],
            &dims(self),
            Grid::Conv(self.forward_work()),
        );
    }

    /// The input gradient (the same correlation with the kernel turned round, ⊙ f′ of the
    /// layer before), then the update: a workgroup per block of channels × taps sums their
    /// gradients and applies the optimizer in place.
    #[cfg(feature = "gpu")]
    fn lower_backward(&self, at: &At, to: &mut Lowering) {
        let t = at.tensor.expect("a convolution has weights");
        if let Some(before) = at.before {
            to.push(
                at.label("conv", "input grad"),
                KernelId::Conv(ConvKernel::InputGrad(before)),
                vec![
                    Bind::Deltas(at.j),
                    Bind::Tensor(t),
                    Bind::Deltas(at.j - 1),
                    Bind::Acts(at.j),
                    Bind::Scratch,
                ],
                &dims(self),
                Grid::Conv(self.input_grad_work()),
            );
        }
        let update = ConvDims {
            slot_base: to.tensor_starts[t] as u32,
            opt: to.optim,
            ..dims(self)
        };
        let (x, y) = grid_1d(self.update_groups() as u64, 1, to.max_groups);
        to.push(
            at.label("conv", "update"),
            KernelId::Conv(ConvKernel::Update(to.optim_kind)),
            vec![
                Bind::Acts(at.j),
                Bind::Deltas(at.j),
                Bind::Tensor(t),
                Bind::Dummy,
                Bind::Slots,
            ],
            &update,
            Grid::Fixed(x, y),
        );
    }
}
