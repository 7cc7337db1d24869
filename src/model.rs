//! What a trained network needs besides its weights to be used on new data: how its inputs were
//! normalised, the image shape, and what its outputs mean. Checkpoints of format version 2 carry
//! a [`ModelInfo`] (see [`crate::checkpoint`]).

use ndarray::Array2;

use crate::data::{DatasetKind, Normalize};
use crate::error::{Error, Result};
use crate::net::Network;

/// Everything about a network's inputs and outputs that training knew and prediction needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The map training applied to every stored input value: `x = v · scale + shift`.
    pub normalize: Normalize,
    /// `(rows, cols)` when each input is an image (row-major), `None` otherwise.
    pub image: Option<(usize, usize)>,
    /// The dataset the network was trained on (`mnist`, `fashion`, or a free name).
    pub dataset: String,
    /// One name per output class, in output order; empty when the outputs are not classes.
    pub classes: Vec<String>,
}

impl ModelInfo {
    /// The description of a network trained on `kind` with inputs mapped by `normalize`.
    pub fn for_dataset(kind: DatasetKind, normalize: Normalize) -> Self {
        ModelInfo {
            normalize,
            image: Some((28, 28)),
            dataset: kind.to_string(),
            classes: class_names(kind).iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Checks that this description fits `net`: a finite, non-zero scale and a finite shift, an
    /// image shape with as many pixels as the network has inputs, and a name for every output.
    pub fn check(&self, net: &Network) -> Result<()> {
        let Normalize { scale, shift } = self.normalize;
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
        if let Some((rows, cols)) = self.image {
            if rows.checked_mul(cols) != Some(net.inputs()) {
                return Err(Error::Shape {
                    what: "image shape".into(),
                    expected: format!("{} pixels (the network's inputs)", net.inputs()),
                    got: format!("{rows}×{cols}"),
                });
            }
        }
        if !self.classes.is_empty() && self.classes.len() != net.outputs() {
            return Err(Error::Shape {
                what: "class names".into(),
                expected: format!("{} names (the network's outputs) or none", net.outputs()),
                got: format!("{} names", self.classes.len()),
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
        if width == 0 || !pixels.len().is_multiple_of(width) {
            return Err(Error::Shape {
                what: "input pixels".into(),
                expected: format!("a multiple of {width} bytes"),
                got: format!("{} bytes", pixels.len()),
            });
        }
        let Normalize { scale, shift } = self.normalize;
        let values = pixels.iter().map(|&p| p as f32 * scale + shift).collect();
        Ok(Array2::from_shape_vec((pixels.len() / width, width), values).expect("length checked"))
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
        bad.image = Some((28, 27));
        assert!(bad.check(&net).unwrap_err().to_string().contains("28×27"));
        let mut bad = good.clone();
        bad.classes.pop();
        assert!(bad.check(&net).unwrap_err().to_string().contains("9 names"));
        let mut bad = good.clone();
        bad.normalize.scale = 0.0;
        assert!(bad.check(&net).is_err());
        let mut bad = good;
        bad.normalize.shift = f32::NAN;
        assert!(bad.check(&net).is_err());
    }

    #[test]
    fn top_k_ranks_and_breaks_ties_by_index() {
        let top = top_k(&[0.1, 0.4, 0.1, 0.4], 3);
        assert_eq!(top, vec![(1, 0.4), (3, 0.4), (0, 0.1)]);
    }
}
