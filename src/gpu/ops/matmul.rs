//! The matmul ops of [`GpuOps`]: a product with the forward epilogue, with the input
//! gradient's, and a layer's weight-gradient step with the optimizer in its epilogue (the
//! three ways a training step uses the kernel).

use ndarray::{Array2, ArrayView1, ArrayView2};

use super::{GpuOps, check_dim, contiguous};
use crate::error::{Error, Result};
use crate::gpu::kernels::MatmulKey;
use crate::gpu::live::DeviceBuffer;
use crate::gpu::prepared::{PreparedOp, Readout, matrix};
use crate::gpu::resources::{upload, usage_out};
use crate::net::Activation;
use crate::ops::StepRecord;
use crate::ops::activation::ACT_IDENTITY;
use crate::ops::matmul::{Epilogue, MatmulDims, RowsDim, Special, Tile, choose_tile};
use crate::ops::optim::OptimParams;
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

impl UpdateSpec<'_> {
    /// The step record an update kernel reads: the learning rate and Adam's bias corrections
    /// at step `t`.
    pub(super) fn step_record(&self) -> StepRecord {
        let (c1, c2) = self.optimizer.bias_corrections(self.t);
        StepRecord {
            lr: self.lr,
            c1,
            c2,
            ..Default::default()
        }
    }
}

/// What [`GpuOps::weight_update`] returns: the updated `[W; b]` and optimizer state.
pub(in crate::gpu) type UpdateReadout<'a> = Readout<'a, (Array2<f32>, Vec<Array2<f32>>)>;

/// Where [`GpuOps::weight_update`] puts its layer's optimizer state in the state buffer: a
/// training step's layers share one buffer, each starting at its offset in the parameters, so
/// the op starts its layer past a gap, as the second layer's would.
const UPDATE_SLOT_GAP: usize = 3;

/// Matmul bindings: A, B, C, aux, slots.
const MATMUL_C: usize = 2;
const MATMUL_SLOTS: usize = 4;

impl GpuOps {
    /// `C = op(A)·op(B)` with the optional bias + activation epilogue.
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn matmul(
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
    fn prepare_matmul(
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
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn matmul_derivative(
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
    fn prepare_matmul_derivative(
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
        buffers: Vec<DeviceBuffer>,
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
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn weight_update(
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
    fn prepare_weight_update(
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
        let step = spec.step_record();
        self.prepare_matmul_buffers(dims, (true, false), spec.tile, buffers, Some(step))
    }
}
