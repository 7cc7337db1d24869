//! Program building: where each layer's parameters sit in the one parameter buffer
//! ([`ParamLayout`]), and the dispatches of a training step, an evaluation chunk or a
//! prediction chunk: the gather, each layer's own (lowered by its kind, [`crate::layer`]), the
//! loss, and backward each layer's again, last first; each a named
//! [`PlannedDispatch`](super::plan::PlannedDispatch) bound once into a [`Dispatch`].

use ndarray::{Array1, Array2};

use super::context::GpuContext;
use super::kernels::{Kernel, KernelId};
use super::live::DeviceBuffer;
use super::plan::{At, Bind, Grid, Lowering, PlannedDispatch};
use super::resources::{DeviceData, Records, Workspace, range};
use crate::data::{MAX_CHANNEL_MAPS, Normalize};
use crate::error::{Error, Result};
use crate::net::Network;
use crate::ops::StepRecord;
use crate::ops::gather::{GatherDims, InputKind};
use crate::ops::loss::{LossDims, TargetKind};
use crate::ops::matmul::TileTarget;
use crate::ops::optim::OptimParams;
use crate::optim::Optimizer;
use crate::params::{Params, Weights};
use crate::shape::Chw;

/// Where each weight tensor's `w` starts (in f32 elements) in the parameter and slot buffers,
/// in [`Network::weight_shapes`]' order (the layers'); `b`
/// follows `w` directly, so the weight-gradient kernel writes both as one matrix. Starts are
/// aligned so that each tensor can be bound on its own.
pub(crate) struct ParamLayout {
    pub starts: Vec<u64>,
    /// Elements of each tensor with its bias.
    lens: Vec<u64>,
    /// Elements in the whole buffer (padding included).
    pub total: u64,
}

impl ParamLayout {
    pub(crate) fn new(net: &Network, align_bytes: u32) -> ParamLayout {
        let align = (align_bytes as u64 / 4).max(1);
        let (mut starts, mut lens) = (Vec::new(), Vec::new());
        let mut at = 0u64;
        for w in net.weight_shapes() {
            at = at.next_multiple_of(align);
            starts.push(at);
            let len = (w.rows * w.cols + w.bias) as u64;
            lens.push(len);
            at += len;
        }
        // Whole 16-byte words: the fused row kernel reads the parameters as vec4.
        ParamLayout {
            starts,
            lens,
            total: at.next_multiple_of(4),
        }
    }

    /// Byte range of tensor `t` (w then b).
    fn tensor_bytes(&self, t: usize) -> (u64, u64) {
        (self.starts[t] * 4, self.lens[t] * 4)
    }

    pub(crate) fn pack(&self, params: &Params) -> Vec<f32> {
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

    pub(crate) fn unpack(&self, net: &Network, flat: &[f32]) -> Result<Params> {
        let layers = net
            .weight_shapes()
            .zip(&self.starts)
            .map(|(shape, &start)| {
                let (i, o) = (shape.rows, shape.cols);
                let s = start as usize;
                let w = Array2::from_shape_vec((i, o), flat[s..s + i * o].to_vec())
                    .map_err(|e| Error::gpu("unpacking parameters", e))?;
                let b = Array1::from(flat[s + i * o..s + i * o + shape.bias].to_vec());
                Ok(Weights { w, b })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Params { layers })
    }
}

/// What a program computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    Train,
    Evaluate,
    Predict,
}

/// A dispatch bound once, recorded every step.
pub(crate) struct Dispatch {
    /// Its pipeline (a shared handle: the general kernels' or the fused ones').
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    grid: Grid,
    pub label: String,
}

impl Dispatch {
    pub(crate) fn new(kernel: &Kernel, bind: wgpu::BindGroup, grid: Grid, label: String) -> Self {
        Dispatch {
            pipeline: kernel.pipeline.clone(),
            bind,
            grid,
            label,
        }
    }

    /// Records this dispatch for step record `r` (bound at byte `offset`) into `pass`.
    pub(crate) fn record(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        r: &StepRecord,
        offset: u32,
        max: u32,
    ) {
        let (x, y) = self.grid.workgroups(r.rows, max);
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[offset]);
        pass.dispatch_workgroups(x, y, 1);
    }
}

