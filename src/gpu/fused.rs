//! The fused training step: three dispatches per step for dense stacks that fit
//! ([`crate::ops::fused::plan`] states the bound), bound once like the general program
//! ([`super::program`]).
//!
//! | dispatch | workgroups (784-64-64-10, batch B) | what |
//! |---|---|---|
//! | `fused rows` | B (one per row, 64 threads) | gather, forward, loss, output delta, backward deltas |
//! | `fused grads` | ⌈T / 256⌉ × S = 14 × S | every layer's [W; b] gradient, a 4×4 tile per thread, over one split of the batch |
//! | `fused update` | ⌈4T / 64⌉ + 1 = 219 | the splits' sum in order, the optimizer (a tile row, four parameters, per thread), the stats |
//!
//! with P = 55 050 parameters, T = 3 475 tiles (4×4 gradients of one layer's [W; b] block) and
//! S the batch splits ([`crate::ops::fused::splits`]: 4 at B = 64, 16 from 241 up), so at
//! B ≥ 256 every dispatch launches ≥ 219 workgroups. Evaluation and prediction keep the
//! general program (forward only).
//!
//! Determinism: every value has one writer and a fixed order of additions (a row's products in
//! input order within each of a fixed number of input slices, the slices in order; a split's
//! rows ascending, the splits in index order; the stats in a fixed tree), and there are no
//! atomics, so the same seed on the same adapter gives the same bits.

use super::backend::GpuBackend;
use super::context::GpuContext;
use super::kernels::{Kernel, KernelSpec, Slot};
use super::plan::Grid;
use super::program::{Dispatch, Program, ProgramBuilder, StepPath};
use super::resources::{Records, range, usage_out};
use super::wgsl::kernel_source;
use crate::error::{Error, Result};
use crate::net::Network;
use crate::ops::activation::{self, Activation};
use crate::ops::fused::{
    FusedShape, GRADS_WG, GradsDims, GradsLayer, GradsMode, MAX_FUSED_LAYERS, RowsDims, RowsLayer,
    UPDATE_WG, plan, splits,
};
use crate::ops::optim::OptimParams;
use crate::ops::{StepRecord, optim};

/// The fused step's two pipelines, built for one network's shape.
pub(crate) struct FusedKernels {
    pub shape: FusedShape,
    rows: Kernel,
    grads: Kernel,
    /// The same shader as `grads` with [`UPDATE_WG`] threads.
    update: Kernel,
}

impl FusedKernels {
    /// The pipelines for `net` when it fits the fused step on this device; `Err` with the
    /// reason when it does not (the backend then keeps the general path).
    pub(crate) fn new(
        ctx: &GpuContext,
        net: &Network,
    ) -> Result<std::result::Result<Self, String>> {
        let shape = match Self::shape(ctx, net) {
            Ok(s) => s,
            Err(why) => return Ok(Err(why)),
        };
        let [rows, grads, update] = fused_specs(&shape).map(|spec| spec.build(ctx));
        let (rows, grads, update) = (rows?, grads?, update?);
        Ok(Ok(FusedKernels {
            shape,
            rows,
            grads,
            update,
        }))
    }
}

impl FusedKernels {
    /// Whether `net` fits the fused step on `ctx`'s limits, without building anything; if
    /// not, why.
    pub(crate) fn fits(ctx: &GpuContext, net: &Network) -> std::result::Result<(), String> {
        Self::shape(ctx, net).map(|_| ())
    }

    fn shape(ctx: &GpuContext, net: &Network) -> std::result::Result<FusedShape, String> {
        let Some(sizes) = net.dense_sizes() else {
            return Err(
                "a network of other layers than dense ones: the fused step is for dense \
                        stacks"
                    .into(),
            );
        };
        plan(
            &sizes,
            ctx.limits.max_compute_workgroup_storage_size,
            ctx.limits.max_compute_workgroups_per_dimension,
        )
    }
}

/// The fused step's pipeline variants for a network of `shape`: rows, gradients, update.
pub fn fused_specs(shape: &FusedShape) -> [KernelSpec; 3] {
    use Slot::*;
    let grads_src = kernel_source(&[optim::WGSL, crate::ops::fused::GRADS_WGSL]);
    let grads_slots = [Read, Write, Write, Write, Write, Uniform, Step];
    let grads = |name, wg: u32| {
        KernelSpec::new(name, grads_src.clone(), &grads_slots, &[("WG", wg as f64)])
    };
    [
        KernelSpec::new(
            "fused_rows",
            kernel_source(&[activation::WGSL, crate::ops::fused::ROWS_WGSL]),
            &[Read, Read, Read, Read, Write, Uniform, Step],
            &[
                ("WG", shape.rows_wg as f64),
                ("ACTS", shape.acts as f64),
                ("DELTAS", shape.deltas as f64),
                ("PARTS", shape.parts as f64),
            ],
        ),
        grads("fused_grads", GRADS_WG),
        grads("fused_update", UPDATE_WG),
    ]
}

