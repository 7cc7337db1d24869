//! Datasets: inputs kept compact (MNIST as u8 pixels) and converted per batch, targets as class
//! labels or real values, and the seeded batch order.

pub mod download;
pub mod idx;
mod locate;

pub use locate::{DatasetKind, MnistFiles, locate};

use ndarray::{ArrayViewMut2, s};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::error::{Error, Result};

/// Inputs, one row of `features` values per sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Inputs {
    /// Bytes (pixels), mapped to `x = byte · scale + shift` when a batch is built.
    U8(Vec<u8>),
    /// Real values, mapped the same way (scale 1, shift 0 leaves them as they are).
    F32(Vec<f32>),
}

/// What the network should output for each sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// A class index `< classes` per sample; one-hot for the loss.
    Labels { labels: Vec<u8>, classes: usize },
    /// `width` real values per sample.
    Values { values: Vec<f32>, width: usize },
}

impl Targets {
    /// Values per sample (classes for labels).
    pub fn width(&self) -> usize {
        match self {
            Targets::Labels { classes, .. } => *classes,
            Targets::Values { width, .. } => *width,
        }
    }
}

/// The affine map from stored input values to network inputs: `x = v · scale + shift`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub scale: f32,
    pub shift: f32,
}

impl Normalize {
    /// Leaves values unchanged.
    pub const IDENTITY: Normalize = Normalize {
        scale: 1.0,
        shift: 0.0,
    };
    /// Bytes to [0, 1] (the tutorials' `x / 255`).
    pub const UNIT: Normalize = Normalize {
        scale: 1.0 / 255.0,
        shift: 0.0,
    };

    /// Maps bytes to zero mean and unit variance over the whole set (`(v - mean) / std`).
    pub fn standardize(pixels: &[u8]) -> Normalize {
        let n = pixels.len().max(1) as f64;
        let mean = pixels.iter().map(|&p| p as f64).sum::<f64>() / n;
        let var = pixels
            .iter()
            .map(|&p| (p as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let std = var.sqrt().max(1e-12);
        Normalize {
            scale: (1.0 / std) as f32,
            shift: (-mean / std) as f32,
        }
    }
}

/// A set of samples and their targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    len: usize,
    features: usize,
    inputs: Inputs,
    targets: Targets,
    /// Applied to inputs when batches are built.
    pub normalize: Normalize,
    /// `(rows, cols)` when each sample is an image; needed to shift it (augmentation).
    pub image: Option<(usize, usize)>,
}

impl Dataset {
    /// Builds a dataset, checking that inputs and targets agree in count and range.
    pub fn new(
        features: usize,
        inputs: Inputs,
        targets: Targets,
        normalize: Normalize,
    ) -> Result<Self> {
        let stored = match &inputs {
            Inputs::U8(v) => v.len(),
            Inputs::F32(v) => v.len(),
        };
        if features == 0 || stored % features != 0 {
            return Err(Error::Shape {
                what: "dataset inputs".into(),
                expected: format!("a positive multiple of {features} values"),
                got: format!("{stored} values"),
            });
        }
        let len = stored / features;
        let (target_len, width) = match &targets {
            Targets::Labels { labels, classes } => {
                if let Some((i, &l)) = labels
                    .iter()
                    .enumerate()
                    .find(|(_, l)| **l as usize >= *classes)
                {
                    return Err(Error::arg(
                        "label",
                        format!("labels below {classes}"),
                        format!("{l} at index {i}"),
                    ));
                }
                (labels.len(), 1)
            }
            Targets::Values { values, width } => (values.len(), (*width).max(1)),
        };
        if target_len != len * width {
            return Err(Error::Shape {
                what: "dataset targets".into(),
                expected: format!("{} values ({len} samples × {width})", len * width),
                got: format!("{target_len} values"),
            });
        }
        Ok(Dataset {
            len,
            features,
            inputs,
            targets,
            normalize,
            image: None,
        })
    }

