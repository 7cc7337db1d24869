//! How a user writes a network: a list of layers, as named presets or a compact layer string,
//! built into a [`Network`] with every shape inferred and checked, and printed back as a
//! summary table (layer, output shape, parameters, as Keras' `summary()` prints it).
//!
//! **The layer string** is a comma-separated list, read left to right from the input image:
//!
//! | token | layer |
//! |---|---|
//! | `conv8k5`, `conv8k5valid` | 2-D convolution to 8 channels, 5×5 kernel, stride 1, no padding, bias |
//! | `conv32k5same` | the same with (k-1)/2 zeros around, so the output keeps the input's size |
//! | `pool` (or `maxpool`) | 2×2 max-pool, stride 2 |
//! | `avgpool` | 2×2 average pool, stride 2 |
//! | `gap` | global average pool: each channel's mean, C×H×W → C×1×1 |
//! | `dropout0.25` | dropout at rate 0.25 in training (kept values scaled by 1/(1 − p)); nothing in evaluation |
//! | `bn` | batch normalisation: per channel on an image, per feature on values; the batch's statistics in training, running ones (momentum 0.1, ε 1e-5) in evaluation |
//! | `flatten` | the image to a row of C·H·W values (implied before the first dense layer) |
//! | `dense128` | a dense layer of 128 units |
//! | `relu`, `sigmoid`, `tanh`, `leaky-relu` | the activation of the layer just before it |
//!
//! Each layer has its own activation or none (a layer without one is linear); an activation
//! follows a convolution or a dense layer, not a pool (it commutes with the maximum: put it
//! before). The last layer is dense and has none: its outputs go to the loss (the softmax of
//! cross-entropy, say). E.g. TensorFlow.js's tutorial network is
//! `conv8k5,relu,pool,conv16k5,relu,pool,dense10` (the `tfjs` preset).
//!
//! A wrong list is an error that names the layer (its position and token) and the shapes:
//! a kernel larger than its input, a pool on an odd size, a convolution after a dense layer,
//! an activation in the wrong place. Nothing is cropped or guessed.

use std::fmt::{self, Write};

use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::net::{Activation, Network, Output};
use crate::shape::Chw;

/// The named networks `--model` takes besides a layer string: `mlp` is the dense default
/// (not a layer string: it is the recipe's hidden sizes and activation).
pub const PRESETS: [(&str, &str); 4] = [
    // soma's recommended CNN for MNIST: two same-padded 5×5 convolutions and a small dense
    // layer; it reaches 99.3 % in 10 epochs at a quarter of `lenet`'s FLOPs.
    (
        "cnn",
        "conv16k5same,relu,pool,conv32k5same,relu,pool,dense64,relu,dense10",
    ),
    // TensorFlow.js's "handwritten digit recognition with CNNs" tutorial network, exactly.
    ("tfjs", "conv8k5,relu,pool,conv16k5,relu,pool,dense10"),
    // The classic "deep MNIST" shape, as `cnn_torch.py --arch lenet` trains it.
    (
        "lenet",
        "conv32k5same,relu,pool,conv64k5same,relu,pool,dense128,relu,dense10",
    ),
    // Convolution, batch norm, ReLU blocks (two convolutions at full size) and dropout before
    // the head, for Fashion-MNIST (its accuracy: BENCHMARKS.md).
    (
        "cnn-bn",
        "conv32k3same,bn,relu,conv32k3same,bn,relu,pool,conv64k3same,bn,relu,pool,\
         dense128,bn,relu,dropout0.25,dense10",
    ),
];

