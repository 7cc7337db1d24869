//! Training steps on several threads that stay awake for the whole call.
//!
//! A step on `T` threads has two phases, each split `T` ways:
//! 1. each thread runs its row block of the batch forward and backward into its own workspace
//!    (the blocks' weight gradients are partial sums over their rows);
//! 2. each thread takes its pieces of every tensor (row ranges of each weight matrix, some of
//!    the biases), sums the blocks' gradients there and applies the optimizer.
//!
//! A barrier separates the phases and the steps. Between barriers the threads share nothing
//! they write: in phase 1 each writes only its own workspace and reads the parameters; in
//! phase 2 each writes only its pieces and reads the gradients.
//!
//! Why not two parallel iterators per step: between them the partner thread finds no work and
//! falls asleep, and waking a sleeping thread costs tens of microseconds on a VM, of a
//! batch-64 step's ~200 µs. The threads here wait for each other by spinning (yielding after a
//! while, in case the machine has fewer cores than threads), so they never sleep mid-call.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

use super::{CpuBackend, Workspace};
use crate::backend::Stats;
use crate::data::Dataset;
use crate::layer::Pass;
use crate::ops::{gather, optim};
use crate::params::Params;
use crate::shape::TensorRole;

/// Spins this many rounds at a barrier before yielding the core between checks: long enough to
/// cover a step's imbalance between threads (microseconds), short enough not to starve other
/// work when threads outnumber cores.
const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// A barrier for `n` threads that never puts a thread to sleep.
struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
    /// Counts the times the barrier has opened; a waiter watches it change.
    generation: AtomicUsize,
    /// Set when a thread of the team panicked: it will never arrive, so the others must not
    /// wait for it forever.
    poisoned: AtomicBool,
}

/// Poisons the barrier if its thread unwinds past it.
struct PoisonOnPanic<'a>(&'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Release);
        }
    }
}

impl SpinBarrier {
    fn new(n: usize) -> Self {
        SpinBarrier {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Returns once all `n` threads have called it. Everything a thread wrote before its call
    /// is visible to every thread after the barrier (release on arrival, acquire on leaving).
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                !self.poisoned.load(Ordering::Acquire),
                "another thread of the training team panicked"
            );
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// A row-major matrix's data as a raw pointer, so that threads can each write their own rows
/// of it (a bias is a matrix of one row).
#[derive(Clone, Copy)]
struct Rows {
    ptr: *mut f32,
    cols: usize,
}

impl Rows {
    fn of(a: &mut Array2<f32>) -> Rows {
        assert!(a.is_standard_layout(), "parameters are row-major");
        Rows {
            ptr: a.as_mut_ptr(),
            cols: a.ncols(),
        }
    }

    fn of_bias(b: &mut ndarray::Array1<f32>) -> Rows {
        Rows {
            ptr: b.as_slice_mut().expect("a bias is contiguous").as_mut_ptr(),
            cols: b.len(),
        }
    }

    /// # Safety
    /// `rows` lies within the matrix, which outlives `'a`, and no other thread accesses those
    /// rows until the next barrier.
    unsafe fn view_mut<'a>(self, rows: &Range<usize>) -> ArrayViewMut2<'a, f32> {
        // SAFETY: the caller's promise; the matrix is row-major with `cols` columns.
        unsafe {
            ArrayViewMut2::from_shape_ptr(
                (rows.len(), self.cols),
                self.ptr.add(rows.start * self.cols),
            )
        }
    }

    /// # Safety
    /// `rows` lies within the matrix, which outlives `'a`, and no thread writes those rows
    /// until the next barrier.
    unsafe fn view<'a>(self, rows: &Range<usize>) -> ArrayView2<'a, f32> {
        // SAFETY: the caller's promise; the matrix is row-major with `cols` columns.
        unsafe {
            ArrayView2::from_shape_ptr(
                (rows.len(), self.cols),
                self.ptr.add(rows.start * self.cols),
            )
        }
    }
}

/// One tensor's piece of the update: its rows `rows` in the parameters, in each block's
/// gradients (block 0's receives the sum) and in each optimizer state slot.
struct Piece {
    rows: Range<usize>,
    /// How its tensor changes in a step.
    role: TensorRole,
    param: Rows,
    grads: Vec<Rows>,
    slots: Vec<Rows>,
}

/// Sums values over the team's row blocks in the middle of a pass (batch norm's statistics):
/// each thread writes its part (zeros from a thread without a block), all wait, each adds
/// every part in thread order (so every block gets the same sums), and all wait again before
/// the parts are written anew.
struct Reducer<'b> {
    parts: Vec<std::cell::UnsafeCell<Vec<f64>>>,
    barrier: &'b SpinBarrier,
}

// SAFETY: between two waits thread `t` writes only part `t`; after the first every thread
// only reads the parts, and the second keeps the next writes after every read.
unsafe impl Sync for Reducer<'_> {}

impl Reducer<'_> {
    /// Thread `t`'s sum of `v` over the blocks, in place.
    fn sum(&self, t: usize, v: &mut [f64]) {
        // SAFETY: see the `Sync` impl.
        unsafe { (&mut *self.parts[t].get())[..v.len()].copy_from_slice(v) };
        self.barrier.wait();
        v.fill(0.0);
        for part in &self.parts {
            // SAFETY: see the `Sync` impl.
            let part = unsafe { &*part.get() };
            v.iter_mut().zip(part).for_each(|(s, p)| *s += p);
        }
        self.barrier.wait();
    }

