//! One backend behind the awaiting calls the page needs: the GPU backend's `_async` read-backs,
//! or the CPU backend, whose calls return at once.

use std::sync::Arc;

use ndarray::{Array2, ArrayView2};
use soma::gpu::{GpuBackend, GpuContext, GpuOptions};
use soma::train::Tick;
use soma::{Backend, CpuBackend, Dataset, Network, OptimState, Optimizer, Params, Result, Stats};

/// Where the page trains.
// One per page: boxing the GPU backend would save nothing.
#[allow(clippy::large_enum_variant)]
pub enum Engine {
    Gpu(GpuBackend),
    Cpu(CpuBackend),
}

impl Engine {
    /// WebGPU's adapter, or the reason there is none (no `navigator.gpu`, no adapter, a
    /// device that failed to open).
    pub async fn gpu_context() -> Result<GpuContext> {
        GpuContext::new_async(&GpuOptions::default()).await
    }

    /// The GPU backend on `ctx`, or the CPU backend (one thread: a page has no rayon) when
    /// `ctx` is `None`.
    pub fn new(
        ctx: Option<Arc<GpuContext>>,
        net: &Network,
        params: Params,
        optimizer: Optimizer,
    ) -> Result<Engine> {
        Ok(match ctx {
            Some(ctx) => Engine::Gpu(GpuBackend::new(ctx, net, params, optimizer)?),
            None => Engine::Cpu(CpuBackend::new(net, params, optimizer)?.with_threads(1)),
        })
    }

    pub fn backend(&mut self) -> &mut dyn Backend {
        match self {
            Engine::Gpu(g) => g,
            Engine::Cpu(c) => c,
        }
    }

    /// Trains `tick`'s samples and returns the stats that came back: mid-epoch only what has
    /// arrived (the GPU is not drained), at the epoch's end all the rest.
    pub async fn train(
        &mut self,
        samples: &[u32],
        batch_size: usize,
        tick: &Tick,
    ) -> Result<Stats> {
        self.backend().train_batches(samples, batch_size, tick.lr)?;
        match self {
            Engine::Gpu(g) if tick.last => g.take_stats_async().await,
            Engine::Gpu(g) => g.poll_stats_async().await,
            Engine::Cpu(c) => c.take_stats(),
        }
    }

    /// All stats not yet returned (to start a run from clean counters).
    pub async fn take_stats(&mut self) -> Result<Stats> {
        match self {
            Engine::Gpu(g) => g.take_stats_async().await,
            Engine::Cpu(c) => c.take_stats(),
        }
    }

    pub async fn evaluate(&mut self, data: &Dataset) -> Result<Stats> {
        match self {
            Engine::Gpu(g) => g.evaluate_async(data).await,
            Engine::Cpu(c) => c.evaluate(data),
        }
    }

    pub async fn predict(&mut self, inputs: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        match self {
            Engine::Gpu(g) => g.predict_async(inputs).await,
            Engine::Cpu(c) => c.predict(inputs),
        }
    }

    pub async fn params(&mut self) -> Result<Params> {
        match self {
            Engine::Gpu(g) => g.params_async().await,
            Engine::Cpu(c) => c.params(),
        }
    }

    pub async fn optim_state(&mut self) -> Result<OptimState> {
        match self {
            Engine::Gpu(g) => g.optim_state_async().await,
            Engine::Cpu(c) => c.optim_state(),
        }
    }
}
