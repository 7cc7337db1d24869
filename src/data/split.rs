//! Holding out part of a user's data for testing, and the statistics that normalise inputs,
//! computed on the training part only.
//!
//! The split is seeded and stratified: each class gives the same fraction of its samples
//! (rounded, at least one from every class of two or more samples), so that a rare class is
//! in both parts. Which samples go is drawn from the seed alone: the same seed, data and
//! fraction give the same split on every machine and in the browser.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;

use super::Normalize;
use crate::error::{Error, Result};
use crate::shape::Chw;

/// Sample indices of the two parts, each in increasing order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Splits `labels` (class indices below `classes`) into a training part and a test part of
/// about `fraction` of each class, drawn from `seed`.
pub fn stratified(labels: &[u32], classes: usize, fraction: f64, seed: u64) -> Result<Split> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::arg(
            "validation fraction",
            "a number between 0 and 1 (exclusive)",
            fraction,
        ));
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        let Some(members) = by_class.get_mut(l as usize) else {
            return Err(Error::arg(
                "label",
                format!("labels below {classes}"),
                format!("{l} at sample {i}"),
            ));
        };
        members.push(i);
    }
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0x5EED_5B1A_7000_0001);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for members in &mut by_class {
        members.shuffle(&mut rng);
        let n = members.len();
        let held = if n >= 2 {
            ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
        } else {
            0
        };
        test.extend_from_slice(&members[..held]);
        train.extend_from_slice(&members[held..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok(Split { train, test })
}

/// The rows `indices` of a row-major matrix of `width` values per row.
pub fn take_rows<T: Copy>(values: &[T], width: usize, indices: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(indices.len() * width);
    for &i in indices {
        out.extend_from_slice(&values[i * width..(i + 1) * width]);
    }
    out
}

/// The map `x = (v - mean) / std` for values of this mean and standard deviation; a constant
/// (std 0) is only centred, so that no input becomes infinite.
pub fn standardizing(mean: f64, std: f64) -> Normalize {
    let std = if std > 1e-12 { std } else { 1.0 };
    Normalize {
        scale: (1.0 / std) as f32,
        shift: (-mean / std) as f32,
    }
}

/// Mean and standard deviation (population) of `values`, skipping NaN, in f64.
fn moments(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut n, mut sum, mut sq) = (0u64, 0.0f64, 0.0f64);
    for v in values.filter(|v| !v.is_nan()) {
        n += 1;
        sum += v;
        sq += v * v;
    }
    if n == 0 {
        return (0.0, 1.0);
    }
    let mean = sum / n as f64;
    ((mean), (sq / n as f64 - mean * mean).max(0.0).sqrt())
}

/// One standardising map per channel of `samples` (each `image.len()` values, channel-major),
/// from their values: per-channel normalisation of images.
pub fn channel_maps<T: Copy + Into<f64>>(samples: &[T], image: Chw) -> Vec<Normalize> {
    let (plane, len) = (image.plane(), image.len());
    (0..image.c)
        .map(|c| {
            let values = samples
                .chunks_exact(len)
                .flat_map(|s| s[c * plane..(c + 1) * plane].iter().map(|&v| v.into()));
            let (mean, std) = moments(values);
            standardizing(mean, std)
        })
        .collect()
}

/// Each column's mean over the rows of `values` (`width` per row), NaN skipped.
pub fn column_means(values: &[f32], width: usize) -> Vec<f64> {
    (0..width)
        .map(|j| moments(values.iter().skip(j).step_by(width).map(|&v| v as f64)).0)
        .collect()
}

/// One standardising map per column of `values` (`width` per row), NaN skipped; columns whose
/// flag in `keep` is set get the identity map (one-hot indicators stay 0 and 1).
pub fn feature_maps(values: &[f32], width: usize, keep: &[bool]) -> Vec<Normalize> {
    (0..width)
        .map(|j| {
            if keep.get(j).copied().unwrap_or(false) {
                return Normalize::IDENTITY;
            }
            let (mean, std) = moments(values.iter().skip(j).step_by(width).map(|&v| v as f64));
            standardizing(mean, std)
        })
        .collect()
}

/// Applies `maps[j]` to column `j` of `values` in place.
pub fn apply_feature_maps(values: &mut [f32], maps: &[Normalize]) {
    let width = maps.len().max(1);
    for row in values.chunks_exact_mut(width) {
        for (v, m) in row.iter_mut().zip(maps) {
            *v = *v * m.scale + m.shift;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_stratified_seeded_and_complete() {
        // 3 classes of 50, 30 and 3 samples.
        let labels: Vec<u32> = (0..83)
            .map(|i| {
                if i < 50 {
                    0
                } else if i < 80 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let s = stratified(&labels, 3, 0.2, 7).unwrap();
        assert_eq!(s, stratified(&labels, 3, 0.2, 7).unwrap());
        assert_ne!(s, stratified(&labels, 3, 0.2, 8).unwrap());
        let count = |part: &[usize], c: u32| part.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(
            [count(&s.test, 0), count(&s.test, 1), count(&s.test, 2)],
            [10, 6, 1]
        );
        let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..83).collect::<Vec<_>>());
        assert!(stratified(&labels, 3, 1.0, 7).is_err());
        assert!(
            stratified(&labels, 2, 0.2, 7).is_err(),
            "a label past the classes"
        );
    }

    #[test]
    fn maps_standardise_per_channel_and_per_feature() {
        // Two 1×2 samples of two channels: channel 0 holds 0 and 2, channel 1 is constant 5.
        let samples = [0u8, 2, 5, 5, 2, 0, 5, 5];
        let maps = channel_maps(&samples, Chw::new(2, 1, 2));
        assert_eq!(maps[0], standardizing(1.0, 1.0));
        assert_eq!(
            maps[1],
            standardizing(5.0, 0.0),
            "a constant channel is centred"
        );
        let values = [1.0f32, 10.0, f32::NAN, 20.0, 3.0, 30.0];
        let maps = feature_maps(&values, 2, &[false, true]);
        assert_eq!(maps[0], standardizing(2.0, 1.0), "NaN skipped");
        assert_eq!(maps[1], Normalize::IDENTITY);
        assert_eq!(column_means(&values, 2), vec![2.0, 20.0]);
    }
}
