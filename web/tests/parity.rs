//! Every GPU kernel against the CPU reference (compiled to wasm32 too), in a browser on its
//! WebGPU adapter: the cases of `tests/op_cases` (shared with the native runner,
//! `tests/gpu_ops.rs`) on the awaited `GpuOps` calls, with the same inputs and tolerances.
//! Run by `web/test.sh`. Without a WebGPU adapter the cases log "SKIPPED: no WebGPU adapter"
//! and pass, unless the tests were built with `SOMA_STRICT=1`.
#![cfg(target_arch = "wasm32")]

#[path = "../../tests/op_cases/mod.rs"]
mod op_cases;

use std::cell::OnceCell;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use op_cases::{Ops, every_op_case};
use soma::data::MAX_CHANNEL_MAPS;
use soma::gpu::ops::{
    ConvUpdated, Derivative, LossOutput, MatmulSpec, OpTargets, Pooled, UpdateSpec,
};
use soma::gpu::{GpuContext, GpuOps, GpuOptions};
use soma::ops::conv::ConvShape;
use soma::ops::matmul::Tile;
use soma::ops::pool::PoolShape;
use soma::shape::Chw;
use soma::{Activation, Inputs, Normalize, Optimizer, Output};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

thread_local! {
    /// The op runner every case shares (`None`: no adapter), opened by the first case.
    static OPS: OnceCell<Option<&'static GpuOps>> = const { OnceCell::new() };
}

/// The shared op runner, its kernels built and their error scopes awaited (a kernel Chrome
/// rejects fails here, named, with Chrome's message); `None` after a logged skip when the
/// browser has no WebGPU adapter.
async fn ops() -> Option<&'static GpuOps> {
    if let Some(ops) = OPS.with(|o| o.get().copied()) {
        return ops;
    }
    let ops = match GpuContext::new_async(&GpuOptions::default()).await {
        Ok(ctx) => {
            console_log!("GPU: {}", ctx.describe());
            let ops = GpuOps::new_async(ctx)
                .await
                .unwrap_or_else(|e| panic!("every kernel builds: {e}"));
            Some(&*Box::leak(Box::new(ops)))
        }
        Err(e) => {
            if option_env!("SOMA_STRICT") == Some("1") {
                panic!("SOMA_STRICT=1 forbids skipping: no WebGPU adapter: {e}");
            }
            console_log!("SKIPPED: no WebGPU adapter: {e}");
            None
        }
    };
    OPS.with(|o| *o.get_or_init(|| ops))
}

/// The awaited calls.
impl Ops for GpuOps {
    async fn matmul(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        spec: MatmulSpec<'_>,
    ) -> soma::Result<Array2<f32>> {
        self.matmul_async(a, b, spec).await
    }
    async fn matmul_derivative(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        trans_b: bool,
        aux: ArrayView2<'_, f32>,
        act: Activation,
        tile: Option<Tile>,
    ) -> soma::Result<Array2<f32>> {
        self.matmul_derivative_async(a, b, trans_b, aux, act, tile)
            .await
    }
    async fn loss(
        &self,
        output: Output,
        z: ArrayView2<'_, f32>,
        targets: OpTargets<'_>,
    ) -> soma::Result<LossOutput> {
        self.loss_async(output, z, targets).await
    }
    async fn column_sums(&self, m: ArrayView2<'_, f32>) -> soma::Result<Array1<f32>> {
        self.column_sums_async(m).await
    }
    async fn optimizer_step(
        &self,
        optimizer: &Optimizer,
        lr: f32,
        t: u64,
        p: ArrayView1<'_, f32>,
        g: ArrayView1<'_, f32>,
        slots: &[ArrayView1<'_, f32>],
    ) -> soma::Result<(Array1<f32>, Vec<Array1<f32>>)> {
        self.optimizer_step_async(optimizer, lr, t, p, g, slots)
            .await
    }
    async fn weight_update(
        &self,
        x: ArrayView2<'_, f32>,
        delta: ArrayView2<'_, f32>,
        params: ArrayView2<'_, f32>,
        slots: &[ArrayView2<'_, f32>],
        spec: UpdateSpec<'_>,
    ) -> soma::Result<(Array2<f32>, Vec<Array2<f32>>)> {
        self.weight_update_async(x, delta, params, slots, spec)
            .await
    }
    async fn gather(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        normalize: Normalize,
    ) -> soma::Result<Array2<f32>> {
        self.gather_async(inputs, features, indices, normalize)
            .await
    }
    async fn conv2d(
        &self,
        s: &ConvShape,
        x: ArrayView2<'_, f32>,
        w: ArrayView2<'_, f32>,
        b: ArrayView1<'_, f32>,
        act: Option<Activation>,
    ) -> soma::Result<Array2<f32>> {
        GpuOps::conv2d_async(self, s, x, w, b, act).await
    }
    async fn conv2d_input_grad(
        &self,
        s: &ConvShape,
        dy: ArrayView2<'_, f32>,
        w: ArrayView2<'_, f32>,
        deriv: Derivative<'_>,
    ) -> soma::Result<Array2<f32>> {
        GpuOps::conv2d_input_grad_async(self, s, dy, w, deriv).await
    }
    async fn conv2d_update(
        &self,
        s: &ConvShape,
        x: ArrayView2<'_, f32>,
        dy: ArrayView2<'_, f32>,
        params: ArrayView1<'_, f32>,
        slots: &[ArrayView1<'_, f32>],
        spec: UpdateSpec<'_>,
    ) -> soma::Result<ConvUpdated> {
        GpuOps::conv2d_update_async(self, s, x, dy, params, slots, spec).await
    }
    async fn max_pool(&self, s: &PoolShape, x: ArrayView2<'_, f32>) -> soma::Result<Pooled> {
        GpuOps::max_pool_async(self, s, x).await
    }
    async fn max_pool_backward(
        &self,
        s: &PoolShape,
        dy: ArrayView2<'_, f32>,
        argmax: ArrayView2<'_, u32>,
        deriv: Derivative<'_>,
    ) -> soma::Result<Array2<f32>> {
        GpuOps::max_pool_backward_async(self, s, dy, argmax, deriv).await
    }
    async fn gather_images(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        maps: [Normalize; MAX_CHANNEL_MAPS],
        image: Option<Chw>,
    ) -> soma::Result<Array2<f32>> {
        self.gather_images_async(inputs, features, indices, maps, image)
            .await
    }
}

#[wasm_bindgen_test]
fn the_tile_rule_picks_every_tile() {
    op_cases::the_tile_rule_picks_every_tile();
}

macro_rules! browser_test {
    ($case:ident) => {
        #[wasm_bindgen_test]
        async fn $case() {
            let Some(ops) = ops().await else { return };
            op_cases::$case(ops).await;
        }
    };
}
every_op_case!(browser_test);
