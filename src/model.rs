//! What a trained network needs besides its weights to be used on new data: how its inputs were
//! normalised (one map for all values, one per image channel or one per feature), the image
//! shape, where its inputs come from (IDX images, pictures, table columns, arrays) and what its
//! outputs mean. Checkpoints of format version 2 and later carry a [`ModelInfo`] (see
//! [`crate::checkpoint`]).

use ndarray::Array2;

use crate::data::{Dataset, DatasetKind, Normalize, Targets};
use crate::error::{Error, Result};
use crate::net::Network;
use crate::shape::Chw;

/// Where a model's inputs come from: what a raw sample is before the maps apply.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Source {
    /// IDX images in MNIST's form (the digit pipeline prepares a picture for them).
    #[default]
    Idx,
    /// Picture files, each resized to the image shape (triangle filter, the support scaled
    /// when shrinking) and made grey (luma) or RGB to match its channels.
    Pictures,
    /// Rows of a CSV/TSV table: its feature columns in order and the label column's name.
    Table {
        columns: Vec<TableColumn>,
        label: String,
    },
    /// NumPy arrays of the input shape.
    Arrays,
}

/// One feature column of a table, as the model reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum TableColumn {
    /// A number (its map is one of [`ModelInfo::feature_maps`]).
    Numeric { name: String },
    /// A text column, one input per level (sorted), 1 for the row's level and 0 elsewhere.
    OneHot { name: String, levels: Vec<String> },
}

impl TableColumn {
    pub fn name(&self) -> &str {
        match self {
            TableColumn::Numeric { name } | TableColumn::OneHot { name, .. } => name,
        }
    }

    /// Network inputs this column becomes.
    pub fn width(&self) -> usize {
        match self {
            TableColumn::Numeric { .. } => 1,
            TableColumn::OneHot { levels, .. } => levels.len(),
        }
    }
}

/// One real-valued output of a regression model: the target's name and the map training applied
/// to it (`t = y · scale + shift`, standardising it on the training part), which prediction
/// inverts.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    pub map: Normalize,
}

impl Target {
    /// The value in the target's own units of network output `t`.
    pub fn value(&self, t: f32) -> f32 {
        (t - self.map.shift) / self.map.scale
    }
}

/// Everything about a network's inputs and outputs that training knew and prediction needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The map training applied to every stored input value: `x = v · scale + shift`, where
    /// neither of the per-channel or per-feature maps is given.
    pub normalize: Normalize,
    /// One map per image channel (standardised per channel), applied instead of `normalize`;
    /// empty when `normalize` applies.
    pub channel_maps: Vec<Normalize>,
    /// One map per network input (tables and arrays of vectors, standardised per feature),
    /// applied instead of `normalize`; empty when `normalize` applies.
    pub feature_maps: Vec<Normalize>,
    /// The shape of each input when it is an image (channel-major), `None` otherwise.
    pub image: Option<Chw>,
    /// What a raw sample is.
    pub source: Source,
    /// The dataset the network was trained on (`mnist`, `fashion`, or a free name).
    pub dataset: String,
    /// One name per output class, in output order; empty when the outputs are not classes.
    pub classes: Vec<String>,
    /// One per output of a regression model, in output order; empty otherwise.
    pub targets: Vec<Target>,
}

impl ModelInfo {
    /// The description of a network trained on `kind` with inputs mapped by `normalize`.
    pub fn for_dataset(kind: DatasetKind, normalize: Normalize) -> Self {
        ModelInfo {
            normalize,
            image: Some(Chw::new(1, 28, 28)),
            dataset: kind.to_string(),
            classes: class_names(kind).iter().map(|s| s.to_string()).collect(),
            ..ModelInfo::plain(normalize)
        }
    }

