//! The fused training step: a whole step of a dense stack in three dispatches, beside the
//! general path's `3·layers + 1` for the same stack (see `gpu::fused` for the binding, ARCHITECTURE.md for the
//! data flow). Its CPU twin is the general step's ops in sequence, which the CPU backend runs:
//!
//! - `shaders/fused_rows.wgsl` (one workgroup per batch row): [`super::gather::gather_inputs`],
//!   per layer `cpu::linalg::gemm` + [`super::matmul::bias_activation`],
//!   [`super::loss::output_delta`], then per hidden layer, last first, `gemm` +
//!   [`super::matmul::mul_derivative`];
//! - `shaders/fused_grads.wgsl`, mode [`GradsMode::Partial`] (split-K over the batch): per
//!   layer `gemm` (aᵀ·δ) and [`super::reduce::column_sums`] (the bias); mode
//!   [`GradsMode::Apply`]: the splits' sum, [`super::optim::update`], and the batch's loss and
//!   correct count (the sums `output_delta` returns).
//!
//! This module holds the records those kernels read, the bound that decides whether a network
//! fits ([`plan`]), and the split rule of the gradient stage ([`splits`]).

use bytemuck::{Pod, Zeroable};

use super::Shared;
use super::optim::OptimParams;

pub(crate) const ROWS_WGSL: &str = include_str!("../../shaders/fused_rows.wgsl");
pub(crate) const GRADS_WGSL: &str = include_str!("../../shaders/fused_grads.wgsl");

/// Layers the fused records describe at most (their per-layer arrays have this fixed length).
pub const MAX_FUSED_LAYERS: usize = 8;

/// Threads of the gradient kernel (one per 4×4 tile): the most the device is created with
/// (`context::INVOCATIONS_NEEDED`), eight 32-wide warps.
pub const GRADS_WG: u32 = 256;

/// Threads of the update kernel (one per row of a tile, four parameters each): two warps, so
/// that the update of 784-64-64-10 (13 900 threads) still spans 218 workgroups.
pub const UPDATE_WG: u32 = 64;

/// The gradient stage aims for this many workgroups: about four per SM of the largest current
/// GPUs (an H100 has 132), so that every SM has several to switch between. WebGPU exposes no
/// SM count, so it is a fixed target; on a small GPU more workgroups than SMs cost only the
/// partials' traffic (splits × parameters floats).
pub const GRADS_TARGET_WORKGROUPS: u32 = 512;

/// Rows each split sums at least: a split's partials cost a write and a read per gradient,
/// next to two 16-byte loads per row for sixteen gradients, so below ~16 rows the second
/// stage's traffic would rival the first's.
pub const MIN_ROWS_PER_SPLIT: u32 = 16;

/// Splits at most: the update reads each parameter's partials serially, one per split, so past
/// ~16 its reads outgrow the rest of the update (a load, the optimizer's arithmetic and a store).
pub const MAX_SPLITS: u32 = 16;

/// What a [`GradsDims`] dispatch does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum GradsMode {
    /// Each thread sums one parameter's gradient over its split of the batch, into `partials`.
    Partial = 0,
    /// Each thread adds its parameter's partials in split order and applies the optimizer; one
    /// more workgroup reduces the rows' losses and correct flags into the stats.
    Apply = 1,
}

pub(crate) const SHARED: &[Shared] = &[
    Shared::U32("MAX_FUSED_LAYERS", MAX_FUSED_LAYERS as u32),
    Shared::U32("GRADS_PARTIAL", GradsMode::Partial as u32),
    Shared::U32("GRADS_APPLY", GradsMode::Apply as u32),
];

/// `shaders/fused_rows.wgsl`'s `Layer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct RowsLayer {
    pub inputs: u32,
    pub outputs: u32,
    /// Where `W` starts in the parameter buffer (`b` follows it).
    pub params: u32,
    /// Where the layer's input starts in the row's workgroup activations.
    pub act: u32,
    /// Where the layer's input rows start in the work buffer (rows × inputs).
    pub act_work: u32,
    /// Where its delta rows start in the work buffer (rows × outputs).
    pub delta_work: u32,
    /// The activation code of its output (`ACT_IDENTITY` for the logits).
    pub code: u32,
    pub _pad: u32,
}

