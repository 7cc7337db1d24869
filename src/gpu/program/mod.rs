//! Program building: where each layer's parameters sit in the one parameter buffer
//! ([`ParamLayout`]), and the dispatches of a training step, an evaluation chunk or a
//! prediction chunk, each a named [`PlannedDispatch`] bound once into a [`Dispatch`].

mod spatial;

use ndarray::{Array1, Array2};

use super::context::GpuContext;
use super::kernels::{Kernel, KernelId, MatmulKey, grid_1d};
use super::live::DeviceBuffer;
use super::resources::{DeviceData, Records, Workspace, range};
use crate::data::{MAX_CHANNEL_MAPS, Normalize};
use crate::error::{Error, Result};
use crate::gpu::spatial::ConvWork;
use crate::gpu::spatial::POOL_WG;
use crate::net::Network;
use crate::ops::StepRecord;
use crate::ops::activation::ACT_IDENTITY;
use crate::ops::gather::{GatherDims, InputKind, WG, gather_threads};
use crate::ops::loss::{LossDims, TargetKind};
use crate::ops::matmul::{Epilogue, MatmulDims, RowsDim, Special, Tile, choose_tile};
use crate::ops::optim::OptimParams;
use crate::optim::Optimizer;
use crate::params::{Layer, Params};
use crate::shape::Chw;
use spatial::Spatial;
pub(crate) use spatial::general_dispatches;

/// Where each weight tensor's `w` starts (in f32 elements) in the parameter and slot buffers,
/// in [`Network::weight_shapes`]' order (each convolution's, then each dense layer's); `b`
/// follows `w` directly, so the weight-gradient kernel writes both as one matrix. Starts are
/// aligned so that each tensor can be bound on its own.
pub(crate) struct ParamLayout {
    pub starts: Vec<u64>,
    /// Elements of each tensor with its bias.
    lens: Vec<u64>,
    /// Convolutions before the dense layers: dense layer `l` is tensor `convs + l`.
    convs: usize,
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
            convs: net.conv_layers(),
            total: at.next_multiple_of(4),
        }
    }

    /// Tensor index of dense layer `l`.
    pub(crate) fn dense(&self, l: usize) -> usize {
        self.convs + l
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
                Ok(Layer { w, b })
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

/// The matmul of form op(A)·op(B) with `tile`, specialised for `dims`.
fn matmul_kernel(tile: Tile, trans_a: bool, trans_b: bool, dims: &MatmulDims) -> KernelId {
    KernelId::Matmul(MatmulKey {
        tile,
        trans_a,
        trans_b,
        special: Special::of(dims),
    })
}

/// How a dispatch's workgroup count follows the batch's rows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Grid {
    /// One thread per run of `GATHER_RUN` input values of the batch.
    Gather {
        features: u32,
    },
    Matmul(MatmulDims, Tile),
    /// The single-workgroup loss kernel.
    Single,
    /// One workgroup per row (the fused row kernel), folded into 2-D past the limit.
    PerRow,
    /// A fixed grid (the fused gradient kernels, a convolution's update).
    Fixed(u32, u32),
    /// `per_row` threads per row of the batch (the max-pool kernels).
    Values {
        per_row: u32,
    },
    /// A convolution's forward pass or input gradient.
    Conv(ConvWork),
}

impl Grid {
    /// Workgroups for a step of `rows` rows, at most `max` per dimension.
    fn workgroups(self, rows: u32, max: u32) -> (u32, u32) {
        match self {
            Grid::Gather { features } => grid_1d(gather_threads(rows as u64, features), WG, max),
            Grid::Matmul(dims, tile) => {
                let m = if dims.rows_dim == RowsDim::M as u32 {
                    rows
                } else {
                    dims.m
                };
                dims.grid_for(m, tile)
            }
            Grid::Single => (1, 1),
            Grid::PerRow => grid_1d(rows as u64, 1, max),
            Grid::Fixed(x, y) => (x, y),
            Grid::Values { per_row } => grid_1d(rows as u64 * per_row as u64, POOL_WG, max),
            Grid::Conv(work) => grid_1d(work.groups(rows as usize), 1, max),
        }
    }
}

