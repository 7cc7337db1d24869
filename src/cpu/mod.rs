//! The reference backend on ndarray: forward, backprop and the optimizers written op by op, as
//! the math reads. It is the oracle the GPU backend is tested against, and it is made fast
//! without being made obscure: every buffer is allocated once per batch size, matrix products
//! write into them (`linalg::gemm`), and bias + activation are applied in one pass.
//!
//! With several threads a batch is split into row blocks, one per thread: each runs the same
//! forward and backward pass on its rows (deltas scaled by the whole batch's size), and the
//! blocks' weight gradients are summed before the update. That is plain data parallelism, so
//! the math reads the same; splitting inside each small matrix product instead cost more in
//! synchronisation than the second core gave.

pub mod conv;
pub mod linalg;
pub mod pool;
#[cfg(not(target_arch = "wasm32"))]
mod team;

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use crate::backend::{Backend, Stats, check_data, check_predict_inputs, check_train_args};
use crate::data::Dataset;
use crate::data::Sample;
use crate::error::Result;
use crate::layer::{Backward, Forward, Pass, Scratch, WeightsView};
use crate::net::{Network, Output};
use crate::ops::activation::sigmoid;
use crate::ops::matmul::mul_derivative;
use crate::ops::{gather, loss, optim};
use crate::optim::{OptimState, Optimizer};
use crate::params::Params;
use crate::shape::TensorRole;

/// Rows per chunk when evaluating or predicting: bounds memory, not results.
const EVAL_CHUNK: usize = 1024;

/// The least training work (FLOPs, see [`Network::train_flops_per_sample`]) a row block must
/// hold to get a thread of its own. A split step costs two barriers and a pass that sums the
/// blocks' gradients; measured on 784-64-64-10 (2-vCPU EPYC), two blocks of 16 rows (3.7 MFLOP
/// each) already beat one thread, so the bound sits just under that. A tiny network's steps
/// stay on one thread whatever the batch.
pub const MIN_BLOCK_FLOPS: u64 = 3_000_000;

/// How a batch is split into row blocks, one per thread.
#[derive(Clone, Copy, Debug)]
struct Split {
    threads: usize,
    flops_per_row: u64,
    min_block_flops: u64,
}

impl Split {
    /// How many row blocks a batch of `b` rows is split into: one per thread, as long as each
    /// holds `min_block_flops` of work and a row.
    fn blocks(self, b: usize) -> usize {
        let by_work = (b as u64 * self.flops_per_row)
            .checked_div(self.min_block_flops)
            .unwrap_or(u64::MAX);
        self.threads
            .min(b)
            .min(usize::try_from(by_work).unwrap_or(usize::MAX))
            .max(1)
    }

