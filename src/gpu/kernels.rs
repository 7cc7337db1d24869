//! Compute pipelines, built once from `shaders/*.wgsl` inside an error scope (so an invalid
//! shader is an [`Error::Gpu`] naming the kernel, with naga's message), and the records their
//! uniforms hold. Each record mirrors a WGSL struct field for field.

use bytemuck::{Pod, Zeroable};

use super::context::GpuContext;
use crate::error::{Error, Result};

const ACTIVATION: &str = include_str!("../../shaders/activation.wgsl");
const COMMON: &str = include_str!("../../shaders/common.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const LOSS: &str = include_str!("../../shaders/loss.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
const OPTIM: &str = include_str!("../../shaders/optim.wgsl");
const GATHER: &str = include_str!("../../shaders/gather.wgsl");

/// A matmul tile: rows × columns of C per workgroup and the K slice staged per pass; each of
/// the (m/4)·(n/4) threads owns a 4×4 block of C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub m: u32,
    pub n: u32,
    pub k: u32,
}

/// The default tile: 256 threads, the most reuse per staged value.
pub const LARGE_TILE: Tile = Tile {
    m: 64,
    n: 64,
    k: 16,
};
/// For products too small to give the large tile enough workgroups (at batch 64, `x·W₁` is a
/// single 64×64 tile): four times the workgroups, and half the barriers along K. On lavapipe
/// it made a batch-64 step 15% faster and a batch-1024 one 12% slower, hence the choice per
/// product ([`choose_tile`]).
pub const SMALL_TILE: Tile = Tile {
    m: 32,
    n: 32,
    k: 32,
};
/// Below this many large-tile workgroups, a product uses the small tile.
pub const SMALL_TILE_BELOW: u32 = 8;

/// The tile for a product whose C has `rows` × `cols` elements.
pub fn choose_tile(rows: u32, cols: u32) -> Tile {
    let large = rows.div_ceil(LARGE_TILE.m) * cols.div_ceil(LARGE_TILE.n);
    if large < SMALL_TILE_BELOW {
        SMALL_TILE
    } else {
        LARGE_TILE
    }
}

/// Compatibility names of the large tile's sizes.
pub const TILE_M: u32 = LARGE_TILE.m;
pub const TILE_N: u32 = LARGE_TILE.n;
pub const TILE_K: u32 = LARGE_TILE.k;
/// Threads per workgroup of the element-wise kernels (gather, optimizer) and of the loss kernel.
pub const WG: u32 = 256;
/// Threads of the (single-workgroup) loss kernel. (On lavapipe 64 was 2.5x slower than 256.)
pub const LOSS_WG: u32 = 256;
/// Threads per workgroup of the column-sum kernel (one thread per column).
pub const COLSUM_WG: u32 = 64;

/// Identity "activation" code of the matmul epilogue (the last layer's logits).
pub const ACT_IDENTITY: u32 = 4;

/// How a kernel binds each slot, in binding order.
///
/// The small parameter records (`Uniform`, `Step`) are bound as read-only *storage* buffers,
/// not uniform buffers: Mesa's lavapipe inlines uniform-buffer values that steer control flow
/// into the shader and recompiles it, which cost ~28 ms per dispatch of the loss kernel (every
/// step's record differs). On hardware GPUs a few scalar loads from a storage buffer cost the
/// same as from a uniform one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Storage buffer, read-only.
    Read,
    /// Storage buffer, read-write.
    Write,
    /// Parameter record fixed per bind group (read-only storage).
    Uniform,
    /// The per-step record (read-only storage), bound with a dynamic offset.
    Step,
}

/// A compute pipeline and the layout of its one bind group.
pub struct Kernel {
    pub name: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("name", &self.name).finish()
    }
}