/// Where each layer's rows live in the fused work buffer, for batches of `rows` rows (f32
/// offsets): every layer's input rows, then every layer's delta rows, then the rows' losses
/// and correct flags.
struct WorkLayout {
    act: Vec<u32>,
    delta: Vec<u32>,
    loss: u32,
    correct: u32,
    len: u64,
}

impl WorkLayout {
    fn new(net: &Network, rows: usize) -> WorkLayout {
        let mut at = 0u64;
        // Regions start on 16-byte words: the gradient stage reads deltas as vec4.
        let mut take = |n: usize| {
            let start = at.next_multiple_of(4);
            at = start + (rows * n) as u64;
            start as u32
        };
        let nodes = net.nodes();
        let act = nodes.iter().map(|n| take(n.op().input().len())).collect();
        let delta = nodes.iter().map(|n| take(n.op().output().len())).collect();
        let loss = take(1);
        let correct = take(1);
        WorkLayout {
            act,
            delta,
            loss,
            correct,
            len: at.next_multiple_of(4),
        }
    }
}

impl ProgramBuilder<'_> {
    /// The fused training program for batches of `rows` rows, or `None` when its buffers at
    /// this batch size exceed the device's binding limit or the samples are images of several
    /// channels (the general program then runs).
    pub(crate) fn build_fused(&self, fused: &FusedKernels, rows: usize) -> Result<Option<Program>> {
        let (ctx, net, b) = (self.ctx, self.net, &self.buffers);
        let max_dim = ctx.limits.max_compute_workgroups_per_dimension;
        let shape = fused.shape;
        let work = WorkLayout::new(net, rows);
        let splits = splits(shape.tiles, rows as u32, max_dim);
        let limit = ctx.limits.max_storage_buffer_binding_size;
        let partials_len = splits as u64 * shape.tiles as u64 * 16;
        if work.len * 4 > limit || partials_len * 4 > limit || work.len > u32::MAX as u64 {
            return Ok(None);
        }
        // Its gather maps every value by channel 0's map and shifts one plane: images of
        // several channels take the general program.
        if b.data.image.is_some_and(|i| i.c > 1) {
            return Ok(None);
        }
        let work_buf = ctx.buffer("fused work", work.len * 4, usage_out())?;
        let partials = ctx.buffer("fused gradient partials", partials_len * 4, usage_out())?;

        let layers = net.nodes().len();
        debug_assert!(layers <= MAX_FUSED_LAYERS);
        let mut rows_dims = RowsDims {
            layers: layers as u32,
            input_kind: b.data.input_kind as u32,
            scale: b.data.maps[0].scale,
            shift: b.data.maps[0].shift,
            height: b.data.image.map_or(0, |i| i.h as u32),
            width: b.data.image.map_or(0, |i| i.w as u32),
            output_kind: net.output().code(),
            target_kind: b.data.target_kind as u32,
            loss_work: work.loss,
            correct_work: work.correct,
            ..Default::default()
        };
        let mut grads_dims = GradsDims {
            mode: GradsMode::Partial as u32,
            layers: layers as u32,
            total: shape.params,
            splits,
            tiles: shape.tiles,
            loss_work: work.loss,
            correct_work: work.correct,
            opt: OptimParams::new(self.optimizer, self.layout.total as u32),
            ..Default::default()
        };
        let (mut act_at, mut begin, mut tbegin) = (0u32, 0u32, 0u32);
        for (l, node) in net.nodes().iter().enumerate() {
            let (i, o) = (node.op().input().len(), node.op().output().len());
            let tensor = node.tensor.expect("a dense layer has weights");
            let params = self.layout.starts[tensor] as u32;
            rows_dims.layer[l] = RowsLayer {
                inputs: i as u32,
                outputs: o as u32,
                params,
                act: act_at,
                act_work: work.act[l],
                delta_work: work.delta[l],
                code: Activation::code_of(node.act),
                _pad: 0,
            };
            grads_dims.layer[l] = GradsLayer {
                inputs: i as u32,
                outputs: o as u32,
                begin,
                params,
                act_work: work.act[l],
                delta_work: work.delta[l],
                tbegin,
                _pad: 0,
            };
            act_at += i as u32;
            begin += ((i + 1) * o) as u32;
            tbegin += ((i + 1).div_ceil(4) * o.div_ceil(4)) as u32;
        }
        let apply_dims = GradsDims {
            mode: GradsMode::Apply as u32,
            ..grads_dims
        };
        let mut rec = Records::new(ctx);
        let rows_at = rec.push(&rows_dims);
        let grads_at = rec.push(&grads_dims);
        let apply_at = rec.push(&apply_dims);
        let dims_buf = rec.upload(ctx, "fused step dims")?;

        let step_bytes = std::mem::size_of::<StepRecord>() as u64;
        let steps = range(b.steps, 0, step_bytes);
        let dims = |(at, size)| range(&dims_buf, at, size);
        let tile_groups = shape.tiles.div_ceil(GRADS_WG);
        let update_groups = (4 * shape.tiles).div_ceil(UPDATE_WG);
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let grads_buffers = |at| {
            vec![
                work_buf.as_entire_binding(),
                partials.as_entire_binding(),
                b.params.as_entire_binding(),
                b.slots.as_entire_binding(),
                b.stats.as_entire_binding(),
                dims(at),
                steps.clone(),
            ]
        };
        let rows_bind = fused.rows.bind(
            ctx,
            "fused rows",
            &[
                b.data.inputs.as_entire_binding(),
                b.data.targets.as_entire_binding(),
                b.index.as_entire_binding(),
                b.params.as_entire_binding(),
                work_buf.as_entire_binding(),
                dims(rows_at),
                steps.clone(),
            ],
        );
        let grads_bind = fused
            .grads
            .bind(ctx, "fused grads", &grads_buffers(grads_at));
        let apply_bind = fused
            .update
            .bind(ctx, "fused update", &grads_buffers(apply_at));
        ctx.end_scope(scope, "binding the fused step's buffers")?;
        let dispatches = vec![
            Dispatch::new(&fused.rows, rows_bind, Grid::PerRow, "fused rows".into()),
            Dispatch::new(
                &fused.grads,
                grads_bind,
                Grid::Fixed(tile_groups, splits),
                "fused grads".into(),
            ),
            // The last workgroup adds the stats.
            Dispatch::new(
                &fused.update,
                apply_bind,
                Grid::Fixed(update_groups + 1, 1),
                "fused update".into(),
            ),
        ];
        Ok(Some(Program::new(
            dispatches,
            rows,
            StepPath::Fused,
            vec![dims_buf, work_buf, partials],
        )))
    }
}

