//! The GPU training backend. Everything a run touches lives on the device for the whole run:
//! the dataset (uploaded once, bytes packed four to a word), the parameters and the optimizer
//! slots (each ONE buffer with one shared layout), the activations and deltas (allocated for the
//! largest batch), and the running loss/accuracy. Gradients never reach memory: the
//! weight-gradient kernels apply the optimizer in their epilogue.
//!
//! A training step is a fixed sequence of dispatches whose bind groups are built once
//! (`Program`); what changes from step to step (rows, where the batch's indices start, the
//! learning rate, Adam's bias corrections) is one record in a small read-only storage buffer
//! (see `kernels::Slot` for why not a uniform buffer), selected with a dynamic offset. A `train_batches` call writes the order and the step records once, records
//! up to [`STEPS_PER_SUBMIT`] steps per command encoder and submits: no allocation, no bind
//! group or pipeline creation and no read-back in the loop. Stats are read back only in
//! `take_stats`.

use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView2};

use super::context::GpuContext;
use super::kernels::{self as k, Kernel, Kernels, Records, StepRecord, range};
use super::ops::{loss_kind, pack_inputs, upload, usage_out, usage_params, usage_storage};
use super::profile::{KernelTime, Profiler};
use crate::backend::{Backend, Stats, check_data};
use crate::data::{Dataset, Inputs, Normalize, Sample, Targets};
use crate::error::{Error, Result};
use crate::net::Network;
use crate::optim::{OptimState, Optimizer};
use crate::params::{Layer, Params};

/// Steps (or evaluation chunks) recorded into one command encoder and submitted together;
/// also the capacity of the step-record buffer.
pub const STEPS_PER_SUBMIT: usize = 256;
/// Entries of the training-order buffer at least (256 KiB).
pub const MIN_INDEX_CAPACITY: usize = 65536;
/// Rows of the activation buffers at least (evaluation and prediction run in chunks of this).
pub const EVAL_CHUNK: usize = 1024;

/// Work done so far, for checking that the step loop does what the design says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuCounters {
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Command buffers submitted (training, evaluation, prediction; not read-backs).
    pub submits: u64,
    /// Training steps recorded.
    pub steps: u64,
    /// Read-backs (stats, parameters, state, predictions).
    pub readbacks: u64,
}

/// Where each layer's `w` starts (in f32 elements) in the parameter, gradient and slot
/// buffers; `b` follows `w` directly, so the weight-gradient kernel writes both as one matrix.
/// Layer starts are aligned so that each layer can be bound on its own.
struct ParamLayout {
    starts: Vec<u64>,
    /// Elements in the whole buffer (padding included).
    total: u64,
}

impl ParamLayout {
    fn new(net: &Network, align_bytes: u32) -> ParamLayout {
        let align = (align_bytes as u64 / 4).max(1);
        let mut starts = Vec::new();
        let mut at = 0u64;
        for l in 0..net.layers() {
            let (i, o) = net.layer_shape(l);
            at = at.next_multiple_of(align);
            starts.push(at);
            at += (i * o + o) as u64;
        }
        ParamLayout { starts, total: at }
    }

    /// Byte range of layer `l` (w then b).
    fn layer_bytes(&self, net: &Network, l: usize) -> (u64, u64) {
        let (i, o) = net.layer_shape(l);
        (self.starts[l] * 4, ((i * o + o) * 4) as u64)
    }

    fn pack(&self, params: &Params) -> Vec<f32> {
        let mut flat = vec![0.0f32; self.total as usize];
        for (layer, &start) in params.layers.iter().zip(&self.starts) {
            let s = start as usize;
            let values = layer.w.iter().chain(layer.b.iter());
            for (d, v) in flat[s..].iter_mut().zip(values) {
                *d = *v;
            }
        }
        flat
    }

