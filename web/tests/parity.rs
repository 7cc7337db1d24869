//! Every GPU kernel against the CPU reference (compiled to wasm32 too), in a browser on its
//! WebGPU adapter: the cases of `tests/op_cases` (shared with the native runner,
//! `tests/gpu_ops.rs`), each op run awaited, with the same inputs and tolerances.
//! Run by `web/test.sh`. Without a WebGPU adapter the cases log "SKIPPED: no WebGPU adapter"
//! and pass, unless the tests were built with `SOMA_STRICT=1`.
#![cfg(target_arch = "wasm32")]

#[path = "../../tests/op_cases/mod.rs"]
mod op_cases;

use std::cell::OnceCell;

use op_cases::{Ops, every_op_case};
use soma::gpu::ops::Readout;
use soma::gpu::{GpuContext, GpuOps, GpuOptions};
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

/// The awaited run.
impl Ops for GpuOps {
    fn gpu(&self) -> &GpuOps {
        self
    }
    async fn run<'a, T>(&'a self, op: soma::Result<Readout<'a, T>>) -> soma::Result<T> {
        op?.run_async().await
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
