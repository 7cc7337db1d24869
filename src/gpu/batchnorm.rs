//! Batch norm's GPU side: its pipelines as typed keys (and the kernel file and bindings each
//! has), its record, its shared constants and its workgroup size (`shaders/batchnorm*.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::spatial::optional_activations;
use crate::ops::Shared;
use crate::ops::activation::Activation;
use crate::ops::batchnorm::{BnShape, EPS, MOMENTUM};
use crate::ops::optim::{OptimKind, OptimParams};

/// What every batch-norm kernel includes: the record, the indexing, the tree sum.
pub(crate) const COMMON_WGSL: &str = include_str!("../../shaders/batchnorm_common.wgsl");
/// The forward kernels: statistics and normalisation.
pub(crate) const FORWARD_WGSL: &str = include_str!("../../shaders/batchnorm.wgsl");
/// The backward kernels before the update: gradient sums and input gradient.
pub(crate) const GRAD_WGSL: &str = include_str!("../../shaders/batchnorm_grad.wgsl");
/// The update of γ and β.
pub(crate) const UPDATE_WGSL: &str = include_str!("../../shaders/batchnorm_update.wgsl");

/// Threads per workgroup: a channel's reductions, or 64 values.
pub const BN_WG: u32 = 64;

/// What a batch-norm pipeline computes (its `MODE` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BnMode {
    Stats = 0,
    Normalize = 1,
    NormalizeRunning = 2,
    GradSums = 3,
    InputGrad = 4,
    Update = 5,
}

pub(crate) const BN_SHARED: &[Shared] = &[
    Shared::U32("BN_STATS", BnMode::Stats as u32),
    Shared::U32("BN_NORMALIZE", BnMode::Normalize as u32),
    Shared::U32("BN_NORMALIZE_RUNNING", BnMode::NormalizeRunning as u32),
    Shared::U32("BN_GRAD_SUMS", BnMode::GradSums as u32),
    Shared::U32("BN_INPUT_GRAD", BnMode::InputGrad as u32),
    Shared::U32("BN_UPDATE", BnMode::Update as u32),
    Shared::F32("BN_EPS", EPS),
    Shared::F32("BN_MOMENTUM", MOMENTUM),
];

/// A batch-norm pipeline: what it computes and what it is specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnKernel {
    /// The batch's statistics, and the running ones updated.
    Stats,
    /// Normalised with the batch's statistics, then this activation (`None`: none).
    Normalize(Option<Activation>),
    /// Normalised with the running statistics, then this activation.
    NormalizeRunning(Option<Activation>),
    /// The gradient sums.
    GradSums,
    /// The input gradient times the derivative of the layer before's activation.
    InputGrad(Option<Activation>),
    /// γ and β updated by an optimizer of this kind.
    Update(OptimKind),
}

impl BnKernel {
    /// Every batch-norm pipeline there is.
    pub fn all() -> impl Iterator<Item = BnKernel> {
        std::iter::once(BnKernel::Stats)
            .chain(optional_activations().map(BnKernel::Normalize))
            .chain(optional_activations().map(BnKernel::NormalizeRunning))
            .chain([BnKernel::GradSums])
            .chain(optional_activations().map(BnKernel::InputGrad))
            .chain(OptimKind::ALL.into_iter().map(BnKernel::Update))
    }

    /// The pipeline's constants: `MODE`, `ACT` and `OPTIM` (0 where its mode has none).
    pub fn constants(self) -> (BnMode, u32, u32) {
        match self {
            BnKernel::Stats => (BnMode::Stats, 0, 0),
            BnKernel::Normalize(a) => (BnMode::Normalize, Activation::code_of(a), 0),
            BnKernel::NormalizeRunning(a) => (BnMode::NormalizeRunning, Activation::code_of(a), 0),
            BnKernel::GradSums => (BnMode::GradSums, 0, 0),
            BnKernel::InputGrad(a) => (BnMode::InputGrad, Activation::code_of(a), 0),
            BnKernel::Update(o) => (BnMode::Update, 0, o.code()),
        }
    }

    /// Whether it runs a workgroup per channel (else a thread per value; the update, a
    /// thread per channel).
    pub fn per_channel(self) -> bool {
        matches!(self, BnKernel::Stats | BnKernel::GradSums)
    }

    /// Its kernel file (after the common one).
    pub(crate) fn wgsl(self) -> &'static str {
        match self {
            BnKernel::Stats | BnKernel::Normalize(_) | BnKernel::NormalizeRunning(_) => {
                FORWARD_WGSL
            }
            BnKernel::GradSums | BnKernel::InputGrad(_) => GRAD_WGSL,
            BnKernel::Update(_) => UPDATE_WGSL,
        }
    }
}

/// `shaders/batchnorm.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct BnDims {
    pub c: u32,
    pub plane: u32,
    /// Where the running statistics start, from γ (f32 values).
    pub stats_at: u32,
    /// Where γ's optimizer state starts in the slot buffer.
    pub slot_base: u32,
    pub rows: u32,
    pub rows_from_step: u32,
    pub _pad: [u32; 2],
    pub opt: OptimParams,
}

impl BnDims {
    /// The record of `s` for `rows` rows (0 with `rows_from_step`), its statistics `stats_at`
    /// values after γ.
    pub fn new(s: BnShape, stats_at: u32, rows: u32) -> BnDims {
        BnDims {
            c: s.channels as u32,
            plane: s.plane as u32,
            stats_at,
            rows,
            ..Default::default()
        }
    }
}
