//! The vocabulary of a program's plan, below everything that builds one: the pipeline keys
//! ([`KernelId`]), a dispatch before binding ([`PlannedDispatch`]: its kernel, the buffers it
//! binds by role, its record and its grid), and [`Lowering`], what a layer kind's GPU lowering
//! (in [`crate::layer`]) reads and writes. It knows no network, so that the layer modules can
//! use it without importing the code that walks them.

use bytemuck::Pod;

use super::batchnorm::BnKernel;
use super::dropout::DropoutKernel;
use super::spatial::{AvgPoolKernel, ConvKernel, ConvWork, POOL_WG, PoolKernel};
use crate::ops::activation::Activation;
use crate::ops::gather::{InputKind, WG, gather_threads};
use crate::ops::loss::{Output, TargetKind};
use crate::ops::matmul::{MatmulDims, RowsDim, Special, Tile, TileTarget, choose_tile};
use crate::ops::optim::{OptimKind, OptimParams};

/// A matmul pipeline: its tile, form (`Aᵀ·Bᵀ` is none) and specialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulKey {
    pub tile: Tile,
    pub trans_a: bool,
    pub trans_b: bool,
    pub special: Special,
}

/// A pipeline [`Kernels`] builds the first time it is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelId {
    Matmul(MatmulKey),
    Gather(InputKind),
    Loss(Output, TargetKind),
    Conv(ConvKernel),
    Pool(PoolKernel),
    AvgPool(AvgPoolKernel),
    Dropout(DropoutKernel),
    BatchNorm(BnKernel),
}

/// Workgroups for `n` elements at `wg` per group, folded into 2-D when one dimension's
/// maximum would be exceeded (the kernels rebuild the linear index from `num_workgroups`).
pub fn grid_1d(n: u64, wg: u32, max_per_dim: u32) -> (u32, u32) {
    let groups = n.div_ceil(wg as u64).max(1);
    let max = max_per_dim.max(1) as u64;
    if groups <= max {
        (groups as u32, 1)
    } else {
        (max as u32, groups.div_ceil(max) as u32)
    }
}

/// How a dispatch's workgroup count follows the batch's rows.
#[derive(Clone, Copy, Debug)]
pub enum Grid {
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
    /// A thread per value of rows of `per_row` values, `wg` threads per workgroup (dropout,
    /// batch norm's normalisation and input gradient).
    PerValue {
        per_row: u32,
        wg: u32,
    },
}

impl Grid {
    /// Workgroups for a step of `rows` rows, at most `max` per dimension.
    pub fn workgroups(self, rows: u32, max: u32) -> (u32, u32) {
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
            Grid::PerValue { per_row, wg } => grid_1d(rows as u64 * per_row as u64, wg, max),
        }
    }
}

/// A buffer a planned dispatch binds, by its role in the program's buffers. Layers are counted
/// over the lowered network ([`crate::net::Network::nodes`]), first first.
#[derive(Clone, Copy, Debug)]
pub enum Bind {
    Inputs,
    Targets,
    Index,
    Stats,
    /// The input of layer `j` (`Acts(layers)` holds the outputs: the logits, then the loss's
    /// probabilities).
    Acts(usize),
    /// The gradient at layer `j`'s output, before its activation.
    Deltas(usize),
    /// What layer `j` keeps from its forward pass for its backward pass (a pool's arg-maxes);
    /// the dummy buffer for a layer that keeps nothing.
    Keep(usize),
    /// Weight tensor `t` (in [`crate::shape::WeightShapes`]' order): its `[W; b]`.
    Tensor(usize),
    /// Tensors `t` and `t + 1` together (a layer's weights and statistics), from `t`'s start.
    TensorPair(usize),
    Slots,
    Scratch,
    Dummy,
}

/// A dispatch before binding: what it binds, by role (the dims record and the step record are
/// appended), its dims record and its grid.
pub struct PlannedDispatch {
    /// What it computes (`dense 3 forward`): the key of its profile total.
    pub label: String,
    pub kernel: KernelId,
    pub binds: Vec<Bind>,
    /// Its dims record's bytes.
    pub dims: Vec<u8>,
    pub grid: Grid,
}

/// Where a layer sits in the program it is lowered into.
#[derive(Clone, Copy, Debug)]
pub struct At {
    /// Its place in the lowered network: it reads `Acts(j)` and writes `Acts(j + 1)`.
    pub j: usize,
    /// Its weight tensor, if it has one.
    pub tensor: Option<usize>,
    /// Its statistics tensor, if it has one.
    pub statistics: Option<usize>,
    /// The activation fused into it.
    pub act: Option<Activation>,
    /// The activation of the layer before it, whose f′ its input gradient is multiplied by;
    /// `None` for the first layer, whose input gradient nothing reads (it is not formed).
    pub before: Option<Option<Activation>>,
}

impl At {
    /// Its statistics tensor, if it has one.
    pub fn statistics_tensor(&self) -> Option<usize> {
        self.statistics
    }

    /// The label of this layer's dispatch `what` (`dense 3 forward`).
    pub fn label(&self, kind: &str, what: &str) -> String {
        format!("{kind} {} {what}", self.j + 1)
    }
}

/// What a layer kind's GPU lowering reads of the program it joins, and the dispatches it adds.
pub struct Lowering<'a> {
    /// The batch size the tiles are chosen for.
    pub rows: u32,
    pub tile_target: TileTarget,
    /// Workgroups per grid dimension at most.
    pub max_groups: u32,
    /// The optimizer's record, for the kernels whose epilogue updates a tensor in place.
    pub optim: OptimParams,
    pub optim_kind: OptimKind,
    /// Where each weight tensor starts in the parameter buffer and in the slot buffer (f32
    /// elements).
    pub tensor_starts: &'a [u64],
    /// Whether the program trains (dropout drops only then).
    pub training: bool,
    pub plan: Vec<PlannedDispatch>,
}

impl Lowering<'_> {
    /// Adds a dispatch.
    pub fn push<T: Pod>(
        &mut self,
        label: String,
        kernel: KernelId,
        binds: Vec<Bind>,
        dims: &T,
        grid: Grid,
    ) {
        self.plan.push(PlannedDispatch {
            label,
            kernel,
            binds,
            dims: bytemuck::bytes_of(dims).to_vec(),
            grid,
        });
    }

    /// The matmul tile for `rows × cols` outputs over `k`.
    pub fn tile(&self, rows: u32, cols: u32, k: u32) -> Tile {
        choose_tile(rows, cols, k, self.tile_target)
    }
}

/// The matmul of form op(A)·op(B) with `tile`, specialised for `dims`.
pub fn matmul_kernel(tile: Tile, trans_a: bool, trans_b: bool, dims: &MatmulDims) -> KernelId {
    KernelId::Matmul(MatmulKey {
        tile,
        trans_a,
        trans_b,
        special: Special::of(dims),
    })
}
