//! One kernel at a time on host arrays, read back: the entry points of the CPU↔GPU op parity
//! tests and the kernel benches. Each call allocates its buffers and bind group, so none of
//! this is used inside the training step loop (see [`super::backend`] for that).

use std::sync::Arc;

use bytemuck::Pod;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::context::GpuContext;
use super::kernels::{self as k, Kernel, Kernels, Records, range};
use crate::data::{Inputs, Normalize};
use crate::error::{Error, Result};
use crate::net::{Activation, Output};
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
}

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

/// Runs single kernels on a device.
pub struct GpuOps {
    ctx: Arc<GpuContext>,
    kernels: Kernels,
    /// One zeroed step record: standalone ops take their sizes from their own records.
    step: wgpu::Buffer,
}

impl GpuOps {
    /// Builds every pipeline on `ctx`.
    pub fn new(ctx: impl Into<Arc<GpuContext>>) -> Result<GpuOps> {
        let ctx = ctx.into();
        let kernels = Kernels::new(&ctx)?;
        let step = upload(&ctx, "op step", &[k::StepRecord::default()], usage_params())?;
        Ok(GpuOps { ctx, kernels, step })
    }

    /// The device.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    fn step_binding(&self) -> wgpu::BindingResource<'_> {
        range(&self.step, 0, std::mem::size_of::<k::StepRecord>() as u64)
    }

    /// Encodes one dispatch of `kernel`, submits it and waits.
    fn run(&self, kernel: &Kernel, bind: &wgpu::BindGroup, grid: (u32, u32)) -> Result<()> {
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(kernel.name),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.name),
                timestamp_writes: None,
            });
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, bind, &[0]);
            pass.dispatch_workgroups(grid.0, grid.1, 1);
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx.check(kernel.name)
    }

    fn read_f32(&self, what: &str, buf: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let bytes = self.ctx.read_back(what, buf, 0, (len * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// `C = op(A)·op(B)` with the optional bias + activation epilogue.
    pub fn matmul(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        spec: MatmulSpec<'_>,
    ) -> Result<Array2<f32>> {
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
                    k::Epilogue::BiasAct,
                    spec.act.map_or(k::ACT_IDENTITY, Activation::code),
                )
            }
            None => (k::Epilogue::None, k::ACT_IDENTITY),
        };
        let dims = k::MatmulDims {
            m: m as u32,
            n: n as u32,
            k: ka as u32,
            rows_dim: k::RowsDim::Fixed as u32,
            lda: a.ncols() as u32,
            ldb: b.ncols() as u32,
            ldc: n as u32,
            epilogue: epilogue as u32,
            act,
            ones_row: spec.ones_row as u32,
            bias_offset,
            ..Default::default()
        };
        let rows_out = m + spec.ones_row as usize;
        self.matmul_run(
            &dims,
            spec.trans_a,
            spec.trans_b,
            &contiguous(a),
            &b_data,
            None,
            rows_out,
        )
    }

    /// `C = (A·op(B)) ⊙ f'(aux)`, the input-gradient epilogue: `aux` holds the stored outputs
    /// `a = f(z)` of the layer below, shaped like C.
    pub fn matmul_derivative(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        trans_b: bool,
        aux: ArrayView2<f32>,
        act: Activation,
    ) -> Result<Array2<f32>> {
        let (m, ka) = a.dim();
        let (kb, n) = if trans_b {
            (b.ncols(), b.nrows())
        } else {
            b.dim()
        };
        check_dim("matmul inner dimension", ka, kb)?;
        if aux.dim() != (m, n) {
            return Err(Error::Shape {
                what: "matmul derivative operand".into(),
                expected: format!("{m}x{n}"),
                got: format!("{}x{}", aux.nrows(), aux.ncols()),
            });
        }
        let dims = k::MatmulDims {
            m: m as u32,
            n: n as u32,
            k: ka as u32,
            lda: a.ncols() as u32,
            ldb: b.ncols() as u32,
            ldc: n as u32,
            epilogue: k::Epilogue::MulDerivative as u32,
            act: act.code(),
            ..Default::default()
        };
        let aux = contiguous(aux);
        self.matmul_run(
            &dims,
            false,
            trans_b,
            &contiguous(a),
            &contiguous(b),
            Some(&aux),
            m,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn matmul_run(
        &self,
        dims: &k::MatmulDims,
        trans_a: bool,
        trans_b: bool,
        a: &[f32],
        b: &[f32],
        aux: Option<&[f32]>,
        rows_out: usize,
    ) -> Result<Array2<f32>> {
        // The same tile rule as the training steps, so the tests exercise both tiles.
        let tile = k::choose_tile(rows_out as u32, dims.n);
        let small = tile == k::SMALL_TILE;
        let kernel = match (trans_a, trans_b) {
            (false, false) if small => &self.kernels.matmul_nn_small,
            (true, false) if small => &self.kernels.matmul_tn_small,
            (false, true) if small => &self.kernels.matmul_nt_small,
            (false, false) => &self.kernels.matmul_nn,
            (true, false) => &self.kernels.matmul_tn,
            (false, true) => &self.kernels.matmul_nt,
            (true, true) => {
                return Err(Error::arg("matmul form", "A·B, Aᵀ·B or A·Bᵀ", "Aᵀ·Bᵀ"));
            }
        };
        let ctx = &self.ctx;
        let n = dims.n as usize;
        let a_buf = upload(ctx, "matmul A", a, usage_storage())?;
        let b_buf = upload(ctx, "matmul B", b, usage_storage())?;
        let aux_buf = upload(ctx, "matmul aux", aux.unwrap_or(&[0.0]), usage_storage())?;
        let c_buf = ctx.buffer("matmul C", (rows_out * n * 4) as u64, usage_out())?;
        let slots_buf = ctx.buffer("matmul state slot", 16, usage_out())?;
        let mut rec = Records::new(ctx);
        let (off, size) = rec.push(dims);
        let dims_buf = rec.upload(ctx, "matmul dims")?;
        let bind = kernel.bind(
            ctx,
            kernel.name,
            &[
                a_buf.as_entire_binding(),
                b_buf.as_entire_binding(),
                c_buf.as_entire_binding(),
                aux_buf.as_entire_binding(),
                slots_buf.as_entire_binding(),
                range(&dims_buf, off, size),
                self.step_binding(),
            ],
        );
        self.run(kernel, &bind, dims.grid_for(dims.m, tile))?;
        let c = self.read_f32("matmul C", &c_buf, rows_out * n)?;
        Array2::from_shape_vec((rows_out, n), c).map_err(|e| Error::gpu("matmul", e))
    }

    /// The fused output layer: softmax + cross-entropy + `(p - y)/B`, or sigmoid + MSE +
    /// `2(a - y)/(B·K)·a(1 - a)`, on logits `z` (one row per sample).
    pub fn loss(
        &self,
        output: Output,
        z: ArrayView2<f32>,
        targets: OpTargets<'_>,
    ) -> Result<LossOutput> {
        let ctx = &self.ctx;
        let (rows, n) = z.dim();
        let (target_kind, target_words): (u32, Vec<u32>) = match targets {
            OpTargets::Labels(l) => {
                check_dim("loss labels", rows, l.len())?;
                (k::TARGET_LABELS, l.to_vec())
            }
            OpTargets::Values(v) => {
                if v.dim() != (rows, n) {
                    return Err(Error::Shape {
                        what: "loss targets".into(),
                        expected: format!("{rows}x{n}"),
                        got: format!("{}x{}", v.nrows(), v.ncols()),
                    });
                }
                (
                    k::TARGET_VALUES,
                    contiguous(v).iter().map(|x| x.to_bits()).collect(),
                )
            }
        };
        let index: Vec<u32> = (0..rows as u32).collect();
        let out_buf = upload(ctx, "loss outputs", &contiguous(z), usage_out())?;
        let delta_buf = ctx.buffer("loss delta", (rows * n * 4) as u64, usage_out())?;
        let t_buf = upload(ctx, "loss targets", &target_words, usage_storage())?;
        let i_buf = upload(ctx, "loss index", &index, usage_storage())?;
        let s_buf = upload(ctx, "loss stats", &[k::DeviceStats::default()], usage_out())?;
        let dims = k::LossDims {
            n: n as u32,
            kind: loss_kind(output),
            target_kind,
            rows: rows as u32,
            ..Default::default()
        };
        let mut rec = Records::new(ctx);
        let (off, size) = rec.push(&dims);
        let dims_buf = rec.upload(ctx, "loss dims")?;
        let kernel = &self.kernels.loss;
        let bind = kernel.bind(
            ctx,
            "loss",
            &[
                out_buf.as_entire_binding(),
                delta_buf.as_entire_binding(),
                t_buf.as_entire_binding(),
                i_buf.as_entire_binding(),
                s_buf.as_entire_binding(),
                range(&dims_buf, off, size),
                self.step_binding(),
            ],
        );
        self.run(kernel, &bind, (1, 1))?;
        let outputs = self.read_f32("loss outputs", &out_buf, rows * n)?;
        let delta = self.read_f32("loss delta", &delta_buf, rows * n)?;
        let stats: Vec<k::DeviceStats> =
            bytemuck::pod_collect_to_vec(&ctx.read_back("loss stats", &s_buf, 0, 16)?);
        let shape = |v| Array2::from_shape_vec((rows, n), v).map_err(|e| Error::gpu("loss", e));
        Ok(LossOutput {
            outputs: shape(outputs)?,
            delta: shape(delta)?,
            loss_sum: stats[0].loss,
            correct: stats[0].correct,
        })
    }

    /// `out[j] = Σ_i m[i, j]`.
    pub fn column_sums(&self, m: ArrayView2<f32>) -> Result<Array1<f32>> {
        let ctx = &self.ctx;
        let (rows, cols) = m.dim();
        let m_buf = upload(ctx, "colsum input", &contiguous(m), usage_storage())?;
        let out = ctx.buffer("colsum output", (cols * 4) as u64, usage_out())?;
        let mut rec = Records::new(ctx);
        let (off, size) = rec.push(&k::ColsumDims {
            rows: rows as u32,
            cols: cols as u32,
            ..Default::default()
        });
        let dims_buf = rec.upload(ctx, "colsum dims")?;
        let kernel = &self.kernels.column_sums;
        let bind = kernel.bind(
            ctx,
            "column_sums",
            &[
                m_buf.as_entire_binding(),
                out.as_entire_binding(),
                range(&dims_buf, off, size),
                self.step_binding(),
            ],
        );
        self.run(kernel, &bind, ((cols as u32).div_ceil(k::COLSUM_WG), 1))?;
        Ok(Array1::from(self.read_f32("colsum output", &out, cols)?))
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
        let p_buf = upload(ctx, "optim params", &p.to_vec(), usage_out())?;
        let g_buf = upload(ctx, "optim grads", &g.to_vec(), usage_storage())?;
        let s_buf = upload(ctx, "optim slots", &slot_data, usage_out())?;
        let (c1, c2) = optimizer.bias_corrections(t);
        let dims = k::OptimDims {
            use_step: 0,
            fixed_lr: lr,
            fixed_c1: c1,
            fixed_c2: c2,
            ..k::OptimDims::new(optimizer, n as u32, n as u32)
        };
        let mut rec = Records::new(ctx);
        let (off, size) = rec.push(&dims);
        let dims_buf = rec.upload(ctx, "optim dims")?;
        let kernel = &self.kernels.optim;
        let bind = kernel.bind(
            ctx,
            "optim",
            &[
                p_buf.as_entire_binding(),
                g_buf.as_entire_binding(),
                s_buf.as_entire_binding(),
                range(&dims_buf, off, size),
                self.step_binding(),
            ],
        );
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        self.run(kernel, &bind, k::grid_1d(n as u64, k::WG, max))?;
        let p = Array1::from(self.read_f32("optim params", &p_buf, n)?);
        let all = self.read_f32("optim slots", &s_buf, slots.len() * n)?;
        let slots = all
            .chunks(n.max(1))
            .take(slots.len())
            .map(|c| Array1::from(c.to_vec()));
        Ok((p, slots.collect()))
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
    /// may carry shifts ([`crate::data::Sample`]).
    pub fn gather_images(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        normalize: Normalize,
        image: Option<(usize, usize)>,
    ) -> Result<Array2<f32>> {
        let ctx = &self.ctx;
        let rows = indices.len();
        let (kind, data) = pack_inputs(inputs);
        let d_buf = upload(ctx, "gather dataset", &data, usage_storage())?;
        let i_buf = upload(ctx, "gather index", indices, usage_storage())?;
        let out = ctx.buffer("gather output", (rows * features * 4) as u64, usage_out())?;
        let mut rec = Records::new(ctx);
        let (off, size) = rec.push(&k::GatherDims {
            features: features as u32,
            kind,
            scale: normalize.scale,
            shift: normalize.shift,
            rows: rows as u32,
            height: image.map_or(0, |(h, _)| h as u32),
            width: image.map_or(0, |(_, w)| w as u32),
            ..Default::default()
        });
        let dims_buf = rec.upload(ctx, "gather dims")?;
        let kernel = &self.kernels.gather;
        let bind = kernel.bind(
            ctx,
            "gather",
            &[
                d_buf.as_entire_binding(),
                i_buf.as_entire_binding(),
                out.as_entire_binding(),
                range(&dims_buf, off, size),
                self.step_binding(),
            ],
        );
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        self.run(
            kernel,
            &bind,
            k::grid_1d((rows * features) as u64, k::WG, max),
        )?;
        let v = self.read_f32("gather output", &out, rows * features)?;
        Array2::from_shape_vec((rows, features), v).map_err(|e| Error::gpu("gather", e))
    }
}

/// The loss kernel's code for `output`.
pub(crate) fn loss_kind(output: Output) -> u32 {
    match output {
        Output::SoftmaxCrossEntropy => k::LOSS_SOFTMAX_CE,
        Output::SigmoidMse => k::LOSS_SIGMOID_MSE,
    }
}

/// A dataset's inputs as u32 words for the gather kernel: bytes packed four to a word
/// (little-endian, as the kernel unpacks them), or f32 bits.
pub(crate) fn pack_inputs(inputs: &Inputs) -> (u32, Vec<u32>) {
    match inputs {
        Inputs::U8(v) => {
            let words = v
                .chunks(4)
                .map(|c| {
                    let mut w = [0u8; 4];
                    w[..c.len()].copy_from_slice(c);
                    u32::from_le_bytes(w)
                })
                .collect();
            (k::INPUT_U8, words)
        }
        Inputs::F32(v) => (k::INPUT_F32, v.iter().map(|x| x.to_bits()).collect()),
    }
}

pub(crate) fn usage_storage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST
}

pub(crate) fn usage_out() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC
}

pub(crate) fn usage_params() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST
}

/// A buffer holding `data` (checked against the device's limits first).
pub(crate) fn upload<T: Pod>(
    ctx: &GpuContext,
    what: &str,
    data: &[T],
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let buf = ctx.buffer(what, bytes.len() as u64, usage)?;
    if bytes.len().is_multiple_of(4) {
        ctx.queue.write_buffer(&buf, 0, bytes);
    } else {
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().next_multiple_of(4), 0);
        ctx.queue.write_buffer(&buf, 0, &padded);
    }
    Ok(buf)
}

fn contiguous(a: ArrayView2<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

fn check_dim(what: &str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        });
    }
    Ok(())
}
