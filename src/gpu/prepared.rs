//! A kernel prepared once by [`super::GpuOps`]: its buffers uploaded and its bind group built,
//! so that it can be dispatched many times (the kernel benches time exactly that) and read back.

use ndarray::Array2;

use super::context::GpuContext;
use super::kernels::Kernel;
use crate::error::{Error, Result};

/// One kernel with its buffers uploaded and its bind group built: dispatch it as often as
/// wanted (the kernel benches time exactly this), then read its outputs.
pub struct PreparedOp<'a> {
    pub(super) ctx: &'a GpuContext,
    pub(super) kernel: &'a Kernel,
    pub(super) bind: wgpu::BindGroup,
    pub(super) grid: (u32, u32),
    /// In binding order (the dims record last).
    pub(super) buffers: Vec<wgpu::Buffer>,
}

impl PreparedOp<'_> {
    /// Records `times` dispatches into one pass, submits and waits.
    pub fn dispatch(&self, times: usize) -> Result<()> {
        self.submit(times);
        let name = self.kernel.name;
        self.ctx.wait(name)?;
        self.ctx.check(name)
    }

    /// Records `times` dispatches into one pass and submits them.
    pub(super) fn submit(&self, times: usize) {
        let name = self.kernel.name;
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(name) });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(name),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.kernel.pipeline);
            pass.set_bind_group(0, &self.bind, &[0]);
            for _ in 0..times {
                pass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
            }
        }
        self.ctx.queue.submit([encoder.finish()]);
    }

    /// The first `len` values of the buffer at `binding`.
    pub(super) fn read(&self, binding: usize, len: usize) -> Result<Vec<f32>> {
        let bytes = self.ctx.read_back(
            self.kernel.name,
            &self.buffers[binding],
            0,
            (len * 4) as u64,
        )?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The buffer at `binding` as a `rows × cols` matrix.
    pub fn read_matrix(&self, binding: usize, rows: usize, cols: usize) -> Result<Array2<f32>> {
        let v = self.read(binding, rows * cols)?;
        Array2::from_shape_vec((rows, cols), v).map_err(|e| Error::gpu(self.kernel.name, e))
    }
}
