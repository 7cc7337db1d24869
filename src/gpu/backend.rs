//! The GPU training backend. Everything a run touches lives on the device for the whole run:
//! the dataset (uploaded once, bytes packed four to a word), the parameters and the optimizer
//! slots (each ONE buffer with one shared layout), the activations and deltas (allocated for the
//! largest batch), and the running loss/accuracy. On the general path gradients never reach
//! memory: the weight-gradient kernels apply the optimizer in their epilogue. Dense stacks that
//! fit take the fused path instead (`gpu::fused`: 3 dispatches, the gradients' batch splits
//! in a partials buffer); [`GpuBackend::step_path`] says which.
//!
//! A training step is a fixed sequence of dispatches whose bind groups are built once
//! ([`super::program`]); what changes from step to step (rows, where the batch's indices start, the
//! learning rate, Adam's bias corrections) is one record in a small read-only storage buffer
//! (see `kernels::Slot` for why not a uniform buffer), selected with a dynamic offset. A
//! `train_batches` call writes the order and the step records once, records
//! up to [`STEPS_PER_SUBMIT`] steps per command encoder and submits: no allocation, no bind
//! group or pipeline creation and no read-back in the loop. Stats come back through a ring of
//! staging buffers ([`super::stats`]): `poll_stats` never waits, `take_stats` does.

use std::sync::Arc;

use ndarray::{Array2, ArrayView2};

use super::context::{GpuContext, blocking_allowed};
use super::counters::GpuCounters;
use super::fused::FusedKernels;
use super::kernels::KernelId;
use super::live::DeviceBuffer;
use super::profile::Profiler;
use super::program::{
    DataShape, ParamLayout, Planner, Program, ProgramBuilder, Purpose, StepBuffers, StepPath,
    general_dispatches,
};
use super::resources::{DeviceData, Workspace, upload, usage_out, usage_storage};
use super::stats::{Collect, StatsRing};
use crate::backend::{Backend, Stats, check_data, check_train_args};
use crate::data::{Dataset, MAX_CHANNEL_MAPS, Normalize};
use crate::error::{Error, Result};
use crate::net::Network;
use crate::ops::StepRecord;
use crate::ops::gather::InputKind;
use crate::ops::loss::TargetKind;
use crate::optim::{OptimState, Optimizer};
use crate::params::Params;

/// Steps (or evaluation chunks) recorded into one command encoder and submitted together;
/// also the capacity of the step-record buffer.
pub const STEPS_PER_SUBMIT: usize = 256;
/// Entries of the training-order buffer at least (256 KiB).
pub const MIN_INDEX_CAPACITY: usize = 65536;
/// Rows of the activation buffers at least (evaluation and prediction run in chunks of this).
pub const EVAL_CHUNK: usize = 1024;