    /// The most rows one block holds in any batch of up to `rows` rows. Not simply
    /// `rows / blocks(rows)`: a smaller batch (a partial last batch, the last evaluation
    /// chunk) may be split into fewer blocks, each of them longer.
    fn max_block_rows(self, rows: usize) -> usize {
        // `blocks` never falls as sizes grow, so within each run of sizes with the same count
        // the largest size has the longest block: visit the largest size of each run.
        let (mut longest, mut b) = (0, rows);
        while b > 0 {
            let k = self.blocks(b);
            longest = longest.max(b.div_ceil(k));
            // The largest size below `b` split into fewer than `k` blocks (0 if none).
            let (mut lo, mut hi) = (0, b);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if self.blocks(mid) < k {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            b = lo;
        }
        longest
    }
}

/// Activations, deltas and gradients for batches of up to `rows` samples, layers counted over
/// the network's nodes (each op with its activation).
struct Workspace {
    rows: usize,
    /// `acts[0]` is the input batch, `acts[j + 1]` the output of layer `j`.
    acts: Vec<Array2<f32>>,
    /// `deltas[j]`: gradient of the loss w.r.t. layer `j`'s output before its activation.
    deltas: Vec<Array2<f32>>,
    /// What each layer's forward pass keeps for its backward pass: per row (a pool's
    /// arg-maxes), and per batch (batch norm's statistics).
    keep: Vec<Array2<u32>>,
    batch: Vec<Vec<f32>>,
    /// Each layer's sums over the row blocks (batch norm's moments and gradient sums).
    sums: Vec<Vec<f64>>,
    /// Shared by the layers in turn (a convolution's im2col matrix and outputs).
    scratch: Scratch,
    grads: Params,
    /// Per-sample target values (one-hot for labels).
    targets: Array2<f32>,
}

impl Workspace {
    fn new(net: &Network, rows: usize) -> Self {
        let nodes = net.nodes();
        let outs = || nodes.iter().map(|n| n.op().output().len());
        let scratch = nodes
            .iter()
            .map(|n| n.op().scratch_len(rows))
            .max()
            .unwrap_or(0);
        Workspace {
            rows,
            acts: std::iter::once(net.inputs())
                .chain(outs())
                .map(|n| Array2::zeros((rows, n)))
                .collect(),
            deltas: outs().map(|n| Array2::zeros((rows, n))).collect(),
            keep: nodes
                .iter()
                .map(|n| Array2::zeros((rows, n.op().keep_per_row())))
                .collect(),
            batch: nodes
                .iter()
                .map(|n| vec![0.0; n.op().batch_state()])
                .collect(),
            sums: nodes
                .iter()
                .map(|n| vec![0.0; n.op().reduce_len()])
                .collect(),
            scratch: Scratch {
                cols: vec![0.0; scratch],
                wide: vec![0.0; scratch],
            },
            grads: Params::zeros(net),
            targets: Array2::zeros((rows, net.outputs())),
        }
    }
}

/// Tensor `t` of `params`, viewed.
fn view(params: &Params, t: Option<usize>) -> Option<WeightsView<'_>> {
    t.map(|t| WeightsView {
        w: params.layers[t].w.view(),
        b: params.layers[t].b.view(),
    })
}

/// For one row block: adds up values over the batch's blocks (see `layer::Forward::reduce`).
type Reduce<'a> = &'a mut dyn FnMut(&mut [f64]);

/// The sum over one block: the values as they are.
fn alone(_: &mut [f64]) {}

/// The ndarray reference backend.
pub struct CpuBackend {
    net: Network,
    /// Each tensor's role (how a step changes it).
    roles: Vec<TensorRole>,
    params: Params,
    optimizer: Optimizer,
    state: OptimState,
    train: Option<Dataset>,
    /// One workspace per thread.
    work: Vec<Workspace>,
    stats: Stats,
    /// Runs the row blocks when there is more than one thread (none in a browser: wasm32 has
    /// no threads, so the backend runs on the caller's).
    #[cfg(not(target_arch = "wasm32"))]
    pool: Option<rayon::ThreadPool>,
    /// Threads of `pool` (1 without one); kept apart because `in_pool` lends the pool out.
    threads: usize,
    /// See [`CpuBackend::with_min_block_flops`].
    min_block_flops: u64,
}

impl CpuBackend {
    /// A backend training `params` (shaped like `net`) with `optimizer`, on one thread.
    pub fn new(net: &Network, params: Params, optimizer: Optimizer) -> Result<Self> {
        params.check_shape(net, "initial parameters")?;
        optimizer.validate()?;
        let state = OptimState::new(&optimizer, &params);
        Ok(CpuBackend {
            net: net.clone(),
            roles: net.weight_shapes().map(|w| w.role).collect(),
            params,
            optimizer,
            state,
            train: None,
            work: Vec::new(),
            stats: Stats::default(),
            #[cfg(not(target_arch = "wasm32"))]
            pool: None,
            threads: 1,
            min_block_flops: MIN_BLOCK_FLOPS,
        })
    }

    /// Splits each batch over up to `threads` threads (blocks of at least [`MIN_BLOCK_FLOPS`]
    /// of work). If the thread pool cannot be built, runs on one; on wasm32 (no threads) always
    /// on one.
    #[cfg(target_arch = "wasm32")]
    pub fn with_threads(self, _threads: usize) -> Self {
        self
    }