/// The choice between the two paths (the fields are the backend's).
impl GpuBackend {
    /// The path training steps take: the one the current training program was built for, else
    /// the fused path when the network fits it (`ops::fused::plan`) and it was not set aside
    /// (see [`GpuBackend::use_path`]). (A batch so large that the fused buffers would pass the
    /// device's binding limit builds the general program.)
    pub fn step_path(&self) -> StepPath {
        match (&self.program, &self.fused) {
            (Some(p), _) => p.path,
            (None, Ok(_)) => StepPath::Fused,
            (None, Err(_)) => StepPath::General,
        }
    }

    /// Why training does not take the fused path (`None` when it does).
    pub fn fused_refusal(&self) -> Option<&str> {
        self.fused.as_ref().err().map(String::as_str)
    }

    /// Trains on `path` from now on. The fused path needs a network that fits it (else an
    /// [`Error::Argument`] with the reason); the general path always works. Both are held to
    /// the CPU reference by the same tests, and this is how they (and A/B measurements) pick.
    pub fn use_path(&mut self, path: StepPath) -> Result<()> {
        match path {
            StepPath::General => {
                let why = "the general path was chosen (use_path)".to_string();
                if let Ok(kernels) = std::mem::replace(&mut self.fused, Err(why)) {
                    self.parked = Some(kernels);
                }
            }
            StepPath::Fused => {
                if let Some(kernels) = self.parked.take() {
                    self.fused = Ok(kernels);
                } else if self.fused.is_err() {
                    // Not built yet (software adapters build them on demand), or unfit.
                    match FusedKernels::new(&self.ctx, &self.net)? {
                        Ok(kernels) => self.fused = Ok(kernels),
                        Err(why) => {
                            return Err(Error::arg(
                                "step path",
                                "a network that fits the fused step",
                                why,
                            ));
                        }
                    }
                }
            }
        }
        if self.program.as_ref().is_some_and(|p| p.path != path) {
            self.program = None;
        }
        Ok(())
    }

    /// [`GpuBackend::use_path`] with the general path.
    pub fn force_general_path(&mut self) {
        self.use_path(StepPath::General)
            .expect("the general path always works");
    }
}
