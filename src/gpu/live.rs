//! soma's own count of the device buffers alive on a context: how many, and their bytes.
//!
//! Every buffer soma creates goes through [`GpuContext::buffer`], which hands back a
//! [`DeviceBuffer`]: the `wgpu::Buffer` with a share of its context's [`Tally`], which counts
//! it in when created and out when dropped. So the count is exact on every backend wgpu runs
//! on (Vulkan, Metal, DX12, GL and WebGPU in a browser, where wgpu's own allocator report,
//! `Device::generate_allocator_report`, is `None`), and a long run can check that its device
//! footprint stays flat (`examples/soak`, `web/e2e/soak.mjs`).
//!
//! It counts what soma's handles keep alive, at the sizes soma asked for (rounded to 4 bytes,
//! as [`GpuContext::buffer`] creates them); a driver may round each allocation up further.
//! Bind groups also hold their buffers, but soma keeps every buffer a bind group uses for as
//! long as the bind group (a `Program` holds its own), so nothing alive escapes the count.
//!
//! Cheap: two relaxed atomic adds when a buffer is created or dropped, which the training loop
//! never does (buffers are created before a run and when a larger batch first arrives).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(doc)]
use super::context::GpuContext;

/// The buffers alive on a context at one moment ([`GpuContext::buffers_alive`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveBuffers {
    /// Buffers created through the context and not yet dropped.
    pub buffers: u64,
    /// Their sizes, summed, in bytes.
    pub bytes: u64,
}

/// The running count a context and all its buffers share.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    buffers: AtomicU64,
    bytes: AtomicU64,
}

impl Tally {
    pub(crate) fn now(&self) -> LiveBuffers {
        LiveBuffers {
            buffers: self.buffers.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// A device buffer that soma counts ([`LiveBuffers`]): dereferences to the `wgpu::Buffer`,
/// and is counted out of its context's tally when dropped.
#[derive(Debug)]
pub struct DeviceBuffer {
    buffer: wgpu::Buffer,
    tally: Arc<Tally>,
}

impl DeviceBuffer {
    /// Counts `buffer` into `tally`.
    pub(crate) fn counted(buffer: wgpu::Buffer, tally: &Arc<Tally>) -> DeviceBuffer {
        tally.buffers.fetch_add(1, Ordering::Relaxed);
        tally.bytes.fetch_add(buffer.size(), Ordering::Relaxed);
        DeviceBuffer {
            buffer,
            tally: Arc::clone(tally),
        }
    }
}

impl Deref for DeviceBuffer {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        self.tally.buffers.fetch_sub(1, Ordering::Relaxed);
        self.tally
            .bytes
            .fetch_sub(self.buffer.size(), Ordering::Relaxed);
    }
}
