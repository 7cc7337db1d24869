//! The dropout op of [`GpuOps`], one kernel as a training step runs it: the forward pass
//! (masked in training, plain otherwise) with its activation, and the backward pass through the
//! same mask times the layer before's f′.

use ndarray::{Array2, ArrayView2, s};

use super::spatial::{Derivative, derivative};
use super::{GpuOps, contiguous};
use crate::error::Result;
use crate::gpu::dropout::{DROPOUT_WG, DropoutDims, DropoutKernel};
use crate::gpu::kernels::{KernelId, grid_1d};
use crate::gpu::prepared::{Readout, matrix};
use crate::gpu::resources::usage_out;
use crate::ops::StepRecord;
use crate::ops::activation::Activation;
use crate::ops::dropout::{Draw, Rate};

impl GpuOps {
    /// Dropout of `x` at `rate`, then `act`: masked with `draw`'s coordinates (its `row0` is
    /// the row of `x`'s first row) when `draw` is given, the values unchanged when not.
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn dropout(
        &self,
        rate: Rate,
        draw: Option<Draw>,
        x: ArrayView2<f32>,
        act: Option<Activation>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let kernel = match draw {
            Some(_) => DropoutKernel::Train(act),
            None => DropoutKernel::Infer(act),
        };
        self.dropout_op(kernel, rate, draw, x, None)
    }

    /// The gradient `dy` through the mask `draw` gives, times `f′(a)` when `deriv` is
    /// `Some((a, f))`. Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn dropout_backward(
        &self,
        rate: Rate,
        draw: Draw,
        dy: ArrayView2<f32>,
        deriv: Derivative<'_>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let (_, act) = derivative(dy.nrows(), dy.ncols(), deriv)?;
        self.dropout_op(DropoutKernel::Backward(act), rate, Some(draw), dy, deriv)
    }

    /// Binds a dropout kernel over `x`'s rows (bindings: x or dy, y or dx, aux).
    fn dropout_op(
        &self,
        kernel: DropoutKernel,
        rate: Rate,
        draw: Option<Draw>,
        x: ArrayView2<f32>,
        deriv: Derivative<'_>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let (rows, n) = x.dim();
        let (aux, _) = derivative(rows, n, deriv)?;
        // The kernel numbers rows from 0: a block starting at `row0` is drawn as rows
        // `row0..`, so it is laid out after `row0` rows that are not computed.
        let row0 = draw.map_or(0, |d| d.row0 as usize);
        let pad = |v: Vec<f32>| {
            let mut all = vec![0.0; row0 * n];
            all.extend(v);
            all
        };
        let buffers = vec![
            self.input("dropout x", &pad(contiguous(x)))?,
            self.ctx.buffer(
                "dropout y",
                ((row0 + rows) * n).max(1) as u64 * 4,
                usage_out(),
            )?,
            self.input("dropout aux", &if deriv.is_some() { pad(aux) } else { aux })?,
        ];
        let dims = DropoutDims::new(n, rate, draw.map_or(0, |d| d.seed), (row0 + rows) as u32);
        let step = StepRecord {
            step: draw.map_or(0, |d| d.step),
            ..Default::default()
        };
        let kernel = self.ctx.kernels.get(&self.ctx, KernelId::Dropout(kernel))?;
        let name = kernel.name.clone();
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        let grid = grid_1d(((row0 + rows) * n) as u64, DROPOUT_WG, max);
        let op = self.prepare_with_step(kernel, buffers, &dims, Some(step), grid)?;
        Ok(Readout::new(
            op,
            vec![(1, (row0 + rows) * n)],
            move |mut v| {
                let all = matrix(&name, row0 + rows, n, v.remove(0))?;
                Ok(all.slice_move(s![row0.., ..]))
            },
        ))
    }
}