impl Kernel {
    /// A bind group for this kernel; `resources` in binding order.
    pub fn bind(
        &self,
        ctx: &GpuContext,
        label: &str,
        resources: &[wgpu::BindingResource<'_>],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: r.clone(),
            })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// Every pipeline the engine uses.
pub struct Kernels {
    /// `A·B` (forward).
    pub matmul_nn: Kernel,
    /// `Aᵀ·B` (weight gradients, with the bias row).
    pub matmul_tn: Kernel,
    /// `A·Bᵀ` (input gradients).
    pub matmul_nt: Kernel,
    /// The three forms again with [`SMALL_TILE`].
    pub matmul_nn_small: Kernel,
    pub matmul_tn_small: Kernel,
    pub matmul_nt_small: Kernel,
    pub loss: Kernel,
    pub column_sums: Kernel,
    pub optim: Kernel,
    pub gather: Kernel,
}

impl Kernels {
    /// Builds every pipeline (once per backend or op runner).
    pub fn new(ctx: &GpuContext) -> Result<Kernels> {
        use Slot::*;
        let matmul_src = format!("{ACTIVATION}\n{COMMON}\n{MATMUL}");
        let matmul_slots = [Read, Read, Write, Read, Write, Uniform, Step];
        let matmul = |name, ta: bool, tb: bool, tile: Tile| {
            let constants = [
                ("TILE_M", tile.m as f64),
                ("TILE_N", tile.n as f64),
                ("TILE_K", tile.k as f64),
                ("TRANS_A", ta as u8 as f64),
                ("TRANS_B", tb as u8 as f64),
            ];
            build_kernel(ctx, name, &matmul_src, &matmul_slots, &constants)
        };
        let wg = [("WG", WG as f64)];
        Ok(Kernels {
            matmul_nn: matmul("matmul_nn", false, false, LARGE_TILE)?,
            matmul_tn: matmul("matmul_tn", true, false, LARGE_TILE)?,
            matmul_nt: matmul("matmul_nt", false, true, LARGE_TILE)?,
            matmul_nn_small: matmul("matmul_nn_small", false, false, SMALL_TILE)?,
            matmul_tn_small: matmul("matmul_tn_small", true, false, SMALL_TILE)?,
            matmul_nt_small: matmul("matmul_nt_small", false, true, SMALL_TILE)?,
            loss: build_kernel(
                ctx,
                "loss",
                &format!("{ACTIVATION}\n{COMMON}\n{LOSS}"),
                &[Write, Write, Read, Read, Write, Uniform, Step],
                &[("WG", LOSS_WG as f64)],
            )?,
            column_sums: build_kernel(
                ctx,
                "column_sums",
                &format!("{COMMON}\n{REDUCE}"),
                &[Read, Write, Uniform, Step],
                &[("WG", COLSUM_WG as f64)],
            )?,
            optim: build_kernel(
                ctx,
                "optim",
                &format!("{COMMON}\n{OPTIM}"),
                &[Write, Read, Write, Uniform, Step],
                &wg,
            )?,
            gather: build_kernel(
                ctx,
                "gather",
                &format!("{COMMON}\n{GATHER}"),
                &[Read, Read, Write, Uniform, Step],
                &wg,
            )?,
        })
    }
}

fn layout_entry(binding: u32, slot: Slot) -> wgpu::BindGroupLayoutEntry {
    let ty = match slot {
        Slot::Read | Slot::Write => wgpu::BufferBindingType::Storage {
            read_only: slot == Slot::Read,
        },
        Slot::Uniform | Slot::Step => wgpu::BufferBindingType::Storage { read_only: true },
    };
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: slot == Slot::Step,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Builds the pipeline `name` from WGSL `source` (entry point `main`) with an explicit layout
/// of `slots`, inside a validation error scope: an invalid shader or a layout mismatch comes
/// back as [`Error::Gpu`] naming the kernel and carrying naga's/wgpu's message.
pub fn build_kernel(
    ctx: &GpuContext,
    name: &'static str,
    source: &str,
    slots: &[Slot],
    constants: &[(&str, f64)],
) -> Result<Kernel> {
    ctx.check(&format!("building kernel `{name}`"))?;
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let entries: Vec<_> = slots
        .iter()
        .enumerate()
        .map(|(i, &s)| layout_entry(i as u32, s))
        .collect();
    let layout = ctx
        .device
        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &entries,
        });
    let pipeline_layout = ctx
        .device
        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    let pipeline = ctx
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Every kernel writes its workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::gpu(format!("kernel `{name}`"), e));
    }
    Ok(Kernel {
        name,
        pipeline,
        layout,
    })
}