/// A dispatch before binding: what it binds, by role (the dims record and the step record are
/// appended), its dims record's place in the records buffer, and its grid.
struct PlannedDispatch {
    /// What it computes (`forward 2`, `weight grad + update 1`): the key of its profile total.
    label: String,
    kernel: KernelId,
    binds: Vec<Bind>,
    /// `(offset, size)` of its dims record.
    dims: (u64, u64),
    grid: Grid,
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
    /// One dispatch per op: gather, forward per layer, loss, input and weight gradients
    /// (`GpuBackend::dispatches_per_step` counts them; `3·layers + 1` for a dense stack).
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

/// A buffer a planned dispatch binds, by its role in [`StepBuffers`].
#[derive(Clone, Copy, Debug)]
enum Bind {
    Inputs,
    Targets,
    Index,
    Stats,
    /// The activations entering layer `l` (`acts[layers]` are the outputs).
    Acts(usize),
    /// The deltas at layer `l`'s output.
    Deltas(usize),
    /// Dense layer `l`'s `[W; b]` in the parameter buffer.
    Layer(usize),
    /// Weight tensor `t` (in [`Network::weight_shapes`]' order): a convolution's `[W; b]`.
    Tensor(usize),
    /// The input of spatial layer `f` (`Stage(features)` is the dense layers' input).
    Stage(usize),
    /// The gradient at spatial layer `f`'s output.
    StageDelta(usize),
    /// Max-pool `f`'s arg-maxes.
    Argmax(usize),
    Slots,
    Scratch,
    Dummy,
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
        let (rec, plan) = planner.plan(purpose, rows);
        let dims_buf = rec.upload(ctx, "step dims")?;
        let step_bytes = std::mem::size_of::<StepRecord>() as u64;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let dispatches = plan
            .into_iter()
            .map(|p| {
                let mut buffers = p
                    .binds
                    .iter()
                    .map(|&b| self.resource(b, &p.label))
                    .collect::<Result<Vec<_>>>()?;
                buffers.push(range(&dims_buf, p.dims.0, p.dims.1));
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
            Bind::Acts(l) => at(&b.work.acts, l, missing)?,
            Bind::Deltas(l) => at(&b.work.deltas, l, missing)?,
            Bind::Layer(l) => self.resource(Bind::Tensor(self.layout.dense(l)), label)?,
            Bind::Tensor(t) => {
                let (off, size) = self.layout.tensor_bytes(t);
                range(b.params, off, size)
            }
            // Past the last spatial layer (a dense stack has none) is the dense layers' input.
            Bind::Stage(f) if f == b.work.stages.len() => at(&b.work.acts, 0, missing)?,
            Bind::Stage(f) => at(&b.work.stages, f, missing)?,
            Bind::StageDelta(f) => at(&b.work.stage_deltas, f, missing)?,
            // A convolution has no arg-maxes: its slot gets the dummy buffer.
            Bind::Argmax(f) => match b.work.argmax.get(f).ok_or_else(missing)? {
                Some(a) => a.as_entire_binding(),
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
    /// are chosen, and their dims records.
    fn plan(&self, purpose: Purpose, rows: usize) -> (Records, Vec<PlannedDispatch>) {
        let mut rec = Records::new(self.ctx);
        let mut plan = vec![self.gather(&mut rec)];
        let rows32 = rows as u32;
        let spatial = Spatial {
            net: self.net,
            layout: self.layout,
            optimizer: self.optimizer,
            max_groups: self.ctx.limits.max_compute_workgroups_per_dimension,
        };
        plan.extend(spatial.forward(&mut rec));
        for l in 0..self.net.layers() {
            plan.push(self.forward(&mut rec, l, rows32));
        }
        plan.push(self.loss(&mut rec, purpose));
        if purpose == Purpose::Train {
            // Backward, last layer first. Each layer's input gradient is formed before its
            // weight-gradient kernel, whose epilogue applies the optimizer to W and b in place
            // (the input gradient needs the weights of before the update).
            let features = !self.net.is_dense();
            for l in (0..self.net.layers()).rev() {
                if l > 0 || features {
                    plan.push(self.input_grad(&mut rec, l, rows32));
                }
                plan.push(self.weight_grad_update(&mut rec, l, rows32));
            }
            plan.extend(spatial.backward(&mut rec));
        }
        (rec, plan)
    }

    /// The pipelines the program of `purpose` for `rows` rows runs, in dispatch order (with
    /// repeats).
    pub(crate) fn kernels(&self, purpose: Purpose, rows: usize) -> Vec<KernelId> {
        self.plan(purpose, rows)
            .1
            .iter()
            .map(|p| p.kernel)
            .collect()
    }

    fn gather(&self, rec: &mut Records) -> PlannedDispatch {
        let data = &self.data;
        let features = self.net.inputs() as u32;
        let dims = GatherDims {
            rows_from_step: 1,
            ..GatherDims::new(features, data.input_kind, data.image, data.maps)
        };
        PlannedDispatch {
            label: "gather".into(),
            kernel: KernelId::Gather(data.input_kind),
            binds: vec![Bind::Inputs, Bind::Index, Bind::Stage(0)],
            dims: rec.push(&dims),
            grid: Grid::Gather { features },
        }
    }

    /// `a_{l+1} = f(a_l · W + b)` (the logits for the last layer).
    fn forward(&self, rec: &mut Records, l: usize, rows: u32) -> PlannedDispatch {
        let net = self.net;
        let (i, o) = net.layer_shape(l);
        let act = if l + 1 < net.layers() {
            net.hidden().code()
        } else {
            ACT_IDENTITY
        };
        let dims = MatmulDims {
            n: o as u32,
            k: i as u32,
            rows_dim: RowsDim::M as u32,
            lda: i as u32,
            ldb: o as u32,
            ldc: o as u32,
            epilogue: Epilogue::BiasAct as u32,
            act,
            bias_offset: (i * o) as u32,
            ..Default::default()
        };
        let tile = choose_tile(rows, o as u32, i as u32, self.ctx.tile_target());
        PlannedDispatch {
            label: format!("forward {}", l + 1),
            kernel: matmul_kernel(tile, false, false, &dims),
            binds: vec![
                Bind::Acts(l),
                Bind::Layer(l),
                Bind::Acts(l + 1),
                Bind::Dummy,
                Bind::Scratch,
            ],
            dims: rec.push(&dims),
            grid: Grid::Matmul(dims, tile),
        }
    }

    /// Outputs, loss, correct count and (when there are targets) the output delta.
    fn loss(&self, rec: &mut Records, purpose: Purpose) -> PlannedDispatch {
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
        PlannedDispatch {
            label: "loss".into(),
            kernel: KernelId::Loss(net.output(), target_kind),
            binds: vec![
                Bind::Acts(net.layers()),
                Bind::Deltas(net.layers() - 1),
                Bind::Targets,
                Bind::Index,
                Bind::Stats,
            ],
            dims: rec.push(&dims),
            grid: Grid::Single,
        }
    }

    /// `delta_{l-1} = (delta_l · Wᵀ) ⊙ f'(a_l)`, with `a_l` this layer's input; for the first
    /// dense layer of a CNN, the gradient at the last spatial layer's output (⊙ its f′, if it
    /// has an activation).
    fn input_grad(&self, rec: &mut Records, l: usize, rows: u32) -> PlannedDispatch {
        let net = self.net;
        let (i, o) = net.layer_shape(l);
        let (act, into) = if l > 0 {
            (net.hidden().code(), Bind::Deltas(l - 1))
        } else {
            let last = net.features().len() - 1;
            let act = net.features()[last].activation();
            (
                act.map_or(ACT_IDENTITY, |a| a.code()),
                Bind::StageDelta(last),
            )
        };
        let dims = MatmulDims {
            n: i as u32,
            k: o as u32,
            rows_dim: RowsDim::M as u32,
            lda: o as u32,
            ldb: o as u32,
            ldc: i as u32,
            epilogue: Epilogue::MulDerivative as u32,
            act,
            ..Default::default()
        };
        let tile = choose_tile(rows, i as u32, o as u32, self.ctx.tile_target());
        PlannedDispatch {
            label: format!("input grad {l}"),
            kernel: matmul_kernel(tile, false, true, &dims),
            binds: vec![
                Bind::Deltas(l),
                Bind::Layer(l),
                into,
                Bind::Acts(l),
                Bind::Scratch,
            ],
            dims: rec.push(&dims),
            grid: Grid::Matmul(dims, tile),
        }
    }

    /// `xᵀ·dz` over the batch is dW (i×o), and the ones-row adds db: the gradient of the
    /// layer's [W; b] block, handed straight to the optimizer in the epilogue.
    fn weight_grad_update(&self, rec: &mut Records, l: usize, rows: u32) -> PlannedDispatch {
        let net = self.net;
        let (i, o) = net.layer_shape(l);
        let dims = MatmulDims::weight_update(
            i as u32,
            o as u32,
            None,
            self.layout.starts[self.layout.dense(l)] as u32,
            OptimParams::new(self.optimizer, self.layout.total as u32),
        );
        let tile = choose_tile(i as u32 + 1, o as u32, rows, self.ctx.tile_target());
        PlannedDispatch {
            label: format!("weight grad + update {}", l + 1),
            kernel: matmul_kernel(tile, true, false, &dims),
            binds: vec![
                Bind::Acts(l),
                Bind::Deltas(l),
                Bind::Layer(l),
                Bind::Dummy,
                Bind::Slots,
            ],
            dims: rec.push(&dims),
            grid: Grid::Matmul(dims, tile),
        }
    }
}
