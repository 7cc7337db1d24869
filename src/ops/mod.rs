//! The ops, one module per family, each beside its `shaders/*.wgsl` file: the CPU reference
//! (public, so that tests call it), the `#[repr(C)]` record its kernel reads, the WGSL it
//! includes, and the codes it shares with WGSL. The shared codes are defined here in Rust once
//! and emitted into every shader as a generated prelude (`gpu::wgsl::prelude`), never mirrored
//! by hand. The convolution and the pools are math and shapes only: their kernels' records,
//! blocks and work splits are `gpu::spatial`'s.
//!
//! | op | CPU reference | WGSL |
//! |---|---|---|
//! | activation | [`activation`] (`Activation::apply`, `derivative_from_output`) | `activation.wgsl` |
//! | matmul + epilogues | [`matmul`] (`bias_activation`, `mul_derivative`; `cpu::linalg::gemm`) | `matmul.wgsl` |
//! | loss | [`loss`] (`output_delta`, `softmax_cross_entropy`, `mse`) | `loss.wgsl` |
//! | gather | [`gather`] (`gather_inputs`) | `gather.wgsl` |
//! | optimizer update | [`optim`] (`update`) | `optim.wgsl`, `optim_step.wgsl` |
//! | column sums | [`reduce`] (`column_sums`) | `reduce.wgsl` |
//! | fused step (rows; gradients + update) | [`fused`] (the ops above in sequence) | `fused_rows.wgsl`, `fused_grads.wgsl` |
//! | conv2d (forward, input / weight / bias gradients) | [`conv`] (`conv2d`, `conv2d_input_grad`, `conv2d_param_grads`) | `conv.wgsl` |
//! | max-pool 2×2 (forward + arg-max, backward) | [`pool`] (`max_pool`, `max_pool_backward`) | `pool.wgsl` |
//! | dropout (training mask + scale, evaluation, backward) | [`dropout`] (`forward`, `backward`, `infer`; the mask: `Rate::keeps`) | `dropout.wgsl` |
//! | batch norm (batch statistics, normalise, gradient sums, input gradient) | [`batchnorm`] (`add_moments`, `batch_statistics`, `normalize`, `add_grad_sums`, `input_grad`) | `batchnorm.wgsl` |
//! | average pool (2×2 or global; forward, backward) | [`avgpool`] (`avg_pool`, `avg_pool_backward`) | `avgpool.wgsl` |

pub mod activation;
pub mod avgpool;
pub mod batchnorm;
pub mod conv;
pub mod dropout;
pub mod fused;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;

use bytemuck::{Pod, Zeroable};

/// `shaders/common.wgsl`'s `Step`: what changes from one training step to the next.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StepRecord {
    pub rows: u32,
    pub index_offset: u32,
    pub lr: f32,
    pub c1: f32,
    pub c2: f32,
    /// The optimizer step being taken, 1-based, wrapping past 2³² (dropout's draw).
    pub step: u32,
    pub _pad: [u32; 2],
}

/// A constant that Rust and WGSL share.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shared {
    U32(&'static str, u32),
    F32(&'static str, f32),
}

/// The lowest finite f32, for running maxima. Written as a hex float in WGSL: a decimal such as
/// `-3.40282347e38` lies just outside f32's range for Tint (Chrome), which rejects it.
pub(crate) const F32_LOWEST: Shared = Shared::F32("F32_LOWEST", f32::MIN);
