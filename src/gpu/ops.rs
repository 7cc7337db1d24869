//! One kernel at a time on host arrays, read back: the entry points of the CPU↔GPU op parity
//! tests and the kernel benches. An op is first *prepared* ([`PreparedOp`]: its buffers
//! uploaded and its bind group built, once), then dispatched and read back; the one-call
//! methods do all three, each through a [`Readout`] that its async counterpart on wasm32
//! (`matmul_async`, …, in `web`) shares. None of this is used inside the training step loop
//! (see [`super::backend`] for that).

use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::context::GpuContext;
use super::kernels::{Kernel, MatmulKey, OpKernels, grid_1d};
pub use super::prepared::PreparedOp;
use super::prepared::{Readout, matrix};
use super::resources::{Records, range, upload, usage_out, usage_storage};
use crate::data::{Inputs, Normalize};
use crate::error::{Error, Result};
use crate::net::{Activation, Output};
use crate::ops::StepRecord;
use crate::ops::activation::ACT_IDENTITY;
use crate::ops::gather::{GatherDims, WG, gather_threads, pack_inputs};
use crate::ops::loss::{DeviceStats, LossDims, TargetKind};
use crate::ops::matmul::{Epilogue, MatmulDims, RowsDim, Special, Tile, choose_tile};
use crate::ops::optim::{OptimDims, OptimParams};
use crate::ops::reduce::{COLSUM_WG, ColsumDims};
use crate::optim::Optimizer;

/// What one matmul computes: `C = op(A)·op(B)`, then the epilogue.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatmulSpec<'a> {
    /// `A` is given as stored `K×M` and used transposed.
    pub trans_a: bool,
    /// `B` is given as stored `N×K` and used transposed.
    pub trans_b: bool,
    /// Added to every row (forward epilogue); with `act`, `c = act(acc + bias)`.
    pub bias: Option<ArrayView1<'a, f32>>,
    /// Activation of the forward epilogue (needs `bias`).
    pub act: Option<Activation>,
    /// Appends a row of ones to op(A): the last row of C is then the column sums of op(B).
    pub ones_row: bool,
    /// The kernel's tile; `None`: the one the training steps would choose on this adapter.
    pub tile: Option<Tile>,
}

/// The optimizer step a [`GpuOps::weight_update`] applies in its epilogue.
#[derive(Clone, Copy, Debug)]
pub struct UpdateSpec<'a> {
    pub optimizer: &'a Optimizer,
    pub lr: f32,
    /// The step number (from 1), for Adam's bias corrections.
    pub t: u64,
    /// As [`MatmulSpec::tile`].
    pub tile: Option<Tile>,
}

/// What [`GpuOps::weight_update`] returns: the updated `[W; b]` and optimizer state.
pub(super) type UpdateReadout<'a> = Readout<'a, (Array2<f32>, Vec<Array2<f32>>)>;

/// Where [`GpuOps::weight_update`] puts its layer's optimizer state in the state buffer: a
/// training step's layers share one buffer, each starting at its offset in the parameters, so
/// the op starts its layer past a gap, as the second layer's would.
const UPDATE_SLOT_GAP: usize = 3;

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
pub(super) type OptimizerReadout<'a> = Readout<'a, (Array1<f32>, Vec<Array1<f32>>)>;

/// Runs single kernels on a device.
pub struct GpuOps {
    ctx: Arc<GpuContext>,
    extra: OpKernels,
    /// One zeroed step record: standalone ops take their sizes from their own records.
    step: wgpu::Buffer,
}