/// Which program a training step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPath {
    /// One dispatch per op: gather, each layer's forward pass, loss, each layer's input
    /// gradient (but the first's) and update ([`general_dispatches`] counts them).
    General,
    /// Rows, gradients, update: three dispatches (`gpu::fused`).
    Fused,
}

crate::named_enum!(StepPath, "step path", [
    "general" => StepPath::General,
    "fused" => StepPath::Fused,
]);

/// The dispatches of one step (training) or one chunk (evaluation, prediction), bound once.
pub(crate) struct Program {
    pub dispatches: Vec<Dispatch>,
    /// The batch size its tiles were chosen for.
    pub rows: usize,
    pub path: StepPath,
    /// Holds the dims records the bind groups point into (and the fused path's work buffers).
    _buffers: Vec<DeviceBuffer>,
}

impl Program {
    pub(crate) fn new(
        dispatches: Vec<Dispatch>,
        rows: usize,
        path: StepPath,
        buffers: Vec<DeviceBuffer>,
    ) -> Program {
        Program {
            dispatches,
            rows,
            path,
            _buffers: buffers,
        }
    }
}

/// The device-resident buffers a program binds.
pub(crate) struct StepBuffers<'a> {
    pub params: &'a wgpu::Buffer,
    /// Optimizer state (a placeholder for SGD, which has none).
    pub slots: &'a wgpu::Buffer,
    /// Read-write placeholder for the state slot of dispatches that update nothing.
    pub scratch: &'a wgpu::Buffer,
    /// Bound where a kernel's slot is unused (forward's `aux`, prediction's stats).
    pub dummy: &'a wgpu::Buffer,
    /// The step records, bound with a dynamic offset.
    pub steps: &'a wgpu::Buffer,
    pub work: &'a Workspace,
    pub data: &'a DeviceData,
    /// The batch order (sample indices with shifts).
    pub index: &'a wgpu::Buffer,
    /// Where the loss kernel adds loss and correct counts.
    pub stats: &'a wgpu::Buffer,
}

/// What a plan reads of the dataset: the kinds choose the gather's and the loss's pipelines,
/// the rest fills their records.
#[derive(Clone, Copy, Debug)]
pub struct DataShape {
    pub input_kind: InputKind,
    pub target_kind: TargetKind,
    /// Each channel's input map ([`crate::Dataset::gather_maps`]).
    pub maps: [Normalize; MAX_CHANNEL_MAPS],
    /// The shape of image samples, for shifted and per-channel gathers.
    pub image: Option<Chw>,
}

/// Plans programs: each dispatch's kernel, record, grid and the buffers it binds (by role),
/// with no buffer at hand, so that a step's pipelines can be built before its data arrives
/// ([`super::GpuBackend::prepare`]).
pub(crate) struct Planner<'a> {
    pub ctx: &'a GpuContext,
    pub net: &'a Network,
    pub optimizer: &'a Optimizer,
    pub layout: &'a ParamLayout,
    pub data: DataShape,
}

/// Everything a program is built from.
pub(crate) struct ProgramBuilder<'a> {
    pub ctx: &'a GpuContext,
    pub net: &'a Network,
    pub optimizer: &'a Optimizer,
    pub layout: &'a ParamLayout,
    pub buffers: StepBuffers<'a>,
}