/// Compiles WGSL `source` as a compute pipeline with entry point `main` and a layout deduced
/// from the shader; for checking that shader errors surface as [`Error::Gpu`].
pub fn compile_wgsl(ctx: &GpuContext, name: &str, source: &str) -> Result<()> {
    ctx.check(&format!("building kernel `{name}`"))?;
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    let _pipeline = ctx
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    match pollster::block_on(scope.pop()) {
        Some(e) => Err(Error::gpu(format!("kernel `{name}`"), e)),
        None => Ok(()),
    }
}

/// `shaders/common.wgsl`'s `Step`: what changes from one training step to the next.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StepRecord {
    pub rows: u32,
    pub index_offset: u32,
    pub lr: f32,
    pub c1: f32,
    pub c2: f32,
    pub _pad: [u32; 3],
}

/// Where the matmul takes its row count from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RowsDim {
    Fixed = 0,
    M = 1,
    K = 2,
}

/// The matmul epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Epilogue {
    None = 0,
    /// `c = act(acc + bias[j])`, bias at `bias_offset` in B.
    BiasAct = 1,
    /// `c = acc · f'(aux[i, j])`.
    MulDerivative = 2,
    /// `acc` is the gradient of parameter `c[i, j]`: apply the optimizer to it in place.
    Optim = 3,
}

/// `shaders/matmul.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MatmulDims {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub rows_dim: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub epilogue: u32,
    pub act: u32,
    pub ones_row: u32,
    pub bias_offset: u32,
    /// `Epilogue::Optim`: where the layer's optimizer state starts in the slots buffer.
    pub slot_base: u32,
    /// `Epilogue::Optim`: the optimizer.
    pub opt: OptimParams,
}

impl MatmulDims {
    /// Workgroups of the large tile covering C for `m` rows of op(A) (plus the ones-row).
    pub fn grid(&self, m: u32) -> (u32, u32) {
        self.grid_for(m, LARGE_TILE)
    }

    /// Workgroups of `tile` covering C for `m` rows of op(A) (plus the ones-row).
    pub fn grid_for(&self, m: u32, tile: Tile) -> (u32, u32) {
        let rows = m + self.ones_row;
        (self.n.div_ceil(tile.n), rows.div_ceil(tile.m))
    }
}

/// Output kinds of the loss kernel.
pub const LOSS_SOFTMAX_CE: u32 = 0;
pub const LOSS_SIGMOID_MSE: u32 = 1;
/// Target kinds of the loss kernel.
pub const TARGET_LABELS: u32 = 0;
pub const TARGET_VALUES: u32 = 1;
pub const TARGET_NONE: u32 = 2;

/// `shaders/loss.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LossDims {
    pub n: u32,
    pub kind: u32,
    pub target_kind: u32,
    pub rows: u32,
    pub rows_from_step: u32,
    pub index_offset: u32,
    pub _pad: [u32; 2],
}

/// `shaders/loss.wgsl`'s `Stats`: the device-side running totals.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct DeviceStats {
    pub loss: f32,
    pub loss_compensation: f32,
    pub correct: u32,
    pub samples: u32,
}

/// `shaders/reduce.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ColsumDims {
    pub rows: u32,
    pub cols: u32,
    pub rows_from_step: u32,
    pub _pad: u32,
}

