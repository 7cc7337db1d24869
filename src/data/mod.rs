//! Datasets: inputs kept compact (pixels as u8) and converted per batch (see
//! [`crate::ops::gather`]), targets as class labels or real values; and where they come from:
//! IDX files ([`idx`]), picture folders ([`folder`], [`picture`]), CSV/TSV tables ([`csv`]) and
//! NumPy files ([`npy`], [`arrays`]), turned into training and test sets by [`prepare`] (with
//! [`split`]). Every reader has a form over bytes, which a browser page uses.

// Downloading and finding files on disk are native-only: in a browser the page fetches the
// files and hands their bytes to `idx::load_bytes`.
pub mod arrays;
pub mod csv;
#[cfg(not(target_arch = "wasm32"))]
pub mod download;
pub mod folder;
pub mod idx;
pub mod intake;
mod kind;
#[cfg(not(target_arch = "wasm32"))]
mod locate;
pub mod npy;
pub mod picture;
pub mod prepare;
mod sample;
pub mod split;

pub use kind::DatasetKind;
#[cfg(not(target_arch = "wasm32"))]
pub use locate::{MnistFiles, locate};
pub use sample::Sample;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::shape::Chw;

/// Hands out dataset identities; never reused, so a dropped dataset's id names no other.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

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
    Labels { labels: Vec<u32>, classes: usize },
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

/// The most image channels that can each have their own input map: grey, RGB and RGBA.
pub const MAX_CHANNEL_MAPS: usize = 4;

/// The map of each channel (see [`Dataset::gather_maps`]) from a dataset's `normalize` and
/// per-channel `maps`.
pub fn gather_maps(normalize: Normalize, maps: &[Normalize]) -> [Normalize; MAX_CHANNEL_MAPS] {
    std::array::from_fn(|c| match maps {
        [] => normalize,
        _ => maps[c.min(maps.len() - 1)],
    })
}

/// A set of samples and their targets. Equality compares contents, not [`Dataset::id`].
#[derive(Clone, Debug)]
pub struct Dataset {
    /// See [`Dataset::id`].
    id: u64,
    len: usize,
    features: usize,
    inputs: Inputs,
    targets: Targets,
    /// Applied to inputs when batches are built.
    pub normalize: Normalize,
    /// One map per image channel, used instead of `normalize` when not empty (see
    /// [`Dataset::set_channel_maps`]).
    channel_maps: Vec<Normalize>,
    /// The shape of each sample when it is an image (channel-major); needed to shift it
    /// (augmentation) and to map each channel by its own statistics.
    pub image: Option<Chw>,
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
            return Err(Error::shape(
                "dataset inputs",
                format!("a positive multiple of {features} values"),
                format!("{stored} values"),
            ));
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
            return Err(Error::shape(
                "dataset targets",
                format!("{} values ({len} samples × {width})", len * width),
                format!("{target_len} values"),
            ));
        }
        Ok(Dataset {
            id: next_id(),
            len,
            features,
            inputs,
            targets,
            normalize,
            channel_maps: Vec::new(),
            image: None,
        })
    }

    /// Real-valued inputs and targets given as rows (the seed exercises).
    pub fn from_rows(inputs: &[Vec<f32>], targets: &[Vec<f32>]) -> Result<Self> {
        let features = inputs.first().map_or(0, Vec::len);
        let width = targets.first().map_or(0, Vec::len);
        if inputs.iter().any(|r| r.len() != features) || targets.iter().any(|r| r.len() != width) {
            return Err(Error::shape(
                "dataset rows",
                "rows of equal length",
                "ragged rows",
            ));
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

    /// An identity for the inputs and targets, which never change after construction: a clone
    /// shares it (same contents), every other dataset built gets a new one, and ids are never
    /// reused. A backend may keep device copies keyed by it (the GPU keeps the evaluation set).
    /// `normalize` and `image` are not covered: they are public and may change.
    pub fn id(&self) -> u64 {
        self.id
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
            id: next_id(),
            len: n,
            features: f,
            inputs,
            targets,
            normalize: self.normalize,
            channel_maps: self.channel_maps.clone(),
            image: self.image,
        }
    }

    /// Maps each image channel by its own affine map (per-channel standardisation): `maps[c]`
    /// for channel `c`, in place of [`Dataset::normalize`]. Needs an image shape with
    /// `maps.len()` channels, at most [`MAX_CHANNEL_MAPS`] (what the gather kernels' records
    /// hold); an empty `maps` goes back to `normalize` for every value.
    pub fn set_channel_maps(&mut self, maps: Vec<Normalize>) -> Result<()> {
        if !maps.is_empty() {
            let channels = self.image.map(|i| i.c);
            if channels != Some(maps.len()) || maps.len() > MAX_CHANNEL_MAPS {
                return Err(Error::shape(
                    "per-channel input maps",
                    format!(
                        "one per image channel, at most {MAX_CHANNEL_MAPS} ({})",
                        channels.map_or("no image shape".into(), |c| format!("{c} channels"))
                    ),
                    format!("{} maps", maps.len()),
                ));
            }
        }
        self.channel_maps = maps;
        Ok(())
    }

    /// Whether the samples are images (of a non-empty shape): then an order's entries carry
    /// shifts beside the index ([`Sample`]).
    pub fn is_image(&self) -> bool {
        self.image.is_some_and(|i| i.plane() > 0)
    }

    /// The per-channel maps (empty when `normalize` maps every value).
    pub fn channel_maps(&self) -> &[Normalize] {
        &self.channel_maps
    }

    /// The map of each channel, as the gather kernels' records hold them: `channel_maps`, or
    /// `normalize` repeated. Unused entries repeat the last.
    pub fn gather_maps(&self) -> [Normalize; MAX_CHANNEL_MAPS] {
        gather_maps(self.normalize, &self.channel_maps)
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

impl PartialEq for Dataset {
    fn eq(&self, other: &Dataset) -> bool {
        // Everything but `id`: two loads of the same files are equal datasets.
        self.len == other.len
            && self.features == other.features
            && self.inputs == other.inputs
            && self.targets == other.targets
            && self.normalize == other.normalize
            && self.channel_maps == other.channel_maps
            && self.image == other.image
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn ids_follow_identity_and_equality_follows_contents() {
        let make = || {
            Dataset::new(
                1,
                Inputs::U8(vec![1, 2]),
                Targets::Labels {
                    labels: vec![0, 1],
                    classes: 2,
                },
                Normalize::UNIT,
            )
            .unwrap()
        };
        let (a, b) = (make(), make());
        assert_ne!(a.id(), b.id(), "separately built datasets");
        assert_eq!(a, b, "same contents");
        assert_eq!(a.clone().id(), a.id(), "a clone has the same contents");
        assert_ne!(a.head(1).id(), a.id(), "a head is another dataset");
    }
}
