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
//! | `flatten` | the image to a row of C·H·W values (implied before the first dense layer) |
//! | `dense128` | a dense layer of 128 units |
//! | `relu`, `sigmoid`, `tanh`, `leaky-relu` | the activation of the layer just before it |
//!
//! Every convolution and every hidden dense layer needs an activation; the last layer is dense
//! and has none (its outputs go to the softmax of the loss). The hidden dense layers share one
//! activation, as they do in a dense stack. E.g. TensorFlow.js's tutorial network is
//! `conv8k5,relu,pool,conv16k5,relu,pool,dense10` (the `tfjs` preset).
//!
//! A wrong list is an error that names the layer (its position and token) and the shapes:
//! a kernel larger than its input, a pool on an odd size, a convolution after a dense layer,
//! a missing activation. Nothing is cropped or guessed.

use std::fmt::{self, Write};

use crate::error::{Error, Result};
use crate::net::{Activation, Feature, Network, Output};
use crate::ops::conv::{ConvShape, Padding};
use crate::ops::pool::PoolShape;
use crate::shape::Chw;

/// One token of a layer list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSpec {
    Conv {
        channels: usize,
        kernel: usize,
        padding: Padding,
    },
    Pool,
    Flatten,
    Dense {
        units: usize,
    },
    Activation(Activation),
}