/// The layer string of preset `name`, if there is one.
pub fn preset(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The layer string a `--model` value stands for: `None` for `mlp` (the dense stack), a
/// preset's string, or the value itself, taken as a layer string.
pub fn model_layers(model: &str) -> Option<&str> {
    (model != "mlp").then(|| preset(model).unwrap_or(model))
}

/// The network `model` names for `image`s with `classes` outputs of kind `output` (one per
/// class, or per regression target), or, for `mlp`, `mlp()`. A preset ends in as many outputs
/// as there are classes (its `dense10` is MNIST's ten); a layer string is taken as written.
pub fn model_network(
    model: &str,
    image: Chw,
    classes: usize,
    output: Output,
    mlp: impl FnOnce() -> Result<Network>,
) -> Result<Network> {
    let Some(text) = model_layers(model) else {
        return mlp();
    };
    let text = match preset(model) {
        Some(preset) => {
            let head = preset.rsplit_once(',').map_or("", |(head, _)| head);
            format!("{head},dense{classes}")
        }
        None => text.to_string(),
    };
    let text = text.as_str();
    let net = from_string(image, text, output)?;
    if net.outputs() != classes {
        return Err(Error::Network(format!(
            "`{text}` ends in {} outputs; the data has {classes} {}",
            net.outputs(),
            if output.is_regression() {
                "targets"
            } else {
                "classes"
            }
        )));
    }
    Ok(net)
}

/// The network `text` describes on `input` images (see the module docs), every shape
/// inferred. Errors name the layer (1-based position and token) and the shapes that do not
/// fit.
pub fn from_string(input: Chw, text: &str, output: Output) -> Result<Network> {
    if text.trim().is_empty() {
        return Err(Error::Network(
            "the layer string is empty: expected e.g. conv8k5,relu,pool,dense10".into(),
        ));
    }
    let fail = |i: usize, token: &str, msg: String| {
        Error::Network(format!("layer {} `{token}`: {msg}", i + 1))
    };
    crate::net::check_layer_count(text.split(',').count())?;
    let mut layers = Vec::new();
    let mut shape = input;
    let mut flat = false;
    for (i, token) in text.split(',').enumerate() {
        let token = token.trim();
        if token == "flatten" {
            if flat {
                return Err(fail(i, token, "the values are already flat".into()));
            }
            (flat, shape) = (true, Chw::new(shape.len(), 1, 1));
            continue;
        }
        // After a dense layer the values are flat: a layer that needs an image is refused as
        // such, not for the n×1×1 shape it would read (told by reading it on a nominal image).
        let needs_image = |t: &str| {
            crate::layer::from_token(t, Chw::new(1, 64, 64))
                .and_then(|l| l.ok())
                .and_then(|l| l.op().map(|op| op.needs_image()))
                .unwrap_or(false)
        };
        if flat && needs_image(token) {
            return Err(fail(
                i,
                token,
                "a spatial layer after a dense layer or flatten: it reads an image".into(),
            ));
        }
        let layer = crate::layer::from_token(token, shape)
            .ok_or_else(|| {
                fail(
                    i,
                    token,
                    format!(
                        "expected {}, flatten or an activation ({})",
                        crate::layer::SYNTAXES.join(", "),
                        Activation::ALL.map(|a| a.to_string()).join(", ")
                    ),
                )
            })?
            .map_err(|msg| fail(i, token, msg))?;
        if let Some(op) = layer.op() {
            if op.flattens() {
                flat = true;
            }
            shape = op.output();
        }
        layers.push(layer);
    }
    Network::from_layers(input, layers, output)
}

/// `net`'s layer string (the dense part of a dense stack included; flatten is implied).
pub fn layer_string(net: &Network) -> String {
    net.layers()
        .iter()
        .map(Layer::token)
        .collect::<Vec<_>>()
        .join(",")
}

/// The summary table: one row per layer with its output shape and parameters, then the total.
pub fn summary(net: &Network) -> String {
    let mut rows: Vec<[String; 3]> = Vec::new();
    let input = net
        .image()
        .map_or(net.inputs().to_string(), |i| i.to_string());
    rows.push(["input".into(), input, "0".into()]);
    let mut spatial = net.image().is_some();
    let last = net.nodes().len() - 1;
    for (j, node) in net.nodes().iter().enumerate() {
        let op = node.op();
        if spatial && op.flattens() {
            rows.push(["flatten".into(), op.input().len().to_string(), "0".into()]);
        }
        spatial &= !op.flattens();
        let act = match node.act {
            Some(a) => format!(", {a}"),
            None if j == last => format!(", {}", net.output()),
            None => String::new(),
        };
        let out = op.output();
        let params = op.weights().map_or(0, |w| w.rows * w.cols + w.bias);
        rows.push([
            format!("{}{act}", op.describe()),
            if spatial {
                out.to_string()
            } else {
                out.len().to_string()
            },
            params.to_string(),
        ]);
    }
    let widths = [0, 1, 2].map(|c| {
        rows.iter()
            .map(|r| r[c].chars().count())
            .max()
            .unwrap_or(0)
            .max(["layer", "output", "parameters"][c].len())
    });
    let mut out = String::new();
    let line = |out: &mut String, r: [&str; 3]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:>w2$}",
            r[0],
            r[1],
            r[2],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    };
    line(&mut out, ["layer", "output", "parameters"]);
    let rule = "─".repeat(widths.iter().sum::<usize>() + 4);
    let _ = writeln!(out, "{rule}");
    for r in &rows {
        line(&mut out, [&r[0], &r[1], &r[2]]);
    }
    let _ = writeln!(out, "{rule}");
    line(&mut out, ["total", "", &net.parameter_count().to_string()]);
    out
}

