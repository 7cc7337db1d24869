//! A kernel prepared once by [`super::GpuOps`]: its buffers uploaded and its bind group built,
//! so that it can be dispatched many times (the kernel benches time exactly that) and read back;
//! and what a one-call op reads back of it ([`Readout`]), shared by the blocking calls and their
//! async counterparts on wasm32.

use ndarray::Array2;

use super::context::GpuContext;
use super::kernels::Kernel;
use super::live::DeviceBuffer;
use crate::error::{Error, Result};

/// One kernel with its buffers uploaded and its bind group built: dispatch it as often as
/// wanted (the kernel benches time exactly this), then read its outputs.
pub struct PreparedOp<'a> {
    pub(super) ctx: &'a GpuContext,
    pub(super) kernel: Kernel,
    pub(super) bind: wgpu::BindGroup,
    pub(super) grid: (u32, u32),
    /// In binding order (the dims record last), then the op's own step record if it has one.
    pub(super) buffers: Vec<DeviceBuffer>,
}

impl PreparedOp<'_> {
    /// Records `times` dispatches into one pass, submits and waits.
    pub fn dispatch(&self, times: usize) -> Result<()> {
        self.submit(times);
        let name = &self.kernel.name;
        self.ctx.wait(name)?;
        self.ctx.check(name)
    }

    /// Records `times` dispatches into one pass and submits them.
    pub(super) fn submit(&self, times: usize) {
        let name = &self.kernel.name;
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
            &self.kernel.name,
            &self.buffers[binding],
            0,
            (len * 4) as u64,
        )?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The buffer at `binding` as a `rows × cols` matrix.
    pub fn read_matrix(&self, binding: usize, rows: usize, cols: usize) -> Result<Array2<f32>> {
        let v = self.read(binding, rows * cols)?;
        matrix(&self.kernel.name, rows, cols, v)
    }
}

/// `values` as a `rows × cols` matrix; a length mismatch is an [`Error::Gpu`] naming `kernel`.
pub(super) fn matrix(
    kernel: &str,
    rows: usize,
    cols: usize,
    values: Vec<f32>,
) -> Result<Array2<f32>> {
    Array2::from_shape_vec((rows, cols), values).map_err(|e| Error::gpu(kernel, e))
}

/// Turns the values read back (one vector per entry of [`Readout::reads`]) into an op's result.
type Finish<T> = Box<dyn FnOnce(Vec<Vec<f32>>) -> Result<T>>;

/// An op of [`super::GpuOps`], prepared: its kernel, what it reads back after one dispatch and
/// how those values make its result. The blocking run ([`Readout::run`]) and the awaited one
/// on wasm32 (`run_async`) differ only in how they wait.
pub struct Readout<'a, T> {
    pub(super) op: PreparedOp<'a>,
    /// `(binding, values)` to read, in order.
    pub(super) reads: Vec<(usize, usize)>,
    pub(super) finish: Finish<T>,
}

impl<'a, T> Readout<'a, T> {
    /// Reads `reads` after the dispatch and makes the result with `finish`.
    pub(super) fn new(
        op: PreparedOp<'a>,
        reads: Vec<(usize, usize)>,
        finish: impl FnOnce(Vec<Vec<f32>>) -> Result<T> + 'static,
    ) -> Self {
        Readout {
            op,
            reads,
            finish: Box::new(finish),
        }
    }

    /// Dispatches once, waits, reads back and makes the result.
    pub fn run(self) -> Result<T> {
        self.op.dispatch(1)?;
        let values = self
            .reads
            .iter()
            .map(|&(binding, len)| self.op.read(binding, len))
            .collect::<Result<_>>()?;
        (self.finish)(values)
    }
}

impl<'a, T> Readout<'a, T> {
    /// The prepared kernel, to dispatch as often as wanted (the kernel benches).
    pub fn into_prepared(self) -> PreparedOp<'a> {
        self.op
    }
}

impl<'a> Readout<'a, Array2<f32>> {
    /// The buffer at `binding` as a `rows × cols` matrix.
    pub(super) fn matrix(op: PreparedOp<'a>, binding: usize, rows: usize, cols: usize) -> Self {
        let kernel = op.kernel.name.clone();
        Readout::new(op, vec![(binding, rows * cols)], move |mut v| {
            matrix(&kernel, rows, cols, v.remove(0))
        })
    }
}
