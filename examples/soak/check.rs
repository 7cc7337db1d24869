//! The soak's verdict on one series of per-epoch samples: after the first (settling) epochs,
//! does it ever rise above its baseline by more than its tolerance? Pure functions on numbers,
//! so that `tests/soak.rs` can feed them synthetic series (a planted leak, allocator noise)
//! as well as run the whole example.

use std::fmt;

/// One sample of a series: the epoch (1-based, counting a resumed run's earlier epochs) and
/// the value (bytes).
pub type Sample = (u64, u64);

/// A series rose above its baseline by more than its tolerance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Growth {
    /// What grew, e.g. "RSS" or "GPU buffer bytes".
    pub series: String,
    pub baseline_epoch: u64,
    pub baseline: u64,
    /// The first epoch over the tolerance, and its value.
    pub epoch: u64,
    pub value: u64,
    pub tolerance: u64,
}

impl fmt::Display for Growth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} grew by {} from epoch {} ({}) to epoch {} ({}), over its tolerance of {}",
            self.series,
            bytes(self.value - self.baseline),
            self.baseline_epoch,
            bytes(self.baseline),
            self.epoch,
            bytes(self.value),
            bytes(self.tolerance)
        )
    }
}

/// What a flat series showed: its baseline and its largest rise above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flat {
    pub baseline_epoch: u64,
    pub baseline: u64,
    /// The largest value after the baseline minus the baseline (0 if never above it).
    pub max_rise: u64,
    pub max_rise_epoch: u64,
}

/// Checks that `samples` (in epoch order) never rise more than `tolerance` above their value
/// at epoch `settle` (the first sample at or after it: the baseline). Samples before it are
/// the warm-up (allocator arenas, pipelines, the kept evaluation set) and are not judged.
/// `None` when no sample reaches `settle` (too short a run to judge).
pub fn check_flat(
    series: &str,
    samples: &[Sample],
    settle: u64,
    tolerance: u64,
) -> Option<Result<Flat, Growth>> {
    let start = samples.iter().position(|&(epoch, _)| epoch >= settle)?;
    let (baseline_epoch, baseline) = samples[start];
    let mut flat = Flat {
        baseline_epoch,
        baseline,
        max_rise: 0,
        max_rise_epoch: baseline_epoch,
    };
    for &(epoch, value) in &samples[start + 1..] {
        let rise = value.saturating_sub(baseline);
        if rise > tolerance {
            return Some(Err(Growth {
                series: series.to_string(),
                baseline_epoch,
                baseline,
                epoch,
                value,
                tolerance,
            }));
        }
        if rise > flat.max_rise {
            flat.max_rise = rise;
            flat.max_rise_epoch = epoch;
        }
    }
    Some(Ok(flat))
}

/// A resumed run's footprint differs from the uninterrupted one's by more than the tolerance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub series: String,
    pub before_epoch: u64,
    pub before: u64,
    pub after_epoch: u64,
    pub after: u64,
    pub tolerance: u64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sign, by) = if self.after >= self.before {
            ("+", self.after - self.before)
        } else {
            ("-", self.before - self.after)
        };
        write!(
            f,
            "{} after the resume does not match: epoch {} had {}, epoch {} (resumed) has {} \
             ({sign}{}), over its tolerance of {}",
            self.series,
            self.before_epoch,
            bytes(self.before),
            self.after_epoch,
            bytes(self.after),
            bytes(by),
            bytes(self.tolerance)
        )
    }
}

/// Checks that the resumed run's settled sample `after` is within `tolerance` of the
/// uninterrupted run's `before`, either way: the same network and data must hold the same
/// footprint whichever process state they start from.
pub fn check_resume(
    series: &str,
    before: Sample,
    after: Sample,
    tolerance: u64,
) -> Result<u64, Mismatch> {
    let diff = before.1.abs_diff(after.1);
    if diff > tolerance {
        return Err(Mismatch {
            series: series.to_string(),
            before_epoch: before.0,
            before: before.1,
            after_epoch: after.0,
            after: after.1,
            tolerance,
        });
    }
    Ok(diff)
}

/// Bytes for people: `812 B`, `3.4 KiB`, `12.35 MiB`.
pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let x = n as f64;
    if x < KIB {
        format!("{n} B")
    } else if x < KIB * KIB {
        format!("{:.1} KiB", x / KIB)
    } else {
        format!("{:.2} MiB", x / (KIB * KIB))
    }
}
