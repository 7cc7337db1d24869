//! Choosing where to train: the CPU reference, the GPU, or `auto` (a hardware GPU if present,
//! else the CPU).

use crate::backend::Backend;
use crate::error::Result;
use crate::net::Network;
use crate::optim::Optimizer;
use crate::params::Params;

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// The ndarray reference backend.
    Cpu,
    /// The wgpu backend, on whatever adapter is chosen (a software one too).
    Gpu,
    /// A hardware GPU if there is one, else the CPU backend (on a software adapter the CPU
    /// backend is faster).
    #[default]
    Auto,
}

crate::named_enum!(BackendKind, "backend", [
    "cpu" => BackendKind::Cpu,
    "gpu" => BackendKind::Gpu,
    "auto" => BackendKind::Auto,
]);

/// Settings that only some backends use.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// CPU threads for the matrix products.
    pub threads: usize,
    /// GPU adapter, by a case-insensitive substring of its name.
    pub adapter: Option<String>,
}

/// Builds the backend `kind` names for `net`, starting from `params`.
pub fn create(
    kind: BackendKind,
    net: &Network,
    params: Params,
    optimizer: Optimizer,
    options: &Options,
) -> Result<Box<dyn Backend>> {
    let cpu = |params| -> Result<Box<dyn Backend>> {
        Ok(Box::new(
            crate::cpu::CpuBackend::new(net, params, optimizer)?.with_threads(options.threads),
        ))
    };
    match kind {
        BackendKind::Cpu => cpu(params),
        BackendKind::Gpu => gpu(net, params, optimizer, options),
        // A named adapter is a request for the GPU; otherwise only hardware beats the CPU.
        BackendKind::Auto if options.adapter.is_some() => gpu(net, params, optimizer, options),
        BackendKind::Auto if has_hardware_gpu() => gpu(net, params, optimizer, options),
        BackendKind::Auto => cpu(params),
    }
}

#[cfg(feature = "gpu")]
fn gpu(
    net: &Network,
    params: Params,
    optimizer: Optimizer,
    options: &Options,
) -> Result<Box<dyn Backend>> {
    let ctx = crate::gpu::GpuContext::new(&crate::gpu::GpuOptions {
        adapter: options.adapter.clone(),
    })?;
    Ok(Box::new(crate::gpu::GpuBackend::new(
        ctx, net, params, optimizer,
    )?))
}

#[cfg(not(feature = "gpu"))]
fn gpu(_: &Network, _: Params, _: Optimizer, _: &Options) -> Result<Box<dyn Backend>> {
    Err(crate::error::Error::gpu(
        "creating the GPU backend",
        "this build of soma has none (built without the `gpu` feature)",
    ))
}

#[cfg(feature = "gpu")]
fn has_hardware_gpu() -> bool {
    crate::gpu::hardware_adapter().is_some()
}

#[cfg(not(feature = "gpu"))]
fn has_hardware_gpu() -> bool {
    false
}
