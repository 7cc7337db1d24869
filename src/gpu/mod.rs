//! The wgpu backend: the device ([`context`]), the compute pipelines built once from
//! `shaders/*.wgsl` ([`kernels`]), device buffers and uploads ([`resources`]; each one counted
//! while alive, [`live`]), the bound dispatches of a step ([`program`]), the training backend
//! that keeps everything resident
//! ([`backend`], with recording and submitting in [`submit`] and training stats coming back
//! through a ring of staging buffers in [`stats`]), and single-kernel entry points on
//! host arrays for tests and benches ([`ops`], [`prepared`]). On wasm32 the calls that read
//! back have async counterparts (`web`), as nothing may block in a browser, and pipelines can
//! be compiled in parallel there (`web_compile`).

pub mod backend;
pub(crate) mod batchnorm;
pub mod context;
pub mod counters;
pub(crate) mod dropout;
mod fused;
pub mod kernels;
pub mod live;
pub mod ops;
pub mod plan;
pub mod prepared;
pub mod profile;
pub(crate) mod program;
mod readback;
pub(crate) mod resources;
pub(crate) mod spatial;
pub mod stats;
mod submit;
#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
mod web_compile;
pub mod wgsl;

pub use backend::GpuBackend;
#[cfg(not(target_arch = "wasm32"))]
pub use context::all_adapters;
pub use context::{DEFAULT_TIMEOUT, GpuContext, GpuOptions, TIMEOUT_ENV, hardware_adapter};
pub use counters::GpuCounters;
pub use kernels::{KernelId, KernelSpec, Kernels, compile_wgsl, kernel_specs};
pub use live::{DeviceBuffer, LiveBuffers};
pub use ops::{GpuOps, PreparedOp};
pub use profile::KernelTime;
pub use program::StepPath;
#[cfg(target_arch = "wasm32")]
pub use web::compile_wgsl_async;
#[cfg(target_arch = "wasm32")]
pub use web_compile::Preparing;