/// `shaders/fused_rows.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct RowsDims {
    pub layers: u32,
    pub input_kind: u32,
    pub scale: f32,
    pub shift: f32,
    /// Image shape for shifted entries (0 when the samples are not images).
    pub height: u32,
    pub width: u32,
    pub output_kind: u32,
    pub target_kind: u32,
    /// Where the rows' losses start in the work buffer.
    pub loss_work: u32,
    /// Where the rows' correct flags (0.0 or 1.0) start in the work buffer.
    pub correct_work: u32,
    pub _pad: [u32; 2],
    pub layer: [RowsLayer; MAX_FUSED_LAYERS],
}

/// `shaders/fused_grads.wgsl`'s `Layer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GradsLayer {
    pub inputs: u32,
    pub outputs: u32,
    /// The first index of its `[W; b]` block in the concatenated gradient space.
    pub begin: u32,
    /// Where `W` starts in the parameter and slot buffers (`ParamLayout`).
    pub params: u32,
    pub act_work: u32,
    /// Where its delta rows start in the work buffer (16-byte aligned).
    pub delta_work: u32,
    /// Its first 4×4 tile of gradients (`⌈(inputs + 1) / 4⌉ · ⌈outputs / 4⌉` of them).
    pub tbegin: u32,
    pub _pad: u32,
}

/// `shaders/fused_grads.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GradsDims {
    pub mode: u32,
    pub layers: u32,
    /// Gradient values of all layers: `Σ (inputs + 1) · outputs`.
    pub total: u32,
    pub splits: u32,
    pub loss_work: u32,
    pub correct_work: u32,
    /// Tiles of all layers.
    pub tiles: u32,
    pub _pad: u32,
    pub opt: OptimParams,
    pub layer: [GradsLayer; MAX_FUSED_LAYERS],
}

/// How a network that fits is laid out for the fused kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedShape {
    /// Threads of the row kernel.
    pub rows_wg: u32,
    /// f32 of one row's activations in workgroup memory (every layer's input and the output).
    pub acts: u32,
    /// f32 of the two delta buffers in workgroup memory (twice the widest layer output).
    pub deltas: u32,
    /// vec4 partials of a layer's product in workgroup memory: one per work item, which is
    /// a quad of four outputs over a slice of the inputs (`max(rows_wg, quads of the widest)`).
    pub parts: u32,
    /// Gradient values of all layers.
    pub params: u32,
    /// 4×4 tiles of gradients of all layers: the gradient stage's threads.
    pub tiles: u32,
}

/// Workgroup memory of the row kernel for `shape`, in bytes (the two scalars of the loss too).
pub fn rows_workgroup_bytes(shape: &FusedShape) -> u64 {
    4 * (shape.acts as u64 + shape.deltas as u64 + 2) + 16 * shape.parts as u64
}

