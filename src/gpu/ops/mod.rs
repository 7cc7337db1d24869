//! One kernel at a time on host arrays, read back: the entry points of the CPU↔GPU op parity
//! tests and the kernel benches. Each op is one method, which *prepares* it (its buffers
//! uploaded and its bind group built, once) and returns a [`Readout`]: `run()` dispatches,
//! waits and reads back natively; `run_async().await` does the same in a browser, where
//! waiting is not allowed; `into_prepared()` keeps the kernel to dispatch many times (the
//! benches). None of this is used inside the training step loop (see [`super::backend`]).

mod batchnorm;
mod dropout;
mod matmul;
mod spatial;

use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::context::GpuContext;
use super::kernels::{Kernel, OpKernels, grid_1d};
use super::live::DeviceBuffer;
pub use super::prepared::PreparedOp;
pub use super::prepared::Readout;
use super::prepared::matrix;
use super::resources::{Records, range, upload, usage_out, usage_storage};
use crate::data::{Inputs, MAX_CHANNEL_MAPS, Normalize, gather_maps};
use crate::error::{Error, Result};
use crate::net::Output;
use crate::ops::StepRecord;
use crate::ops::gather::{GatherDims, WG, gather_threads, pack_inputs};
use crate::ops::loss::{DeviceStats, LossDims, TargetKind};
use crate::ops::optim::{OptimDims, OptimParams};
use crate::ops::reduce::{COLSUM_WG, ColsumDims};
use crate::optim::Optimizer;
use crate::shape::Chw;
pub use matmul::{MatmulSpec, UpdateSpec};
pub use spatial::{Derivative, Pooled, Updated};

/// What the loss kernel returns.
#[derive(Clone, Debug)]
pub struct LossOutput {
    /// Probabilities (softmax) or sigmoids (MSE).
    pub outputs: Array2<f32>,
    /// Gradient of the batch-mean loss w.r.t. the logits.
    pub delta: Array2<f32>,
    pub loss_sum: f32,
    pub correct: u32,
}

