//! The convolution and pool ops of [`GpuOps`], one kernel each as a training step runs them:
//! the forward pass with its activation, the input gradient times the layer before's f′, a
//! convolution's update (gradients handed to the optimizer in place), and the pools' two
//! passes.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::{GpuOps, check_dim, contiguous};
use crate::error::{Error, Result};
use crate::gpu::kernels::{KernelId, grid_1d};
use crate::gpu::prepared::{PreparedOp, Readout, matrix};
use crate::gpu::resources::{upload, usage_out};
use crate::gpu::spatial::{
    AvgPoolDims, AvgPoolKernel, ConvDims, ConvKernel, POOL_WG, PoolDims, PoolKernel,
};
use crate::net::Activation;
use crate::ops::StepRecord;
use crate::ops::avgpool::AvgPoolShape;
use crate::ops::conv::ConvShape;
use crate::ops::optim::OptimParams;
use crate::ops::pool::PoolShape;

use super::matmul::UpdateSpec;

/// Where [`GpuOps::conv2d_update`] puts the layer's optimizer state: past a gap, as a layer
/// after the first finds its state in a training step's shared buffer.
const SLOT_GAP: usize = 5;

/// A matrix and the activation whose derivative is taken from it.
pub type Derivative<'a> = Option<(ArrayView2<'a, f32>, Activation)>;

/// [`GpuOps::max_pool`]'s result: the maxima and, for each, its index in the sample's row.
pub type Pooled = (Array2<f32>, Array2<u32>);

/// What an update op returns (`conv2d_update`, `batch_norm_update`): the parameters and each
/// optimizer slot, flat.
pub type Updated = (Array1<f32>, Vec<Array1<f32>>);

impl GpuOps {
    /// `act(conv(x, w) + b)` (`act` None: the plain sum) for `x` B × C_in·H·W.
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn conv2d(
        &self,
        s: &ConvShape,
        x: ArrayView2<f32>,
        w: ArrayView2<f32>,
        b: ArrayView1<f32>,
        act: Option<Activation>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let op = self.prepare_conv2d(s, x, w, b, act)?;
        Ok(Readout::matrix(op, 2, x.nrows(), s.output().len()))
    }