    /// A description with `normalize` for every input and nothing else known.
    pub fn plain(normalize: Normalize) -> Self {
        ModelInfo {
            normalize,
            channel_maps: Vec::new(),
            feature_maps: Vec::new(),
            image: None,
            source: Source::default(),
            dataset: String::new(),
            classes: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// The map of network input `i` (of `width` per sample): its feature's, its channel's, or
    /// `normalize`.
    pub fn map_of(&self, i: usize) -> Normalize {
        if let Some(m) = self.feature_maps.get(i) {
            return *m;
        }
        match (self.image, self.channel_maps.is_empty()) {
            (Some(img), false) if img.plane() > 0 => {
                self.channel_maps[(i / img.plane()).min(self.channel_maps.len() - 1)]
            }
            _ => self.normalize,
        }
    }

    /// Checks that this description fits `net`: a finite, non-zero scale and a finite shift, an
    /// image shape with as many pixels as the network has inputs, and a name for every output.
    pub fn check(&self, net: &Network) -> Result<()> {
        let maps = std::iter::once(&self.normalize)
            .chain(&self.channel_maps)
            .chain(&self.feature_maps)
            .chain(self.targets.iter().map(|t| &t.map));
        for &Normalize { scale, shift } in maps {
            if !(scale.is_finite() && scale != 0.0) {
                return Err(Error::arg(
                    "input scale",
                    "a finite, non-zero number",
                    scale,
                ));
            }
            if !shift.is_finite() {
                return Err(Error::arg("input shift", "a finite number", shift));
            }
        }
        if let Some(image) = self.image
            && image
                .c
                .checked_mul(image.h)
                .and_then(|n| n.checked_mul(image.w))
                != Some(net.inputs())
        {
            return Err(Error::Shape {
                what: "image shape".into(),
                expected: format!("{} values (the network's inputs)", net.inputs()),
                got: image.to_string(),
            });
        }
        if !self.channel_maps.is_empty() && self.image.map(|i| i.c) != Some(self.channel_maps.len())
        {
            return Err(Error::shape(
                "per-channel input maps",
                "one per image channel",
                format!(
                    "{} maps for image {:?}",
                    self.channel_maps.len(),
                    self.image
                ),
            ));
        }
        if !self.feature_maps.is_empty() && self.feature_maps.len() != net.inputs() {
            return Err(Error::shape(
                "per-feature input maps",
                format!("{} (the network's inputs)", net.inputs()),
                format!("{} maps", self.feature_maps.len()),
            ));
        }
        if let Source::Table { columns, .. } = &self.source {
            let width: usize = columns.iter().map(TableColumn::width).sum();
            if width != net.inputs() {
                return Err(Error::shape(
                    "table columns",
                    format!("{} inputs (the network's)", net.inputs()),
                    format!("{} columns giving {width} inputs", columns.len()),
                ));
            }
        }
        if !self.classes.is_empty() && self.classes.len() != net.outputs() {
            return Err(Error::Shape {
                what: "class names".into(),
                expected: format!("{} names (the network's outputs) or none", net.outputs()),
                got: format!("{} names", self.classes.len()),
            });
        }
        if !self.targets.is_empty()
            && (self.targets.len() != net.outputs()
                || !self.classes.is_empty()
                || !net.output().is_regression())
        {
            return Err(Error::Shape {
                what: "regression targets".into(),
                expected: format!(
                    "{} targets (the network's outputs), no class names and a linear output",
                    net.outputs()
                ),
                got: format!(
                    "{} targets and {} class names",
                    self.targets.len(),
                    self.classes.len()
                ),
            });
        }
        Ok(())
    }

    /// The name of class `i`, or its number when there are no names.
    pub fn class_name(&self, i: usize) -> String {
        self.classes
            .get(i)
            .cloned()
            .unwrap_or_else(|| i.to_string())
    }

    /// Network inputs for images given as stored bytes (`pixels.len()` a multiple of `width`),
    /// one row each, normalised the way training normalised them.
    pub fn inputs(&self, pixels: &[u8], width: usize) -> Result<Array2<f32>> {
        self.inputs_of(pixels.iter().map(|&p| p as f32), pixels.len(), width)
    }

    /// Network inputs for raw real values (table rows, arrays; `values.len()` a multiple of
    /// `width`), mapped as training mapped them.
    pub fn inputs_f32(&self, values: &[f32], width: usize) -> Result<Array2<f32>> {
        self.inputs_of(values.iter().copied(), values.len(), width)
    }

    fn inputs_of(
        &self,
        values: impl Iterator<Item = f32>,
        len: usize,
        width: usize,
    ) -> Result<Array2<f32>> {
        if width == 0 || !len.is_multiple_of(width) {
            return Err(Error::Shape {
                what: "input values".into(),
                expected: format!("a multiple of {width} values"),
                got: format!("{len} values"),
            });
        }
        let maps: Vec<Normalize> = (0..width).map(|i| self.map_of(i)).collect();
        let mapped = values
            .enumerate()
            .map(|(i, v)| {
                let m = maps[i % width];
                v * m.scale + m.shift
            })
            .collect();
        Ok(Array2::from_shape_vec((len / width, width), mapped).expect("length checked"))
    }
}

/// How well a regression model fits a set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegressionMetrics {
    /// Root mean squared error: in the target's units for one target; for several, in
    /// standardised units (each target's training deviation is 1), pooled over the targets.
    pub rmse: f64,
    /// `1 - SSE / SST` over the set (scikit-learn's `r2_score`; for several targets, pooled in
    /// standardised units: its `variance_weighted` form). 1 is a perfect fit, 0 no better than
    /// the set's mean.
    pub r2: f64,
}

impl ModelInfo {
    /// A regression model's metrics on `set` (whose targets are standardised by this model's
    /// maps), from its mean loss there: the mean over samples and targets of the squared error
    /// in standardised units, what the backends' `Stats::mean_loss` gives for `linear-mse`.
    /// `None` without targets or when `set` holds classes or no samples.
    pub fn regression_metrics(&self, mean_loss: f64, set: &Dataset) -> Option<RegressionMetrics> {
        let Targets::Values { values, width: k } = set.targets() else {
            return None;
        };
        let (k, n) = (*k, set.len());
        if self.targets.len() != k || n == 0 {
            return None;
        }
        let variance: f64 = (0..k)
            .map(|j| {
                let column = values.iter().skip(j).step_by(k).map(|&v| v as f64);
                let mean = column.clone().sum::<f64>() / n as f64;
                column.map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64
            })
            .sum::<f64>()
            / k as f64;
        let rmse = mean_loss.max(0.0).sqrt();
        Some(RegressionMetrics {
            rmse: if k == 1 {
                rmse / self.targets[0].map.scale.abs() as f64
            } else {
                rmse
            },
            r2: 1.0 - mean_loss / variance,
        })
    }
}

/// The class names of `kind`, in label order.
pub fn class_names(kind: DatasetKind) -> [&'static str; 10] {
    match kind {
        DatasetKind::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        DatasetKind::Fashion => [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    }
}

/// The `k` most probable classes of one output row, best first (ties by lower index).
pub fn top_k(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Activation, Output};

    #[test]
    fn check_names_what_does_not_fit() {
        let net = Network::new(&[784, 10], Activation::Sigmoid, Output::default()).unwrap();
        let good = ModelInfo::for_dataset(DatasetKind::Mnist, Normalize::UNIT);
        good.check(&net).unwrap();
        let mut bad = good.clone();
        bad.image = Some(Chw::new(1, 28, 27));
        assert!(bad.check(&net).unwrap_err().to_string().contains("28×27"));
        let mut bad = good.clone();
        bad.channel_maps = vec![Normalize::UNIT; 3];
        assert!(
            bad.check(&net).is_err(),
            "three channel maps for one channel"
        );
        let mut bad = good.clone();
        bad.feature_maps = vec![Normalize::UNIT; 10];
        assert!(bad.check(&net).is_err(), "ten feature maps for 784 inputs");
        let mut bad = good.clone();
        bad.classes.pop();
        assert!(bad.check(&net).unwrap_err().to_string().contains("9 names"));
        let mut bad = good.clone();
        bad.normalize.scale = 0.0;
        assert!(bad.check(&net).is_err());
        let mut bad = good.clone();
        bad.normalize.shift = f32::NAN;
        assert!(bad.check(&net).is_err());
        let target = Target {
            name: "price".into(),
            map: Normalize::IDENTITY,
        };
        let regression = Network::new(&[784, 10], Activation::Sigmoid, Output::LinearMse).unwrap();
        let mut bad = good;
        bad.targets = vec![target.clone(); 10];
        assert!(
            bad.check(&regression).is_err(),
            "targets beside class names"
        );
        bad.classes.clear();
        bad.check(&regression).unwrap();
        assert!(bad.check(&net).is_err(), "targets of a softmax output");
        bad.targets[3].map.scale = 0.0;
        assert!(bad.check(&regression).is_err(), "a target map of scale 0");
    }

    #[test]
    fn regression_metrics_are_rmse_in_units_and_r2() {
        // Targets 2, 4, 6, 8 standardised by a map of scale 0.5 (a deviation of 2 units).
        let map = Normalize {
            scale: 0.5,
            shift: -2.5,
        };
        let values: Vec<f32> = [2.0f32, 4.0, 6.0, 8.0]
            .iter()
            .map(|v| v * map.scale + map.shift)
            .collect();
        let set = Dataset::new(
            1,
            crate::data::Inputs::F32(vec![0.0; 4]),
            Targets::Values { values, width: 1 },
            Normalize::IDENTITY,
        )
        .unwrap();
        let model = ModelInfo {
            targets: vec![Target {
                name: "y".into(),
                map,
            }],
            ..ModelInfo::plain(Normalize::IDENTITY)
        };
        // Standardised targets -1.5, -0.5, 0.5, 1.5: variance 1.25. Predicting each one off by
        // 1 unit (0.5 standardised) is a mean loss of 0.25.
        let m = model.regression_metrics(0.25, &set).unwrap();
        assert!((m.rmse - 1.0).abs() < 1e-12, "{m:?}");
        assert!((m.r2 - (1.0 - 0.25 / 1.25)).abs() < 1e-12, "{m:?}");
        assert_eq!(model.regression_metrics(0.0, &set).unwrap().r2, 1.0);
        assert!(
            ModelInfo::plain(Normalize::IDENTITY)
                .regression_metrics(0.25, &set)
                .is_none()
        );
    }

    #[test]
    fn a_target_turns_outputs_back_into_its_units() {
        let t = Target {
            name: "y".into(),
            map: Normalize {
                scale: 0.5,
                shift: -2.0,
            },
        };
        // y = 10 was standardised to 10 · 0.5 - 2 = 3.
        assert_eq!(t.value(3.0), 10.0);
    }

    #[test]
    fn top_k_ranks_and_breaks_ties_by_index() {
        let top = top_k(&[0.1, 0.4, 0.1, 0.4], 3);
        assert_eq!(top, vec![(1, 0.4), (3, 0.4), (0, 0.1)]);
    }
}