    /// Splits each batch over up to `threads` threads (blocks of at least [`MIN_BLOCK_FLOPS`]
    /// of work). If the thread pool cannot be built, runs on one.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .ok()
            })
            .flatten();
        self.threads = self.pool.as_ref().map_or(1, |p| p.current_num_threads());
        self
    }

    /// Runs `f` on a thread of the pool, if there is one: a whole loop of steps then
    /// synchronises its threads per step without blocking the caller's thread each time (which
    /// cost ~50 µs per batch-64 step).
    #[cfg(not(target_arch = "wasm32"))]
    fn in_pool<T: Send>(&mut self, f: impl FnOnce(&mut Self) -> T + Send) -> T {
        match self.pool.take() {
            Some(pool) => {
                let out = pool.install(|| f(self));
                self.pool = Some(pool);
                out
            }
            None => f(self),
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn in_pool<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        f(self)
    }

    /// How batches are split into row blocks.
    fn split(&self) -> Split {
        Split {
            threads: self.threads,
            flops_per_row: self.net.train_flops_per_sample(),
            min_block_flops: self.min_block_flops,
        }
    }

    /// How many row blocks a batch of `b` rows is split into.
    fn blocks(&self, b: usize) -> usize {
        self.split().blocks(b)
    }

    /// Sets the least work a row block needs for a thread of its own (default
    /// [`MIN_BLOCK_FLOPS`]); 0 splits every batch of at least as many rows as threads, which
    /// the tests use to put tiny networks on several threads.
    pub fn with_min_block_flops(mut self, flops: u64) -> Self {
        self.min_block_flops = flops;
        self
    }

    /// Makes the workspaces for batches (or evaluation chunks) of up to `rows` rows: one per
    /// block, each long enough for the longest block of any such batch.
    fn workspaces_for(&mut self, rows: usize) {
        let split = self.split();
        self.workspaces(split.blocks(rows), split.max_block_rows(rows));
    }

    /// Makes `blocks` workspaces of at least `rows` rows, reallocating only to grow.
    fn workspaces(&mut self, blocks: usize, rows: usize) {
        if self.work.len() < blocks || self.work.iter().any(|w| w.rows < rows) {
            let rows = rows.max(self.work.first().map_or(0, |w| w.rows));
            let count = blocks.max(self.work.len());
            self.work = (0..count)
                .map(|_| Workspace::new(&self.net, rows))
                .collect();
        }
    }

    /// Runs `indices` of `data` forward in row blocks, one per thread, and returns the summed
    /// stats (evaluation).
    fn run_blocks(&mut self, data: &Dataset, indices: &[u32]) -> Stats {
        let blocks = self.blocks(indices.len());
        let rows = indices.len().div_ceil(blocks);
        let (net, params) = (&self.net, &self.params);
        let run = |work: &mut Workspace, part: &[u32]| {
            let b = part.len();
            Self::load_batch(work, data, part);
            Self::forward(net, params, work, (b, Pass::Infer, b), &mut alone);
            Self::output_delta(net, work, b, b)
        };
        let work = &mut self.work[..blocks];
        // Called inside `in_pool`, so the blocks go to the pool's threads without a hand-off
        // from (and a wake-up of) a thread outside it.
        #[cfg(not(target_arch = "wasm32"))]
        if blocks > 1 {
            use rayon::prelude::*;
            return work
                .par_iter_mut()
                .zip(indices.par_chunks(rows))
                .map(|(w, part)| run(w, part))
                .reduce(Stats::default, |mut a, b| {
                    a.add(b);
                    a
                });
        }
        #[cfg(target_arch = "wasm32")]
        let _ = rows;
        run(&mut work[0], indices)
    }

    /// One thread's training: each batch forward, backward and through the optimizer, tensor
    /// by tensor (the reference path), prefetching the next batch's rows.
    fn train_serial(&mut self, data: &Dataset, order: &[u32], batch_size: usize, lr: f32) {
        let mut batches = order.chunks(batch_size).peekable();
        while let Some(batch) = batches.next() {
            let work = &mut self.work[0];
            let b = batch.len();
            Self::load_batch(work, data, batch);
            gather::prefetch(data, batches.peek().copied().unwrap_or_default());
            let pass = Pass::Train {
                step: (self.state.step + 1) as u32,
                row0: 0,
            };
            Self::forward(&self.net, &self.params, work, (b, pass, b), &mut alone);
            self.stats.add(Self::output_delta(&self.net, work, b, b));
            Self::backward(&self.net, &self.params, work, (b, pass, b), &mut alone);
            optim::apply(
                &self.optimizer,
                lr,
                &self.roles,
                &mut self.params,
                &work.grads,
                &mut self.state,
            );
        }
    }

    /// Forward pass over the first `b` rows of `work.acts[0]`; leaves every layer's output in
    /// `work.acts` (the last one as probabilities or sigmoids).
    fn forward(
        net: &Network,
        params: &Params,
        work: &mut Workspace,
        (b, pass, batch_rows): (usize, Pass, usize),
        reduce: Reduce,
    ) {
        for (j, node) in net.nodes().iter().enumerate() {
            let (before, after) = work.acts.split_at_mut(j + 1);
            let measured = match (pass, node.statistics) {
                (Pass::Train { .. }, Some(t)) => {
                    let g = &mut work.grads.layers[t];
                    Some((g.w.view_mut(), g.b.view_mut()))
                }
                _ => None,
            };
            node.op().cpu_forward(Forward {
                j,
                pass,
                x: before[j].slice(s![..b, ..]),
                out: after[0].slice_mut(s![..b, ..]),
                weights: view(params, node.tensor),
                statistics: view(params, node.statistics),
                measured,
                act: node.act,
                keep: work.keep[j].slice_mut(s![..b, ..]),
                batch: &mut work.batch[j],
                sums: &mut work.sums[j],
                batch_rows,
                reduce: &mut *reduce,
                scratch: &mut work.scratch,
            });
        }
        if net.output() == Output::SigmoidMse {
            let out = work
                .acts
                .last_mut()
                .expect("an output")
                .slice_mut(s![..b, ..]);
            out.into_iter().for_each(|v| *v = sigmoid(*v));
        }
    }

    /// Turns the logits in the last activation into outputs, writes the output delta for the
    /// first `b` rows as part of a batch of `batch` rows, and returns their summed loss and
    /// correct count.
    fn output_delta(net: &Network, work: &mut Workspace, b: usize, batch: usize) -> Stats {
        let last = net.nodes().len();
        loss::output_delta(
            net.output(),
            work.acts[last].slice_mut(s![..b, ..]),
            work.targets.slice(s![..b, ..]),
            work.deltas[last - 1].slice_mut(s![..b, ..]),
            batch,
        )
    }

    /// Backprop from the output delta: every layer's weight and bias gradient, last layer
    /// first, each passing the gradient at its input down to the layer before it (through
    /// that layer's activation).
    fn backward(
        net: &Network,
        params: &Params,
        work: &mut Workspace,
        (b, pass, batch_rows): (usize, Pass, usize),
        reduce: Reduce,
    ) {
        let nodes = net.nodes();
        for (j, node) in nodes.iter().enumerate().rev() {
            let (lower, upper) = work.deltas.split_at_mut(j);
            let mut prev = lower.last_mut().map(|d| d.slice_mut(s![..b, ..]));
            let grads = node.tensor.map(|t| {
                let g = &mut work.grads.layers[t];
                (g.w.view_mut(), g.b.view_mut())
            });
            node.op().cpu_backward(Backward {
                j,
                pass,
                x: work.acts[j].slice(s![..b, ..]),
                delta: upper[0].slice(s![..b, ..]),
                weights: view(params, node.tensor),
                grads,
                input_grad: prev.as_mut().map(|p| p.view_mut()),
                keep: work.keep[j].slice(s![..b, ..]),
                batch: &work.batch[j],
                sums: &mut work.sums[j],
                reduce: &mut *reduce,
                batch_rows,
                scratch: &mut work.scratch,
            });
            if let (Some(prev), Some(act)) = (prev, j.checked_sub(1).and_then(|i| nodes[i].act)) {
                mul_derivative(prev, work.acts[j].slice(s![..b, ..]), act);
            }
        }
    }

    /// Loads the rows `indices` of `data` and their targets into the workspace.
    fn load_batch(work: &mut Workspace, data: &Dataset, indices: &[u32]) {
        let b = indices.len();
        gather::gather_inputs(data, indices, work.acts[0].slice_mut(s![..b, ..]));
        for (r, &i) in indices.iter().enumerate() {
            let mut row = work.targets.row_mut(r);
            let i = Sample::index_of(i, data.is_image());
            data.target_row(i, row.as_slice_mut().expect("contiguous rows"));
        }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn network(&self) -> &Network {
        &self.net
    }

    fn optimizer(&self) -> Optimizer {
        self.optimizer
    }

    fn set_train_data(&mut self, data: &Dataset) -> Result<()> {
        check_data(&self.net, data, "training set")?;
        self.train = Some(data.clone());
        Ok(())
    }

    fn train_batches(&mut self, order: &[u32], batch_size: usize, lr: f32) -> Result<()> {
        let data = self.train.as_ref().map(|d| (d.len(), d.is_image()));
        check_train_args(order, batch_size, data)?;
        // Taken out while the steps borrow `self`, put back after.
        let data = self.train.take().expect("checked above");
        let rows = batch_size.min(order.len());
        self.workspaces_for(rows);
        #[cfg(not(target_arch = "wasm32"))]
        if self.blocks(rows) > 1 {
            self.train_team(&data, order, batch_size, lr);
            self.train = Some(data);
            return Ok(());
        }
        self.train_serial(&data, order, batch_size, lr);
        self.train = Some(data);
        Ok(())
    }

    fn take_stats(&mut self) -> Result<Stats> {
        Ok(std::mem::take(&mut self.stats))
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Stats> {
        check_data(&self.net, data, "evaluation set")?;
        let rows = EVAL_CHUNK.min(data.len()).max(1);
        self.workspaces_for(rows);
        let indices: Vec<u32> = (0..data.len() as u32).collect();
        Ok(self.in_pool(|this| {
            let mut total = Stats::default();
            for chunk in indices.chunks(rows) {
                total.add(this.run_blocks(data, chunk));
            }
            total
        }))
    }

    fn predict(&mut self, inputs: ArrayView2<f32>) -> Result<Array2<f32>> {
        check_predict_inputs(&self.net, &inputs)?;
        let rows = EVAL_CHUNK.min(inputs.nrows()).max(1);
        self.workspaces(1, rows);
        let work = &mut self.work[0];
        let layers = self.net.nodes().len();
        let mut out = Array2::zeros((inputs.nrows(), self.net.outputs()));
        for (x, mut o) in inputs
            .axis_chunks_iter(Axis(0), rows)
            .zip(out.axis_chunks_iter_mut(Axis(0), rows))
        {
            let b = x.nrows();
            work.acts[0].slice_mut(s![..b, ..]).assign(&x);
            Self::forward(
                &self.net,
                &self.params,
                work,
                (b, Pass::Infer, b),
                &mut alone,
            );
            if self.net.output() == Output::SoftmaxCrossEntropy {
                for mut row in work.acts[layers].slice_mut(s![..b, ..]).rows_mut() {
                    let zeros = Array1::zeros(row.len());
                    loss::softmax_cross_entropy(row.view_mut(), zeros.view());
                }
            }
            o.assign(&work.acts[layers].slice(s![..b, ..]));
        }
        Ok(out)
    }

    fn params(&mut self) -> Result<Params> {
        Ok(self.params.clone())
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        params.check_shape(&self.net, "parameters")?;
        self.params = params.clone();
        Ok(())
    }

    fn optim_state(&mut self) -> Result<OptimState> {
        Ok(self.state.clone())
    }

    fn set_optim_state(&mut self, state: &OptimState) -> Result<()> {
        state.check(&self.optimizer, &self.net)?;
        self.state = state.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_batch_up_to_a_size_has_a_block_longer_than_the_workspaces() {
        // 784-2-10 (6,392 FLOPs a row) splits only from 939 rows: the 938-row tail of an
        // evaluation in chunks of 1,024 is one block, longer than the 512 of a split chunk.
        for (threads, flops_per_row, min_block_flops) in [
            (2, 6_392, MIN_BLOCK_FLOPS),
            (2, 229_120, MIN_BLOCK_FLOPS),
            (3, 544, 5_000),
            (4, 1, 0),
            (8, 100_000, MIN_BLOCK_FLOPS),
        ] {
            let split = Split {
                threads,
                flops_per_row,
                min_block_flops,
            };
            for rows in [1usize, 2, 7, 37, 64, 100, 1024] {
                let want = (1..=rows)
                    .map(|b| b.div_ceil(split.blocks(b)))
                    .max()
                    .unwrap();
                assert_eq!(split.max_block_rows(rows), want, "{split:?}, {rows} rows");
            }
        }
        let split = Split {
            threads: 2,
            flops_per_row: 6_392,
            min_block_flops: MIN_BLOCK_FLOPS,
        };
        assert_eq!((split.blocks(1024), split.max_block_rows(1024)), (2, 938));
    }
}