/// Matmul bindings: A, B, C, aux, slots.
const MATMUL_C: usize = 2;
const MATMUL_SLOTS: usize = 4;

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
        buffers: Vec<wgpu::Buffer>,
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
        mut buffers: Vec<wgpu::Buffer>,
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

    fn input(&self, what: &str, values: &[f32]) -> Result<wgpu::Buffer> {
        upload(&self.ctx, what, values, usage_storage())
    }

    /// `C = op(A)·op(B)` with the optional bias + activation epilogue.
    pub fn matmul(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        spec: MatmulSpec<'_>,
    ) -> Result<Array2<f32>> {
        self.matmul_readout(a, b, spec)?.run()
    }

    /// [`GpuOps::matmul`] before its dispatch.
    pub(super) fn matmul_readout(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        spec: MatmulSpec<'_>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let op = self.prepare_matmul(a, b, spec)?;
        let rows = if spec.trans_a { a.ncols() } else { a.nrows() } + spec.ones_row as usize;
        let n = if spec.trans_b { b.nrows() } else { b.ncols() };
        Ok(Readout::matrix(op, MATMUL_C, rows, n))
    }

    /// [`GpuOps::matmul`], prepared.
    pub fn prepare_matmul(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        spec: MatmulSpec<'_>,
    ) -> Result<PreparedOp<'_>> {
        let (m, ka) = if spec.trans_a {
            (a.ncols(), a.nrows())
        } else {
            a.dim()
        };
        let (kb, n) = if spec.trans_b {
            (b.ncols(), b.nrows())
        } else {
            b.dim()
        };
        check_dim("matmul inner dimension", ka, kb)?;
        // The bias goes right after B, as it follows W in the parameter layout.
        let mut b_data = contiguous(b);
        let bias_offset = b_data.len() as u32;
        let (epilogue, act) = match spec.bias {
            Some(bias) => {
                check_dim("matmul bias length", n, bias.len())?;
                b_data.extend(bias.iter());
                (
                    Epilogue::BiasAct,
                    spec.act.map_or(ACT_IDENTITY, Activation::code),
                )
            }
            None => (Epilogue::None, ACT_IDENTITY),
        };
        let dims = MatmulDims {
            m: m as u32,
            n: n as u32,
            k: ka as u32,
            rows_dim: RowsDim::Fixed as u32,
            lda: a.ncols() as u32,
            ldb: b.ncols() as u32,
            ldc: n as u32,
            epilogue: epilogue as u32,
            act,
            ones_row: spec.ones_row as u32,
            bias_offset,
            ..Default::default()
        };
        self.prepare_matmul_dims(
            dims,
            (spec.trans_a, spec.trans_b),
            spec.tile,
            &contiguous(a),
            &b_data,
            None,
        )
    }

    /// `C = (A·op(B)) ⊙ f'(aux)`, the input-gradient epilogue: `aux` holds the stored outputs
    /// `a = f(z)` of the layer below, shaped like C. `tile` as in [`MatmulSpec::tile`].
    pub fn matmul_derivative(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        trans_b: bool,
        aux: ArrayView2<f32>,
        act: Activation,
        tile: Option<Tile>,
    ) -> Result<Array2<f32>> {
        self.matmul_derivative_readout(a, b, trans_b, aux, act, tile)?
            .run()
    }

    /// [`GpuOps::matmul_derivative`] before its dispatch.
    pub(super) fn matmul_derivative_readout(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        trans_b: bool,
        aux: ArrayView2<f32>,
        act: Activation,
        tile: Option<Tile>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let op = self.prepare_matmul_derivative(a, b, trans_b, aux, act, tile)?;
        Ok(Readout::matrix(op, MATMUL_C, aux.nrows(), aux.ncols()))
    }

    /// [`GpuOps::matmul_derivative`], prepared.
    pub fn prepare_matmul_derivative(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        trans_b: bool,
        aux: ArrayView2<f32>,
        act: Activation,
        tile: Option<Tile>,
    ) -> Result<PreparedOp<'_>> {
        let (m, ka) = a.dim();
        let (kb, n) = if trans_b {
            (b.ncols(), b.nrows())
        } else {
            b.dim()
        };
        check_dim("matmul inner dimension", ka, kb)?;
        if aux.dim() != (m, n) {
            return Err(Error::shape(
                "matmul derivative operand",
                format!("{m}x{n}"),
                format!("{}x{}", aux.nrows(), aux.ncols()),
            ));
        }
        let dims = MatmulDims {
            m: m as u32,
            n: n as u32,
            k: ka as u32,
            lda: a.ncols() as u32,
            ldb: b.ncols() as u32,
            ldc: n as u32,
            epilogue: Epilogue::MulDerivative as u32,
            act: act.code(),
            ..Default::default()
        };
        let aux = contiguous(aux);
        self.prepare_matmul_dims(
            dims,
            (false, trans_b),
            tile,
            &contiguous(a),
            &contiguous(b),
            Some(&aux),
        )
    }

    fn prepare_matmul_dims(
        &self,
        dims: MatmulDims,
        (trans_a, trans_b): (bool, bool),
        tile: Option<Tile>,
        a: &[f32],
        b: &[f32],
        aux: Option<&[f32]>,
    ) -> Result<PreparedOp<'_>> {
        let ctx = &self.ctx;
        let c_bytes = (dims.m + dims.ones_row) as u64 * dims.n as u64 * 4;
        let buffers = vec![
            self.input("matmul A", a)?,
            self.input("matmul B", b)?,
            ctx.buffer("matmul C", c_bytes, usage_out())?,
            self.input("matmul aux", aux.unwrap_or(&[0.0]))?,
            ctx.buffer("matmul state slot", 16, usage_out())?,
        ];
        self.prepare_matmul_buffers(dims, (trans_a, trans_b), tile, buffers, None)
    }

    /// Binds `buffers` (A, B, C, aux, slots) to the matmul of `dims`.
    fn prepare_matmul_buffers(
        &self,
        dims: MatmulDims,
        (trans_a, trans_b): (bool, bool),
        tile: Option<Tile>,
        buffers: Vec<wgpu::Buffer>,
        step: Option<StepRecord>,
    ) -> Result<PreparedOp<'_>> {
        let rows_out = dims.m + dims.ones_row;
        // The steps' tile rule unless the caller names a tile (the tests run every tile).
        let target = self.ctx.tile_target();
        let tile = tile.unwrap_or_else(|| choose_tile(rows_out, dims.n, dims.k, target));
        let key = MatmulKey {
            tile,
            trans_a,
            trans_b,
            special: Special::of(&dims),
        };
        let kernel = self.ctx.kernels.matmul(&self.ctx, key)?;
        let grid = dims.grid_for(dims.m, tile);
        self.prepare_with_step(kernel, buffers, &dims, step, grid)
    }

    /// A layer's weight-gradient step, as a training step runs it: `G = [xᵀ·δ; 1ᵀ·δ]` (the
    /// ones-row gives the bias gradient) for `x` B×in and `delta` B×out, handed to the
    /// optimizer in the epilogue, which updates `params` ((in+1)×out: W, then b) and the
    /// optimizer state `slots` (shaped like `params`) in place. Returns both, updated.
    pub fn weight_update(
        &self,
        x: ArrayView2<f32>,
        delta: ArrayView2<f32>,
        params: ArrayView2<f32>,
        slots: &[ArrayView2<f32>],
        spec: UpdateSpec<'_>,
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>)> {
        self.weight_update_readout(x, delta, params, slots, spec)?
            .run()
    }

    /// [`GpuOps::weight_update`] before its dispatch.
    pub(super) fn weight_update_readout(
        &self,
        x: ArrayView2<f32>,
        delta: ArrayView2<f32>,
        params: ArrayView2<f32>,
        slots: &[ArrayView2<f32>],
        spec: UpdateSpec<'_>,
    ) -> Result<UpdateReadout<'_>> {
        let op = self.prepare_weight_update(x, delta, params, slots, spec)?;
        let (rows, cols) = params.dim();
        let (n, count) = (rows * cols, slots.len());
        let stride = UPDATE_SLOT_GAP + n;
        Ok(Readout::new(
            op,
            vec![(MATMUL_C, n), (MATMUL_SLOTS, count * stride)],
            move |v| {
                let [p, all] = <[Vec<f32>; 2]>::try_from(v).expect("two reads");
                let name = "weight update";
                let slots = (0..count)
                    .map(|s| {
                        let at = s * stride + UPDATE_SLOT_GAP;
                        matrix(name, rows, cols, all[at..at + n].to_vec())
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((matrix(name, rows, cols, p)?, slots))
            },
        ))
    }

    /// [`GpuOps::weight_update`], prepared (bindings: x, δ, params, aux, slots).
    pub fn prepare_weight_update(
        &self,
        x: ArrayView2<f32>,
        delta: ArrayView2<f32>,
        params: ArrayView2<f32>,
        slots: &[ArrayView2<f32>],
        spec: UpdateSpec<'_>,
    ) -> Result<PreparedOp<'_>> {
        let ctx = &self.ctx;
        let ((batch, inputs), (batch_d, outputs)) = (x.dim(), delta.dim());
        check_dim("weight update batch (rows of δ)", batch, batch_d)?;
        let shape = (inputs + 1, outputs);
        let optimizer = spec.optimizer;
        if params.dim() != shape
            || slots.len() != optimizer.slots()
            || slots.iter().any(|s| s.dim() != shape)
        {
            return Err(Error::arg(
                "weight update parameters and state",
                format!(
                    "{}x{} parameters and {} slots of that shape",
                    shape.0,
                    shape.1,
                    optimizer.slots()
                ),
                format!("{:?} and {} slots", params.dim(), slots.len()),
            ));
        }
        let n = shape.0 * shape.1;
        let stride = UPDATE_SLOT_GAP + n;
        let mut slot_data = vec![0.0; stride * slots.len().max(1)];
        for (s, slot) in slots.iter().enumerate() {
            let at = s * stride + UPDATE_SLOT_GAP;
            slot_data[at..at + n].copy_from_slice(&contiguous(*slot));
        }
        let dims = MatmulDims::weight_update(
            inputs as u32,
            outputs as u32,
            Some(batch as u32),
            UPDATE_SLOT_GAP as u32,
            OptimParams::new(optimizer, stride as u32),
        );
        let buffers = vec![
            self.input("weight update x", &contiguous(x))?,
            self.input("weight update delta", &contiguous(delta))?,
            upload(
                ctx,
                "weight update params",
                &contiguous(params),
                usage_out(),
            )?,
            self.input("weight update aux", &[0.0])?,
            upload(ctx, "weight update slots", &slot_data, usage_out())?,
        ];
        let (c1, c2) = optimizer.bias_corrections(spec.t);
        let step = StepRecord {
            lr: spec.lr,
            c1,
            c2,
            ..Default::default()
        };
        self.prepare_matmul_buffers(dims, (true, false), spec.tile, buffers, Some(step))
    }

    /// The fused output layer: softmax + cross-entropy + `(p - y)/B`, or sigmoid + MSE +
    /// `2(a - y)/(B·K)·a(1 - a)`, on logits `z` (one row per sample).
    pub fn loss(
        &self,
        output: Output,
        z: ArrayView2<f32>,
        targets: OpTargets<'_>,
    ) -> Result<LossOutput> {
        self.loss_readout(output, z, targets)?.run()
    }

    /// [`GpuOps::loss`] before its dispatch.
    pub(super) fn loss_readout(
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
    pub fn prepare_loss(
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
    pub fn column_sums(&self, m: ArrayView2<f32>) -> Result<Array1<f32>> {
        self.column_sums_readout(m)?.run()
    }

    /// [`GpuOps::column_sums`] before its dispatch.
    pub(super) fn column_sums_readout(
        &self,
        m: ArrayView2<f32>,
    ) -> Result<Readout<'_, Array1<f32>>> {
        let op = self.prepare_column_sums(m)?;
        Ok(Readout::new(op, vec![(1, m.ncols())], |mut v| {
            Ok(Array1::from(v.remove(0)))
        }))
    }

    /// [`GpuOps::column_sums`], prepared.
    pub fn prepare_column_sums(&self, m: ArrayView2<f32>) -> Result<PreparedOp<'_>> {
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
    pub fn optimizer_step(
        &self,
        optimizer: &Optimizer,
        lr: f32,
        t: u64,
        p: ArrayView1<f32>,
        g: ArrayView1<f32>,
        slots: &[ArrayView1<f32>],
    ) -> Result<(Array1<f32>, Vec<Array1<f32>>)> {
        self.optimizer_step_readout(optimizer, lr, t, p, g, slots)?
            .run()
    }

    /// [`GpuOps::optimizer_step`] before its dispatch.
    pub(super) fn optimizer_step_readout(
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
    pub fn prepare_optimizer_step(
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
    ) -> Result<Array2<f32>> {
        self.gather_images(inputs, features, indices, normalize, None)
    }

    /// [`GpuOps::gather`] of image samples of shape `image` (rows, cols), whose order entries
    /// may carry shifts ([`crate::train::Sample`]).
    pub fn gather_images(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        normalize: Normalize,
        image: Option<(usize, usize)>,
    ) -> Result<Array2<f32>> {
        self.gather_readout(inputs, features, indices, normalize, image)?
            .run()
    }

    /// [`GpuOps::gather_images`] before its dispatch.
    pub(super) fn gather_readout(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        normalize: Normalize,
        image: Option<(usize, usize)>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let op = self.prepare_gather(inputs, features, indices, normalize, image)?;
        Ok(Readout::matrix(op, 2, indices.len(), features))
    }

    /// [`GpuOps::gather_images`], prepared (bindings: dataset, index, output).
    pub fn prepare_gather(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        normalize: Normalize,
        image: Option<(usize, usize)>,
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
            features: features as u32,
            kind: kind as u32,
            scale: normalize.scale,
            shift: normalize.shift,
            rows: rows as u32,
            height: image.map_or(0, |(h, _)| h as u32),
            width: image.map_or(0, |(_, w)| w as u32),
            ..Default::default()
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