    /// Real-valued inputs and targets given as rows (the seed exercises).
    pub fn from_rows(inputs: &[Vec<f32>], targets: &[Vec<f32>]) -> Result<Self> {
        let features = inputs.first().map_or(0, Vec::len);
        let width = targets.first().map_or(0, Vec::len);
        if inputs.iter().any(|r| r.len() != features) || targets.iter().any(|r| r.len() != width) {
            return Err(Error::Shape {
                what: "dataset rows".into(),
                expected: "rows of equal length".into(),
                got: "ragged rows".into(),
            });
        }
        Dataset::new(
            features,
            Inputs::F32(inputs.concat()),
            Targets::Values {
                values: targets.concat(),
                width,
            },
            Normalize::IDENTITY,
        )
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Values per sample.
    pub fn features(&self) -> usize {
        self.features
    }

    /// The stored inputs.
    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The first `n` samples (for quick runs and tests).
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.len);
        let f = self.features;
        let inputs = match &self.inputs {
            Inputs::U8(v) => Inputs::U8(v[..n * f].to_vec()),
            Inputs::F32(v) => Inputs::F32(v[..n * f].to_vec()),
        };
        let targets = match &self.targets {
            Targets::Labels { labels, classes } => Targets::Labels {
                labels: labels[..n].to_vec(),
                classes: *classes,
            },
            Targets::Values { values, width } => Targets::Values {
                values: values[..n * width].to_vec(),
                width: *width,
            },
        };
        Dataset {
            len: n,
            features: f,
            inputs,
            targets,
            normalize: self.normalize,
            image: self.image,
        }
    }

    /// Writes the normalised inputs of the samples `order` names into the rows of `x`. An
    /// entry may carry a shift (see [`Sample`]): the image moves by `(dx, dy)` pixels and the
    /// uncovered border reads as a 0 byte.
    pub fn gather_inputs(&self, order: &[u32], mut x: ArrayViewMut2<f32>) {
        let f = self.features;
        let Normalize { scale, shift } = self.normalize;
        // Stored values `src` of one sample into `out`, mapped and vectorised.
        let copy = |src: std::ops::Range<usize>, out: &mut [f32]| match &self.inputs {
            Inputs::U8(v) => convert(&v[src], out, |p| p as f32, scale, shift),
            Inputs::F32(v) => convert(&v[src], out, |p| p, scale, shift),
        };
        for (r, &entry) in order.iter().enumerate() {
            let Sample { index, dx, dy } = Sample::decode(entry);
            let base = index as usize * f;
            let mut row = x.slice_mut(s![r, ..]);
            let row = row.as_slice_mut().expect("batch rows are contiguous");
            match self.image {
                Some((h, w)) if (dx, dy) != (0, 0) => {
                    // Output pixel (y, x) shows source pixel (y - dy, x - dx); outside the
                    // source it reads as a 0 byte, which maps to `shift`. Row by row: the
                    // covered columns are one contiguous copy, the rest a fill.
                    let (dx, dy) = (dx as isize, dy as isize);
                    let cols = w.saturating_sub(dx.unsigned_abs());
                    let (out_x, src_x) = if dx >= 0 {
                        (dx as usize, 0)
                    } else {
                        (0, (-dx) as usize)
                    };
                    for (y, out) in row.chunks_exact_mut(w).enumerate().take(h) {
                        let src_y = y as isize - dy;
                        if src_y < 0 || src_y >= h as isize || cols == 0 {
                            out.fill(shift);
                            continue;
                        }
                        let src = base + src_y as usize * w + src_x;
                        out[..out_x].fill(shift);
                        copy(src..src + cols, &mut out[out_x..out_x + cols]);
                        out[out_x + cols..].fill(shift);
                    }
                }
                _ => copy(base..base + f, row),
            }
        }
    }

    /// The target row of sample `i` as values (one-hot for labels), written into `out`.
    pub fn target_row(&self, i: usize, out: &mut [f32]) {
        match &self.targets {
            Targets::Labels { labels, .. } => {
                out.fill(0.0);
                out[labels[i] as usize] = 1.0;
            }
            Targets::Values { values, width } => {
                out.copy_from_slice(&values[i * width..(i + 1) * width])
            }
        }
    }
}

