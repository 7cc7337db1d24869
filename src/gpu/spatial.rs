//! The GPU side of the convolution and the pool (`shaders/conv.wgsl`, `shaders/pool.wgsl`):
//! their workgroup sizes, how each hands out its work, their modes and block sizes (emitted
//! into the prelude) and the records the kernels read. The math and the shapes they check are
//! `ops::conv` and `ops::pool`.
//!
//! The convolution kernels are `ops::conv`'s three GEMMs over the im2col matrix, register-
//! blocked as the matmul is, with the im2col matrix never written out, and one thing a GEMM
//! over it cannot do: a thread's neighbouring pixels read overlapping windows of a source row,
//! so a window of four values slides along the kernel row and each tap costs one source load,
//! not four (BENCHMARKS.md, "CNNs on the GPU path", has what it gained). The input gradient is
//! the gather form: the forward correlation of `dy` with the kernel turned round, padding
//! k-1-p.

use bytemuck::{Pod, Zeroable};

use crate::ops::Shared;
use crate::ops::activation::Activation;
use crate::ops::avgpool::AvgPoolShape;
use crate::ops::conv::ConvShape;
use crate::ops::optim::{OptimKind, OptimParams};
use crate::ops::pool::PoolShape;
use crate::shape::Chw;

/// `shaders/conv.wgsl`: the forward pass, the input gradient and the parameter update.
pub(crate) const CONV_WGSL: &str = include_str!("../../shaders/conv.wgsl");

/// Threads per workgroup of the convolution kernels (the update's, a power of two for the tree
/// that adds their shares).
pub const CONV_WG: u32 = 64;

/// What a convolution pipeline computes (its `MODE` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvMode {
    /// `act(conv(x, w) + b)`.
    Forward = 0,
    /// `conv2d_input_grad · f′(aux)`.
    InputGrad = 1,
    /// The weight and bias gradients, each handed to the optimizer in place.
    Update = 2,
}

/// Every activation a kernel is specialised for, and none (the identity).
pub(crate) fn optional_activations() -> impl Iterator<Item = Option<Activation>> {
    Activation::ALL.into_iter().map(Some).chain([None])
}

/// A convolution pipeline: what it computes and what it is specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernel {
    /// `act(conv(x, w) + b)` (`None`: no activation).
    Forward(Option<Activation>),
    /// The input gradient times the derivative of the layer before's activation (`None`: it
    /// has none).
    InputGrad(Option<Activation>),
    /// The weight and bias gradients, each handed to an optimizer of this kind in place.
    Update(OptimKind),
}

impl ConvKernel {
    /// Every convolution pipeline there is.
    pub fn all() -> impl Iterator<Item = ConvKernel> {
        optional_activations()
            .map(ConvKernel::Forward)
            .chain(optional_activations().map(ConvKernel::InputGrad))
            .chain(OptimKind::ALL.into_iter().map(ConvKernel::Update))
    }

    /// The pipeline's constants: `MODE`, `ACT` and `OPTIM` (0 where its mode has none).
    pub fn constants(self) -> (ConvMode, u32, u32) {
        match self {
            ConvKernel::Forward(a) => (ConvMode::Forward, Activation::code_of(a), 0),
            ConvKernel::InputGrad(a) => (ConvMode::InputGrad, Activation::code_of(a), 0),
            ConvKernel::Update(o) => (ConvMode::Update, 0, o.code()),
        }
    }
}

/// A max-pool pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKernel {
    /// The maxima and their arg-maxes.
    Forward,
    /// The gradient to the arg-max times the derivative of the layer before's activation
    /// (`None`: it has none).
    Backward(Option<Activation>),
}

impl PoolKernel {
    /// Every pool pipeline there is.
    pub fn all() -> impl Iterator<Item = PoolKernel> {
        std::iter::once(PoolKernel::Forward).chain(optional_activations().map(PoolKernel::Backward))
    }

    /// The pipeline's constants: `MODE` and `ACT` (0 for the forward pass).
    pub fn constants(self) -> (PoolMode, u32) {
        match self {
            PoolKernel::Forward => (PoolMode::Forward, 0),
            PoolKernel::Backward(a) => (PoolMode::Backward, Activation::code_of(a)),
        }
    }
}

