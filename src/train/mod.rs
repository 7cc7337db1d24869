//! The training loop over any [`Backend`]: epochs of seeded batch orders, a learning-rate
//! schedule, progress events, and the timing that the benchmarks report.

mod order;
mod recipe;
mod run;

pub use order::{add_shifts, epoch_order};
pub use recipe::{Recipe, default_cnn_lr, default_lr, default_weight_decay};
pub use run::{Run, Tick};

use crate::backend::{Backend, Stats};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// How the learning rate changes over the run.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Schedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Half a cosine from `lr` down to `lr · floor` over all epochs of the run.
    Cosine { floor: f32 },
}

impl Schedule {
    /// The rate at `progress` ∈ [0, 1] of the run.
    pub fn rate(&self, lr: f32, progress: f64) -> f32 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Cosine { floor } => {
                let c = 0.5 * (1.0 + (std::f64::consts::PI * progress.clamp(0.0, 1.0)).cos());
                (lr as f64 * (floor as f64 + (1.0 - floor as f64) * c)) as f32
            }
        }
    }
}

/// What to train for.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Epochs to run in total (a resumed run counts those already done).
    pub epochs: u64,
    pub batch_size: usize,
    pub lr: f32,
    pub schedule: Schedule,
    /// Seeds the batch order of every epoch.
    pub seed: u64,
    /// Batches per call into the backend, and so per progress event and per stats read-back
    /// (asynchronous on the GPU: the loop waits only at an epoch's end). The first epoch's first
    /// ticks are shorter (1, 2, 4, … batches), so that the first loss is back after one step.
    pub batches_per_tick: usize,
    /// Shift each training image by up to this many pixels in x and y, drawn anew every
    /// epoch (0: no augmentation). Needs image-shaped inputs.
    pub augment: u8,
}

impl TrainConfig {
    /// Checks the ranges a run needs.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::arg("batch size", "at least 1", self.batch_size));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::arg("learning rate", "a positive number", self.lr));
        }
        if self.batches_per_tick == 0 {
            return Err(Error::arg("batches per tick", "at least 1", 0));
        }
        if self.augment > 7 {
            return Err(Error::arg(
                "augment",
                "a shift of 0 to 7 pixels",
                self.augment,
            ));
        }
        Ok(())
    }
}

/// What the loop reports as it goes.
#[derive(Clone, Debug)]
pub enum Event {
    /// Some batches are done.
    Progress {
        epoch: u64,
        /// Samples handed to the backend in this epoch (the GPU may still be running some).
        done: usize,
        total: usize,
        /// Loss and accuracy that came back since the last event: on the GPU, of batches up to
        /// a few ticks earlier ([`Backend::poll_stats`]). The epoch's last event carries all
        /// the rest, so an epoch's events add up to its totals.
        stats: Stats,
        lr: f32,
        /// Training samples per second in this epoch so far.
        samples_per_second: f64,
    },
    /// An epoch is done.
    Epoch(EpochReport),
}

/// One finished epoch.
#[derive(Clone, Debug)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: u64,
    /// Mean of the per-batch losses and accuracies seen during the epoch.
    pub train: Stats,
    /// The test set after the epoch, if one was given.
    pub test: Option<Stats>,
    /// Training time of the epoch (order, steps, read-backs, the wait for the GPU to finish the
    /// epoch's steps; not the evaluation).
    pub seconds: f64,
}

/// The whole run.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub epochs: Vec<EpochReport>,
}

impl RunReport {
    /// Training seconds summed over epochs.
    pub fn train_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds).sum()
    }

    /// Median over epochs of samples per second.
    pub fn median_samples_per_second(&self, samples: usize) -> f64 {
        let mut rates: Vec<f64> = self
            .epochs
            .iter()
            .map(|e| samples as f64 / e.seconds)
            .collect();
        rates.sort_by(f64::total_cmp);
        match rates.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => rates[n / 2],
            n => 0.5 * (rates[n / 2 - 1] + rates[n / 2]),
        }
    }
}

/// Trains `backend` on `train` from epoch `start_epoch` (0 for a fresh run) to `cfg.epochs`,
/// evaluating on `test` after each epoch, and calls `on_event` as it goes.
pub fn train(
    backend: &mut dyn Backend,
    train: &Dataset,
    test: Option<&Dataset>,
    cfg: &TrainConfig,
    start_epoch: u64,
    on_event: impl FnMut(&Event),
) -> Result<RunReport> {
    train_with(backend, train, test, cfg, start_epoch, on_event, |_, _| {
        Ok(())
    })
}

/// [`train`], calling `after_epoch(backend, epochs_done)` at the end of every epoch (after the
/// evaluation), where a checkpoint can be saved. Because the batch order and the schedule
/// depend only on the seed, the epoch and the step, a run resumed from such a checkpoint with
/// the same configuration continues exactly as the uninterrupted run would have.
pub fn train_with(
    backend: &mut dyn Backend,
    train: &Dataset,
    test: Option<&Dataset>,
    cfg: &TrainConfig,
    start_epoch: u64,
    mut on_event: impl FnMut(&Event),
    mut after_epoch: impl FnMut(&mut dyn Backend, u64) -> Result<()>,
) -> Result<RunReport> {
    let mut run = Run::new(backend, train, cfg, start_epoch)?;
    backend.set_train_data(train)?;
    backend.take_stats()?; // start from clean counters
    while let Some(tick) = run.next_tick() {
        backend.train_batches(run.samples(&tick), cfg.batch_size, tick.lr)?;
        // Mid-epoch, only what has arrived: the GPU is never drained while the next steps are
        // recorded. The last tick waits for the rest, so every sample is counted once.
        let stats = if tick.last {
            backend.take_stats()?
        } else {
            backend.poll_stats()?
        };
        on_event(&run.record(&tick, stats)?);
        if tick.last {
            let test = test.map(|t| backend.evaluate(t)).transpose()?;
            let epoch = run.finish_epoch(test);
            on_event(&Event::Epoch(epoch));
            after_epoch(backend, run.epochs_done())?;
        }
    }
    Ok(run.report().clone())
}