/// The named networks `--model` takes besides a layer string: `mlp` is the dense default
/// (not a layer string: it is the recipe's hidden sizes and activation).
pub const PRESETS: [(&str, &str); 3] = [
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

/// Parses a layer string (see the module docs) into its tokens.
pub fn parse(text: &str) -> Result<Vec<LayerSpec>> {
    if text.trim().is_empty() {
        return Err(Error::Network(
            "the layer string is empty: expected e.g. conv8k5,relu,pool,dense10".into(),
        ));
    }
    text.split(',')
        .enumerate()
        .map(|(i, token)| {
            let token = token.trim();
            parse_token(token).ok_or_else(|| {
                Error::Network(format!(
                    "layer {} `{token}` of `{text}`: expected convCkK[same|valid] (e.g. conv8k5), \
                     pool, flatten, denseN (e.g. dense128) or an activation ({})",
                    i + 1,
                    Activation::ALL.map(|a| a.to_string()).join(", ")
                ))
            })
        })
        .collect()
}

fn parse_token(token: &str) -> Option<LayerSpec> {
    let number = |s: &str| -> Option<usize> {
        // Digits only: `+5` or ` 5` are not sizes.
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if let Some(rest) = token.strip_prefix("conv") {
        let (channels, rest) = rest.split_once('k')?;
        let (kernel, padding) = match rest.strip_suffix("same") {
            Some(k) => (k, Padding::Same),
            None => (rest.strip_suffix("valid").unwrap_or(rest), Padding::Valid),
        };
        return Some(LayerSpec::Conv {
            channels: number(channels)?,
            kernel: number(kernel)?,
            padding,
        });
    }
    if let Some(units) = token.strip_prefix("dense") {
        return Some(LayerSpec::Dense {
            units: number(units)?,
        });
    }
    match token {
        "pool" | "maxpool" => Some(LayerSpec::Pool),
        "flatten" => Some(LayerSpec::Flatten),
        _ => token.parse().ok().map(LayerSpec::Activation),
    }
}

/// Builds the network `specs` describe on `input` images, inferring every shape. Errors name
/// the layer (1-based position and token) and the shapes that do not fit.
pub fn build(input: Chw, specs: &[LayerSpec], output: Output) -> Result<Network> {
    let fail = |i: usize, msg: String| {
        Error::Network(format!("layer {} `{}`: {msg}", i + 1, token(&specs[i])))
    };
    let activation_after = |i: usize| match specs.get(i + 1) {
        Some(LayerSpec::Activation(a)) => Some(*a),
        _ => None,
    };
    let mut features = Vec::new();
    let mut spatial = Some(input);
    let mut dense = vec![input.len()];
    let mut hidden: Option<Activation> = None;
    let mut i = 0;
    while i < specs.len() {
        let spec = specs[i];
        let last_dense = !specs[i + 1..]
            .iter()
            .any(|s| !matches!(s, LayerSpec::Activation(_)));
        match spec {
            LayerSpec::Conv {
                channels,
                kernel,
                padding,
            } => {
                let Some(chw) = spatial else {
                    return Err(fail(
                        i,
                        "a convolution after a dense layer or flatten".into(),
                    ));
                };
                let shape = ConvShape::new(chw, channels, kernel, padding)
                    .map_err(|e| fail(i, e.to_string()))?;
                let act = activation_after(i).ok_or_else(|| {
                    fail(
                        i,
                        "a convolution needs an activation after it (e.g. relu)".into(),
                    )
                })?;
                features.push(Feature::Conv(shape, act));
                spatial = Some(shape.output());
                i += 1;
            }
            LayerSpec::Pool => {
                let Some(chw) = spatial else {
                    return Err(fail(i, "a max-pool after a dense layer or flatten".into()));
                };
                let shape = PoolShape::new(chw).map_err(|e| fail(i, e.to_string()))?;
                features.push(Feature::Pool(shape));
                spatial = Some(shape.output());
            }
            LayerSpec::Flatten => {
                let Some(chw) = spatial.take() else {
                    return Err(fail(i, "the values are already flat".into()));
                };
                dense = vec![chw.len()];
            }
            LayerSpec::Dense { units } => {
                if let Some(chw) = spatial.take() {
                    dense = vec![chw.len()];
                }
                if units == 0 {
                    return Err(fail(i, "a dense layer needs at least 1 unit".into()));
                }
                dense.push(units);
                match (activation_after(i), last_dense) {
                    (Some(_), true) => {
                        return Err(fail(
                            i,
                            format!(
                                "the last dense layer is the output ({output}) and takes no \
                                 activation"
                            ),
                        ));
                    }
                    (None, false) => {
                        return Err(fail(
                            i,
                            "a hidden dense layer needs an activation after it (e.g. relu)".into(),
                        ));
                    }
                    (Some(a), false) => {
                        if let Some(h) = hidden.filter(|&h| h != a) {
                            return Err(fail(
                                i,
                                format!(
                                    "hidden dense layers share one activation: {h} before, {a} \
                                     here"
                                ),
                            ));
                        }
                        hidden = Some(a);
                        i += 1;
                    }
                    (None, true) => {}
                }
            }
            LayerSpec::Activation(a) => {
                return Err(fail(
                    i,
                    format!("{a} follows no convolution or hidden dense layer"),
                ));
            }
        }
        i += 1;
    }
    if !matches!(
        specs
            .iter()
            .rev()
            .find(|s| !matches!(s, LayerSpec::Activation(_))),
        Some(LayerSpec::Dense { .. })
    ) {
        return Err(Error::Network(format!(
            "the last layer must be dense, with one unit per class (e.g. dense10); got `{}`",
            specs.iter().map(token).collect::<Vec<_>>().join(",")
        )));
    }
    let hidden = hidden.unwrap_or_default();
    if features.is_empty() {
        return Network::new(&dense, hidden, output);
    }
    Network::convolutional(features, &dense, hidden, output)
}

/// Parses and builds in one step.
pub fn from_string(input: Chw, text: &str, output: Output) -> Result<Network> {
    build(input, &parse(text)?, output)
}

/// The token of one layer, as the layer string writes it.
pub fn token(spec: &LayerSpec) -> String {
    match *spec {
        LayerSpec::Conv {
            channels,
            kernel,
            padding,
        } => {
            let pad = if padding == Padding::Same { "same" } else { "" };
            format!("conv{channels}k{kernel}{pad}")
        }
        LayerSpec::Pool => "pool".into(),
        LayerSpec::Flatten => "flatten".into(),
        LayerSpec::Dense { units } => format!("dense{units}"),
        LayerSpec::Activation(a) => a.to_string(),
    }
}

/// `net` as a layer list (what [`build`] turns back into the same network on its image).
pub fn specs(net: &Network) -> Vec<LayerSpec> {
    let mut out = Vec::new();
    for f in net.features() {
        match f {
            Feature::Conv(s, a) => {
                out.push(LayerSpec::Conv {
                    channels: s.output().c,
                    kernel: s.kernel(),
                    padding: s.padding(),
                });
                out.push(LayerSpec::Activation(*a));
            }
            Feature::Pool(_) => out.push(LayerSpec::Pool),
        }
    }
    let layers = net.layers();
    for l in 0..layers {
        out.push(LayerSpec::Dense {
            units: net.layer_shape(l).1,
        });
        if l + 1 < layers {
            out.push(LayerSpec::Activation(net.hidden()));
        }
    }
    out
}

/// `net`'s layer string (the dense part of a dense stack included).
pub fn layer_string(net: &Network) -> String {
    specs(net).iter().map(token).collect::<Vec<_>>().join(",")
}

/// The summary table: one row per layer with its output shape and parameters, then the total.
pub fn summary(net: &Network) -> String {
    let mut rows: Vec<[String; 3]> = Vec::new();
    let input = net
        .image()
        .map_or(net.inputs().to_string(), |i| i.to_string());
    rows.push(["input".into(), input, "0".into()]);
    for f in net.features() {
        let row = match f {
            Feature::Conv(s, a) => [
                format!("conv2d {k}×{k} {}, {a}", s.padding(), k = s.kernel()),
                s.output().to_string(),
                s.parameter_count().to_string(),
            ],
            Feature::Pool(s) => ["max-pool 2×2".into(), s.output().to_string(), "0".into()],
        };
        rows.push(row);
    }
    if !net.is_dense() {
        rows.push(["flatten".into(), net.sizes()[0].to_string(), "0".into()]);
    }
    for l in 0..net.layers() {
        let (i, o) = net.layer_shape(l);
        let act = if l + 1 < net.layers() {
            net.hidden().to_string()
        } else {
            net.output().to_string()
        };
        rows.push([
            format!("dense, {act}"),
            o.to_string(),
            (i * o + o).to_string(),
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
        if !self.is_dense() {
            return write!(f, "{} ({})", layer_string(self), self.output());
        }
        let sizes: Vec<String> = self.sizes().iter().map(|s| s.to_string()).collect();
        write!(
            f,
            "{} ({} hidden, {})",
            sizes.join("-"),
            self.hidden(),
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
        assert_eq!(tfjs.sizes(), &[256, 10]);
        // lenet: conv 1→32 (832), conv 32→64 (51,264), dense 3136→128 (401,536), 128→10 (1,290).
        let lenet = net(preset("lenet").unwrap()).unwrap();
        assert_eq!(lenet.parameter_count(), 832 + 51_264 + 401_536 + 1_290);
        assert_eq!(lenet.sizes(), &[3136, 128, 10]);
        assert_eq!(lenet.hidden(), Activation::Relu);
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
            ("conv8k5,pool,dense10", "needs an activation"),
            ("dense64,dense10", "needs an activation"),
            ("dense64,relu,dense10,relu", "takes no activation"),
            ("dense64,relu,dense32,tanh,dense10", "share one activation"),
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
