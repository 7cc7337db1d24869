//! The GPU backend where nothing may block (wasm32 in a browser): async counterparts of every
//! call that reads back, and of opening the device. Each shares its recording and submitting
//! with the native call and only differs in how it waits: `map_async` is awaited through a
//! oneshot that its callback fires, and the error scopes closed since the last read-back are
//! awaited first (a shader or pipeline that fails in Chrome fails silently otherwise, and
//! the read-back would return zeros). The single-op runner's calls ([`GpuOps`]) and building
//! a kernel have async forms too, for the per-op parity and shader tests in a browser.

use std::future::Future;
use std::pin::Pin;

use futures_intrusive::channel::shared::oneshot_channel;
use ndarray::{Array2, ArrayView2};

use super::backend::GpuBackend;
use super::context::{GpuContext, GpuOptions};
use super::kernels::{Kernel, KernelSpec};
use super::ops::GpuOps;
use super::prepared::{PreparedOp, Readout, matrix};
use super::readback::copy_mapped;
use super::stats::{Collect, STATS_RING};
use super::submit::EVAL_STATS;
use crate::backend::Stats;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::ops::loss::DeviceStats;
use crate::optim::OptimState;
use crate::params::Params;

/// An error scope closed and not yet awaited, with what was being created under it.
pub(crate) struct PendingScope {
    what: String,
    outcome: Pin<Box<dyn Future<Output = Option<wgpu::Error>>>>,
}

impl PendingScope {
    pub(crate) fn new(what: String, scope: wgpu::ErrorScopeGuard) -> PendingScope {
        PendingScope {
            what,
            outcome: Box::pin(scope.pop()),
        }
    }
}

impl GpuContext {
    /// Opens the best adapter (or the one `options.adapter` names) and a device on it, as
    /// [`GpuContext::new`] does natively; in a browser that is WebGPU's adapter.
    pub async fn new_async(options: &GpuOptions) -> Result<GpuContext> {
        Self::open_async(options).await
    }

    /// Awaits every error scope closed since the last call: the first error in one is an
    /// [`Error::Gpu`] naming what was created under it, with the browser's message.
    pub async fn settle_scopes(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending_scopes.borrow_mut());
        let mut first = None;
        for scope in pending {
            if let Some(e) = scope.outcome.await {
                first.get_or_insert(Error::gpu(scope.what, e));
            }
        }
        match first {
            Some(e) => Err(e),
            None => self.check("settling error scopes"),
        }
    }

    /// [`GpuContext::map_staging`], awaited.
    pub async fn map_staging_async(
        &self,
        what: &str,
        staging: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        let context = format!("reading back `{what}`");
        self.settle_scopes().await?;
        let (tx, rx) = oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        match rx.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::gpu(&context, e)),
            None => return Err(Error::gpu(&context, "map callback dropped (device lost?)")),
        }
        self.check(&context)?;
        copy_mapped(&context, staging, bytes)
    }

    /// [`GpuContext::read_back`], awaited.
    pub async fn read_back_async(
        &self,
        what: &str,
        src: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        let staging = self.copy_to_staging(what, src, offset, bytes)?;
        self.map_staging_async(what, &staging, bytes).await
    }
}

impl KernelSpec {
    /// [`KernelSpec::build`], with its error scopes awaited: a shader or pipeline the browser
    /// rejects is an [`Error::Gpu`] naming the kernel, with the browser's message.
    pub async fn build_async(&self, ctx: &GpuContext) -> Result<Kernel> {
        let kernel = self.build(ctx)?;
        ctx.settle_scopes().await?;
        Ok(kernel)
    }
}

/// [`super::compile_wgsl`], with its error scope awaited: a shader the browser rejects is an
/// [`Error::Gpu`] carrying the browser's message.
pub async fn compile_wgsl_async(ctx: &GpuContext, name: &str, source: &str) -> Result<()> {
    super::compile_wgsl(ctx, name, source)?;
    ctx.settle_scopes().await
}

impl GpuBackend {
    /// [`crate::Backend::take_stats`], awaited: the stats of every step so far.
    pub async fn take_stats_async(&mut self) -> Result<Stats> {
        self.free_ring_slot().await?;
        self.submit_stats_copy()?;
        self.ctx.settle_scopes().await?;
        while let Some(front) = self.ring.in_flight.pop_front() {
            self.counters.waits += 1;
            front.ready.receive().await;
            self.ring.collect(front, None)?;
        }
        Ok(std::mem::take(&mut self.ring.arrived))
    }

    /// [`crate::Backend::poll_stats`] where the ring may be full: waits (awaits) only for the oldest
    /// slot then, as the native call blocks for it.
    pub async fn poll_stats_async(&mut self) -> Result<Stats> {
        self.free_ring_slot().await?;
        self.stats_tick(Collect::Arrived)
    }

