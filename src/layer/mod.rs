//! A network is a list of layers, and each layer kind is one module here: its shapes, weights,
//! token, summary name, CPU reference and GPU lowering, behind the [`Op`] trait. The backends
//! walk a network's [`Node`]s (its layers with each activation fused into the layer before it)
//! through `Op` and never ask which kind a layer is.
//!
//! **Adding a layer kind**: its module implementing `Op` (with its `from_token`), its WGSL and
//! its op cases, and its line in each of the two registrations below: a [`Layer`] variant
//! with its arm in [`Layer::op`], and its reader in [`from_token`].

pub mod avgpool;
pub mod batchnorm;
pub mod conv;
pub mod dense;
pub mod dropout;
pub mod op;
pub mod pool;

pub use avgpool::AvgPool;
pub use batchnorm::BatchNorm;
pub use dense::Dense;
pub use dropout::Dropout;
pub use op::{Backward, Forward, Op, Pass, Scratch, WeightsView};

use crate::ops::activation::Activation;
use crate::ops::conv::ConvShape;
use crate::ops::pool::PoolShape;
use crate::shape::Chw;

/// One entry of a network's layer list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Conv(ConvShape),
    MaxPool(PoolShape),
    Dense(Dense),
    AvgPool(AvgPool),
    Dropout(Dropout),
    BatchNorm(BatchNorm),
    /// An activation of the layer before it (fused into that layer when lowered).
    Activation(Activation),
}

impl Layer {
    /// The layer's op; `None` for an activation, which has none of its own.
    pub fn op(&self) -> Option<&dyn Op> {
        match self {
            Layer::Conv(l) => Some(l),
            Layer::MaxPool(l) => Some(l),
            Layer::Dense(l) => Some(l),
            Layer::AvgPool(l) => Some(l),
            Layer::Dropout(l) => Some(l),
            Layer::BatchNorm(l) => Some(l),
            Layer::Activation(_) => None,
        }
    }

    /// Its token in the layer string.
    pub fn token(&self) -> String {
        match (self.op(), self) {
            (Some(op), _) => op.token(),
            (None, Layer::Activation(a)) => a.to_string(),
            (None, _) => unreachable!("only an activation has no op"),
        }
    }
}

/// Every layer token's syntax, for error messages.
pub const SYNTAXES: [&str; 6] = [
    conv::SYNTAX,
    pool::SYNTAX,
    avgpool::SYNTAX,
    dense::SYNTAX,
    dropout::SYNTAX,
    batchnorm::SYNTAX,
];

type Reader = fn(&str, Chw) -> Option<Result<Layer, String>>;

/// The layer `token` names on an `input`-shaped input (`None` when no kind reads it), or why it
/// does not fit.
pub fn from_token(token: &str, input: Chw) -> Option<Result<Layer, String>> {
    const READERS: [Reader; 7] = [
        |t, i| conv::from_token(t, i).map(|r| r.map(Layer::Conv)),
        |t, i| pool::from_token(t, i).map(|r| r.map(Layer::MaxPool)),
        |t, i| dense::from_token(t, i).map(|r| r.map(Layer::Dense)),
        |t, i| avgpool::from_token(t, i).map(|r| r.map(Layer::AvgPool)),
        |t, i| dropout::from_token(t, i).map(|r| r.map(Layer::Dropout)),
        |t, i| batchnorm::from_token(t, i).map(|r| r.map(Layer::BatchNorm)),
        |t, _| t.parse().ok().map(|a| Ok(Layer::Activation(a))),
    ];
    READERS.iter().find_map(|read| read(token, input))
}

/// A token's number: digits only (`+5` or ` 5` are not sizes).
fn number(s: &str) -> Option<usize> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A layer as the backends run it: an op, the activation after it fused in, and its weight
/// tensor's index in [`crate::params::Params`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    /// Never [`Layer::Activation`].
    layer: Layer,
    pub act: Option<Activation>,
    pub tensor: Option<usize>,
    /// Its statistics tensor's index, if it has one (right after its weights).
    pub statistics: Option<usize>,
    /// Its place in the layer list (0-based), for messages.
    pub position: usize,
}

impl Node {
    pub fn op(&self) -> &dyn Op {
        self.layer.op().expect("a node is never an activation")
    }

    pub fn layer(&self) -> &Layer {
        &self.layer
    }
}

/// The nodes of `layers`: each activation fused into the op before it. An activation that
/// follows no op, follows another activation or an op that takes none is an error naming it
/// (its position and message).
pub fn lower(layers: &[Layer]) -> Result<Vec<Node>, (usize, String)> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut tensors = 0;
    for (i, layer) in layers.iter().enumerate() {
        match (layer, layer.op()) {
            (_, Some(op)) => {
                let mut next = |has: bool| {
                    tensors += usize::from(has);
                    has.then(|| tensors - 1)
                };
                let tensor = next(op.weights().is_some());
                let statistics = next(op.statistics().is_some());
                nodes.push(Node {
                    layer: *layer,
                    act: None,
                    tensor,
                    statistics,
                    position: i,
                });
            }
            (Layer::Activation(a), None) => {
                let before = i.checked_sub(1).map(|p| &layers[p]);
                let Some(node) = nodes
                    .last_mut()
                    .filter(|_| before.is_some_and(|b| b.op().is_some()))
                else {
                    let what = match before {
                        Some(b) => format!("{a} follows another activation ({})", b.token()),
                        None => format!("{a} follows no layer"),
                    };
                    return Err((i, what));
                };
                if !node.op().fuses_activation() {
                    return Err((
                        i,
                        format!(
                            "{a} after a {}: put it before (it commutes with the maximum)",
                            node.op().describe()
                        ),
                    ));
                }
                node.act = Some(*a);
            }
            (_, None) => unreachable!("only an activation has no op"),
        }
    }
    Ok(nodes)
}
