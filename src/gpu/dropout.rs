//! Dropout's GPU side: its pipelines as typed keys, its record and its workgroup size
//! (`shaders/dropout.wgsl`, a thread per value).

use bytemuck::{Pod, Zeroable};

use super::spatial::optional_activations;
use crate::ops::activation::Activation;
use crate::ops::dropout::{DropoutMode, Rate};

/// Threads per workgroup of the dropout kernels.
pub const DROPOUT_WG: u32 = 64;

/// A dropout pipeline: what it computes and the activation it is specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropoutKernel {
    /// Training: masked, scaled, then this activation (`None`: none).
    Train(Option<Activation>),
    /// Evaluation and prediction: the values, then this activation.
    Infer(Option<Activation>),
    /// The gradient through the mask times the derivative of the layer before's activation.
    Backward(Option<Activation>),
}

impl DropoutKernel {
    /// Every dropout pipeline there is.
    pub fn all() -> impl Iterator<Item = DropoutKernel> {
        optional_activations()
            .map(DropoutKernel::Train)
            .chain(optional_activations().map(DropoutKernel::Infer))
            .chain(optional_activations().map(DropoutKernel::Backward))
    }

    /// The pipeline's constants: `MODE` and `ACT`.
    pub fn constants(self) -> (DropoutMode, u32) {
        match self {
            DropoutKernel::Train(a) => (DropoutMode::Train, Activation::code_of(a)),
            DropoutKernel::Infer(a) => (DropoutMode::Infer, Activation::code_of(a)),
            DropoutKernel::Backward(a) => (DropoutMode::Backward, Activation::code_of(a)),
        }
    }
}

/// `shaders/dropout.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct DropoutDims {
    /// Values per row.
    pub n: u32,
    pub threshold: u32,
    pub scale: f32,
    pub seed: u32,
    pub rows: u32,
    pub rows_from_step: u32,
    pub _pad: [u32; 2],
}

impl DropoutDims {
    /// The record of a dropout of `rate` over rows of `n` values, seeded `seed`, for `rows`
    /// rows (0 with `rows_from_step`).
    pub fn new(n: usize, rate: Rate, seed: u32, rows: u32) -> DropoutDims {
        DropoutDims {
            n: n as u32,
            threshold: rate.threshold,
            scale: rate.scale,
            seed,
            rows,
            ..Default::default()
        }
    }
}
