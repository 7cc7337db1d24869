//! What every layer kind provides ([`Op`]) and what its CPU passes are handed. Each kind is a
//! module of [`crate::layer`] implementing `Op`; the backends walk a network's layers through
//! this trait and never ask which kind a layer is.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

#[cfg(feature = "gpu")]
use crate::gpu::plan::{At, Lowering};
use crate::ops::activation::Activation;
use crate::shape::{Chw, WeightShape};

/// A layer's weights and bias, as its forward product takes them (see [`WeightShape`]).
#[derive(Clone, Copy)]
pub struct WeightsView<'a> {
    pub w: ArrayView2<'a, f32>,
    pub b: ArrayView1<'a, f32>,
}

/// Scratch shared by every layer of one CPU workspace, [`Op::scratch_len`] floats each at least
/// (a convolution's im2col matrix and its wide output).
#[derive(Default)]
pub struct Scratch {
    pub cols: Vec<f32>,
    pub wide: Vec<f32>,
}

/// What a forward pass is part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// A training step: the optimizer step being taken (1-based, wrapping past 2³²) and the
    /// batch row of the block's first row (dropout's draw).
    Train { step: u32, row0: u32 },
    /// Evaluation or prediction.
    Infer,
}

/// One layer's forward pass over a block of rows on the CPU.
pub struct Forward<'a> {
    /// The layer's place in the network's nodes (dropout's seed).
    pub j: usize,
    pub pass: Pass,
    /// The layer's input, a row per sample.
    pub x: ArrayView2<'a, f32>,
    /// Its output (after the fused activation), overwritten.
    pub out: ArrayViewMut2<'a, f32>,
    pub weights: Option<WeightsView<'a>>,
    /// Its statistics tensor ([`Op::statistics`]), as they stand.
    pub statistics: Option<WeightsView<'a>>,
    /// In training, where the step's measured statistics go (the statistics tensor's
    /// gradient: see `ops::optim::step`); the block holding the batch's first row writes them,
    /// every other block zeros, since the blocks' gradients are added.
    pub measured: Option<(ArrayViewMut2<'a, f32>, ArrayViewMut1<'a, f32>)>,
    /// The activation fused into this layer.
    pub act: Option<Activation>,
    /// [`Op::keep_per_row`] values per row that the backward pass reads back.
    pub keep: ArrayViewMut2<'a, u32>,
    /// [`Op::batch_state`] values for the batch that the backward pass reads back.
    pub batch: &'a mut [f32],
    /// [`Op::reduce_len`] values to sum over the blocks in.
    pub sums: &'a mut [f64],
    /// The rows of the whole batch (a block may hold fewer).
    pub batch_rows: usize,
    /// Adds up values over the batch's row blocks, in place: every block passes its own
    /// [`Op::reduce_len`] values and gets the sums (with one block, they are left as they are).
    pub reduce: &'a mut dyn FnMut(&mut [f64]),
    pub scratch: &'a mut Scratch,
}

/// One layer's backward pass over a block of rows on the CPU (always in training).
pub struct Backward<'a> {
    /// The layer's place in the network's nodes.
    pub j: usize,
    /// The training step's pass, as its forward pass had it.
    pub pass: Pass,
    /// The input the forward pass read.
    pub x: ArrayView2<'a, f32>,
    /// The gradient at the layer's output before its activation.
    pub delta: ArrayView2<'a, f32>,
    pub weights: Option<WeightsView<'a>>,
    /// The weight and bias gradients, overwritten.
    pub grads: Option<(ArrayViewMut2<'a, f32>, ArrayViewMut1<'a, f32>)>,
    /// The gradient at the input, overwritten; `None` for the first layer (nothing reads it).
    /// The caller multiplies it by f′ of the layer before.
    pub input_grad: Option<ArrayViewMut2<'a, f32>>,
    pub keep: ArrayView2<'a, u32>,
    /// What the forward pass kept for the batch.
    pub batch: &'a [f32],
    /// [`Op::reduce_len`] values to sum over the blocks in.
    pub sums: &'a mut [f64],
    /// As [`Forward::reduce`].
    pub reduce: &'a mut dyn FnMut(&mut [f64]),
    /// The rows of the whole batch (a block may hold fewer).
    pub batch_rows: usize,
    pub scratch: &'a mut Scratch,
}

/// A layer kind: its shapes, parameters, text, CPU reference and GPU lowering. A layer maps one
/// sample's values (read as C×H×W by a spatial layer, as a flat row by a dense one) to another.
pub trait Op: std::fmt::Debug {
    /// The shape it reads.
    fn input(&self) -> Chw;
    /// The shape it writes.
    fn output(&self) -> Chw;
    /// Whether it reads an image: its input must not have been flattened by a layer before.
    fn needs_image(&self) -> bool;
    /// Whether its output is a row of values, no longer an image (a dense layer's).
    fn flattens(&self) -> bool {
        false
    }
    /// Whether an activation after it is fused into its kernels (else the layer string
    /// refuses one there).
    fn fuses_activation(&self) -> bool {
        true
    }
    /// Its weight tensor, if it has one.
    fn weights(&self) -> Option<WeightShape> {
        None
    }
    /// A second tensor of statistics, right after its weights (batch norm's running mean
    /// and variance): saved and loaded with them, not trained.
    fn statistics(&self) -> Option<WeightShape> {
        None
    }
    /// Its token in the layer string (`conv8k5same`, `pool`, `dense64`).
    fn token(&self) -> String;
    /// Its name in the summary table (`conv2d 5×5 same`).
    fn describe(&self) -> String;
    /// Multiply-adds of its forward pass per sample (a training step does about three times
    /// as many).
    fn macs_per_sample(&self) -> u64;
    /// u32 values per sample its forward pass keeps for the backward pass.
    fn keep_per_row(&self) -> usize {
        0
    }
    /// f32 values per batch its forward pass keeps for the backward pass (on the CPU and the
    /// GPU: batch norm's statistics).
    fn batch_state(&self) -> usize {
        0
    }
    /// Values of each sum over the batch's row blocks its passes take in training (one in the
    /// forward pass, one in the backward pass: [`Forward::reduce`]); 0 for none.
    fn reduce_len(&self) -> usize {
        0
    }
    /// Floats each of [`Scratch`]'s buffers needs for blocks of `rows` rows.
    fn scratch_len(&self, _rows: usize) -> usize {
        0
    }
    /// The CPU reference of the forward pass.
    fn cpu_forward(&self, f: Forward<'_>);
    /// The CPU reference of the backward pass.
    fn cpu_backward(&self, b: Backward<'_>);
    /// Its forward dispatches (the activation fused in).
    #[cfg(feature = "gpu")]
    fn lower_forward(&self, at: &At, to: &mut Lowering);
    /// Its backward dispatches: the input gradient (⊙ f′ of the layer before) unless it is
    /// the first layer, then any update of its weights (after the input gradient, which reads
    /// the weights of before the update).
    #[cfg(feature = "gpu")]
    fn lower_backward(&self, at: &At, to: &mut Lowering);
}