/// Targets of a loss op.
#[derive(Clone, Copy, Debug)]
pub enum OpTargets<'a> {
    Labels(&'a [u32]),
    Values(ArrayView2<'a, f32>),
}

/// [`GpuOps::optimizer_step`] before its dispatch: new parameters and state tensors.
pub type OptimizerReadout<'a> = Readout<'a, (Array1<f32>, Vec<Array1<f32>>)>;

/// Runs single kernels on a device.
pub struct GpuOps {
    ctx: Arc<GpuContext>,
    extra: OpKernels,
    /// One zeroed step record: standalone ops take their sizes from their own records.
    step: DeviceBuffer,
}

impl GpuOps {
    /// Builds every pipeline on `ctx`.
    pub fn new(ctx: impl Into<Arc<GpuContext>>) -> Result<GpuOps> {
        let ctx = ctx.into();
        let extra = OpKernels::new(&ctx)?;
        let step = upload(&ctx, "op step", &[StepRecord::default()], usage_storage())?;
        Ok(GpuOps { ctx, extra, step })
    }

    /// The device.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Binds `buffers` (in binding order), then `dims` and the zeroed step record, to `kernel`.
    fn prepare<'a, T: bytemuck::Pod>(
        &'a self,
        kernel: Kernel,
        buffers: Vec<DeviceBuffer>,
        dims: &T,
        grid: (u32, u32),
    ) -> Result<PreparedOp<'a>> {
        self.prepare_with_step(kernel, buffers, dims, None, grid)
    }

    /// [`GpuOps::prepare`] with a step record of the op's own (kept after the dims record),
    /// for an op that reads its learning rate from it.
    fn prepare_with_step<'a, T: bytemuck::Pod>(
        &'a self,
        kernel: Kernel,
        mut buffers: Vec<DeviceBuffer>,
        dims: &T,
        step: Option<StepRecord>,
        grid: (u32, u32),
    ) -> Result<PreparedOp<'a>> {
        let ctx = &*self.ctx;
        let mut rec = Records::new(ctx);
        let (off, size) = rec.push(dims);
        buffers.push(rec.upload(ctx, &format!("{} dims", kernel.name))?);
        let mut bindings: Vec<_> = buffers.iter().map(|b| b.as_entire_binding()).collect();
        let dims_at = bindings.len() - 1;
        bindings[dims_at] = range(&buffers[dims_at], off, size);
        let step_bytes = std::mem::size_of::<StepRecord>() as u64;
        let own_step = match step {
            Some(record) => Some(upload(ctx, "op step", &[record], usage_storage())?),
            None => None,
        };
        bindings.push(range(
            own_step.as_ref().unwrap_or(&self.step),
            0,
            step_bytes,
        ));
        let bind = kernel.bind(ctx, &kernel.name, &bindings);
        buffers.extend(own_step);
        ctx.check(&kernel.name)?;
        Ok(PreparedOp {
            ctx,
            kernel,
            bind,
            grid,
            buffers,
        })
    }

    fn input(&self, what: &str, values: &[f32]) -> Result<DeviceBuffer> {
        upload(&self.ctx, what, values, usage_storage())
    }

    /// The fused output layer: softmax + cross-entropy + `(p - y)/B`, or sigmoid + MSE +
    /// `2(a - y)/(B·K)·a(1 - a)`, on logits `z` (one row per sample).
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn loss(
        &self,
        output: Output,
        z: ArrayView2<f32>,
        targets: OpTargets<'_>,
    ) -> Result<Readout<'_, LossOutput>> {
        let op = self.prepare_loss(output, z, targets)?;
        let kernel = op.kernel.name.clone();
        let (rows, n) = z.dim();
        let stats_words = std::mem::size_of::<DeviceStats>() / 4;
        let reads = vec![(0, rows * n), (1, rows * n), (4, stats_words)];
        Ok(Readout::new(op, reads, move |v| {
            let [outputs, delta, stats] = <[Vec<f32>; 3]>::try_from(v).expect("three reads");
            let stats: DeviceStats = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&stats));
            Ok(LossOutput {
                outputs: matrix(&kernel, rows, n, outputs)?,
                delta: matrix(&kernel, rows, n, delta)?,
                loss_sum: stats.loss,
                correct: stats.correct,
            })
        }))
    }

    /// [`GpuOps::loss`], prepared (bindings: outputs, delta, targets, index, stats).
    fn prepare_loss(
        &self,
        output: Output,
        z: ArrayView2<f32>,
        targets: OpTargets<'_>,
    ) -> Result<PreparedOp<'_>> {
        let ctx = &self.ctx;
        let (rows, n) = z.dim();
        let (target_kind, target_words): (TargetKind, Vec<u32>) = match targets {
            OpTargets::Labels(l) => {
                check_dim("loss labels", rows, l.len())?;
                (TargetKind::Labels, l.to_vec())
            }
            OpTargets::Values(v) => {
                if v.dim() != (rows, n) {
                    return Err(Error::shape(
                        "loss targets",
                        format!("{rows}x{n}"),
                        format!("{}x{}", v.nrows(), v.ncols()),
                    ));
                }
                let bits = contiguous(v).iter().map(|x| x.to_bits()).collect();
                (TargetKind::Values, bits)
            }
        };
        let index: Vec<u32> = (0..rows as u32).collect();
        let buffers = vec![
            upload(ctx, "loss outputs", &contiguous(z), usage_out())?,
            ctx.buffer("loss delta", (rows * n * 4) as u64, usage_out())?,
            upload(ctx, "loss targets", &target_words, usage_storage())?,
            upload(ctx, "loss index", &index, usage_storage())?,
            upload(ctx, "loss stats", &[DeviceStats::default()], usage_out())?,
        ];
        let dims = LossDims {
            n: n as u32,
            kind: output.code(),
            target_kind: target_kind as u32,
            rows: rows as u32,
            ..Default::default()
        };
        let kernel = ctx.kernels.loss(ctx, output, target_kind)?;
        self.prepare(kernel, buffers, &dims, (1, 1))
    }

    /// `out[j] = Σ_i m[i, j]`.
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn column_sums(&self, m: ArrayView2<f32>) -> Result<Readout<'_, Array1<f32>>> {
        let op = self.prepare_column_sums(m)?;
        Ok(Readout::new(op, vec![(1, m.ncols())], |mut v| {
            Ok(Array1::from(v.remove(0)))
        }))
    }

    /// [`GpuOps::column_sums`], prepared.
    fn prepare_column_sums(&self, m: ArrayView2<f32>) -> Result<PreparedOp<'_>> {
        let (rows, cols) = m.dim();
        let buffers = vec![
            self.input("colsum input", &contiguous(m))?,
            self.ctx
                .buffer("colsum output", (cols * 4) as u64, usage_out())?,
        ];
        let dims = ColsumDims {
            rows: rows as u32,
            cols: cols as u32,
            ..Default::default()
        };
        let grid = ((cols as u32).div_ceil(COLSUM_WG), 1);
        self.prepare(self.extra.column_sums.clone(), buffers, &dims, grid)
    }

    /// One optimizer step (1-based step `t`) on one tensor: returns the new parameters and
    /// the new `optimizer.slots()` state tensors.
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn optimizer_step(
        &self,
        optimizer: &Optimizer,
        lr: f32,
        t: u64,
        p: ArrayView1<f32>,
        g: ArrayView1<f32>,
        slots: &[ArrayView1<f32>],
    ) -> Result<OptimizerReadout<'_>> {
        let op = self.prepare_optimizer_step(optimizer, lr, t, p, g, slots)?;
        let (n, count) = (p.len(), slots.len());
        Ok(Readout::new(op, vec![(0, n), (2, count * n)], move |v| {
            let [p, all] = <[Vec<f32>; 2]>::try_from(v).expect("two reads");
            let slots = all
                .chunks(n.max(1))
                .take(count)
                .map(|c| Array1::from(c.to_vec()));
            Ok((Array1::from(p), slots.collect()))
        }))
    }

    /// [`GpuOps::optimizer_step`], prepared (bindings: params, grads, slots).
    fn prepare_optimizer_step(
        &self,
        optimizer: &Optimizer,
        lr: f32,
        t: u64,
        p: ArrayView1<f32>,
        g: ArrayView1<f32>,
        slots: &[ArrayView1<f32>],
    ) -> Result<PreparedOp<'_>> {
        let ctx = &self.ctx;
        let n = p.len();
        check_dim("optimizer gradient length", n, g.len())?;
        if slots.len() != optimizer.slots() || slots.iter().any(|s| s.len() != n) {
            return Err(Error::arg(
                "optimizer slots",
                format!("{} slots of {n} values", optimizer.slots()),
                format!("{} slots", slots.len()),
            ));
        }
        let mut slot_data: Vec<f32> = slots.iter().flat_map(|s| s.iter().copied()).collect();
        slot_data.push(0.0);
        let buffers = vec![
            upload(ctx, "optim params", &p.to_vec(), usage_out())?,
            self.input("optim grads", &g.to_vec())?,
            upload(ctx, "optim slots", &slot_data, usage_out())?,
        ];
        let (c1, c2) = optimizer.bias_corrections(t);
        let dims = OptimDims {
            n: n as u32,
            use_step: 0,
            fixed_lr: lr,
            fixed_c1: c1,
            fixed_c2: c2,
            _pad: [0; 3],
            opt: OptimParams::new(optimizer, n as u32),
        };
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        self.prepare(
            self.extra.optim.clone(),
            buffers,
            &dims,
            grid_1d(n as u64, WG, max),
        )
    }

    /// Rows `indices` of a dataset's inputs (`features` values per row), mapped
    /// `v · scale + shift`, through the training gather kernel.
    pub fn gather(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        normalize: Normalize,
    ) -> Result<Readout<'_, Array2<f32>>> {
        self.gather_images(inputs, features, indices, gather_maps(normalize, &[]), None)
    }

    /// [`GpuOps::gather`] of image samples of shape `image`, whose order entries may carry
    /// shifts ([`crate::data::Sample`]), each channel mapped by its own map (`maps`, as
    /// [`crate::Dataset::gather_maps`] gives them).
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn gather_images(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        maps: [Normalize; MAX_CHANNEL_MAPS],
        image: Option<Chw>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let op = self.prepare_gather(inputs, features, indices, maps, image)?;
        Ok(Readout::matrix(op, 2, indices.len(), features))
    }

    /// [`GpuOps::gather_images`], prepared (bindings: dataset, index, output).
    fn prepare_gather(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        maps: [Normalize; MAX_CHANNEL_MAPS],
        image: Option<Chw>,
    ) -> Result<PreparedOp<'_>> {
        let ctx = &self.ctx;
        let rows = indices.len();
        let (kind, data) = pack_inputs(inputs);
        let out_bytes = (rows * features * 4) as u64;
        let buffers = vec![
            upload(ctx, "gather dataset", &data, usage_storage())?,
            upload(ctx, "gather index", indices, usage_storage())?,
            ctx.buffer("gather output", out_bytes, usage_out())?,
        ];
        let dims = GatherDims {
            rows: rows as u32,
            ..GatherDims::new(features as u32, kind, image, maps)
        };
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        let grid = grid_1d(gather_threads(rows as u64, features as u32), WG, max);
        let kernel = ctx.kernels.gather(ctx, kind)?;
        self.prepare(kernel, buffers, &dims, grid)
    }
}

fn contiguous(a: ArrayView2<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

fn check_dim(what: &str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::shape(what, expected, got));
    }
    Ok(())
}