impl ProgramBuilder<'_> {
    /// Binds the dispatches of `purpose` for batches (or chunks) of `rows` rows, for which
    /// the tiles are chosen.
    pub(crate) fn build(&self, purpose: Purpose, rows: usize) -> Result<Program> {
        let ctx = self.ctx;
        let planner = Planner {
            ctx,
            net: self.net,
            optimizer: self.optimizer,
            layout: self.layout,
            data: self.buffers.data.shape(),
        };
        let plan = planner.plan(purpose, rows);
        let mut rec = Records::new(ctx);
        let offsets: Vec<(u64, u64)> = plan.iter().map(|p| rec.push_bytes(&p.dims)).collect();
        let dims_buf = rec.upload(ctx, "step dims")?;
        let step_bytes = std::mem::size_of::<StepRecord>() as u64;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let dispatches = plan
            .into_iter()
            .zip(offsets)
            .map(|(p, dims)| {
                let mut buffers = p
                    .binds
                    .iter()
                    .map(|&b| self.resource(b, &p.label))
                    .collect::<Result<Vec<_>>>()?;
                buffers.push(range(&dims_buf, dims.0, dims.1));
                buffers.push(range(self.buffers.steps, 0, step_bytes));
                let kernel = ctx.kernels.get(ctx, p.kernel)?;
                let bind = kernel.bind(ctx, &kernel.name, &buffers);
                Ok(Dispatch::new(&kernel, bind, p.grid, p.label))
            })
            .collect::<Result<Vec<_>>>();
        // The scope is closed before any error of ours is returned.
        ctx.end_scope(scope, "binding the step's buffers")?;
        let dispatches = dispatches?;
        Ok(Program::new(
            dispatches,
            rows,
            StepPath::General,
            vec![dims_buf],
        ))
    }

    /// The buffer `bind` names for the dispatch `label`. A role past the workspace's buffers
    /// is an error naming both, never another buffer in its place.
    fn resource(&self, bind: Bind, label: &str) -> Result<wgpu::BindingResource<'_>> {
        let b = &self.buffers;
        let missing = || {
            Error::gpu(
                format!("binding {label}"),
                format!("{bind:?} is not in the workspace"),
            )
        };
        fn at<'b>(
            list: &'b [DeviceBuffer],
            i: usize,
            missing: impl FnOnce() -> Error,
        ) -> Result<wgpu::BindingResource<'b>> {
            list.get(i)
                .map(|buf| buf.as_entire_binding())
                .ok_or_else(missing)
        }
        Ok(match bind {
            Bind::Inputs => b.data.inputs.as_entire_binding(),
            Bind::Targets => b.data.targets.as_entire_binding(),
            Bind::Index => b.index.as_entire_binding(),
            Bind::Stats => b.stats.as_entire_binding(),
            Bind::Acts(j) => at(&b.work.acts, j, missing)?,
            Bind::Deltas(j) => at(&b.work.deltas, j, missing)?,
            Bind::Tensor(t) => {
                let (off, size) = self.layout.tensor_bytes(t);
                range(b.params, off, size)
            }
            Bind::TensorPair(t) if t + 1 < self.layout.starts.len() => {
                let ((off, _), (next, size)) =
                    (self.layout.tensor_bytes(t), self.layout.tensor_bytes(t + 1));
                range(b.params, off, next + size - off)
            }
            Bind::TensorPair(_) => return Err(missing()),
            // A layer that keeps nothing gets the dummy buffer in that slot.
            Bind::Keep(j) => match b.work.keep.get(j).ok_or_else(missing)? {
                Some(k) => k.as_entire_binding(),
                None => b.dummy.as_entire_binding(),
            },
            Bind::Slots => b.slots.as_entire_binding(),
            Bind::Scratch => b.scratch.as_entire_binding(),
            Bind::Dummy => b.dummy.as_entire_binding(),
        })
    }
}