    fn unpack(&self, net: &Network, flat: &[f32]) -> Result<Params> {
        let layers = (0..net.layers())
            .map(|l| {
                let (i, o) = net.layer_shape(l);
                let s = self.starts[l] as usize;
                let w = Array2::from_shape_vec((i, o), flat[s..s + i * o].to_vec())
                    .map_err(|e| Error::gpu("unpacking parameters", e))?;
                let b = Array1::from(flat[s + i * o..s + i * o + o].to_vec());
                Ok(Layer { w, b })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Params { layers })
    }
}

/// Activations and deltas for batches of up to `rows` samples.
struct Workspace {
    rows: usize,
    /// `acts[0]` is the input batch, `acts[l + 1]` the output of layer `l`.
    acts: Vec<wgpu::Buffer>,
    /// `deltas[l]`: gradient of the loss w.r.t. layer `l`'s pre-activation.
    deltas: Vec<wgpu::Buffer>,
}

/// A dataset on the device.
struct DeviceData {
    inputs: wgpu::Buffer,
    targets: wgpu::Buffer,
    len: usize,
    input_kind: u32,
    target_kind: u32,
    normalize: Normalize,
    /// `(rows, cols)` of image samples, for shifted gathers.
    image: Option<(usize, usize)>,
}

/// How a dispatch's workgroup count follows the batch's rows.
#[derive(Clone, Copy)]
enum Grid {
    /// One thread per input value of the batch.
    Gather {
        features: u32,
    },
    Matmul(k::MatmulDims, k::Tile),
    /// The single-workgroup loss kernel.
    Single,
}

struct Dispatch {
    kernel: KernelId,
    bind: wgpu::BindGroup,
    grid: Grid,
    /// What it computes (`forward 2`, `weight grad 1`): the key of its profile total.
    label: String,
}

#[derive(Clone, Copy)]
enum KernelId {
    MatmulNN(k::Tile),
    MatmulTN(k::Tile),
    MatmulNT(k::Tile),
    Loss,
    Gather,
}

/// A dispatch before binding: kernel, buffers (dims and step records are appended), the
/// dims record's (offset, size), and the grid.
type Planned<'a> = (
    String,
    KernelId,
    Vec<wgpu::BindingResource<'a>>,
    (u64, u64),
    Grid,
);

/// The dispatches of one step (training) or one chunk (evaluation, prediction), bound once.
struct Program {
    dispatches: Vec<Dispatch>,
    /// The batch size its tiles were chosen for.
    rows: usize,
    /// Holds the dims records the bind groups point into.
    _dims: wgpu::Buffer,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Train,
    Evaluate,
    Predict,
}

/// The wgpu implementation of [`Backend`].
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
    kernels: Kernels,
    net: Network,
    optimizer: Optimizer,
    layout: ParamLayout,
    params: wgpu::Buffer,
    /// Read-write placeholder for the state slot of dispatches that update nothing.
    scratch: wgpu::Buffer,
    slots: wgpu::Buffer,
    /// Optimizer steps taken (Adam's `t`).
    step: u64,
    /// [`STEPS_PER_SUBMIT`] step records at the storage offset alignment.
    steps: wgpu::Buffer,
    step_stride: u64,
    stats: wgpu::Buffer,
    eval_stats: wgpu::Buffer,
    stats_staging: wgpu::Buffer,
    /// Bound where a kernel's slot is unused (forward's `aux`, SGD's slots, prediction's targets).
    dummy: wgpu::Buffer,
    work: Option<Workspace>,
    train: Option<DeviceData>,
    /// The training order of the current segment of a call.
    index: Option<wgpu::Buffer>,
    index_capacity: usize,
    program: Option<Program>,
    counters: GpuCounters,
    /// Per-kernel timing, when enabled.
    profiler: Option<Profiler>,
}