/// Optimizer kinds of the optimizer kernel.
pub const OPTIM_SGD: u32 = 0;
pub const OPTIM_MOMENTUM: u32 = 1;
pub const OPTIM_ADAM: u32 = 2;

/// `shaders/optim.wgsl`'s `Dims`.
/// `common.wgsl`'s `OptimParams`: an optimizer's kind and hyper-parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimParams {
    pub kind: u32,
    pub slot_stride: u32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub _pad: u32,
}

impl OptimParams {
    /// The record of `optimizer`, whose second state slot starts `slot_stride` values after
    /// the first.
    pub fn new(optimizer: &crate::optim::Optimizer, slot_stride: u32) -> OptimParams {
        use crate::optim::Optimizer;
        let mut o = OptimParams {
            slot_stride,
            ..Default::default()
        };
        match *optimizer {
            Optimizer::Sgd => o.kind = OPTIM_SGD,
            Optimizer::Momentum {
                momentum,
                weight_decay,
            } => {
                o.kind = OPTIM_MOMENTUM;
                o.momentum = momentum;
                o.weight_decay = weight_decay;
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                o.kind = OPTIM_ADAM;
                o.beta1 = beta1;
                o.beta2 = beta2;
                o.eps = eps;
                o.weight_decay = weight_decay;
            }
        }
        o
    }
}

/// `shaders/optim.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimDims {
    pub n: u32,
    pub use_step: u32,
    pub fixed_lr: f32,
    pub fixed_c1: f32,
    pub fixed_c2: f32,
    pub _pad: [u32; 3],
    pub opt: OptimParams,
}

impl OptimDims {
    /// The record for `optimizer` over `n` values whose second slot starts at `slot_stride`,
    /// taking the learning rate and bias corrections from the step record.
    pub fn new(optimizer: &crate::optim::Optimizer, n: u32, slot_stride: u32) -> OptimDims {
        OptimDims {
            n,
            use_step: 1,
            opt: OptimParams::new(optimizer, slot_stride),
            ..Default::default()
        }
    }
}

/// Input kinds of the gather kernel.
pub const INPUT_U8: u32 = 0;
pub const INPUT_F32: u32 = 1;

/// `shaders/gather.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GatherDims {
    pub features: u32,
    pub kind: u32,
    pub scale: f32,
    pub shift: f32,
    pub rows: u32,
    pub rows_from_step: u32,
    pub index_offset: u32,
    /// Image shape for shifted entries (0 when the samples are not images).
    pub height: u32,
    pub width: u32,
    pub _pad: [u32; 3],
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

/// Parameter records packed at the device's storage offset alignment, uploaded as one buffer.
pub struct Records {
    align: u64,
    pub bytes: Vec<u8>,
}

impl Records {
    pub fn new(ctx: &GpuContext) -> Records {
        Records {
            align: ctx.limits.min_storage_buffer_offset_alignment.max(16) as u64,
            bytes: Vec::new(),
        }
    }

    /// Appends `record` and returns its byte offset and size.
    pub fn push<T: Pod>(&mut self, record: &T) -> (u64, u64) {
        let offset = (self.bytes.len() as u64).next_multiple_of(self.align);
        self.bytes.resize(offset as usize, 0);
        self.bytes.extend_from_slice(bytemuck::bytes_of(record));
        (offset, std::mem::size_of::<T>() as u64)
    }

    /// Uploads the records into a new (read-only storage) buffer.
    pub fn upload(&self, ctx: &GpuContext, what: &str) -> Result<wgpu::Buffer> {
        let buf = ctx.buffer(
            what,
            self.bytes.len() as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        )?;
        ctx.queue.write_buffer(&buf, 0, &self.bytes);
        Ok(buf)
    }
}

/// A binding of `size` bytes at `offset` of `buffer`.
pub fn range(buffer: &wgpu::Buffer, offset: u64, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset,
        size: wgpu::BufferSize::new(size),
    })
}