impl Planner<'_> {
    /// The dispatches of `purpose` for batches (or chunks) of `rows` rows, for which the tiles
    /// are chosen.
    fn plan(&self, purpose: Purpose, rows: usize) -> Vec<PlannedDispatch> {
        let limits = &self.ctx.limits;
        let mut plan = vec![self.gather()];
        plan.extend(lower(
            self.net,
            self.optimizer,
            &self.layout.starts,
            Lowered {
                rows: rows as u32,
                tile_target: self.ctx.tile_target(),
                max_groups: limits.max_compute_workgroups_per_dimension,
                total: self.layout.total,
                backward: purpose == Purpose::Train,
            },
            self.loss(purpose),
        ));
        plan
    }

    /// The pipelines the program of `purpose` for `rows` rows runs, in dispatch order (with
    /// repeats).
    pub(crate) fn kernels(&self, purpose: Purpose, rows: usize) -> Vec<KernelId> {
        self.plan(purpose, rows).iter().map(|p| p.kernel).collect()
    }

    fn gather(&self) -> PlannedDispatch {
        let data = &self.data;
        let features = self.net.inputs() as u32;
        let dims = GatherDims {
            rows_from_step: 1,
            ..GatherDims::new(features, data.input_kind, data.image, data.maps)
        };
        PlannedDispatch {
            label: "gather".into(),
            kernel: KernelId::Gather(data.input_kind),
            binds: vec![Bind::Inputs, Bind::Index, Bind::Acts(0)],
            dims: bytemuck::bytes_of(&dims).to_vec(),
            grid: Grid::Gather { features },
        }
    }

    /// Outputs, loss, correct count and (when there are targets) the output delta.
    fn loss(&self, purpose: Purpose) -> PlannedDispatch {
        let net = self.net;
        let target_kind = if purpose == Purpose::Predict {
            TargetKind::None
        } else {
            self.data.target_kind
        };
        let dims = LossDims {
            n: net.outputs() as u32,
            kind: net.output().code(),
            target_kind: target_kind as u32,
            rows_from_step: 1,
            image: self.data.image.is_some_and(|i| i.plane() > 0) as u32,
            ..Default::default()
        };
        let last = net.nodes().len();
        PlannedDispatch {
            label: "loss".into(),
            kernel: KernelId::Loss(net.output(), target_kind),
            binds: vec![
                Bind::Acts(last),
                Bind::Deltas(last - 1),
                Bind::Targets,
                Bind::Index,
                Bind::Stats,
            ],
            dims: bytemuck::bytes_of(&dims).to_vec(),
            grid: Grid::Single,
        }
    }
}

/// What [`lower`] plans for.
struct Lowered {
    rows: u32,
    tile_target: TileTarget,
    max_groups: u32,
    /// Elements in the parameter buffer (the optimizer's record needs it).
    total: u64,
    /// Whether the program trains (else it stops at the loss).
    backward: bool,
}

/// Every layer's forward dispatches, first first, then `loss`, then (when training) every
/// layer's backward dispatches, last first: each layer's input gradient is formed before its
/// update, which changes the weights in place.
fn lower(
    net: &Network,
    optimizer: &Optimizer,
    starts: &[u64],
    how: Lowered,
    loss: PlannedDispatch,
) -> Vec<PlannedDispatch> {
    let mut to = Lowering {
        rows: how.rows,
        tile_target: how.tile_target,
        max_groups: how.max_groups,
        optim: OptimParams::new(optimizer, how.total as u32),
        optim_kind: optimizer.kind(),
        tensor_starts: starts,
        training: how.backward,
        plan: Vec::new(),
    };
    let nodes = net.nodes();
    let at = |j: usize| At {
        j,
        tensor: nodes[j].tensor,
        statistics: nodes[j].statistics,
        act: nodes[j].act,
        before: j.checked_sub(1).map(|p| nodes[p].act),
    };
    for (j, node) in nodes.iter().enumerate() {
        node.op().lower_forward(&at(j), &mut to);
    }
    to.plan.push(loss);
    if how.backward {
        for (j, node) in nodes.iter().enumerate().rev() {
            node.op().lower_backward(&at(j), &mut to);
        }
    }
    to.plan
}

/// Dispatches of one general training step of `net`: the gather, the loss and what each
/// layer lowers to (the counts do not depend on the device or the batch).
pub(crate) fn general_dispatches(net: &Network, optimizer: &Optimizer) -> usize {
    let starts = vec![0; net.weighted_layers()];
    let how = Lowered {
        rows: 1,
        tile_target: TileTarget::Gpu,
        max_groups: u16::MAX as u32,
        total: 0,
        backward: true,
    };
    let loss = PlannedDispatch {
        label: String::new(),
        kernel: KernelId::Gather(InputKind::F32),
        binds: Vec::new(),
        dims: Vec::new(),
        grid: Grid::Single,
    };
    1 + lower(net, optimizer, &starts, how, loss).len()
}
