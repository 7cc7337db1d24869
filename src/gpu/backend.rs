//! placeholder
pub struct GpuBackend;
pub struct GpuCounters;