    /// [`GpuOps::conv2d`], prepared (bindings: x, [w; b], y, aux, slots).
    fn prepare_conv2d(
        &self,
        s: &ConvShape,
        x: ArrayView2<f32>,
        w: ArrayView2<f32>,
        b: ArrayView1<f32>,
        act: Option<Activation>,
    ) -> Result<PreparedOp<'_>> {
        let rows = x.nrows();
        check_dim("conv2d input row", s.input().len(), x.ncols())?;
        let params = conv_params(s, w, b)?;
        let out = rows * s.output().len();
        let buffers = vec![
            self.input("conv2d x", &contiguous(x))?,
            self.input("conv2d params", &params)?,
            self.ctx.buffer("conv2d y", bytes(out), usage_out())?,
            self.input("conv2d aux", &[0.0])?,
            self.ctx.buffer("conv2d slots", 16, usage_out())?,
        ];
        let kernel = KernelId::Conv(ConvKernel::Forward(act));
        let groups = s.forward_work().groups(rows);
        self.prepare_spatial(
            kernel,
            buffers,
            &ConvDims::new(s, rows as u32),
            groups,
            None,
        )
    }

    /// The input gradient of a convolution, `conv2d_input_grad(dy, w)`, times `f′(a)` when
    /// `deriv` is `Some((a, f))` (`a` shaped like the input).
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn conv2d_input_grad(
        &self,
        s: &ConvShape,
        dy: ArrayView2<f32>,
        w: ArrayView2<f32>,
        deriv: Derivative<'_>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let op = self.prepare_conv2d_input_grad(s, dy, w, deriv)?;
        Ok(Readout::matrix(op, 2, dy.nrows(), s.input().len()))
    }

    /// [`GpuOps::conv2d_input_grad`], prepared (bindings: dy, [w; 0], dx, aux, slots).
    fn prepare_conv2d_input_grad(
        &self,
        s: &ConvShape,
        dy: ArrayView2<f32>,
        w: ArrayView2<f32>,
        deriv: Derivative<'_>,
    ) -> Result<PreparedOp<'_>> {
        let rows = dy.nrows();
        check_dim("conv2d output gradient row", s.output().len(), dy.ncols())?;
        let zeros = Array1::zeros(s.output().c);
        let params = conv_params(s, w, zeros.view())?;
        let (aux, act) = derivative(rows, s.input().len(), deriv)?;
        let out = rows * s.input().len();
        let buffers = vec![
            self.input("conv2d dy", &contiguous(dy))?,
            self.input("conv2d params", &params)?,
            self.ctx.buffer("conv2d dx", bytes(out), usage_out())?,
            self.input("conv2d aux", &aux)?,
            self.ctx.buffer("conv2d slots", 16, usage_out())?,
        ];
        let kernel = KernelId::Conv(ConvKernel::InputGrad(act));
        let groups = s.input_grad_work().groups(rows);
        self.prepare_spatial(
            kernel,
            buffers,
            &ConvDims::new(s, rows as u32),
            groups,
            None,
        )
    }

    /// A convolution's update as a training step runs it: the weight and bias gradients of
    /// `x` and `dy` over the batch, each handed to the optimizer, which updates `params` (the
    /// weights row-major, then the biases) and its state `slots` (shaped like `params`).
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn conv2d_update(
        &self,
        s: &ConvShape,
        x: ArrayView2<f32>,
        dy: ArrayView2<f32>,
        params: ArrayView1<f32>,
        slots: &[ArrayView1<f32>],
        spec: UpdateSpec<'_>,
    ) -> Result<Readout<'_, Updated>> {
        let op = self.prepare_conv2d_update(s, x, dy, params, slots, spec)?;
        let (n, count) = (params.len(), slots.len());
        let stride = SLOT_GAP + n;
        Ok(Readout::new(
            op,
            vec![(2, n), (4, count * stride)],
            move |v| {
                let [p, all] = <[Vec<f32>; 2]>::try_from(v).expect("two reads");
                let slots = (0..count)
                    .map(|i| Array1::from(all[i * stride + SLOT_GAP..][..n].to_vec()))
                    .collect();
                Ok((Array1::from(p), slots))
            },
        ))
    }

    /// [`GpuOps::conv2d_update`], prepared (bindings: x, dy, params, aux, slots).
    fn prepare_conv2d_update(
        &self,
        s: &ConvShape,
        x: ArrayView2<f32>,
        dy: ArrayView2<f32>,
        params: ArrayView1<f32>,
        slots: &[ArrayView1<f32>],
        spec: UpdateSpec<'_>,
    ) -> Result<PreparedOp<'_>> {
        let rows = x.nrows();
        check_dim("conv2d input row", s.input().len(), x.ncols())?;
        check_dim("conv2d output gradient rows", rows, dy.nrows())?;
        check_dim("conv2d output gradient row", s.output().len(), dy.ncols())?;
        let n = s.parameter_count();
        let optimizer = spec.optimizer;
        if params.len() != n
            || slots.len() != optimizer.slots()
            || slots.iter().any(|v| v.len() != n)
        {
            return Err(Error::arg(
                "conv2d update parameters and state",
                format!("{n} parameters and {} slots of as many", optimizer.slots()),
                format!("{} parameters and {} slots", params.len(), slots.len()),
            ));
        }
        let stride = SLOT_GAP + n;
        let mut slot_data = vec![0.0; stride * slots.len().max(1)];
        for (i, slot) in slots.iter().enumerate() {
            slot_data[i * stride + SLOT_GAP..][..n].copy_from_slice(&slot.to_vec());
        }
        let buffers = vec![
            self.input("conv2d x", &contiguous(x))?,
            self.input("conv2d dy", &contiguous(dy))?,
            upload(&self.ctx, "conv2d params", &params.to_vec(), usage_out())?,
            self.input("conv2d aux", &[0.0])?,
            upload(&self.ctx, "conv2d slots", &slot_data, usage_out())?,
        ];
        let dims = ConvDims {
            slot_base: SLOT_GAP as u32,
            opt: OptimParams::new(optimizer, stride as u32),
            ..ConvDims::new(s, rows as u32)
        };
        let step = spec.step_record();
        let kernel = KernelId::Conv(ConvKernel::Update(optimizer.kind()));
        self.prepare_spatial(kernel, buffers, &dims, s.update_groups() as u64, Some(step))
    }

    /// 2×2 max-pooling of `x` (B × C·H·W): the maxima and where each came from.
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn max_pool(&self, s: &PoolShape, x: ArrayView2<f32>) -> Result<Readout<'_, Pooled>> {
        let op = self.prepare_max_pool(s, x)?;
        let (rows, cols) = (x.nrows(), s.output().len());
        let name = op.kernel.name.clone();
        Ok(Readout::new(
            op,
            vec![(1, rows * cols), (2, rows * cols)],
            move |v| {
                let [y, at] = <[Vec<f32>; 2]>::try_from(v).expect("two reads");
                let at = at.iter().map(|v| v.to_bits()).collect();
                let at =
                    Array2::from_shape_vec((rows, cols), at).map_err(|e| Error::gpu(&name, e))?;
                Ok((matrix(&name, rows, cols, y)?, at))
            },
        ))
    }

    /// [`GpuOps::max_pool`], prepared (bindings: x, y, arg-max, aux).
    fn prepare_max_pool(&self, s: &PoolShape, x: ArrayView2<f32>) -> Result<PreparedOp<'_>> {
        let rows = x.nrows();
        check_dim("max-pool input row", s.input().len(), x.ncols())?;
        let out = rows * s.output().len();
        let buffers = vec![
            self.input("max-pool x", &contiguous(x))?,
            self.ctx.buffer("max-pool y", bytes(out), usage_out())?,
            self.ctx
                .buffer("max-pool arg-max", bytes(out), usage_out())?,
            self.input("max-pool aux", &[0.0])?,
        ];
        let kernel = KernelId::Pool(PoolKernel::Forward);
        let dims = PoolDims::new(s, rows as u32);
        self.prepare_spatial(kernel, buffers, &dims, s.groups(rows), None)
    }

    /// The pool's backward pass: each output's gradient `dy` to its arg-max, zeros elsewhere,
    /// times `f′(a)` when `deriv` is `Some((a, f))` (`a` shaped like the pool's input).
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn max_pool_backward(
        &self,
        s: &PoolShape,
        dy: ArrayView2<f32>,
        argmax: ArrayView2<u32>,
        deriv: Derivative<'_>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let op = self.prepare_max_pool_backward(s, dy, argmax, deriv)?;
        Ok(Readout::matrix(op, 1, dy.nrows(), s.input().len()))
    }

    /// [`GpuOps::max_pool_backward`], prepared (bindings: dy, dx, arg-max, aux).
    fn prepare_max_pool_backward(
        &self,
        s: &PoolShape,
        dy: ArrayView2<f32>,
        argmax: ArrayView2<u32>,
        deriv: Derivative<'_>,
    ) -> Result<PreparedOp<'_>> {
        let rows = dy.nrows();
        check_dim("max-pool output gradient row", s.output().len(), dy.ncols())?;
        if argmax.dim() != dy.dim() {
            return Err(Error::shape(
                "max-pool arg-max",
                format!("{}x{}", rows, dy.ncols()),
                format!("{}x{}", argmax.nrows(), argmax.ncols()),
            ));
        }
        let (aux, act) = derivative(rows, s.input().len(), deriv)?;
        let out = rows * s.input().len();
        let at: Vec<u32> = argmax.iter().copied().collect();
        let buffers = vec![
            self.input("max-pool dy", &contiguous(dy))?,
            self.ctx.buffer("max-pool dx", bytes(out), usage_out())?,
            upload(&self.ctx, "max-pool arg-max", &at, usage_out())?,
            self.input("max-pool aux", &aux)?,
        ];
        let kernel = KernelId::Pool(PoolKernel::Backward(act));
        let dims = PoolDims::new(s, rows as u32);
        self.prepare_spatial(kernel, buffers, &dims, s.groups(rows), None)
    }

    /// Average pooling of `x` (B × C·H·W), then `act` (None: the plain means).
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn avg_pool(
        &self,
        s: &AvgPoolShape,
        x: ArrayView2<f32>,
        act: Option<Activation>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let rows = x.nrows();
        check_dim("avg-pool input row", s.input().len(), x.ncols())?;
        let out = rows * s.output().len();
        let buffers = vec![
            self.input("avg-pool x", &contiguous(x))?,
            self.ctx.buffer("avg-pool y", bytes(out), usage_out())?,
            self.input("avg-pool aux", &[0.0])?,
        ];
        let kernel = KernelId::AvgPool(AvgPoolKernel::Forward(act));
        let dims = AvgPoolDims::new(s, rows as u32);
        let groups = (out as u64).div_ceil(POOL_WG as u64);
        let op = self.prepare_spatial(kernel, buffers, &dims, groups, None)?;
        Ok(Readout::matrix(op, 1, rows, s.output().len()))
    }

    /// The average pool's backward pass: each output's gradient `dy` spread evenly over its
    /// window, times `f′(a)` when `deriv` is `Some((a, f))` (`a` shaped like the pool's input).
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn avg_pool_backward(
        &self,
        s: &AvgPoolShape,
        dy: ArrayView2<f32>,
        deriv: Derivative<'_>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let rows = dy.nrows();
        check_dim("avg-pool output gradient row", s.output().len(), dy.ncols())?;
        let (aux, act) = derivative(rows, s.input().len(), deriv)?;
        let out = rows * s.input().len();
        let buffers = vec![
            self.input("avg-pool dy", &contiguous(dy))?,
            self.ctx.buffer("avg-pool dx", bytes(out), usage_out())?,
            self.input("avg-pool aux", &aux)?,
        ];
        let kernel = KernelId::AvgPool(AvgPoolKernel::Backward(act));
        let dims = AvgPoolDims::new(s, rows as u32);
        let groups = (out as u64).div_ceil(POOL_WG as u64);
        let op = self.prepare_spatial(kernel, buffers, &dims, groups, None)?;
        Ok(Readout::matrix(op, 1, rows, s.input().len()))
    }

    /// Binds a spatial kernel of `groups` workgroups.
    fn prepare_spatial<T: bytemuck::Pod>(
        &self,
        kernel: KernelId,
        buffers: Vec<crate::gpu::live::DeviceBuffer>,
        dims: &T,
        groups: u64,
        step: Option<StepRecord>,
    ) -> Result<PreparedOp<'_>> {
        let kernel = self.ctx.kernels.get(&self.ctx, kernel)?;
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        let grid = grid_1d(groups, 1, max);
        self.prepare_with_step(kernel, buffers, dims, step, grid)
    }
}

