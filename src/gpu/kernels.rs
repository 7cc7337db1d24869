//! Compute pipelines, built once from `shaders/*.wgsl` (with the generated prelude, see
//! [`crate::ops`]) inside an error scope, so that an invalid shader is an [`Error::Gpu`] naming
//! the kernel, with naga's message.

use std::sync::Mutex;

use super::batchnorm::{BN_WG, BnKernel, COMMON_WGSL as BN_COMMON_WGSL};
use super::context::GpuContext;
use super::dropout::{DROPOUT_WG, DropoutKernel};
use super::spatial::{
    AVGPOOL_WGSL, AvgPoolKernel, CONV_WG, CONV_WGSL, ConvKernel, POOL_WG, POOL_WGSL, PoolKernel,
};
use super::wgsl::kernel_source;
use crate::error::{Error, Result};
use crate::ops::gather::InputKind;
use crate::ops::loss::Output;
use crate::ops::loss::TargetKind;
use crate::ops::matmul::{
    DIRECT_TILE, DIRECT_WIDE_TILE, DIRECT_WIDEST_TILE, Feed, LARGE_TILE, SMALL_TILE, Special, TILES,
};
use crate::ops::{activation, gather, loss, matmul, optim, reduce};

pub use super::plan::{KernelId, MatmulKey, grid_1d};

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