/// Channels one thread of the forward pass (output channels) or of the input gradient (input
/// channels) computes: each source value it loads serves that many sums.
pub const CONV_CHANNELS: u32 = 8;
/// Neighbouring pixels of a row one thread of the forward pass or input gradient computes:
/// each weight it loads serves that many sums.
pub const CONV_PIXELS: u32 = 4;
/// Output channels one workgroup of the update sums the gradients of.
pub const CONV_UPDATE_CHANNELS: u32 = 4;
/// Neighbouring taps of a kernel row one workgroup of the update sums the gradients of: a
/// whole row of kernels up to 8 wide.
pub const CONV_TAPS: u32 = 8;
// `shaders/conv.wgsl` names its accumulators for these blocks (vec4s of pixels or taps, eight
// channels in the forward pass and input gradient, four channels of two vec4s in the update).
const _: () =
    assert!(CONV_CHANNELS == 8 && CONV_PIXELS == 4 && CONV_UPDATE_CHANNELS == 4 && CONV_TAPS == 8);

/// How the forward pass or the input gradient hands out its work: `per_row` threads per image
/// (one per [`CONV_PIXELS`] pixels of an output row), for each of `blocks` blocks of
/// [`CONV_CHANNELS`] channels; a workgroup's threads share their block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvWork {
    pub per_row: u32,
    pub blocks: u32,
}

impl ConvWork {
    fn of(out: Chw) -> ConvWork {
        ConvWork {
            per_row: (out.h * out.w.div_ceil(CONV_PIXELS as usize)) as u32,
            blocks: out.c.div_ceil(CONV_CHANNELS as usize) as u32,
        }
    }

    /// Workgroups for a batch of `rows` images.
    pub fn groups(&self, rows: usize) -> u64 {
        (rows as u64 * self.per_row as u64).div_ceil(CONV_WG as u64) * self.blocks as u64
    }
}

impl ConvShape {
    /// The forward pass's work: the output's pixels and channels.
    pub fn forward_work(&self) -> ConvWork {
        ConvWork::of(self.output())
    }

    /// The input gradient's work: the input's pixels and channels.
    pub fn input_grad_work(&self) -> ConvWork {
        ConvWork::of(self.input())
    }

    /// Workgroups of the update: one per [`CONV_UPDATE_CHANNELS`] output channels ×
    /// [`CONV_TAPS`] taps along a kernel row, and one per [`CONV_UPDATE_CHANNELS`] biases.
    pub fn update_groups(&self) -> usize {
        let blocks = self.output().c.div_ceil(CONV_UPDATE_CHANNELS as usize);
        let taps = self.kernel().div_ceil(CONV_TAPS as usize);
        blocks * self.input().c * self.kernel() * taps + blocks
    }
}

pub(crate) const CONV_SHARED: &[Shared] = &[
    Shared::U32("CONV_CHANNELS", CONV_CHANNELS),
    Shared::U32("CONV_PIXELS", CONV_PIXELS),
    Shared::U32("CONV_UPDATE_CHANNELS", CONV_UPDATE_CHANNELS),
    Shared::U32("CONV_TAPS", CONV_TAPS),
    Shared::U32("CONV_FORWARD", ConvMode::Forward as u32),
    Shared::U32("CONV_INPUT_GRAD", ConvMode::InputGrad as u32),
    Shared::U32("CONV_UPDATE", ConvMode::Update as u32),
];

/// `shaders/conv.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ConvDims {
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_out: u32,
    pub oh: u32,
    pub ow: u32,
    pub k: u32,
    pub pad: u32,
    /// Rows of a standalone op; in a training step they come from the step record.
    pub rows: u32,
    pub rows_from_step: u32,
    /// Update: where the layer's optimizer state starts in the slot buffer.
    pub slot_base: u32,
    pub _pad: u32,
    pub opt: OptimParams,
}

impl ConvDims {
    /// The record of `s` for `rows` rows (0 with `rows_from_step`). Every size fits a u32:
    /// [`ConvShape::new`] bounds them by [`MAX_VALUES`].
    pub fn new(s: &ConvShape, rows: u32) -> ConvDims {
        let (i, o) = (s.input(), s.output());
        ConvDims {
            c_in: i.c as u32,
            h: i.h as u32,
            w: i.w as u32,
            c_out: o.c as u32,
            oh: o.h as u32,
            ow: o.w as u32,
            k: s.kernel() as u32,
            pad: s.pad() as u32,
            rows,
            ..Default::default()
        }
    }
}