impl GpuBackend {
    /// A backend on `ctx` training `params` (shaped like `net`) with `optimizer`.
    pub fn new(
        ctx: impl Into<Arc<GpuContext>>,
        net: &Network,
        params: Params,
        optimizer: Optimizer,
    ) -> Result<GpuBackend> {
        let ctx = ctx.into();
        params.check_shape(net, "initial parameters")?;
        optimizer.validate()?;
        ctx.check("creating the GPU backend")?;
        let kernels = Kernels::new(&ctx)?;
        let layout = ParamLayout::new(net, ctx.limits.min_storage_buffer_offset_alignment);
        let bytes = layout.total * 4;
        let params_buf = upload(&ctx, "parameters", &layout.pack(&params), usage_out())?;
        // A read-write placeholder for the optimizer-state slot of dispatches without one; it
        // cannot be `dummy`, which some of the same dispatches bind read-only.
        let scratch = ctx.buffer("unused state slot", 16, usage_out())?;
        let slots = ctx.buffer(
            "optimizer state",
            bytes * optimizer.slots() as u64,
            usage_out(),
        )?;
        let step_stride = (std::mem::size_of::<StepRecord>() as u64)
            .next_multiple_of(ctx.limits.min_storage_buffer_offset_alignment as u64);
        let steps = ctx.buffer(
            "step records",
            step_stride * STEPS_PER_SUBMIT as u64,
            usage_params(),
        )?;
        let stats = ctx.buffer("training stats", 16, usage_out())?;
        let eval_stats = ctx.buffer("evaluation stats", 16, usage_out())?;
        let stats_staging = ctx.buffer(
            "stats staging",
            16,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        // 16 bytes: the largest fixed-size struct a kernel may declare for an unused slot (stats).
        let dummy = ctx.buffer("unused slot", 16, usage_out())?;
        Ok(GpuBackend {
            ctx,
            kernels,
            net: net.clone(),
            optimizer,
            layout,
            params: params_buf,
            scratch,
            slots,
            step: 0,
            steps,
            step_stride,
            stats,
            eval_stats,
            stats_staging,
            dummy,
            work: None,
            train: None,
            index: None,
            index_capacity: 0,
            program: None,
            counters: GpuCounters::default(),
            profiler: None,
        })
    }

    /// The device this backend runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Dispatches in one training step: gather, one forward matmul per layer, the loss, one
    /// input gradient per layer but the first, and one weight(+bias) gradient per layer whose
    /// epilogue applies the optimizer: `3·layers + 1` (10 for 784-64-64-10).
    pub fn dispatches_per_step(&self) -> usize {
        3 * self.net.layers() + 1
    }

    /// Work counters since creation.
    pub fn counters(&self) -> GpuCounters {
        self.counters
    }

    fn kernel(&self, id: KernelId) -> &Kernel {
        match id {
            KernelId::MatmulNN(t) if t == k::SMALL_TILE => &self.kernels.matmul_nn_small,
            KernelId::MatmulTN(t) if t == k::SMALL_TILE => &self.kernels.matmul_tn_small,
            KernelId::MatmulNT(t) if t == k::SMALL_TILE => &self.kernels.matmul_nt_small,
            KernelId::MatmulNN(_) => &self.kernels.matmul_nn,
            KernelId::MatmulTN(_) => &self.kernels.matmul_tn,
            KernelId::MatmulNT(_) => &self.kernels.matmul_nt,
            KernelId::Loss => &self.kernels.loss,
            KernelId::Gather => &self.kernels.gather,
        }
    }

    /// Makes room for batches of `rows`; buffers are reallocated only when a larger batch than
    /// ever before is asked for (and then the bound programs are rebuilt).
    fn ensure_workspace(&mut self, rows: usize) -> Result<()> {
        if self.work.as_ref().is_some_and(|w| w.rows >= rows) {
            return Ok(());
        }
        let fits = |r: usize| {
            self.net
                .sizes()
                .iter()
                .all(|&n| (r * n * 4) as u64 <= self.ctx.limits.max_storage_buffer_binding_size)
        };
        // Room for evaluation chunks too, so that evaluating never forces a rebuild.
        let rows = if fits(rows.max(EVAL_CHUNK)) {
            rows.max(EVAL_CHUNK)
        } else {
            rows
        };
        let sizes = self.net.sizes().to_vec();
        let acts = sizes
            .iter()
            .enumerate()
            .map(|(l, &n)| {
                let what = format!("activations {l} ({rows} rows x {n} f32)");
                self.ctx.buffer(&what, (rows * n * 4) as u64, usage_out())
            })
            .collect::<Result<Vec<_>>>()?;
        let deltas = sizes[1..]
            .iter()
            .enumerate()
            .map(|(l, &n)| {
                let what = format!("deltas {l} ({rows} rows x {n} f32)");
                self.ctx.buffer(&what, (rows * n * 4) as u64, usage_out())
            })
            .collect::<Result<Vec<_>>>()?;
        self.work = Some(Workspace { rows, acts, deltas });
        self.program = None;
        Ok(())
    }

    fn upload_data(&self, data: &Dataset, what: &str) -> Result<DeviceData> {
        // Checked before packing, so an oversized dataset fails before a host-side copy.
        let input_bytes = match data.inputs() {
            Inputs::U8(v) => v.len() as u64,
            Inputs::F32(v) => v.len() as u64 * 4,
        };
        self.ctx
            .check_buffer_size(&format!("{what} inputs"), input_bytes, true)?;
        let (input_kind, words) = pack_inputs(data.inputs());
        let inputs = upload(
            &self.ctx,
            &format!("{what} inputs"),
            &words,
            usage_storage(),
        )?;
        let (target_kind, twords): (u32, Vec<u32>) = match data.targets() {
            Targets::Labels { labels, .. } => {
                (k::TARGET_LABELS, labels.iter().map(|&l| l as u32).collect())
            }
            Targets::Values { values, .. } => (
                k::TARGET_VALUES,
                values.iter().map(|v| v.to_bits()).collect(),
            ),
        };
        let targets = upload(
            &self.ctx,
            &format!("{what} targets"),
            &twords,
            usage_storage(),
        )?;
        Ok(DeviceData {
            inputs,
            targets,
            len: data.len(),
            input_kind,
            target_kind,
            normalize: data.normalize,
            image: data.image,
        })
    }

    /// Binds the dispatches of one step (`Train`) or one chunk (`Evaluate`, `Predict`).
    fn build_program(
        &self,
        purpose: Purpose,
        data: &DeviceData,
        index: &wgpu::Buffer,
        stats: &wgpu::Buffer,
        rows: usize,
    ) -> Result<Program> {
        let ctx = &*self.ctx;
        let work = self
            .work
            .as_ref()
            .ok_or_else(|| Error::gpu("building a step", "no workspace"))?;
        let net = &self.net;
        let layers = net.layers();
        // Tiles are chosen for the batch (or chunk) size the program runs, `rows`.
        let rows = rows as u32;
        let step_bytes = std::mem::size_of::<StepRecord>() as u64;
        let mut rec = Records::new(ctx);
        // (kernel, bindings before the dims record, dims record, grid)
        let mut plan: Vec<Planned<'_>> = Vec::new();

        let gather = k::GatherDims {
            features: net.inputs() as u32,
            kind: data.input_kind,
            scale: data.normalize.scale,
            shift: data.normalize.shift,
            rows_from_step: 1,
            height: data.image.map_or(0, |(h, _)| h as u32),
            width: data.image.map_or(0, |(_, w)| w as u32),
            ..Default::default()
        };
        plan.push((
            "gather".to_string(),
            KernelId::Gather,
            vec![
                data.inputs.as_entire_binding(),
                index.as_entire_binding(),
                work.acts[0].as_entire_binding(),
            ],
            rec.push(&gather),
            Grid::Gather {
                features: net.inputs() as u32,
            },
        ));

        for l in 0..layers {
            let (i, o) = net.layer_shape(l);
            let (off, size) = self.layout.layer_bytes(net, l);
            let act = if l + 1 < layers {
                net.hidden().code()
            } else {
                k::ACT_IDENTITY
            };
            let dims = k::MatmulDims {
                n: o as u32,
                k: i as u32,
                rows_dim: k::RowsDim::M as u32,
                lda: i as u32,
                ldb: o as u32,
                ldc: o as u32,
                epilogue: k::Epilogue::BiasAct as u32,
                act,
                bias_offset: (i * o) as u32,
                ..Default::default()
            };
            plan.push((
                format!("forward {}", l + 1),
                KernelId::MatmulNN(k::choose_tile(rows, o as u32)),
                vec![
                    work.acts[l].as_entire_binding(),
                    range(&self.params, off, size),
                    work.acts[l + 1].as_entire_binding(),
                    self.dummy.as_entire_binding(),
                    self.scratch.as_entire_binding(),
                ],
                rec.push(&dims),
                Grid::Matmul(dims, k::choose_tile(rows, o as u32)),
            ));
        }

        let loss = k::LossDims {
            n: net.outputs() as u32,
            kind: loss_kind(net.output()),
            target_kind: if purpose == Purpose::Predict {
                k::TARGET_NONE
            } else {
                data.target_kind
            },
            rows_from_step: 1,
            ..Default::default()
        };
        plan.push((
            "loss".to_string(),
            KernelId::Loss,
            vec![
                work.acts[layers].as_entire_binding(),
                work.deltas[layers - 1].as_entire_binding(),
                data.targets.as_entire_binding(),
                index.as_entire_binding(),
                stats.as_entire_binding(),
            ],
            rec.push(&loss),
            Grid::Single,
        ));

        if purpose == Purpose::Train {
            // Backward, last layer first. Each layer's input gradient is formed before its
            // weight-gradient kernel, whose epilogue applies the optimizer to W and b in place
            // (the input gradient needs the weights of before the update).
            let n = self.layout.total;
            let opt = k::OptimParams::new(&self.optimizer, n as u32);
            let slots = if self.optimizer.slots() == 0 {
                &self.scratch
            } else {
                &self.slots
            };
            for l in (0..layers).rev() {
                let (i, o) = net.layer_shape(l);
                let (off, size) = self.layout.layer_bytes(net, l);
                if l > 0 {
                    // delta_{l-1} = (delta_l · Wᵀ) ⊙ f'(a_l), with a_l this layer's input.
                    let dp = k::MatmulDims {
                        n: i as u32,
                        k: o as u32,
                        rows_dim: k::RowsDim::M as u32,
                        lda: o as u32,
                        ldb: o as u32,
                        ldc: i as u32,
                        epilogue: k::Epilogue::MulDerivative as u32,
                        act: net.hidden().code(),
                        ..Default::default()
                    };
                    plan.push((
                        format!("input grad {l}"),
                        KernelId::MatmulNT(k::choose_tile(rows, i as u32)),
                        vec![
                            work.deltas[l].as_entire_binding(),
                            range(&self.params, off, size),
                            work.deltas[l - 1].as_entire_binding(),
                            work.acts[l].as_entire_binding(),
                            self.scratch.as_entire_binding(),
                        ],
                        rec.push(&dp),
                        Grid::Matmul(dp, k::choose_tile(rows, i as u32)),
                    ));
                }
                // xᵀ·dz over the batch is dW (i×o), and the ones-row adds db: the gradient of
                // the layer's [W; b] block, handed straight to the optimizer in the epilogue.
                let update = k::MatmulDims {
                    m: i as u32,
                    n: o as u32,
                    rows_dim: k::RowsDim::K as u32,
                    lda: i as u32,
                    ldb: o as u32,
                    ldc: o as u32,
                    ones_row: 1,
                    epilogue: k::Epilogue::Optim as u32,
                    slot_base: self.layout.starts[l] as u32,
                    opt,
                    ..Default::default()
                };
                plan.push((
                    format!("weight grad + update {}", l + 1),
                    KernelId::MatmulTN(k::choose_tile(i as u32 + 1, o as u32)),
                    vec![
                        work.acts[l].as_entire_binding(),
                        work.deltas[l].as_entire_binding(),
                        range(&self.params, off, size),
                        self.dummy.as_entire_binding(),
                        slots.as_entire_binding(),
                    ],
                    rec.push(&update),
                    Grid::Matmul(update, k::choose_tile(i as u32 + 1, o as u32)),
                ));
            }
        }

        let dims_buf = rec.upload(ctx, "step dims")?;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let dispatches = plan
            .into_iter()
            .map(|(label, id, mut bindings, (off, size), grid)| {
                bindings.push(range(&dims_buf, off, size));
                bindings.push(range(&self.steps, 0, step_bytes));
                let kernel = self.kernel(id);
                Dispatch {
                    kernel: id,
                    bind: kernel.bind(ctx, kernel.name, &bindings),
                    grid,
                    label,
                }
            })
            .collect();
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::gpu("binding the step's buffers", e));
        }
        Ok(Program {
            dispatches,
            rows: rows as usize,
            _dims: dims_buf,
        })
    }

    /// Records `records.len()` runs of `program` (one per step record) into one encoder,
    /// with `after` called between runs (prediction copies its outputs there), and submits.
    fn run_program(
        &mut self,
        program: &Program,
        records: &[StepRecord],
        mut after: impl FnMut(&mut wgpu::CommandEncoder, usize),
        what: &str,
    ) -> Result<()> {
        debug_assert!(records.len() <= self.steps_per_submit());
        let ctx = Arc::clone(&self.ctx);
        let mut bytes = vec![0u8; self.step_stride as usize * records.len()];
        for (i, r) in records.iter().enumerate() {
            let at = i * self.step_stride as usize;
            bytes[at..at + std::mem::size_of::<StepRecord>()]
                .copy_from_slice(bytemuck::bytes_of(r));
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        ctx.queue.write_buffer(&self.steps, 0, &bytes);
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(what) });
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        let mut dispatches = 0u64;
        let profiler = self.profiler.as_ref();
        for (s, r) in records.iter().enumerate() {
            let offset = (s as u64 * self.step_stride) as u32;
            let desc = |writes| wgpu::ComputePassDescriptor {
                label: Some(what),
                timestamp_writes: writes,
            };
            match profiler {
                // One pass per step; while profiling, one per dispatch, between timestamps.
                None => {
                    let mut pass = encoder.begin_compute_pass(&desc(None));
                    for d in &program.dispatches {
                        self.record(&mut pass, d, r, offset, max);
                        dispatches += 1;
                    }
                }
                Some(p) => {
                    for d in &program.dispatches {
                        let mut pass =
                            encoder.begin_compute_pass(&desc(Some(p.writes(dispatches as u32))));
                        self.record(&mut pass, d, r, offset, max);
                        dispatches += 1;
                    }
                }
            }
            after(&mut encoder, s);
        }
        if let Some(p) = profiler {
            p.resolve(&mut encoder, dispatches as u32);
        }
        ctx.queue.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::gpu(what, e));
        }
        self.counters.dispatches += dispatches;
        self.counters.submits += 1;
        if let Some(p) = self.profiler.as_mut() {
            let labels: Vec<&str> = program
                .dispatches
                .iter()
                .map(|d| d.label.as_str())
                .collect();
            p.collect(&ctx, &labels, dispatches as u32)?;
        }
        ctx.check(what)
    }

    /// Records one dispatch of step record `r` (bound at `offset`) into `pass`.
    fn record(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        d: &Dispatch,
        r: &StepRecord,
        offset: u32,
        max: u32,
    ) {
        let (x, y) = match d.grid {
            Grid::Gather { features } => k::grid_1d(r.rows as u64 * features as u64, k::WG, max),
            Grid::Matmul(dims, tile) => {
                let m = if dims.rows_dim == k::RowsDim::M as u32 {
                    r.rows
                } else {
                    dims.m
                };
                dims.grid_for(m, tile)
            }
            Grid::Single => (1, 1),
        };
        pass.set_pipeline(&self.kernel(d.kernel).pipeline);
        pass.set_bind_group(0, &d.bind, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Steps recorded per submit: all that the step buffer holds, or, while profiling, all
    /// whose timestamps fit in the query set.
    fn steps_per_submit(&self) -> usize {
        match &self.profiler {
            Some(_) => STEPS_PER_SUBMIT.min(Profiler::steps_per_submit(self.dispatches_per_step())),
            None => STEPS_PER_SUBMIT,
        }
    }

    /// Turns per-kernel GPU timing on (timestamp queries); `false` when the device cannot
    /// time kernels. Profiling reads timestamps back after every submit: numbers from a
    /// profiled run are per-kernel GPU times, not the throughput of an unprofiled one.
    pub fn enable_profiling(&mut self) -> Result<bool> {
        if self.profiler.is_none() {
            self.profiler = Profiler::new(&self.ctx)?;
        }
        Ok(self.profiler.is_some())
    }

    /// GPU time per labelled dispatch since profiling was enabled or last reset.
    pub fn kernel_times(&self) -> Vec<KernelTime> {
        self.profiler
            .as_ref()
            .map_or_else(Vec::new, |p| p.totals().to_vec())
    }

    /// Starts the per-kernel totals again.
    pub fn reset_kernel_times(&mut self) {
        if let Some(p) = self.profiler.as_mut() {
            p.reset();
        }
    }

    /// Runs `data` forward in chunks through `purpose`'s program; returns the program's
    /// chunk count and lets `after` record copies between chunks.
    fn forward_chunks(
        &mut self,
        data: &DeviceData,
        purpose: Purpose,
        mut after: impl FnMut(&mut wgpu::CommandEncoder, usize, u32),
    ) -> Result<()> {
        self.ensure_workspace(EVAL_CHUNK.min(data.len).max(1))?;
        let chunk = self.work.as_ref().map_or(1, |w| w.rows);
        let index: Vec<u32> = (0..data.len as u32).collect();
        let index_buf = upload(&self.ctx, "evaluation index", &index, usage_storage())?;
        let stats = if purpose == Purpose::Evaluate {
            &self.eval_stats
        } else {
            &self.dummy
        };
        let program = self.build_program(purpose, data, &index_buf, stats, chunk)?;
        let records: Vec<StepRecord> = (0..data.len)
            .step_by(chunk)
            .map(|start| StepRecord {
                rows: (data.len - start).min(chunk) as u32,
                index_offset: start as u32,
                ..Default::default()
            })
            .collect();
        let per_submit = self.steps_per_submit();
        for (g, group) in records.chunks(per_submit).enumerate() {
            let first = g * per_submit;
            self.run_program(
                &program,
                group,
                |enc, s| after(enc, first + s, group[s].rows),
                "evaluation",
            )?;
        }
        Ok(())
    }

    /// Stats record `buf` read back and (when `reset`) cleared, in one submit.
    fn read_stats(&mut self, which: &str, reset: bool) -> Result<Stats> {
        let ctx = Arc::clone(&self.ctx);
        ctx.check(which)?;
        let buf = if which == "training stats" {
            &self.stats
        } else {
            &self.eval_stats
        };
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(which) });
        encoder.copy_buffer_to_buffer(buf, 0, &self.stats_staging, 0, 16);
        if reset {
            encoder.clear_buffer(buf, 0, None);
        }
        ctx.queue.submit([encoder.finish()]);
        let bytes = ctx.map_staging(which, &self.stats_staging, 16)?;
        self.counters.readbacks += 1;
        let s: k::DeviceStats = bytemuck::pod_read_unaligned(&bytes);
        Ok(Stats {
            // Kahan: the compensation holds what the running sum lost.
            loss_sum: s.loss as f64 - s.loss_compensation as f64,
            correct: s.correct as u64,
            samples: s.samples as u64,
        })
    }

    fn read_f32(&mut self, what: &str, buf: &wgpu::Buffer, len: u64) -> Result<Vec<f32>> {
        let bytes = self.ctx.read_back(what, buf, 0, len * 4)?;
        self.counters.readbacks += 1;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        format!("gpu: {} ({:?})", self.ctx.info.name, self.ctx.info.backend)
    }

    fn network(&self) -> &Network {
        &self.net
    }

    fn optimizer(&self) -> Optimizer {
        self.optimizer
    }

    fn set_train_data(&mut self, data: &Dataset) -> Result<()> {
        self.ctx.check("uploading the training set")?;
        check_data(&self.net, data, "training set")?;
        self.train = None;
        self.program = None;
        let device_data = self.upload_data(data, "training")?;
        // Room for a full submit of steps at common batch sizes even when the order spans
        // several epochs of a small set (else the order is cut into more, shorter submits).
        self.index_capacity = data.len().max(MIN_INDEX_CAPACITY);
        self.index = Some(self.ctx.buffer(
            "training order",
            (self.index_capacity * 4) as u64,
            usage_storage(),
        )?);
        self.train = Some(device_data);
        Ok(())
    }

    fn train_batches(&mut self, order: &[u32], batch_size: usize, lr: f32) -> Result<()> {
        self.ctx.check("train_batches")?;
        if batch_size == 0 {
            return Err(Error::arg("batch_size", "at least 1", 0));
        }
        let len = self
            .train
            .as_ref()
            .ok_or_else(|| {
                Error::arg(
                    "training set",
                    "set_train_data before train_batches",
                    "none",
                )
            })?
            .len;
        let index = |&e: &u32| Sample::decode(e).index as usize;
        if let Some(bad) = order.iter().map(index).find(|&i| i >= len) {
            return Err(Error::arg("order", format!("indices below {len}"), bad));
        }
        if order.is_empty() {
            return Ok(());
        }
        // Only a batch larger than any before allocates (and rebinds), before the loop.
        let rows = batch_size.min(order.len());
        self.ensure_workspace(rows)?;
        if self.index_capacity < rows {
            self.index_capacity = rows;
            self.index = Some(self.ctx.buffer(
                "training order",
                (rows * 4) as u64,
                usage_storage(),
            )?);
            self.program = None;
        }
        // A program's tiles suit one batch size: another size rebinds (before the loop).
        if self.program.as_ref().is_some_and(|p| p.rows != batch_size) {
            self.program = None;
        }
        if self.program.is_none() {
            let (Some(data), Some(index)) = (self.train.as_ref(), self.index.as_ref()) else {
                return Err(Error::gpu(
                    "train_batches",
                    "training set not on the device",
                ));
            };
            self.program =
                Some(self.build_program(Purpose::Train, data, index, &self.stats, batch_size)?);
        }
        let program = self.program.take().expect("built above");
        let result = (|| {
            // The order goes up in segments that fit the index buffer, cut at batch boundaries.
            let segment = (self.index_capacity / batch_size).max(1) * batch_size;
            for seg in order.chunks(segment) {
                let index = self
                    .index
                    .as_ref()
                    .expect("allocated with the training set");
                self.ctx
                    .queue
                    .write_buffer(index, 0, bytemuck::cast_slice(seg));
                let records: Vec<StepRecord> = seg
                    .chunks(batch_size)
                    .enumerate()
                    .map(|(i, batch)| {
                        self.step += 1;
                        let (c1, c2) = self.optimizer.bias_corrections(self.step);
                        StepRecord {
                            rows: batch.len() as u32,
                            index_offset: (i * batch_size) as u32,
                            lr,
                            c1,
                            c2,
                            _pad: [0; 3],
                        }
                    })
                    .collect();
                for group in records.chunks(self.steps_per_submit()) {
                    self.run_program(&program, group, |_, _| {}, "training steps")?;
                    self.counters.steps += group.len() as u64;
                }
            }
            Ok(())
        })();
        self.program = Some(program);
        result
    }

    fn take_stats(&mut self) -> Result<Stats> {
        self.read_stats("training stats", true)
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Stats> {
        self.ctx.check("evaluate")?;
        check_data(&self.net, data, "evaluation set")?;
        if data.is_empty() {
            return Ok(Stats::default());
        }
        // Uploaded per call: the test set is small next to the training set, and keeping it
        // would tie device memory to a dataset the caller may drop.
        let device_data = self.upload_data(data, "evaluation")?;
        let ctx = Arc::clone(&self.ctx);
        {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("clear evaluation stats"),
                });
            encoder.clear_buffer(&self.eval_stats, 0, None);
            ctx.queue.submit([encoder.finish()]);
        }
        self.forward_chunks(&device_data, Purpose::Evaluate, |_, _, _| {})?;
        self.read_stats("evaluation stats", false)
    }

    fn predict(&mut self, inputs: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.ctx.check("predict")?;
        let (rows, cols) = inputs.dim();
        if cols != self.net.inputs() {
            return Err(Error::Shape {
                what: "predict inputs".into(),
                expected: format!("{} columns", self.net.inputs()),
                got: format!("{cols} columns"),
            });
        }
        let outputs = self.net.outputs();
        if rows == 0 {
            return Ok(Array2::zeros((0, outputs)));
        }
        let data = DeviceData {
            inputs: upload(
                &self.ctx,
                "prediction inputs",
                &inputs.iter().map(|v| v.to_bits()).collect::<Vec<u32>>(),
                usage_storage(),
            )?,
            targets: self.ctx.buffer("prediction targets", 4, usage_storage())?,
            len: rows,
            input_kind: k::INPUT_F32,
            target_kind: k::TARGET_NONE,
            normalize: Normalize::IDENTITY,
            image: None,
        };
        let out_bytes = (rows * outputs * 4) as u64;
        let out = self
            .ctx
            .buffer("prediction outputs", out_bytes, usage_out())?;
        self.ensure_workspace(EVAL_CHUNK.min(rows))?;
        let chunk = self.work.as_ref().map_or(1, |w| w.rows);
        let last = self
            .work
            .as_ref()
            .map(|w| w.acts[self.net.layers()].clone())
            .ok_or_else(|| Error::gpu("predict", "no workspace"))?;
        self.forward_chunks(&data, Purpose::Predict, |enc, c, n| {
            let bytes = (n as usize * outputs * 4) as u64;
            let at = (c * chunk * outputs * 4) as u64;
            enc.copy_buffer_to_buffer(&last, 0, &out, at, bytes);
        })?;
        let v = self.read_f32("prediction outputs", &out, (rows * outputs) as u64)?;
        Array2::from_shape_vec((rows, outputs), v).map_err(|e| Error::gpu("predict", e))
    }

    fn params(&mut self) -> Result<Params> {
        let params = self.params.clone();
        let flat = self.read_f32("parameters", &params, self.layout.total)?;
        self.layout.unpack(&self.net, &flat)
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        params.check_shape(&self.net, "parameters")?;
        self.ctx.check("set_params")?;
        let flat = self.layout.pack(params);
        self.ctx
            .queue
            .write_buffer(&self.params, 0, bytemuck::cast_slice(&flat));
        Ok(())
    }

    fn optim_state(&mut self) -> Result<OptimState> {
        self.ctx.check("optim_state")?;
        let n = self.layout.total;
        let slots = self.optimizer.slots();
        let flat = if slots > 0 {
            let buf = self.slots.clone();
            self.read_f32("optimizer state", &buf, n * slots as u64)?
        } else {
            Vec::new()
        };
        let slots = flat
            .chunks(n.max(1) as usize)
            .take(slots)
            .map(|c| self.layout.unpack(&self.net, c))
            .collect::<Result<Vec<_>>>()?;
        Ok(OptimState {
            step: self.step,
            slots,
        })
    }

    fn set_optim_state(&mut self, state: &OptimState) -> Result<()> {
        state.check(&self.optimizer, &self.net)?;
        self.ctx.check("set_optim_state")?;
        let flat: Vec<f32> = state
            .slots
            .iter()
            .flat_map(|s| self.layout.pack(s))
            .collect();
        if !flat.is_empty() {
            self.ctx
                .queue
                .write_buffer(&self.slots, 0, bytemuck::cast_slice(&flat));
        }
        self.step = state.step;
        Ok(())
    }
}

impl Drop for GpuBackend {
    fn drop(&mut self) {
        // Let queued work finish before its buffers go; errors here have nowhere to go.
        let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
    }
}
