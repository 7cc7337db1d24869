//! One GPU context per test binary, shared by its tests (opening a device on lavapipe costs
//! far more than the small tests that use it), and the one comparison of CPU and GPU stats.

use std::sync::{Arc, OnceLock};

use soma::Stats;
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

/// Loss sums of the same forward passes on the two backends (f32 per sample, f64/compensated
/// totals).
pub const LOSS_REL: f64 = 1e-4;
/// Correct counts may differ where two logits are within rounding of each other.
pub const CORRECT_FRACTION: f64 = 1e-3;

/// CPU and GPU stats of the same samples agree: equal counts, loss sums within [`LOSS_REL`],
/// correct counts within [`CORRECT_FRACTION`] of the samples (+1).
pub fn assert_stats_agree(what: &str, c: Stats, g: Stats) {
    assert_eq!(c.samples, g.samples, "{what}: samples");
    let rel = (c.loss_sum - g.loss_sum).abs() / c.loss_sum.abs().max(1e-12);
    assert!(
        rel <= LOSS_REL,
        "{what}: loss sum cpu {} gpu {}",
        c.loss_sum,
        g.loss_sum
    );
    let dc = (c.correct as f64 - g.correct as f64).abs();
    assert!(
        dc <= CORRECT_FRACTION * c.samples as f64 + 1.0,
        "{what}: correct cpu {} gpu {}",
        c.correct,
        g.correct
    );
}
