//! The network description: an optional stack of spatial layers (convolutions and max-pools,
//! [`Feature`]) on an image, then dense layers (sizes, hidden activation), then the output and
//! loss. The math of each op lives with its kernel in [`crate::ops`]; the user's way to write a
//! network (presets, the layer string, the summary table) is [`crate::layers`].

use crate::error::{Error, Result};
use crate::named_enum;
use crate::ops::conv::ConvShape;
use crate::ops::pool::PoolShape;
use crate::shape::Chw;

/// Activation of the hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// `1 / (1 + e^-z)`; the tutorials' choice and the default.
    #[default]
    Sigmoid,
    /// `tanh(z)`.
    Tanh,
    /// `max(z, 0)`.
    Relu,
    /// `z` for `z > 0`, else `LEAKY_SLOPE · z` (see [`crate::ops::activation`]).
    LeakyRelu,
}

impl Activation {
    /// All activations, for tests and help texts.
    pub const ALL: [Activation; 4] = [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu,
    ];
}

/// Output layer and loss, fused as the math allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Output {
    /// Softmax outputs with cross-entropy loss (classification). The gradient with respect to
    /// the logits is `(softmax(z) - y) / B`.
    #[default]
    SoftmaxCrossEntropy,
    /// Sigmoid outputs with mean squared error `mean((a - y)^2)` over batch and outputs (the
    /// single-neuron and XOR exercises).
    SigmoidMse,
    /// Linear outputs (the logits themselves) with mean squared error `mean((z - y)^2)` over
    /// batch and outputs: regression on real-valued targets.
    LinearMse,
}

impl Output {
    /// Every output kind.
    pub const ALL: [Output; 3] = [
        Output::SoftmaxCrossEntropy,
        Output::SigmoidMse,
        Output::LinearMse,
    ];

    /// Whether the outputs are real values rather than classes: no correct count, and the
    /// metrics are RMSE and R².
    pub const fn is_regression(self) -> bool {
        matches!(self, Output::LinearMse)
    }
}

/// How the weights are drawn at initialisation. Biases follow PyTorch's `nn.Linear` rule
/// (uniform ±1/√fan_in) for the default and are zero for Xavier and He.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Init {
    /// Uniform ±1/√fan_in for weights and biases (PyTorch's `nn.Linear`, used by the peers).
    #[default]
    Uniform,
    /// Glorot/Xavier uniform: ±√(6/(fan_in+fan_out)).
    Xavier,
    /// He/Kaiming normal: N(0, 2/fan_in), for the ReLUs.
    He,
}

named_enum!(Activation, "activation", [
    "sigmoid" => Activation::Sigmoid,
    "tanh" => Activation::Tanh,
    "relu" => Activation::Relu,
    "leaky-relu" => Activation::LeakyRelu,
]);
named_enum!(Output, "output", [
    "softmax-cross-entropy" => Output::SoftmaxCrossEntropy,
    "sigmoid-mse" => Output::SigmoidMse,
    "linear-mse" => Output::LinearMse,
]);
named_enum!(Init, "init", [
    "uniform" => Init::Uniform,
    "xavier" => Init::Xavier,
    "he" => Init::He,
]);

/// A spatial layer: it maps one sample's C×H×W values to another C×H×W.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// A convolution (with bias) followed by its activation.
    Conv(ConvShape, Activation),
    /// A 2×2, stride-2 max-pool.
    Pool(PoolShape),
}

impl Feature {
    pub fn input(&self) -> Chw {
        match self {
            Feature::Conv(s, _) => s.input(),
            Feature::Pool(s) => s.input(),
        }
    }

    pub fn output(&self) -> Chw {
        match self {
            Feature::Conv(s, _) => s.output(),
            Feature::Pool(s) => s.output(),
        }
    }

    /// The activation applied to the output, if any (a pool has none).
    pub fn activation(&self) -> Option<Activation> {
        match self {
            Feature::Conv(_, a) => Some(*a),
            Feature::Pool(_) => None,
        }
    }
}

/// The shape of one trainable weight tensor and its bias, as stored in [`crate::params::Params`]:
/// `rows × cols` weights, `bias` biases, and the fan-in / fan-out the initialisers use.
///
/// **The orientation rule** (the one place it is stated): a weight tensor is stored as the
/// matrix its layer's forward product takes, so that no layer transposes its weights to run.
/// A dense layer computes `x · W` on rows of samples: `rows` = its inputs, `cols` = its outputs
/// (`[in, out]`, Keras' `Dense` kernel). A convolution computes `W · X̂` over the im2col matrix:
/// `rows` = its output channels, `cols` = input channels × k × k (`[out, in·k·k]`, PyTorch's
/// `Conv2d` weight flattened). Checkpoints keep these orientations under their tensor names,
/// and README's NumPy snippets read them so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightShape {
    pub rows: usize,
    pub cols: usize,
    pub bias: usize,
    pub fan_in: usize,
    pub fan_out: usize,
}