/// Whether a dense stack of layer `sizes` fits the fused step, and its shape if so; else why
/// not. The bound:
///
/// - one row's activations of every layer, two delta vectors of the widest layer output `w`
///   and the product's vec4 partials stay in workgroup memory:
///   `4·(Σ_l n_l + 2·w + 2) + 16·max(WG, ⌈w/4⌉)` bytes ≤ the device's
///   `max_compute_workgroup_storage_size` (WebGPU's default is 16 KiB; the device is created
///   with at most that), e.g. 784-64-64-10 needs 5.1 KiB, and a single hidden layer of about
///   750 beside 784 inputs is the widest that fits;
/// - at most [`MAX_FUSED_LAYERS`] layers;
/// - one update thread per row of a 4×4 tile: `4·tiles` ≤ [`UPDATE_WG`] ×
///   (`max_compute_workgroups_per_dimension` − 1) (about 4 M parameters with WebGPU's
///   defaults).
///
/// Layer widths need no bound of their own: a row kernel's thread loops over the neurons past
/// the workgroup size.
pub fn plan(
    sizes: &[usize],
    workgroup_storage: u32,
    max_workgroups_per_dim: u32,
) -> Result<FusedShape, String> {
    let layers = sizes.len().saturating_sub(1);
    if layers == 0 || layers > MAX_FUSED_LAYERS {
        return Err(format!("{layers} layers (at most {MAX_FUSED_LAYERS})"));
    }
    let widest = sizes[1..].iter().copied().max().unwrap_or(1);
    let acts: usize = sizes.iter().sum();
    let params: usize = sizes.windows(2).map(|w| (w[0] + 1) * w[1]).sum();
    let tiles: usize = sizes
        .windows(2)
        .map(|w| (w[0] + 1).div_ceil(4) * w[1].div_ceil(4))
        .sum();
    let too_big = |n: usize| u32::try_from(n).is_err();
    if too_big(acts) || too_big(2 * widest) || too_big(params) {
        return Err("layer sizes beyond u32".into());
    }
    // One thread per neuron of the widest layer output (the backward pass's unit; forward
    // splits the inputs over the threads a layer's quads leave idle), in whole 32-wide warps
    // (NVIDIA's SIMD width; AMD's is 64, lavapipe's 8), at most the 256 invocations the device
    // is created with.
    let rows_wg = (widest as u32).next_multiple_of(32).clamp(32, 256);
    let shape = FusedShape {
        rows_wg,
        acts: acts as u32,
        deltas: 2 * widest as u32,
        parts: rows_wg.max((widest as u32).div_ceil(4)),
        params: params as u32,
        tiles: tiles as u32,
    };
    let bytes = rows_workgroup_bytes(&shape);
    if bytes > workgroup_storage as u64 {
        return Err(format!(
            "a row's activations need {bytes} bytes of workgroup memory, the device has \
             {workgroup_storage}"
        ));
    }
    // (Less one: the update stage adds a workgroup for the stats.)
    if 4 * shape.tiles as u64 > UPDATE_WG as u64 * (max_workgroups_per_dim as u64).saturating_sub(1)
    {
        return Err(format!(
            "{} parameters, more than the update's grid can address",
            shape.params
        ));
    }
    Ok(shape)
}

/// Splits of the batch for the gradient stage at batches of `rows` rows: enough that
/// `splits × ⌈tiles / GRADS_WG⌉` reaches [`GRADS_TARGET_WORKGROUPS`], but no split under
/// [`MIN_ROWS_PER_SPLIT`] rows, at most [`MAX_SPLITS`], and at most the device's workgroups
/// per dimension (splits are the grid's y). For 784-64-64-10 (3 475 tiles, 14 workgroups a
/// split): 4 at batch 64 (56 workgroups), 16 from batch 241 up (224 workgroups).
pub fn splits(tiles: u32, rows: u32, max_workgroups_per_dim: u32) -> u32 {
    let groups = tiles.div_ceil(GRADS_WG).max(1);
    GRADS_TARGET_WORKGROUPS
        .div_ceil(groups)
        .min(rows.div_ceil(MIN_ROWS_PER_SPLIT))
        .min(MAX_SPLITS)
        .clamp(1, max_workgroups_per_dim.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_net_fits_and_wide_nets_do_not() {
        let s = plan(&[784, 64, 64, 10], 16384, 65535).unwrap();
        assert_eq!(s.rows_wg, 64);
        assert_eq!(s.params, 785 * 64 + 65 * 64 + 65 * 10);
        assert!(rows_workgroup_bytes(&s) < 5300);
        assert!(plan(&[784, 700, 10], 16384, 65535).is_ok());
        assert!(plan(&[784, 1024, 10], 16384, 65535).is_err());
        assert!(plan(&[2, 3, 3, 3, 3, 3, 3, 3, 3, 1], 16384, 65535).is_err());
        assert_eq!(plan(&[7, 13, 5], 16384, 65535).unwrap().rows_wg, 32);
    }

    #[test]
    fn split_rule() {
        let s = plan(&[784, 64, 64, 10], 16384, 65535).unwrap();
        let t = s.tiles;
        assert_eq!(t, 197 * 16 + 17 * 16 + 17 * 3);
        assert_eq!(splits(t, 64, 65535), 4);
        assert_eq!(splits(t, 256, 65535), 16);
        assert_eq!(splits(t, 1024, 65535), 16);
        assert_eq!(splits(t, 1, 65535), 1);
        // A tiny net: many workgroups wanted, bounded by the rows.
        assert_eq!(splits(100, 4096, 65535), MAX_SPLITS);
        assert_eq!(splits(100, 4096, 8), 8);
    }
}
