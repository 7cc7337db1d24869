//! The wgpu backend: the device ([`context`]), the compute pipelines built once from
//! `shaders/*.wgsl` ([`kernels`]), device buffers and uploads ([`resources`]), the bound
//! dispatches of a step ([`program`]), the training backend that keeps everything resident
//! ([`backend`], with recording and submitting in [`submit`]), and single-kernel entry points on
//! host arrays for tests and benches ([`ops`]).

pub mod backend;
pub mod context;
mod fused;
pub mod kernels;
pub mod ops;
pub mod profile;
pub(crate) mod program;
pub(crate) mod resources;
mod submit;

pub use backend::{GpuBackend, GpuCounters};
pub use context::{GpuContext, GpuOptions, hardware_adapter};
pub use kernels::{Kernels, compile_wgsl};
pub use ops::{GpuOps, PreparedOp};
pub use profile::KernelTime;
pub use program::StepPath;