/// A compute pipeline and the layout of its one bind group (handles: cloning shares them).
#[derive(Clone)]
pub struct Kernel {
    pub name: String,
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

/// A pipeline variant the engine builds: its name, full WGSL source (entry point `main`), the
/// layout of its one bind group and its override constants.
#[derive(Clone, Debug)]
pub struct KernelSpec {
    pub name: String,
    pub source: String,
    pub slots: Vec<Slot>,
    pub constants: Vec<(&'static str, f64)>,
}

impl KernelSpec {
    pub(crate) fn new(
        name: impl Into<String>,
        source: String,
        slots: &[Slot],
        constants: &[(&'static str, f64)],
    ) -> KernelSpec {
        KernelSpec {
            name: name.into(),
            source,
            slots: slots.to_vec(),
            constants: constants.to_vec(),
        }
    }

    /// Builds this pipeline on `ctx` (see [`build_kernel`]).
    pub fn build(&self, ctx: &GpuContext) -> Result<Kernel> {
        build_kernel(ctx, &self.name, &self.source, &self.slots, &self.constants)
    }
}

/// Every pipeline variant the engine builds, with each override-constant combination it uses:
/// the matmuls of every tile, form and specialisation, the rest of [`Kernels`] (the step,
/// evaluation, prediction), the single-op runner's and the fused step's. `Kernels` and the op
/// runner build from these very specs, so a test that compiles each entry (e.g. through naga's
/// strict validation, or a browser's WebGPU) covers all that ever runs.
pub fn kernel_specs() -> Vec<KernelSpec> {
    let mut all = Vec::new();
    for tile in TILES {
        for (_, trans_a, trans_b) in FORMS {
            for special in Special::all() {
                let key = MatmulKey {
                    tile,
                    trans_a,
                    trans_b,
                    special,
                };
                all.push(matmul_spec(key).expect("FORMS holds only valid forms"));
            }
        }
    }
    all.extend([InputKind::U8, InputKind::F32].map(gather_spec));
    for output in Output::ALL {
        for target in [TargetKind::Labels, TargetKind::Values, TargetKind::None] {
            all.push(loss_spec(output, target));
        }
    }
    all.extend(op_specs());
    all.extend(spatial_specs());
    // The fused step is built per network shape: the showcase's, within WebGPU's default
    // limits (16 KiB of workgroup memory, 65,535 workgroups per dimension).
    let showcase = crate::ops::fused::plan(&[784, 64, 64, 10], 16 << 10, 65_535)
        .expect("784-64-64-10 fits the fused step within WebGPU's default limits");
    all.extend(super::fused::fused_specs(&showcase));
    all
}

/// The spec of the matmul `key`, named e.g. `matmul_tn_direct (sgd)`.
fn matmul_spec(key: MatmulKey) -> Result<KernelSpec> {
    let form = FORMS
        .iter()
        .find(|f| (f.1, f.2) == (key.trans_a, key.trans_b))
        .map(|f| f.0)
        .ok_or_else(|| Error::arg("matmul form", "A·B, Aᵀ·B or A·Bᵀ", "Aᵀ·Bᵀ"))?;
    let tile = key.tile;
    let suffix = match tile {
        LARGE_TILE => "",
        SMALL_TILE => "_small",
        DIRECT_TILE => "_direct",
        DIRECT_WIDE_TILE => "_direct_wide",
        DIRECT_WIDEST_TILE => "_direct_widest",
        _ => {
            return Err(Error::arg(
                "matmul tile",
                "one of ops::matmul::TILES",
                format!("{tile:?}"),
            ));
        }
    };
    let mut constants = vec![
        ("TILE_M", tile.m as f64),
        ("TILE_N", tile.n as f64),
        ("TRANS_A", key.trans_a as u8 as f64),
        ("TRANS_B", key.trans_b as u8 as f64),
    ];
    constants.extend(key.special.constants());
    let feed = match tile.feed {
        Feed::Staged => {
            constants.push(("TILE_K", tile.k as f64));
            matmul::STAGED_WGSL.to_string()
        }
        Feed::Direct => matmul::direct_source(tile),
    };
    Ok(KernelSpec::new(
        format!("matmul_{form}{suffix} ({})", key.special),
        kernel_source(&[activation::WGSL, optim::WGSL, matmul::WGSL, &feed]),
        &[
            Slot::Read,
            Slot::Read,
            Slot::Write,
            Slot::Read,
            Slot::Write,
            Slot::Uniform,
            Slot::Step,
        ],
        &constants,
    ))
}

/// The loss for `output` with targets of `target`.
fn loss_spec(output: Output, target: TargetKind) -> KernelSpec {
    use Slot::*;
    KernelSpec::new(
        format!("loss ({output}, {target:?})"),
        kernel_source(&[activation::WGSL, loss::WGSL]),
        &[Write, Write, Read, Read, Write, Uniform, Step],
        &[
            ("WG", loss::LOSS_WG as f64),
            ("OUTPUT", output.code() as f64),
            ("TARGET", target as u32 as f64),
        ],
    )
}

/// The gather for datasets stored as `kind`.
fn gather_spec(kind: InputKind) -> KernelSpec {
    use Slot::*;
    let name = match kind {
        InputKind::U8 => "gather",
        InputKind::F32 => "gather_f32",
    };
    KernelSpec::new(
        name,
        kernel_source(&[gather::WGSL]),
        &[Read, Read, Write, Uniform, Step],
        &[("WG", gather::WG as f64), ("KIND", kind as u32 as f64)],
    )
}

/// Every convolution and pool pipeline (max and average).
fn spatial_specs() -> Vec<KernelSpec> {
    ConvKernel::all()
        .map(conv_spec)
        .chain(PoolKernel::all().map(pool_spec))
        .chain(AvgPoolKernel::all().map(avgpool_spec))
        .chain(DropoutKernel::all().map(dropout_spec))
        .chain(BnKernel::all().map(batchnorm_spec))
        .collect()
}

/// A convolution pipeline (`shaders/conv.wgsl` with the key's constants).
fn conv_spec(key: ConvKernel) -> KernelSpec {
    use Slot::*;
    let (mode, act, optim_kind) = key.constants();
    KernelSpec::new(
        format!("conv {mode:?} (act {act}, optim {optim_kind})"),
        kernel_source(&[activation::WGSL, optim::WGSL, CONV_WGSL]),
        &[Read, Read, Write, Read, Write, Uniform, Step],
        &[
            ("WG", CONV_WG as f64),
            ("MODE", mode as u32 as f64),
            ("ACT", act as f64),
            ("OPTIM", optim_kind as f64),
        ],
    )
}

/// A max-pool pipeline (`shaders/pool.wgsl` with the key's constants).
fn pool_spec(key: PoolKernel) -> KernelSpec {
    use Slot::*;
    let (mode, act) = key.constants();
    KernelSpec::new(
        format!("max-pool {mode:?} (act {act})"),
        kernel_source(&[activation::WGSL, POOL_WGSL]),
        &[Read, Write, Write, Read, Uniform, Step],
        &[
            ("WG", POOL_WG as f64),
            ("MODE", mode as u32 as f64),
            ("ACT", act as f64),
        ],
    )
}

/// An average-pool pipeline (`shaders/avgpool.wgsl` with the key's constants).
fn avgpool_spec(key: AvgPoolKernel) -> KernelSpec {
    use Slot::*;
    let (mode, act) = key.constants();
    KernelSpec::new(
        format!("avg-pool {mode:?} (act {act})"),
        kernel_source(&[activation::WGSL, AVGPOOL_WGSL]),
        &[Read, Write, Read, Uniform, Step],
        &[
            ("WG", POOL_WG as f64),
            ("MODE", mode as u32 as f64),
            ("ACT", act as f64),
        ],
    )
}

/// A dropout pipeline (`shaders/dropout.wgsl` with the key's constants).
fn dropout_spec(key: DropoutKernel) -> KernelSpec {
    use Slot::*;
    let (mode, act) = key.constants();
    KernelSpec::new(
        format!("dropout {mode:?} (act {act})"),
        kernel_source(&[activation::WGSL, crate::ops::dropout::WGSL]),
        &[Read, Write, Read, Uniform, Step],
        &[
            ("WG", DROPOUT_WG as f64),
            ("MODE", mode as u32 as f64),
            ("ACT", act as f64),
        ],
    )
}

/// A batch-norm pipeline (`shaders/batchnorm.wgsl` with the key's constants).
fn batchnorm_spec(key: BnKernel) -> KernelSpec {
    use Slot::*;
    let (mode, act, optim_kind) = key.constants();
    KernelSpec::new(
        format!("batch norm {mode:?} (act {act}, optim {optim_kind})"),
        kernel_source(&[activation::WGSL, optim::WGSL, BN_COMMON_WGSL, key.wgsl()]),
        match key {
            BnKernel::Stats | BnKernel::Normalize(_) | BnKernel::NormalizeRunning(_) => {
                &[Read, Write, Write, Write, Uniform, Step]
            }
            BnKernel::GradSums | BnKernel::InputGrad(_) => {
                &[Read, Write, Read, Read, Write, Uniform, Step]
            }
            BnKernel::Update(_) => &[Write, Read, Write, Uniform, Step],
        },
        &[
            ("WG", BN_WG as f64),
            ("MODE", mode as u32 as f64),
            ("ACT", act as f64),
            ("OPTIM", optim_kind as f64),
        ],
    )
}

/// The three matmul forms: name, `TRANS_A`, `TRANS_B`.
const FORMS: [(&str, bool, bool); 3] = [
    ("nn", false, false),
    ("tn", true, false),
    ("nt", false, true),
];

/// The variants of [`OpKernels`].
fn op_specs() -> Vec<KernelSpec> {
    use Slot::*;
    vec![
        KernelSpec::new(
            "column_sums",
            kernel_source(&[reduce::WGSL]),
            &[Read, Write, Uniform, Step],
            &[("WG", reduce::COLSUM_WG as f64)],
        ),
        KernelSpec::new(
            "optim",
            kernel_source(&[optim::WGSL, optim::STEP_WGSL]),
            &[Write, Read, Write, Uniform, Step],
            &[("WG", gather::WG as f64)],
        ),
    ]
}

/// Builds every spec of `specs`, to be taken out by name.
struct Built(Vec<Kernel>);

impl Built {
    fn new(ctx: &GpuContext, specs: Vec<KernelSpec>) -> Result<Built> {
        Ok(Built(
            specs.iter().map(|s| s.build(ctx)).collect::<Result<_>>()?,
        ))
    }

    fn take(&mut self, name: &str) -> Result<Kernel> {
        match self.0.iter().position(|k| k.name == name) {
            Some(i) => Ok(self.0.swap_remove(i)),
            None => Err(Error::gpu(
                format!("kernel `{name}`"),
                "not among the kernel specs (gpu::kernels::kernel_specs)",
            )),
        }
    }
}

impl KernelId {
    /// What builds it.
    pub fn spec(self) -> Result<KernelSpec> {
        Ok(match self {
            KernelId::Matmul(key) => matmul_spec(key)?,
            KernelId::Gather(kind) => gather_spec(kind),
            KernelId::Loss(output, target) => loss_spec(output, target),
            KernelId::Conv(k) => conv_spec(k),
            KernelId::Pool(k) => pool_spec(k),
            KernelId::AvgPool(k) => avgpool_spec(k),
            KernelId::Dropout(k) => dropout_spec(k),
            KernelId::BatchNorm(k) => batchnorm_spec(k),
        })
    }
}

/// The pipelines of a training step, evaluation and prediction.
#[derive(Default)]
pub struct Kernels {
    /// The pipelines built so far. Each is built the first time a program or op asks for it:
    /// a network uses a handful of the matmul's tile × form × specialisation variants, one
    /// input kind and one or two loss variants, and on a software adapter in a browser every
    /// pipeline is compile time before the first step.
    built: Mutex<Vec<(KernelId, Kernel)>>,
}

impl Kernels {
    /// None built yet (once per backend or op runner).
    pub fn new() -> Kernels {
        Kernels {
            built: Mutex::new(Vec::new()),
        }
    }

    /// The matmul `key`, built on `ctx` the first time it is asked for.
    pub fn matmul(&self, ctx: &GpuContext, key: MatmulKey) -> Result<Kernel> {
        self.get(ctx, KernelId::Matmul(key))
    }

    /// The gather for datasets stored as `kind`, built on `ctx` the first time.
    pub fn gather(&self, ctx: &GpuContext, kind: InputKind) -> Result<Kernel> {
        self.get(ctx, KernelId::Gather(kind))
    }

    /// The loss for `output` with targets of `target`, built on `ctx` the first time.
    pub fn loss(&self, ctx: &GpuContext, output: Output, target: TargetKind) -> Result<Kernel> {
        self.get(ctx, KernelId::Loss(output, target))
    }

    /// The built pipelines (a panic elsewhere leaves the list usable: entries are pushed whole).
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(KernelId, Kernel)>> {
        self.built.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many pipelines are built so far.
    pub fn built(&self) -> usize {
        self.lock().len()
    }

    /// Whether `key` is built.
    pub fn is_built(&self, key: KernelId) -> bool {
        self.lock().iter().any(|(k, _)| *k == key)
    }

    /// The pipeline `key`, built on `ctx` the first time it is asked for.
    pub fn get(&self, ctx: &GpuContext, key: KernelId) -> Result<Kernel> {
        let mut built = self.lock();
        if let Some((_, k)) = built.iter().find(|(k, _)| *k == key) {
            return Ok(k.clone());
        }
        let kernel = key.spec()?.build(ctx)?;
        built.push((key, kernel.clone()));
        Ok(kernel)
    }
}

/// The standalone kernels that only the single-op runner ([`super::GpuOps`]) binds.
pub(crate) struct OpKernels {
    pub column_sums: Kernel,
    pub optim: Kernel,
}

impl OpKernels {
    pub(crate) fn new(ctx: &GpuContext) -> Result<OpKernels> {
        let mut k = Built::new(ctx, op_specs())?;
        Ok(OpKernels {
            column_sums: k.take("column_sums")?,
            optim: k.take("optim")?,
        })
    }
}

pub(super) fn layout_entry(binding: u32, slot: Slot) -> wgpu::BindGroupLayoutEntry {
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
    name: &str,
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
    ctx.end_scope(scope, format!("kernel `{name}`"))?;
    Ok(Kernel {
        name: name.to_string(),
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
    ctx.end_scope(scope, format!("kernel `{name}`"))
}
