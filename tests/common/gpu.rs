//! One GPU context per test binary, shared by its tests (opening a device on lavapipe costs
//! far more than the small tests that use it), and the one comparison of CPU and GPU stats.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use soma::Stats;
use soma::gpu::{GpuContext, GpuOptions};

/// The shared context, or `None` after [`super::skip`] when there is no adapter (the caller
/// returns right after).
///
/// On a GL adapter the calling test also takes its turn: it holds [`GL_TURN`] until its thread
/// ends (libtest runs each test on a thread of its own), so a binary's GPU tests run one at a
/// time there. wgpu's GL backend holds one lock on the GL context for a whole submit and panics
/// a thread that has waited over 6 s for it ("Could not lock adapter context"); llvmpipe runs a
/// submit's work inside the submit, so one test's long training submit would panic another
/// test's call. Other APIs queue the work and need no turns.
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
    if let Some(c) = ctx
        && c.info.backend == wgpu::Backend::Gl
    {
        take_gl_turn();
    }
    ctx.clone()
}

/// Held by the test whose turn it is on a GL adapter (see [`context`]).
static GL_TURN: Mutex<()> = Mutex::new(());

thread_local! {
    /// This thread's turn, once taken: dropped, and so handed on, when the test's thread ends.
    static TURN: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
}

fn take_gl_turn() {
    TURN.with(|turn| {
        let mut turn = turn.borrow_mut();
        if turn.is_none() {
            // A test that panicked while holding it poisoned it; the next one still runs.
            *turn = Some(GL_TURN.lock().unwrap_or_else(|e| e.into_inner()));
        }
    });
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
