//! The network description: layer sizes, hidden activation, output and loss. The math of each
//! activation and loss lives with its kernel in [`crate::ops`].

use std::fmt;

use crate::error::{Error, Result};
use crate::named_enum;

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
}

impl Output {
    /// Both output kinds.
    pub const ALL: [Output; 2] = [Output::SoftmaxCrossEntropy, Output::SigmoidMse];
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
]);
named_enum!(Init, "init", [
    "uniform" => Init::Uniform,
    "xavier" => Init::Xavier,
    "he" => Init::He,
]);

/// A stack of dense layers: `sizes[0]` inputs, then one layer per following size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    sizes: Vec<usize>,
    hidden: Activation,
    output: Output,
}

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
        Ok(Network {
            sizes: sizes.to_vec(),
            hidden,
            output,
        })
    }

    /// Input size, then each layer's size.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Number of dense layers (weight matrices).
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Width of the input.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
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
        (0..self.layers())
            .map(|l| {
                let (i, o) = self.layer_shape(l);
                i * o + o
            })
            .sum()
    }

    /// Floating-point operations of one training step per sample (multiply-adds count two):
    /// forward, every weight gradient, and the input gradient of every layer but the first.
    pub fn train_flops_per_sample(&self) -> u64 {
        (0..self.layers())
            .map(|l| {
                let (i, o) = self.layer_shape(l);
                let mm = 2 * (i * o) as u64;
                if l == 0 { 2 * mm } else { 3 * mm }
            })
            .sum()
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<String> = self.sizes.iter().map(|s| s.to_string()).collect();
        write!(
            f,
            "{} ({} hidden, {})",
            sizes.join("-"),
            self.hidden,
            self.output
        )
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