fn bytes(values: usize) -> u64 {
    (values.max(1) * 4) as u64
}

/// A convolution's parameter block as the kernels read it: `w` row-major, then `b`.
fn conv_params(s: &ConvShape, w: ArrayView2<f32>, b: ArrayView1<f32>) -> Result<Vec<f32>> {
    let (r, c) = s.weight_dims();
    if w.dim() != (r, c) || b.len() != r {
        return Err(Error::shape(
            format!("{s}: weights and bias"),
            format!("{r}x{c} and {r}"),
            format!("{}x{} and {}", w.nrows(), w.ncols(), b.len()),
        ));
    }
    Ok(w.iter().chain(b.iter()).copied().collect())
}

/// The aux buffer and activation code of a derivative epilogue (none: one value, identity).
pub(super) fn derivative(
    rows: usize,
    cols: usize,
    deriv: Derivative<'_>,
) -> Result<(Vec<f32>, Option<Activation>)> {
    match deriv {
        None => Ok((vec![0.0], None)),
        Some((a, act)) => {
            if a.dim() != (rows, cols) {
                return Err(Error::shape(
                    "derivative operand",
                    format!("{rows}x{cols}"),
                    format!("{}x{}", a.nrows(), a.ncols()),
                ));
            }
            Ok((contiguous(a), Some(act)))
        }
    }
}