/// `shaders/pool.wgsl`: the forward pass with its arg-max, and the backward pass.
pub(crate) const POOL_WGSL: &str = include_str!("../../shaders/pool.wgsl");

/// Threads per workgroup of the pool kernels (a thread per window, in both passes).
pub const POOL_WG: u32 = 64;

/// What a pool pipeline computes (its `MODE` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolMode {
    /// The maxima and their arg-maxes, a thread per output value.
    Forward = 0,
    /// The gradient to the arg-max (times the layer before's f′), a thread per input value.
    Backward = 1,
}

pub(crate) const POOL_SHARED: &[Shared] = &[
    Shared::U32("POOL_FORWARD", PoolMode::Forward as u32),
    Shared::U32("POOL_BACKWARD", PoolMode::Backward as u32),
];

/// `shaders/pool.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PoolDims {
    /// The input's channels, height and width.
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub rows: u32,
    pub rows_from_step: u32,
    pub _pad: [u32; 3],
}

impl PoolDims {
    /// The record of `s` for `rows` rows (0 with `rows_from_step`).
    pub fn new(s: &PoolShape, rows: u32) -> PoolDims {
        let i = s.input();
        PoolDims {
            c: i.c as u32,
            h: i.h as u32,
            w: i.w as u32,
            rows,
            ..Default::default()
        }
    }
}

impl PoolShape {
    /// Workgroups of the GPU kernels (`shaders/pool.wgsl`, both passes: a thread per window)
    /// over `rows` samples.
    pub fn groups(&self, rows: usize) -> u64 {
        ((rows * self.output().len()) as u64).div_ceil(POOL_WG as u64)
    }
}

/// `shaders/avgpool.wgsl`: the average pool's forward pass (+ activation) and backward pass.
pub(crate) const AVGPOOL_WGSL: &str = include_str!("../../shaders/avgpool.wgsl");

/// What an average-pool pipeline computes (its `MODE` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AvgPoolMode {
    /// Each window's mean, then the activation, a thread per output value.
    Forward = 0,
    /// The output gradient spread over the window (times the layer before's f′), a thread per
    /// input value.
    Backward = 1,
}

pub(crate) const AVGPOOL_SHARED: &[Shared] = &[
    Shared::U32("AVGPOOL_FORWARD", AvgPoolMode::Forward as u32),
    Shared::U32("AVGPOOL_BACKWARD", AvgPoolMode::Backward as u32),
];

/// An average-pool pipeline (its threads per workgroup are [`POOL_WG`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvgPoolKernel {
    /// The means, then this activation (`None`: none).
    Forward(Option<Activation>),
    /// The spread gradient times the derivative of the layer before's activation (`None`: it
    /// has none).
    Backward(Option<Activation>),
}

impl AvgPoolKernel {
    /// Every average-pool pipeline there is.
    pub fn all() -> impl Iterator<Item = AvgPoolKernel> {
        optional_activations()
            .map(AvgPoolKernel::Forward)
            .chain(optional_activations().map(AvgPoolKernel::Backward))
    }

    /// The pipeline's constants: `MODE` and `ACT`.
    pub fn constants(self) -> (AvgPoolMode, u32) {
        match self {
            AvgPoolKernel::Forward(a) => (AvgPoolMode::Forward, Activation::code_of(a)),
            AvgPoolKernel::Backward(a) => (AvgPoolMode::Backward, Activation::code_of(a)),
        }
    }
}

/// `shaders/avgpool.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AvgPoolDims {
    /// The input's channels, height and width.
    pub c: u32,
    pub h: u32,
    pub w: u32,
    /// The window's height and width.
    pub wh: u32,
    pub ww: u32,
    pub rows: u32,
    pub rows_from_step: u32,
    pub _pad: u32,
}

impl AvgPoolDims {
    /// The record of `s` for `rows` rows (0 with `rows_from_step`).
    pub fn new(s: &AvgPoolShape, rows: u32) -> AvgPoolDims {
        let (i, (wh, ww)) = (s.input(), s.window());
        AvgPoolDims {
            c: i.c as u32,
            h: i.h as u32,
            w: i.w as u32,
            wh: wh as u32,
            ww: ww as u32,
            rows,
            ..Default::default()
        }
    }
}