/// A network: optionally spatial layers on an image ([`Network::convolutional`]), then a stack
/// of dense layers: `sizes[0]` inputs (the flattened output of the spatial layers, if any), then
/// one layer per following size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    sizes: Vec<usize>,
    hidden: Activation,
    output: Output,
    /// The spatial layers, first first; empty for a dense stack.
    features: Vec<Feature>,
}

/// The most parameters a network may have: 2^53 (exact as an f64, and six times it still fits
/// a u64 FLOP count), or what a usize holds where that is less (wasm32).
pub const MAX_PARAMETERS: u64 = if usize::BITS < 64 {
    usize::MAX as u64
} else {
    1 << 53
};

impl Network {
    /// Describes a network; fails on an empty or zero-size layer, or softmax over one output.
    pub fn new(sizes: &[usize], hidden: Activation, output: Output) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(Error::Network(format!(
                "expected an input size and at least one layer size, got {sizes:?}"
            )));
        }
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::Network(format!(
                "layer sizes must be positive, got 0 at position {i} of {sizes:?}"
            )));
        }
        let outputs = *sizes.last().expect("checked non-empty");
        if output == Output::SoftmaxCrossEntropy && outputs < 2 {
            return Err(Error::Network(format!(
                "softmax needs at least 2 outputs, got {outputs} (use sigmoid-mse for one output)"
            )));
        }
        let net = Network {
            sizes: sizes.to_vec(),
            hidden,
            output,
            features: Vec::new(),
        };
        net.check_parameter_count()?;
        Ok(net)
    }

    /// The parameter count, computed without overflow, must be at most [`MAX_PARAMETERS`], so
    /// that every count derived from it (per layer, in total, in bytes as u128, FLOPs as u64)
    /// is exact. A layer string or a checkpoint's `sizes` can name any size (`dense` with
    /// 20 digits once overflowed the summary's parameter column).
    fn check_parameter_count(&self) -> Result<()> {
        let total = self.weight_shapes().try_fold(0u64, |sum, w| {
            (w.rows as u64)
                .checked_mul(w.cols as u64)
                .and_then(|n| n.checked_add(w.bias as u64))
                .and_then(|n| n.checked_add(sum))
        });
        match total {
            Some(n) if n <= MAX_PARAMETERS => Ok(()),
            _ => Err(Error::TooLarge {
                what: format!("network {self}: its parameters"),
                needed: total.map_or("more than 2^64".into(), |n| n.to_string()),
                limit: MAX_PARAMETERS.to_string(),
            }),
        }
    }

    /// Spatial layers `features` (each reading the previous one's output), flattened into the
    /// dense stack `dense` (its first size is the width the features flatten to: checked).
    /// [`crate::layers`] builds these from a layer list, with errors that name the layer.
    pub fn convolutional(
        features: Vec<Feature>,
        dense: &[usize],
        hidden: Activation,
        output: Output,
    ) -> Result<Self> {
        let mut net = Network::new(dense, hidden, output)?;
        for pair in features.windows(2) {
            if pair[0].output() != pair[1].input() {
                return Err(Error::Network(format!(
                    "a spatial layer reads {} but the one before it gives {}",
                    pair[1].input(),
                    pair[0].output()
                )));
            }
        }
        if let Some(last) = features.last()
            && last.output().len() != dense[0]
        {
            return Err(Error::Network(format!(
                "the spatial layers flatten to {} = {} values, but the dense layers take {}",
                last.output(),
                last.output().len(),
                dense[0]
            )));
        }
        net.features = features;
        net.check_parameter_count()?;
        Ok(net)
    }

    /// The dense part: its input size (the flattened features, if any), then each layer's size.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Number of dense layers (weight matrices of the dense part).
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// The spatial layers, first first (empty for a dense stack).
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// Whether this is a plain stack of dense layers (what the GPU backend trains today).
    pub fn is_dense(&self) -> bool {
        self.features.is_empty()
    }

    /// The image a convolutional network reads (None for a dense stack).
    pub fn image(&self) -> Option<Chw> {
        self.features.first().map(Feature::input)
    }

    /// Convolutions among the spatial layers: their weights come first in
    /// [`crate::params::Params`], before the dense layers'.
    pub fn conv_layers(&self) -> usize {
        self.features
            .iter()
            .filter(|f| matches!(f, Feature::Conv(..)))
            .count()
    }

    /// Every weight tensor, in the order [`crate::params::Params`] holds them: each
    /// convolution's `C_out × C_in·k·k` (fan-in C_in·k·k, fan-out C_out·k·k, as PyTorch
    /// counts them), then each dense layer's `fan_in × fan_out`.
    /// An iterator, so that a count or a sum over a network claimed by untrusted metadata (a
    /// million layers in a few MB of text) allocates nothing.
    pub fn weight_shapes(&self) -> impl Iterator<Item = WeightShape> + '_ {
        let conv = self.features.iter().filter_map(|f| match f {
            Feature::Conv(s, _) => {
                let (rows, cols) = s.weight_dims();
                let k2 = s.kernel() * s.kernel();
                Some(WeightShape {
                    rows,
                    cols,
                    bias: rows,
                    fan_in: cols,
                    fan_out: rows * k2,
                })
            }
            Feature::Pool(_) => None,
        });
        let dense = (0..self.layers()).map(|l| {
            let (i, o) = self.layer_shape(l);
            WeightShape {
                rows: i,
                cols: o,
                bias: o,
                fan_in: i,
                fan_out: o,
            }
        });
        conv.chain(dense)
    }

    /// How many weight tensors [`Network::weight_shapes`] lists.
    pub fn weighted_layers(&self) -> usize {
        self.conv_layers() + self.layers()
    }

    /// Width of the input: the image's C·H·W, or the first dense size.
    pub fn inputs(&self) -> usize {
        self.image().map_or(self.sizes[0], |i| i.len())
    }

    /// Width of the output.
    pub fn outputs(&self) -> usize {
        *self.sizes.last().expect("non-empty by construction")
    }

    /// Activation of the hidden layers.
    pub fn hidden(&self) -> Activation {
        self.hidden
    }

    /// Output and loss.
    pub fn output(&self) -> Output {
        self.output
    }

    /// `(fan_in, fan_out)` of layer `l`.
    pub fn layer_shape(&self, l: usize) -> (usize, usize) {
        (self.sizes[l], self.sizes[l + 1])
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.weight_shapes().map(|w| w.rows * w.cols + w.bias).sum()
    }

    /// Floating-point operations of one training step per sample (multiply-adds count two):
    /// forward, every weight gradient, and the input gradient of every layer but the first.
    /// Pools and activations are not counted (no multiply-adds).
    pub fn train_flops_per_sample(&self) -> u64 {
        let mut first = true;
        let mut passes = |mm: u64| {
            let n: u64 = if first { 2 } else { 3 };
            first = false;
            n.saturating_mul(mm)
        };
        let conv: u64 = self
            .features
            .iter()
            .filter_map(|f| match f {
                // Saturating: a convolution's MACs are its weights times its output pixels,
                // which the parameter bound does not cover.
                Feature::Conv(s, _) => Some(passes(s.macs_per_sample().saturating_mul(2))),
                Feature::Pool(_) => None,
            })
            .fold(0u64, u64::saturating_add);
        let dense: u64 = (0..self.layers())
            .map(|l| {
                let (i, o) = self.layer_shape(l);
                passes(2 * (i * o) as u64)
            })
            .fold(0u64, u64::saturating_add);
        conv.saturating_add(dense)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_descriptions_are_errors() {
        let s = Activation::Sigmoid;
        assert!(Network::new(&[], s, Output::SigmoidMse).is_err());
        assert!(Network::new(&[3], s, Output::SigmoidMse).is_err());
        assert!(Network::new(&[3, 0, 1], s, Output::SigmoidMse).is_err());
        assert!(Network::new(&[3, 1], s, Output::SoftmaxCrossEntropy).is_err());
        assert!(Network::new(&[3, 1], s, Output::SigmoidMse).is_ok());
    }

    #[test]
    fn flops_match_the_peers_count() {
        // The peers' README: about 229 kFLOP per sample for 784-64-64-10.
        let net = Network::new(&[784, 64, 64, 10], Activation::Sigmoid, Output::default()).unwrap();
        assert_eq!(net.train_flops_per_sample(), 229_120);
    }

    #[test]
    fn names_round_trip() {
        for a in Activation::ALL {
            assert_eq!(a.to_string().parse::<Activation>().unwrap(), a);
        }
        for o in Output::ALL {
            assert_eq!(o.to_string().parse::<Output>().unwrap(), o);
        }
        assert!("swish".parse::<Activation>().is_err());
    }
}