/// `out[i] = to_f32(src[i]) · scale + shift`, over equal-length slices so that it vectorises;
/// compiled for AVX-512 and AVX2 too, chosen at run time.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl",
    "x86_64+avx2+fma"
))]
fn convert<T: Copy>(src: &[T], out: &mut [f32], to_f32: impl Fn(T) -> f32, scale: f32, shift: f32) {
    for (o, &p) in out.iter_mut().zip(src) {
        *o = to_f32(p) * scale + shift;
    }
}

/// One entry of a batch order: a sample index and an optional shift of its image, packed in a
/// `u32` so that the order stays one flat index buffer on every backend: bits 0–23 the index,
/// bits 24–27 `dx` and 28–31 `dy` as 4-bit two's-complement numbers (−8..=7). A plain index
/// is an entry with no shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub index: u32,
    pub dx: i8,
    pub dy: i8,
}

impl Sample {
    /// Largest sample index an entry can hold.
    pub const MAX_INDEX: u32 = (1 << 24) - 1;

    /// Packs the entry (`dx`, `dy` in −8..=7, `index` ≤ `MAX_INDEX`).
    pub fn encode(self) -> u32 {
        debug_assert!(self.index <= Self::MAX_INDEX);
        debug_assert!((-8..=7).contains(&self.dx) && (-8..=7).contains(&self.dy));
        self.index | ((self.dx as u32 & 0xF) << 24) | ((self.dy as u32 & 0xF) << 28)
    }

    /// Unpacks an entry.
    pub fn decode(entry: u32) -> Sample {
        let nibble = |n: u32| (((n & 0xF) as i8) << 4) >> 4; // sign-extend 4 bits
        Sample {
            index: entry & Self::MAX_INDEX,
            dx: nibble(entry >> 24),
            dy: nibble(entry >> 28),
        }
    }
}

/// Adds a random shift of at most `max_shift` pixels in each direction to every entry of
/// `order`, drawn from `(seed, epoch)` (augmentation by translation).
pub fn add_shifts(order: &mut [u32], max_shift: u8, seed: u64, epoch: u64) {
    let m = max_shift.min(7) as i8;
    let mut rng = Pcg64Mcg::seed_from_u64(!seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
    for entry in order.iter_mut() {
        let index = Sample::decode(*entry).index;
        let dx = rng.random_range(-m..=m);
        let dy = rng.random_range(-m..=m);
        *entry = Sample { index, dx, dy }.encode();
    }
}

/// The order in which an epoch visits the samples: a permutation of `0..len` drawn from
/// `(seed, epoch)`, so that any epoch can be reproduced (and resumed) on its own.
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(1000, 7, 3);
        assert_eq!(a, epoch_order(1000, 7, 3));
        assert_ne!(a, epoch_order(1000, 7, 4));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
    }

    #[test]
    fn sample_entries_round_trip() {
        for index in [0, 1, 59_999, Sample::MAX_INDEX] {
            for dx in -8..=7 {
                for dy in -8..=7 {
                    let s = Sample { index, dx, dy };
                    assert_eq!(Sample::decode(s.encode()), s);
                }
            }
        }
        assert_eq!(
            Sample::decode(1234),
            Sample {
                index: 1234,
                dx: 0,
                dy: 0
            }
        );
    }

    #[test]
    fn shifted_gather_moves_the_image() {
        // A 3x3 image with one lit pixel in the centre, shifted right by 1 and up by 1.
        let mut px = vec![0u8; 9];
        px[4] = 255;
        let mut d = Dataset::new(
            9,
            Inputs::U8(px),
            Targets::Labels {
                labels: vec![0],
                classes: 2,
            },
            Normalize::UNIT,
        )
        .unwrap();
        d.image = Some((3, 3));
        let mut x = ndarray::Array2::zeros((1, 9));
        d.gather_inputs(
            &[Sample {
                index: 0,
                dx: 1,
                dy: -1,
            }
            .encode()],
            x.view_mut(),
        );
        let lit: Vec<usize> = x
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.5)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(lit, vec![2]); // row 0, column 2
    }

    #[test]
    fn labels_out_of_range_are_rejected() {
        let d = Dataset::new(
            2,
            Inputs::U8(vec![0; 4]),
            Targets::Labels {
                labels: vec![1, 3],
                classes: 3,
            },
            Normalize::UNIT,
        );
        assert!(d.is_err());
    }
}