/// The wgpu implementation of [`Backend`].
pub struct GpuBackend {
    pub(super) ctx: Arc<GpuContext>,
    /// The fused step's pipelines when training takes it; else why not.
    pub(super) fused: std::result::Result<FusedKernels, String>,
    /// The fused pipelines while the general path is chosen over them (`use_path`).
    pub(super) parked: Option<FusedKernels>,
    pub(super) net: Network,
    pub(super) optimizer: Optimizer,
    pub(super) layout: ParamLayout,
    pub(super) params: DeviceBuffer,
    /// Read-write placeholder for the state slot of dispatches that update nothing.
    pub(super) scratch: DeviceBuffer,
    pub(super) slots: DeviceBuffer,
    /// Optimizer steps taken (Adam's `t`).
    pub(super) step: u64,
    /// [`STEPS_PER_SUBMIT`] step records at the storage offset alignment.
    pub(super) steps: DeviceBuffer,
    pub(super) step_stride: u64,
    pub(super) stats: DeviceBuffer,
    pub(super) eval_stats: DeviceBuffer,
    /// Where evaluation stats are read back (training's go through `ring`).
    pub(super) stats_staging: DeviceBuffer,
    pub(super) ring: StatsRing,
    /// Bound where a kernel's slot is unused (forward's `aux`, SGD's slots, prediction's targets).
    pub(super) dummy: DeviceBuffer,
    pub(super) work: Option<Workspace>,
    pub(super) train: Option<DeviceData>,
    /// The last evaluation set, kept on the device, with its [`Dataset::id`].
    pub(super) eval_data: Option<(u64, DeviceData)>,
    /// `0..n` for evaluation and prediction chunks, with its `n` (serves any length up to it).
    pub(super) eval_index: Option<(DeviceBuffer, usize)>,
    /// The training order of the current segment of a call.
    pub(super) index: Option<DeviceBuffer>,
    pub(super) index_capacity: usize,
    pub(super) program: Option<Program>,
    pub(super) counters: GpuCounters,
    /// Per-kernel timing, when enabled.
    pub(super) profiler: Option<Profiler>,
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
        // The fused step where the network fits it, except on software adapters (lavapipe,
        // SwiftShader: DeviceType::Cpu), where the general path measured faster at every batch
        // size (BENCHMARKS.md): each workgroup there is a coroutine on a CPU core, so the fused
        // rows kernel's per-row weight reads cost more than the dispatches it saves. There its
        // kernels are built only if `use_path` asks for them (in a browser, compiling them
        // cost seconds before the first step).
        let fused = match FusedKernels::fits(&ctx, net) {
            Ok(()) if ctx.is_software() => Err(format!(
                "a software adapter ({}): the general path is faster there; \
                 use_path(StepPath::Fused) takes the fused step anyway",
                ctx.info.name
            )),
            Ok(()) => FusedKernels::new(&ctx, net)?,
            Err(why) => Err(why),
        };
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
            usage_storage(),
        )?;
        let stats = ctx.buffer("training stats", 16, usage_out())?;
        let eval_stats = ctx.buffer("evaluation stats", 16, usage_out())?;
        let ring = StatsRing::new(&ctx)?;
        let stats_staging = ctx.buffer(
            "evaluation stats staging",
            16,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        // 16 bytes: the largest fixed-size struct a kernel may declare for an unused slot (stats).
        let dummy = ctx.buffer("unused slot", 16, usage_out())?;
        Ok(GpuBackend {
            ctx,
            fused,
            parked: None,
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
            ring,
            dummy,
            work: None,
            train: None,
            eval_data: None,
            eval_index: None,
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

    /// Dispatches in one training step. The fused path: 3 (rows, gradients, update). The
    /// general path: the gather, the loss, and what each layer lowers to: its forward pass, its
    /// input gradient (but the first layer's) and, with weights, their update (the dense
    /// layer's weight gradient, whose epilogue applies the optimizer). That is `3·layers + 1`
    /// for a dense stack (10 for 784-64-64-10), 14 for `tfjs`.
    pub fn dispatches_per_step(&self) -> usize {
        match self.step_path() {
            StepPath::Fused => 3,
            StepPath::General => general_dispatches(&self.net, &self.optimizer),
        }
    }

    /// Work counters since creation.
    pub fn counters(&self) -> GpuCounters {
        self.counters
    }

    /// Makes room for batches of `rows`; buffers are reallocated only when a larger batch than
    /// ever before is asked for (and then the bound programs are rebuilt).
    pub(super) fn ensure_workspace(&mut self, rows: usize) -> Result<()> {
        if self.work.as_ref().is_some_and(|w| w.rows >= rows) {
            return Ok(());
        }
        let outs = self.net.nodes().iter().map(|n| n.op().output().len());
        let widths: Vec<usize> = std::iter::once(self.net.inputs()).chain(outs).collect();
        let fits = |r: usize| {
            widths
                .iter()
                .all(|&n| (r * n * 4) as u64 <= self.ctx.limits.max_storage_buffer_binding_size)
        };
        // Room for evaluation chunks too, so that evaluating never forces a rebuild.
        let rows = if fits(rows.max(EVAL_CHUNK)) {
            rows.max(EVAL_CHUNK)
        } else {
            rows
        };
        self.work = Some(Workspace::new(&self.ctx, &self.net, rows)?);
        self.program = None;
        Ok(())
    }

    /// Binds the dispatches of `purpose` over `data` in the order `index`, adding loss and
    /// accuracy into `stats`, for batches (or chunks) of `rows` rows.
    pub(super) fn build_program(
        &self,
        purpose: Purpose,
        data: &DeviceData,
        index: &wgpu::Buffer,
        stats: &wgpu::Buffer,
        rows: usize,
    ) -> Result<Program> {
        let work = self
            .work
            .as_ref()
            .ok_or_else(|| Error::gpu("building a step", "no workspace"))?;
        let builder = ProgramBuilder {
            ctx: &self.ctx,
            net: &self.net,
            optimizer: &self.optimizer,
            layout: &self.layout,
            buffers: StepBuffers {
                params: &self.params,
                slots: if self.optimizer.slots() == 0 {
                    &self.scratch
                } else {
                    &self.slots
                },
                scratch: &self.scratch,
                dummy: &self.dummy,
                steps: &self.steps,
                work,
                data,
                index,
                stats,
            },
        };
        if let (Purpose::Train, Ok(fused)) = (purpose, &self.fused) {
            if let Some(program) = builder.build_fused(fused, rows)? {
                return Ok(program);
            }
        }
        builder.build(purpose, rows)
    }
}

impl GpuBackend {
    /// Builds the pipelines that training on batches of `batch_size` over data stored as
    /// `inputs` with `targets` will run, before the data is on the device (training builds
    /// any it needs that are not built yet). In a browser the async form compiles them in
    /// parallel, while the data downloads ([`GpuBackend::prepare_async`]).
    pub fn prepare(&self, batch_size: usize, inputs: InputKind, targets: TargetKind) -> Result<()> {
        for id in self.step_kernels(batch_size, inputs, targets) {
            self.ctx.kernels.get(&self.ctx, id)?;
        }
        Ok(())
    }

    /// The pipelines of a training step on the general path, in dispatch order (none on the
    /// fused path, whose three are built with the backend).
    pub(super) fn step_kernels(
        &self,
        batch_size: usize,
        inputs: InputKind,
        targets: TargetKind,
    ) -> Vec<KernelId> {
        if self.step_path() == StepPath::Fused {
            return Vec::new();
        }
        let planner = Planner {
            ctx: &self.ctx,
            net: &self.net,
            optimizer: &self.optimizer,
            layout: &self.layout,
            // Only the kinds choose pipelines; the records this plan fills are not used.
            data: DataShape {
                input_kind: inputs,
                target_kind: targets,
                maps: [Normalize::IDENTITY; MAX_CHANNEL_MAPS],
                image: None,
            },
        };
        planner.kernels(Purpose::Train, batch_size)
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        format!("gpu: {} ({:?})", self.ctx.info.name, self.ctx.info.backend)
    }

    fn details(&self) -> String {
        let path = match self.step_path() {
            StepPath::Fused => "fused".to_string(),
            StepPath::General => format!(
                "general ({})",
                self.fused_refusal().unwrap_or(
                    "batch too large for the fused buffers, or images of several channels"
                )
            ),
        };
        format!(
            "{}; training step: {path}, {} dispatches",
            self.name(),
            self.dispatches_per_step()
        )
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
        let device_data = DeviceData::upload(&self.ctx, data, "training")?;
        self.counters.data_uploads += 1;
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
        let data = self.train.as_ref().map(|d| {
            let image = d.image.is_some_and(|i| i.plane() > 0);
            (d.len, image)
        });
        check_train_args(order, batch_size, data)?;
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
                let started = web_time::Instant::now();
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
                            step: self.step as u32,
                            _pad: [0; 2],
                        }
                    })
                    .collect();
                self.counters.record_ns += started.elapsed().as_nanos() as u64;
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

    fn poll_stats(&mut self) -> Result<Stats> {
        self.stats_tick(Collect::Arrived)
    }

    fn take_stats(&mut self) -> Result<Stats> {
        blocking_allowed("take_stats", "GpuBackend::take_stats_async")?;
        self.stats_tick(Collect::All)
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Stats> {
        blocking_allowed("evaluate", "GpuBackend::evaluate_async")?;
        if !self.queue_evaluation(data)? {
            return Ok(Stats::default());
        }
        self.read_eval_stats()
    }

    fn predict(&mut self, inputs: ArrayView2<f32>) -> Result<Array2<f32>> {
        blocking_allowed("predict", "GpuBackend::predict_async")?;
        let outputs = self.net.outputs();
        let Some((out, rows)) = self.queue_prediction(inputs)? else {
            return Ok(Array2::zeros((0, outputs)));
        };
        let v = self.read_f32("prediction outputs", &out, (rows * outputs) as u64)?;
        Array2::from_shape_vec((rows, outputs), v).map_err(|e| Error::gpu("predict", e))
    }

    fn params(&mut self) -> Result<Params> {
        blocking_allowed("params", "GpuBackend::params_async")?;
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
        blocking_allowed("optim_state", "GpuBackend::optim_state_async")?;
        self.ctx.check("optim_state")?;
        let n = self.layout.total;
        let slots = self.optimizer.slots();
        let flat = if slots > 0 {
            let buf = self.slots.clone();
            self.read_f32("optimizer state", &buf, n * slots as u64)?
        } else {
            Vec::new()
        };
        self.optim_state_from(&flat)
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
        // Let queued work finish before its buffers go, for at most the context's timeout (a
        // wedged device must not hang the drop); errors here have nowhere to go.
        let _ = self
            .ctx
            .wait("finishing queued work before dropping the GPU backend");
    }
}
