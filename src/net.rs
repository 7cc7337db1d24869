//! The network: an input shape, a list of layers ([`crate::layer`]: convolutions, pools,
//! dense layers, activations) and the output with its loss. The user's way to write one
//! (presets, the layer string, the summary table) is [`crate::layers`].

use crate::error::{Error, Result};
use crate::layer::{Dense, Layer, Node};
pub use crate::ops::activation::Activation;
pub use crate::ops::loss::Output;
pub use crate::params::Init;
use crate::shape::{Chw, WeightShape, WeightShapes};

/// The most entries a layer list may have (activations included): far beyond any network
/// trained here, and a bound on what a layer string or a checkpoint's `sizes` can make the
/// network allocate (a list entry and its node take about a hundred bytes).
pub const MAX_LAYERS: usize = 100_000;

/// A network: an input shape, its layers in order, then the output and loss. The last layer is
/// dense with one unit per output; activations sit after the layers they apply to (fused into
/// them by [`crate::layer::lower`]: [`Network::nodes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// The image a spatial first layer reads, or a row of n values (`n×1×1`: n channels of one value) for a dense one.
    input: Chw,
    layers: Vec<Layer>,
    output: Output,
    /// `layers` lowered: each op with the activation after it.
    nodes: Vec<Node>,
}

/// The most parameters a network may have: 2^53 (exact as an f64, and six times it still fits
/// a u64 FLOP count), or what a usize holds where that is less (wasm32).
pub const MAX_PARAMETERS: u64 = if usize::BITS < 64 {
    usize::MAX as u64
} else {
    1 << 53
};

