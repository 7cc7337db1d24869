//! The training loop as a sequence of ticks, free of any waiting, so that the native loop
//! ([`super::train_with`], which blocks) and the browser's (which awaits) drive the same
//! steps: the same checks, batch orders, learning rates, divergence test and events.

use std::time::Duration;

use web_time::Instant;

use super::order::{add_shifts, epoch_order};
use super::{EpochReport, Event, RunReport, TrainConfig};
use crate::backend::{Backend, Stats};
use crate::data::Dataset;
use crate::data::Sample;
use crate::error::{Error, Result};

/// One call into the backend: which samples, at which rate, and whether it ends an epoch
/// (then the caller waits for all stats and evaluates).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    /// 0-based epoch.
    pub epoch: u64,
    pub lr: f32,
    /// The epoch's last tick.
    pub last: bool,
    start: usize,
    end: usize,
}

/// A run in progress: feed it the stats of each [`Tick`] it hands out.
#[derive(Debug)]
pub struct Run {
    cfg: TrainConfig,
    samples: usize,
    epoch: u64,
    /// The current epoch's order; empty between epochs.
    order: Vec<u32>,
    next: usize,
    started: Instant,
    busy: Duration,
    stats: Stats,
    report: RunReport,
}

impl Run {
    /// Checks the run against the backend and the data, from epoch `start_epoch` (0 for a
    /// fresh run) to `cfg.epochs`. The caller then hands `train` to the backend
    /// ([`Backend::set_train_data`]) and clears its counters ([`Backend::take_stats`]).
    pub fn new(
        backend: &dyn Backend,
        train: &Dataset,
        cfg: &TrainConfig,
        start_epoch: u64,
    ) -> Result<Run> {
        cfg.validate()?;
        backend.optimizer().validate()?;
        // The batch's workspaces are allocated on the first step: refuse one that cannot fit
        // now, with the sizes, rather than abort there. The parameters and optimizer state are
        // held already, so only the workspaces count (one thread's share: a lower bound).
        crate::memory::check_workspaces(backend.network(), cfg.batch_size)?;
        if train.is_empty() {
            return Err(Error::arg("training set", "at least one sample", 0));
        }
        // An order's entries are u32: an image's index shares its entry with the image's
        // shift (24 bits), any other sample's is the whole entry.
        let most = if train.is_image() {
            (Sample::MAX_INDEX as usize + 1, "at most 2^24 images")
        } else {
            (u32::MAX as usize, "fewer than 2^32 samples")
        };
        if train.len() > most.0 {
            return Err(Error::arg("training set", most.1, train.len()));
        }
        if cfg.augment > 0 && train.image.is_none() {
            return Err(Error::arg(
                "augment",
                "a dataset of images",
                "inputs without an image shape",
            ));
        }
        Ok(Run {
            cfg: cfg.clone(),
            samples: train.len(),
            epoch: start_epoch,
            order: Vec::new(),
            next: 0,
            started: Instant::now(),
            busy: Duration::ZERO,
            stats: Stats::default(),
            report: RunReport::default(),
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Epochs finished, counting those of the run this one resumes.
    pub fn epochs_done(&self) -> u64 {
        self.epoch
    }

    /// Whether every epoch is done.
    pub fn is_finished(&self) -> bool {
        self.epoch >= self.cfg.epochs
    }

    /// The epochs finished by this run so far.
    pub fn report(&self) -> &RunReport {
        &self.report
    }

    /// The next batches to train, or `None` when the run is done. An epoch's first tick
    /// draws its order and starts its clock.
    pub fn next_tick(&mut self) -> Option<Tick> {
        if self.is_finished() {
            return None;
        }
        if self.order.is_empty() {
            self.order = epoch_order(self.samples, self.cfg.seed, self.epoch);
            if self.cfg.augment > 0 {
                add_shifts(&mut self.order, self.cfg.augment, self.cfg.seed, self.epoch);
            }
            self.next = 0;
            self.stats = Stats::default();
            self.started = Instant::now();
            self.busy = Duration::ZERO;
        }
        let start = self.next;
        // The first epoch's first ticks grow from one batch (1, 2, 4, …: each as long as all
        // before it) to `batches_per_tick`, so that the first loss comes back one step after
        // training starts, not a whole tick after: the GPU's stats trail by ticks, and in a
        // browser the first steps also wait for their pipelines to compile. The ticks (and so
        // the learning rates) follow from the position alone, so a resumed run's match.
        let batches = if self.epoch == 0 {
            self.cfg
                .batches_per_tick
                .min(start / self.cfg.batch_size + 1)
        } else {
            self.cfg.batches_per_tick
        };
        let per_tick = batches * self.cfg.batch_size;
        let end = (start + per_tick).min(self.order.len());
        let steps_per_epoch = self.samples.div_ceil(self.cfg.batch_size);
        let step = self.epoch as usize * steps_per_epoch + start / self.cfg.batch_size;
        let progress = step as f64 / (self.cfg.epochs as usize * steps_per_epoch) as f64;
        Some(Tick {
            epoch: self.epoch,
            lr: self.cfg.schedule.rate(self.cfg.lr, progress),
            last: end == self.order.len(),
            start,
            end,
        })
    }

    /// The samples of `tick`, for [`Backend::train_batches`].
    pub fn samples(&self, tick: &Tick) -> &[u32] {
        &self.order[tick.start..tick.end]
    }

    /// Takes the stats that came back after `tick` was handed to the backend (for the last
    /// tick of an epoch: all of the epoch's remaining stats) and reports the progress.
    pub fn record(&mut self, tick: &Tick, stats: Stats) -> Result<Event> {
        // Every tick's stats are read anyway, so a NaN or infinite loss stops the run as soon
        // as it arrives (on the GPU, up to the stats ring's lag after the steps that produced
        // it), before a checkpoint could save diverged parameters over a good one. Stats
        // arrive in order, so the samples counted so far say which steps the bad ones are.
        if !stats.loss_sum.is_finite() {
            let seen = self.stats.samples as usize;
            return Err(Error::Diverged {
                epoch: tick.epoch + 1,
                first_step: seen / self.cfg.batch_size + 1,
                last_step: (seen + stats.samples as usize).div_ceil(self.cfg.batch_size),
                lr: tick.lr,
                loss: stats.loss_sum,
            });
        }
        self.stats.add(stats);
        self.next = tick.end;
        self.busy = self.started.elapsed();
        Ok(Event::Progress {
            epoch: tick.epoch + 1,
            done: tick.end,
            total: self.samples,
            stats,
            lr: tick.lr,
            samples_per_second: tick.end as f64 / self.busy.as_secs_f64(),
        })
    }

    /// Closes the epoch whose last tick was recorded, with the test set's stats if one was
    /// evaluated.
    pub fn finish_epoch(&mut self, test: Option<Stats>) -> EpochReport {
        let report = EpochReport {
            epoch: self.epoch + 1,
            train: self.stats,
            test,
            seconds: self.busy.as_secs_f64(),
        };
        self.report.epochs.push(report.clone());
        self.epoch += 1;
        self.order.clear();
        report
    }
}