    /// With every ring slot in flight, awaits and collects the oldest, so that a tick never
    /// has to block for one.
    async fn free_ring_slot(&mut self) -> Result<()> {
        self.ctx.check("training stats")?;
        if self.ring.in_flight.len() == STATS_RING {
            self.ctx.settle_scopes().await?;
            let oldest = self.ring.in_flight.pop_front().expect("the ring is full");
            self.counters.waits += 1;
            self.counters.ring_waits += 1;
            oldest.ready.receive().await;
            self.ring.collect(oldest, None)?;
        }
        Ok(())
    }

    /// [`crate::Backend::evaluate`], awaited.
    pub async fn evaluate_async(&mut self, data: &Dataset) -> Result<Stats> {
        if !self.queue_evaluation(data)? {
            return Ok(Stats::default());
        }
        self.copy_eval_stats()?;
        let bytes = self
            .ctx
            .map_staging_async(EVAL_STATS, &self.stats_staging, 16)
            .await?;
        self.counters.readbacks += 1;
        Ok(bytemuck::pod_read_unaligned::<DeviceStats>(&bytes).stats())
    }

    /// [`crate::Backend::predict`], awaited.
    pub async fn predict_async(&mut self, inputs: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let outputs = self.net.outputs();
        let Some((out, rows)) = self.queue_prediction(inputs)? else {
            return Ok(Array2::zeros((0, outputs)));
        };
        let v = self
            .read_f32_async("prediction outputs", &out, (rows * outputs) as u64)
            .await?;
        Array2::from_shape_vec((rows, outputs), v).map_err(|e| Error::gpu("predict", e))
    }

    /// [`crate::Backend::params`], awaited.
    pub async fn params_async(&mut self) -> Result<Params> {
        let params = self.params.clone();
        let flat = self
            .read_f32_async("parameters", &params, self.layout.total)
            .await?;
        self.layout.unpack(&self.net, &flat)
    }

    /// [`crate::Backend::optim_state`], awaited.
    pub async fn optim_state_async(&mut self) -> Result<OptimState> {
        self.ctx.check("optim_state")?;
        let slots = self.optimizer.slots();
        let flat = if slots > 0 {
            let buf = self.slots.clone();
            let n = self.layout.total * slots as u64;
            self.read_f32_async("optimizer state", &buf, n).await?
        } else {
            Vec::new()
        };
        self.optim_state_from(&flat)
    }

    async fn read_f32_async(
        &mut self,
        what: &str,
        buf: &wgpu::Buffer,
        len: u64,
    ) -> Result<Vec<f32>> {
        self.counters.waits += 1;
        let bytes = self.ctx.read_back_async(what, buf, 0, len * 4).await?;
        self.counters.readbacks += 1;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

impl PreparedOp<'_> {
    /// [`PreparedOp::dispatch`] without the wait: submits, then awaits the error scopes (a
    /// read-back after it waits for the work itself).
    pub async fn dispatch_async(&self, times: usize) -> Result<()> {
        self.submit(times);
        self.ctx.settle_scopes().await?;
        self.ctx.check(&self.kernel.name)
    }

    /// [`PreparedOp::read_matrix`], awaited.
    pub async fn read_matrix_async(
        &self,
        binding: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Array2<f32>> {
        let v = self.read_async(binding, rows * cols).await?;
        matrix(&self.kernel.name, rows, cols, v)
    }

    /// `PreparedOp::read`, awaited: the first `len` values of the buffer at `binding`.
    async fn read_async(&self, binding: usize, len: usize) -> Result<Vec<f32>> {
        let bytes = self
            .ctx
            .read_back_async(
                &self.kernel.name,
                &self.buffers[binding],
                0,
                (len * 4) as u64,
            )
            .await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

impl<T> Readout<'_, T> {
    /// [`Readout::run`], awaited.
    pub async fn run_async(self) -> Result<T> {
        self.op.dispatch_async(1).await?;
        let mut values = Vec::with_capacity(self.reads.len());
        for &(binding, len) in &self.reads {
            values.push(self.op.read_async(binding, len).await?);
        }
        (self.finish)(values)
    }
}

/// Opening the op runner in a browser.
impl GpuOps {
    /// [`GpuOps::new`], with the error scopes of its pipelines awaited: a kernel the browser
    /// rejects is an [`Error::Gpu`] naming it, with the browser's message.
    pub async fn new_async(ctx: impl Into<std::sync::Arc<GpuContext>>) -> Result<GpuOps> {
        let ops = GpuOps::new(ctx)?;
        ops.context().settle_scopes().await?;
        Ok(ops)
    }
}