/// A dense stack as its sizes (`784-64-64-10 (sigmoid hidden, softmax-cross-entropy)`), any
/// other network as its layer string. Here rather than in `net`, which the layer string's
/// module builds on.
impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((sizes, hidden)) = self.dense_stack() else {
            return write!(f, "{} ({})", layer_string(self), self.output());
        };
        let sizes: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
        write!(
            f,
            "{} ({hidden} hidden, {})",
            sizes.join("-"),
            self.output()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: Chw = Chw::new(1, 28, 28);

    fn net(text: &str) -> Result<Network> {
        from_string(MNIST, text, Output::SoftmaxCrossEntropy)
    }

    #[test]
    fn the_presets_have_the_peers_shapes_and_parameter_counts() {
        // cnn_torch.py: tfjs has 5,994 parameters and flattens 16·4·4 = 256 values.
        let tfjs = net(preset("tfjs").unwrap()).unwrap();
        assert_eq!(tfjs.parameter_count(), 5_994);
        assert_eq!(tfjs.dense_part().0, [256, 10]);
        // lenet: conv 1→32 (832), conv 32→64 (51,264), dense 3136→128 (401,536), 128→10 (1,290).
        let lenet = net(preset("lenet").unwrap()).unwrap();
        assert_eq!(lenet.parameter_count(), 832 + 51_264 + 401_536 + 1_290);
        assert_eq!(
            lenet.dense_part(),
            (vec![3136, 128, 10], Some(Activation::Relu))
        );
        assert!(net(preset("cnn").unwrap()).is_ok());
    }

    #[test]
    fn the_layer_string_round_trips() {
        for (_, text) in PRESETS {
            let n = net(text).unwrap();
            assert_eq!(layer_string(&n), text);
            assert_eq!(net(&layer_string(&n)).unwrap(), n);
        }
        // A dense-only list is the dense stack it names, flatten and `valid` spelled out.
        let mlp = net("flatten,dense64,sigmoid,dense64,sigmoid,dense10").unwrap();
        assert_eq!(
            mlp,
            Network::new(&[784, 64, 64, 10], Activation::Sigmoid, Output::default()).unwrap()
        );
        assert_eq!(
            net("conv8k5valid,relu,maxpool,flatten,dense10").unwrap(),
            net("conv8k5,relu,pool,dense10").unwrap()
        );
    }

    #[test]
    fn each_layer_has_its_own_activation_or_none() {
        let mixed = net("dense64,relu,dense32,tanh,dense10").unwrap();
        let acts: Vec<_> = mixed.nodes().iter().map(|n| n.act).collect();
        assert_eq!(acts, [Some(Activation::Relu), Some(Activation::Tanh), None]);
        assert_eq!(mixed.dense_part(), (vec![784, 64, 32, 10], None));
        assert_eq!(mixed.dense_stack(), None);
        assert_eq!(
            mixed.to_string(),
            "dense64,relu,dense32,tanh,dense10 (softmax-cross-entropy)"
        );
        // A layer without an activation is linear.
        let linear = net("conv8k5,pool,dense16,dense10").unwrap();
        assert!(linear.nodes().iter().all(|n| n.act.is_none()));
        assert_eq!(layer_string(&linear), "conv8k5,pool,dense16,dense10");
        let s = summary(&linear);
        assert!(
            s.contains("conv2d 5×5 valid  ") && s.contains("dense, softmax"),
            "{s}"
        );
    }

    #[test]
    fn wrong_lists_name_the_layer_and_the_shapes() {
        let cases = [
            ("conv8k29,relu,dense10", "layer 1 `conv8k29`"),
            (
                "conv8k5,relu,pool,conv8k4,relu,pool,dense10",
                "layer 6 `pool`",
            ),
            ("conv8k5,relu,pool,pool,pool,pool,dense10", "3×3"),
            ("conv8k4same,relu,dense10", "odd kernel"),
            ("dense10,relu,conv8k3,relu,dense10", "after a dense layer"),
            (
                "conv8k5,relu,relu,dense10",
                "follows another activation (relu)",
            ),
            (
                "conv8k5,relu,pool,tanh,dense10",
                "tanh after a max-pool 2×2: put it before",
            ),
            ("dense64,relu,dense10,relu", "takes no activation"),
            ("relu,dense10", "follows no"),
            ("conv8k5,relu", "must be dense"),
            ("conv8k5,relu,pool,", "layer 4 ``"),
            ("conv8x5", "expected convCkK"),
            ("dense+5", "layer 1"),
            ("dense0", "at least 1 unit"),
            ("conv0k3,relu,dense10", "output channel"),
            ("flatten,flatten,dense10", "already flat"),
            ("", "empty"),
        ];
        for (text, want) in cases {
            let err = net(text).expect_err(text).to_string();
            assert!(err.contains(want), "`{text}`: {err}");
        }
    }

    #[test]
    fn the_summary_lists_each_layer_with_its_shape_and_parameters() {
        let s = summary(&net(preset("tfjs").unwrap()).unwrap());
        for want in [
            "1×28×28",
            "8×24×24",
            "208",
            "8×12×12",
            "16×8×8",
            "3216",
            "16×4×4",
            "256",
            "2570",
            "5994",
        ] {
            assert!(s.contains(want), "missing {want}:\n{s}");
        }
        assert_eq!(s.lines().count(), 11, "{s}");
    }
}
