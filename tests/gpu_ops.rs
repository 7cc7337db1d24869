//! Every GPU kernel against the CPU reference, natively: the cases of `op_cases` (shared with
//! the browser runner, `web/tests/parity.rs`) on the blocking `GpuOps` calls. Needs a GPU
//! adapter (lavapipe will do): without one the tests print "SKIPPED: no GPU adapter" and
//! pass, or fail under `SOMA_STRICT=1`.

mod common;
mod op_cases;

use std::sync::OnceLock;

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

fn ops() -> Option<&'static GpuOps> {
    static OPS: OnceLock<Option<GpuOps>> = OnceLock::new();
    let ops = OPS.get_or_init(|| match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => Some(GpuOps::new(ctx).expect("every kernel builds")),
        Err(e) => {
            eprintln!("no adapter: {e}");
            None
        }
    });
    if ops.is_none() {
        common::skip("no GPU adapter");
    }
    ops.as_ref()
}

/// The blocking calls: each future is ready when first polled.
impl Ops for GpuOps {
    async fn matmul(
        &self,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        spec: MatmulSpec<'_>,
    ) -> soma::Result<Array2<f32>> {
        GpuOps::matmul(self, a, b, spec)
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
        GpuOps::matmul_derivative(self, a, b, trans_b, aux, act, tile)
    }
    async fn loss(
        &self,
        output: Output,
        z: ArrayView2<'_, f32>,
        targets: OpTargets<'_>,
    ) -> soma::Result<LossOutput> {
        GpuOps::loss(self, output, z, targets)
    }
    async fn column_sums(&self, m: ArrayView2<'_, f32>) -> soma::Result<Array1<f32>> {
        GpuOps::column_sums(self, m)
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
        GpuOps::optimizer_step(self, optimizer, lr, t, p, g, slots)
    }
    async fn weight_update(
        &self,
        x: ArrayView2<'_, f32>,
        delta: ArrayView2<'_, f32>,
        params: ArrayView2<'_, f32>,
        slots: &[ArrayView2<'_, f32>],
        spec: UpdateSpec<'_>,
    ) -> soma::Result<(Array2<f32>, Vec<Array2<f32>>)> {
        GpuOps::weight_update(self, x, delta, params, slots, spec)
    }
    async fn gather(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        normalize: Normalize,
    ) -> soma::Result<Array2<f32>> {
        GpuOps::gather(self, inputs, features, indices, normalize)
    }
    async fn conv2d(
        &self,
        s: &ConvShape,
        x: ArrayView2<'_, f32>,
        w: ArrayView2<'_, f32>,
        b: ArrayView1<'_, f32>,
        act: Option<Activation>,
    ) -> soma::Result<Array2<f32>> {
        GpuOps::conv2d(self, s, x, w, b, act)
    }
    async fn conv2d_input_grad(
        &self,
        s: &ConvShape,
        dy: ArrayView2<'_, f32>,
        w: ArrayView2<'_, f32>,
        deriv: Derivative<'_>,
    ) -> soma::Result<Array2<f32>> {
        GpuOps::conv2d_input_grad(self, s, dy, w, deriv)
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
        GpuOps::conv2d_update(self, s, x, dy, params, slots, spec)
    }
    async fn max_pool(&self, s: &PoolShape, x: ArrayView2<'_, f32>) -> soma::Result<Pooled> {
        GpuOps::max_pool(self, s, x)
    }
    async fn max_pool_backward(
        &self,
        s: &PoolShape,
        dy: ArrayView2<'_, f32>,
        argmax: ArrayView2<'_, u32>,
        deriv: Derivative<'_>,
    ) -> soma::Result<Array2<f32>> {
        GpuOps::max_pool_backward(self, s, dy, argmax, deriv)
    }
    async fn gather_images(
        &self,
        inputs: &Inputs,
        features: usize,
        indices: &[u32],
        maps: [Normalize; MAX_CHANNEL_MAPS],
        image: Option<Chw>,
    ) -> soma::Result<Array2<f32>> {
        GpuOps::gather_images(self, inputs, features, indices, maps, image)
    }
}

#[test]
fn the_tile_rule_picks_every_tile() {
    op_cases::the_tile_rule_picks_every_tile();
}

macro_rules! native_test {
    ($case:ident) => {
        #[test]
        fn $case() {
            let Some(ops) = ops() else { return };
            pollster::block_on(op_cases::$case(ops));
        }
    };
}
every_op_case!(native_test);