impl Network {
    /// A dense stack: `sizes[0]` inputs, then a dense layer per following size, each hidden
    /// one followed by `hidden`. Fails on an empty or zero-size layer, or softmax over one
    /// output.
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
        check_layer_count(2 * sizes.len() - 3)?;
        let mut layers = Vec::new();
        for (l, pair) in sizes.windows(2).enumerate() {
            if l > 0 {
                layers.push(Layer::Activation(hidden));
            }
            layers.push(Layer::Dense(Dense {
                inputs: pair[0],
                units: pair[1],
            }));
        }
        Network::from_layers(Chw::new(sizes[0], 1, 1), layers, output)
    }

    /// The network of `layers` on `input`, every shape checked: each layer reads what the one
    /// before gives (a spatial layer an image, not values a dense layer flattened), activations
    /// follow layers that take them, the last layer is dense and is the output (no activation),
    /// softmax has two outputs or more, and the parameters fit [`MAX_PARAMETERS`]. Errors name
    /// the layer (1-based position and token).
    pub fn from_layers(input: Chw, layers: Vec<Layer>, output: Output) -> Result<Self> {
        check_layer_count(layers.len())?;
        let fail = |i: usize, msg: String| {
            Error::Network(format!("layer {} `{}`: {msg}", i + 1, layers[i].token()))
        };
        let nodes = crate::layer::lower(&layers).map_err(|(i, msg)| fail(i, msg))?;
        let Some(last) = nodes
            .last()
            .filter(|n| matches!(n.layer(), Layer::Dense(_)))
        else {
            return Err(Error::Network(format!(
                "the last layer must be dense, with one unit per output (e.g. dense10); got `{}`",
                layers
                    .iter()
                    .map(Layer::token)
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        };
        if last.act.is_some() {
            return Err(fail(
                last.position + 1,
                format!("the last dense layer is the output ({output}) and takes no activation"),
            ));
        }
        let mut shape = input;
        let mut flat = false;
        for node in &nodes {
            let op = node.op();
            let fits = if op.needs_image() {
                op.input() == shape
            } else {
                op.input().len() == shape.len()
            };
            if op.needs_image() && flat {
                return Err(fail(
                    node.position,
                    format!("a {} after a dense layer: it reads an image", op.describe()),
                ));
            }
            if !fits {
                return Err(fail(
                    node.position,
                    format!("it reads {} but the layer before gives {shape}", op.input()),
                ));
            }
            flat |= op.flattens();
            shape = op.output();
        }
        if output == Output::SoftmaxCrossEntropy && shape.len() < 2 {
            return Err(Error::Network(format!(
                "softmax needs at least 2 outputs, got {} (use sigmoid-mse for one output)",
                shape.len()
            )));
        }
        let net = Network {
            input: if reads_image(&nodes) {
                input
            } else {
                Chw::new(input.len(), 1, 1)
            },
            layers,
            output,
            nodes,
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

    /// The layer list, first first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The layers as the backends run them: each op with the activation after it.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The image a network whose first layer is spatial reads (None when it reads values).
    pub fn image(&self) -> Option<Chw> {
        reads_image(&self.nodes).then_some(self.input)
    }

    /// The input's shape (`n×1×1` for values).
    pub fn input(&self) -> Chw {
        self.input
    }

    /// Every weight tensor, in the order [`crate::params::Params`] holds them (the layers'
    /// order; a layer's statistics after its weights). An iterator, so that a count or a sum over a network claimed by untrusted
    /// metadata (a million layers in a few MB of text) allocates nothing.
    pub fn weight_shapes(&self) -> impl Iterator<Item = WeightShape> + '_ {
        self.nodes
            .iter()
            .flat_map(|n| n.op().weights().into_iter().chain(n.op().statistics()))
    }

    /// How many weight tensors [`Network::weight_shapes`] lists.
    pub fn weighted_layers(&self) -> usize {
        self.weight_shapes().count()
    }

    /// Width of the input: C·H·W.
    pub fn inputs(&self) -> usize {
        self.input.len()
    }

    /// Width of the output.
    pub fn outputs(&self) -> usize {
        self.nodes
            .last()
            .expect("non-empty by construction")
            .op()
            .output()
            .len()
    }

    /// Output and loss.
    pub fn output(&self) -> Output {
        self.output
    }

    /// A network of dense layers only (each with its own activation or none) as its sizes:
    /// what the fused step trains.
    pub fn dense_sizes(&self) -> Option<Vec<usize>> {
        self.nodes
            .iter()
            .all(|n| matches!(n.layer(), Layer::Dense(_)))
            .then(|| self.dense_part().0)
    }

    /// A plain dense stack as its sizes and the activation every hidden layer shares (the
    /// default for a single layer); `None` for any other network.
    pub fn dense_stack(&self) -> Option<(Vec<usize>, Activation)> {
        let (sizes, hidden) = self.dense_part();
        (sizes.len() == self.nodes.len() + 1).then_some(())?;
        Some((sizes, hidden?))
    }

    /// The dense layers at the end: their input width, then each one's units; and the
    /// activation their hidden layers share (the default for a single layer; `None` if they
    /// differ or one has none).
    pub fn dense_part(&self) -> (Vec<usize>, Option<Activation>) {
        let first = self
            .nodes
            .iter()
            .rposition(|n| !matches!(n.layer(), Layer::Dense(_)))
            .map_or(0, |p| p + 1);
        let dense = &self.nodes[first..];
        let mut sizes = vec![dense[0].op().input().len()];
        sizes.extend(dense.iter().map(|n| n.op().output().len()));
        let hidden = &dense[..dense.len() - 1];
        let act = match hidden.first() {
            None => Some(Activation::default()),
            Some(h) => h.act.filter(|a| hidden.iter().all(|n| n.act == Some(*a))),
        };
        (sizes, act)
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.weight_shapes().map(|w| w.rows * w.cols + w.bias).sum()
    }

    /// Floating-point operations of one training step per sample (multiply-adds count two):
    /// forward, every weight gradient, and the input gradient of every layer but the first.
    /// Pools and activations are not counted (no multiply-adds). Saturating: a convolution's
    /// MACs are its weights times its output pixels, which the parameter bound does not cover.
    pub fn train_flops_per_sample(&self) -> u64 {
        self.nodes
            .iter()
            .enumerate()
            .map(|(j, n)| {
                let passes: u64 = if j == 0 { 2 } else { 3 };
                passes.saturating_mul(n.op().macs_per_sample().saturating_mul(2))
            })
            .fold(0u64, u64::saturating_add)
    }
}

/// Whether a layer reads the input as an image (before any layer flattens it).
fn reads_image(nodes: &[Node]) -> bool {
    nodes
        .iter()
        .take_while(|n| !n.op().flattens())
        .any(|n| n.op().needs_image())
}

/// A list of `n` entries must be at most [`MAX_LAYERS`] long.
pub(crate) fn check_layer_count(n: usize) -> Result<()> {
    if n > MAX_LAYERS {
        return Err(Error::TooLarge {
            what: "the network's layer list (activations included)".into(),
            needed: n.to_string(),
            limit: MAX_LAYERS.to_string(),
        });
    }
    Ok(())
}

impl WeightShapes for Network {
    fn weight_shapes(&self) -> impl Iterator<Item = WeightShape> + '_ {
        Network::weight_shapes(self)
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
