//! One GPU context per test binary, shared by its tests: opening a device on lavapipe costs
//! far more than the small tests that use it.

use std::sync::{Arc, OnceLock};

use soma::gpu::{GpuContext, GpuOptions};

/// The shared context, or `None` after [`super::skip`] when there is no adapter (the caller
/// returns right after).
pub fn context() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => {
            eprintln!("GPU: {}", ctx.describe());
            Some(Arc::new(ctx))
        }
        Err(e) => {
            eprintln!("{e}");
            None
        }
    });
    if ctx.is_none() {
        super::skip("no GPU adapter");
    }
    ctx.clone()
}