    /// Thread `t`'s part in a sum of `len` values when it holds no rows.
    fn idle(&self, t: usize, len: usize) {
        // SAFETY: see the `Sync` impl.
        unsafe { (&mut *self.parts[t].get())[..len].fill(0.0) };
        self.barrier.wait();
        self.barrier.wait();
    }
}

/// What the threads share. The raw pointers reach the heap data of the backend's arrays,
/// which nothing reallocates while the team runs; the phases keep their accesses apart.
struct Shared<'a> {
    data: &'a Dataset,
    params: *const Params,
    work: *mut Workspace,
    /// The pieces of phase 2, by thread.
    pieces: Vec<Vec<Piece>>,
}

// SAFETY: the pointers are used as the module docs say: between two barriers no two threads
// touch the same data unless both only read it.
unsafe impl Sync for Shared<'_> {}

// The team reaches the fields through methods, so that its closure captures the whole `Shared`
// (which is `Sync`) rather than each raw pointer field on its own.
impl Shared<'_> {
    fn workspace(&self, t: usize) -> *mut Workspace {
        self.work.wrapping_add(t)
    }

    fn params(&self) -> *const Params {
        self.params
    }

    fn pieces(&self, t: usize) -> &[Piece] {
        &self.pieces[t]
    }
}

/// Thread `t`'s block of `rows` split into `blocks`.
/// Block `t` of `blocks` of `rows`, and where it starts in them.
fn block(rows: &[u32], t: usize, blocks: usize) -> (usize, &[u32]) {
    let n = rows.len().div_ceil(blocks);
    let start = (t * n).min(rows.len());
    (start, &rows[start..((t + 1) * n).min(rows.len())])
}

/// The `s`-th batch of `batch_size` rows of `order`; empty past the end.
fn batch_or_empty(order: &[u32], s: usize, batch_size: usize) -> &[u32] {
    let start = (s * batch_size).min(order.len());
    &order[start..(start + batch_size).min(order.len())]
}

