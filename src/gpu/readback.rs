//! Getting bytes back from the device: a copy into a MAP_READ staging buffer, then a map.
//! Natively the map is waited for (with the context's timeout); on wasm32 these blocking forms
//! return an error and `web` awaits instead. Also where error scopes are closed, which
//! resolve at once natively and later in a browser.

use super::context::GpuContext;
#[cfg(target_arch = "wasm32")]
use super::context::no_blocking;
use super::live::DeviceBuffer;
use crate::error::{Error, Result};

impl GpuContext {
    /// Copies `bytes` bytes at `offset` of `src` back to the host: a MAP_READ staging copy,
    /// `map_async` answered through a channel, and one wait (with the timeout).
    pub fn read_back(
        &self,
        what: &str,
        src: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        let staging = self.copy_to_staging(what, src, offset, bytes)?;
        self.map_staging(what, &staging, bytes)
    }

    /// Submits a copy of `bytes` bytes at `offset` of `src` into a new MAP_READ buffer.
    pub(super) fn copy_to_staging(
        &self,
        what: &str,
        src: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<DeviceBuffer> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(what) });
        let staging = self.buffer(
            what,
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        encoder.copy_buffer_to_buffer(src, offset, &staging, 0, bytes.next_multiple_of(4));
        self.queue.submit([encoder.finish()]);
        Ok(staging)
    }

    /// Maps an already-filled staging buffer and returns its first `bytes` bytes.
    /// On wasm32 an error: a browser cannot block (see the `_async` read-backs).
    #[cfg(target_arch = "wasm32")]
    pub fn map_staging(&self, what: &str, _staging: &wgpu::Buffer, _bytes: u64) -> Result<Vec<u8>> {
        let context = format!("reading back `{what}`");
        Err(no_blocking(
            &context,
            "the `_async` method of the call that read back",
        ))
    }

    /// Maps an already-filled staging buffer and returns its first `bytes` bytes.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn map_staging(&self, what: &str, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let context = &format!("reading back `{what}`");
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait(context)?;
        // The work is done, but when several threads share the device another thread's poll may
        // be the one running the callback, a moment later: wait for it, within the timeout.
        match rx.recv_timeout(self.timeout()) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::gpu(context, e)),
            Err(_) => return Err(Error::gpu(context, "map callback not run (device lost?)")),
        }
        copy_mapped(context, staging, bytes)
    }

    /// Closes an error scope opened around creating `what`: an error in it is an
    /// [`Error::Gpu`] naming `what`. Natively the scope resolves at once (wgpu validates as
    /// objects are created); in a browser it resolves later, so it is kept and awaited by
    /// [`GpuContext::settle_scopes`] before any read-back.
    pub fn end_scope(&self, scope: wgpu::ErrorScopeGuard, what: impl Into<String>) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        return match pollster::block_on(scope.pop()) {
            Some(e) => Err(Error::gpu(what, e)),
            None => Ok(()),
        };
        #[cfg(target_arch = "wasm32")]
        {
            self.pending_scopes
                .borrow_mut()
                .push(super::web::PendingScope::new(what.into(), scope));
            Ok(())
        }
    }
}

/// The first `bytes` bytes of a mapped staging buffer, which is unmapped after.
pub(super) fn copy_mapped(context: &str, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    let data = {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::gpu(context, e))?;
        view[..bytes as usize].to_vec()
    };
    staging.unmap();
    Ok(data)
}
