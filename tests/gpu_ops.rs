//! Every GPU kernel against the CPU reference, natively: the cases of `op_cases` (shared with
//! the browser runner, `web/tests/parity.rs`), each op run blocking. Needs a GPU
//! adapter (lavapipe will do): without one the tests print "SKIPPED: no GPU adapter" and
//! pass, or fail under `SOMA_STRICT=1`.

mod common;
mod op_cases;

use std::sync::OnceLock;

use op_cases::{Ops, every_op_case};
use soma::gpu::ops::Readout;
use soma::gpu::{GpuContext, GpuOps, GpuOptions};

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

/// The blocking run: each future is ready when first polled.
impl Ops for GpuOps {
    fn gpu(&self) -> &GpuOps {
        self
    }
    async fn run<'a, T>(&'a self, op: soma::Result<Readout<'a, T>>) -> soma::Result<T> {
        op?.run()
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