impl CpuBackend {
    /// Trains on the batches of `order` with every thread of the pool as one team (see the
    /// module docs); the batches of `batch_size` rows are split into `self.blocks` row blocks.
    /// The workspaces must already hold the blocks.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn train_team(&mut self, data: &Dataset, order: &[u32], batch_size: usize, lr: f32) {
        let (threads, split) = (self.threads, self.split());
        let first_step = self.state.step;
        let pieces = self.pieces(threads);
        let shared = Shared {
            data,
            params: &self.params,
            work: self.work.as_mut_ptr(),
            pieces,
        };
        let (net, optimizer) = (&self.net, self.optimizer);
        let barrier = SpinBarrier::new(threads);
        // The sums the layers take in each step, in the order they take them: forward first to
        // last, backward last to first.
        let lens: Vec<usize> = net.nodes().iter().map(|n| n.op().reduce_len()).collect();
        let sums: Vec<usize> = lens
            .iter()
            .chain(lens.iter().rev())
            .copied()
            .filter(|&n| n > 0)
            .collect();
        let widest = sums.iter().copied().max().unwrap_or(0);
        let reducer = Reducer {
            parts: (0..threads)
                .map(|_| std::cell::UnsafeCell::new(vec![0.0; widest]))
                .collect(),
            barrier: &barrier,
        };
        let steps = order.len().div_ceil(batch_size);
        let team = |t: usize| {
            let _poison = PoisonOnPanic(&barrier);
            let mut stats = Stats::default();
            for s in 0..steps {
                let batch = batch_or_empty(order, s, batch_size);
                let blocks = split.blocks(batch.len());
                if t < blocks {
                    let (row0, part) = block(batch, t, blocks);
                    let (_, next) = block(batch_or_empty(order, s + 1, batch_size), t, blocks);
                    // SAFETY: phase 1: this thread alone uses workspace `t` (t < blocks ≤ the
                    // workspaces made for the call); the parameters are only read.
                    let (work, params) = unsafe { (&mut *shared.workspace(t), &*shared.params()) };
                    let b = part.len();
                    Self::load_batch(work, shared.data, part);
                    gather::prefetch(shared.data, next);
                    let pass = Pass::Train {
                        step: (first_step + s as u64 + 1) as u32,
                        row0: row0 as u32,
                    };
                    let mut reduce = |v: &mut [f64]| reducer.sum(t, v);
                    Self::forward(net, params, work, (b, pass, batch.len()), &mut reduce);
                    stats.add(Self::output_delta(net, work, b, batch.len()));
                    Self::backward(net, params, work, (b, pass, batch.len()), &mut reduce);
                } else {
                    // No rows for this thread in this batch, but its part in every sum.
                    for &len in &sums {
                        reducer.idle(t, len);
                    }
                }
                barrier.wait();
                let step = first_step + s as u64 + 1;
                for piece in shared.pieces(t) {
                    // SAFETY: phase 2: each piece belongs to one thread, and the gradients of
                    // other blocks are only read.
                    unsafe {
                        let rows = &piece.rows;
                        let mut g = piece.grads[0].view_mut(rows);
                        for other in &piece.grads[1..blocks] {
                            g += &other.view(rows);
                        }
                        let (p, g) = (piece.param.view_mut(rows), g.view());
                        // The slots' views in an array, not a Vec: a step allocates nothing.
                        let (o, role, at) = (&optimizer, piece.role, (lr, step));
                        match piece.slots.as_slice() {
                            [] => optim::step(o, role, at, p, g, &mut []),
                            [a] => optim::step(o, role, at, p, g, &mut [a.view_mut(rows)]),
                            [a, b] => optim::step(
                                o,
                                role,
                                at,
                                p,
                                g,
                                &mut [a.view_mut(rows), b.view_mut(rows)],
                            ),
                            _ => unreachable!("an optimizer has at most two state slots"),
                        }
                    }
                }
                barrier.wait();
            }
            stats
        };
        let pool = self.pool.as_ref().expect("a team needs the thread pool");
        let per_thread = pool.broadcast(|ctx| team(ctx.index()));
        for s in per_thread {
            self.stats.add(s);
        }
        self.state.step = first_step + steps as u64;
    }

    /// Phase 2's pieces for `threads` threads: each weight matrix in `threads` row ranges, the
    /// `j`-th to thread `j`, and the biases dealt out in turn.
    fn pieces(&mut self, threads: usize) -> Vec<Vec<Piece>> {
        let mut pieces: Vec<Vec<Piece>> = (0..threads).map(|_| Vec::new()).collect();
        let blocks = self.work.len();
        for l in 0..self.params.layers.len() {
            let piece = |rows: Range<usize>, this: &mut Self, bias: bool| {
                let pick = |layer: &mut crate::params::Weights| {
                    if bias {
                        Rows::of_bias(&mut layer.b)
                    } else {
                        Rows::of(&mut layer.w)
                    }
                };
                Piece {
                    rows,
                    role: this.roles[l],
                    param: pick(&mut this.params.layers[l]),
                    grads: (0..blocks)
                        .map(|k| pick(&mut this.work[k].grads.layers[l]))
                        .collect(),
                    slots: this
                        .state
                        .slots
                        .iter_mut()
                        .map(|s| pick(&mut s.layers[l]))
                        .collect(),
                }
            };
            let n = self.params.layers[l].w.len_of(Axis(0));
            let rows = n.div_ceil(threads).max(1);
            for (j, start) in (0..n).step_by(rows).enumerate() {
                let p = piece(start..(start + rows).min(n), self, false);
                pieces[j].push(p);
            }
            let p = piece(0..1, self, true);
            pieces[l % threads].push(p);
        }
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_thread_passes_the_barrier_before_all_have_arrived() {
        // Each round every thread adds 1, waits, and must then see all `n` additions.
        let (n, rounds) = (3, 300);
        let (barrier, count) = (SpinBarrier::new(n), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(|| {
                    for round in 1..=rounds {
                        count.fetch_add(1, Ordering::Relaxed);
                        barrier.wait();
                        assert!(count.load(Ordering::Relaxed) >= round * n);
                        barrier.wait();
                    }
                });
            }
        });
        assert_eq!(count.into_inner(), n * rounds);
    }

    #[test]
    fn a_thread_that_panics_releases_the_others_instead_of_hanging_them() {
        let barrier = SpinBarrier::new(2);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                let _poison = PoisonOnPanic(&barrier);
                panic!("planted failure in one thread of the team");
            });
            let b = s.spawn(|| barrier.wait());
            (a.join().is_err(), b.join().is_err())
        });
        assert!(a && b, "both threads end in a panic");
    }
}
