//! The shape of one sample, which every layer of the crate may use: the data readers, the
//! datasets, the networks and the kernels' planning. It imports nothing of the crate.

/// The shape of one image sample (and of a spatial layer's input or output): channels × height
/// × width, stored channel-major (all of channel 0, then channel 1, …), row-major in a plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chw {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Chw {
    pub const fn new(c: usize, h: usize, w: usize) -> Chw {
        Chw { c, h, w }
    }

    /// Values per sample, C·H·W: the width of a batch row. Saturates instead of overflowing,
    /// so that an absurd shape fails the size checks rather than wrapping round to a small one.
    pub fn len(&self) -> usize {
        self.c.saturating_mul(self.h).saturating_mul(self.w)
    }

    /// Values per channel, H·W.
    pub fn plane(&self) -> usize {
        self.h.saturating_mul(self.w)
    }

    /// Whether any dimension is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where value `(c, y, x)` sits in a sample's row (channel-major).
    #[inline]
    pub fn index(&self, c: usize, y: usize, x: usize) -> usize {
        (c * self.h + y) * self.w + x
    }
}

impl std::fmt::Display for Chw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.c, self.h, self.w)
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
    pub role: TensorRole,
}

/// How a tensor starts and changes in training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TensorRole {
    /// Drawn by the initialiser, trained by the optimizer.
    #[default]
    Trained,
    /// Trained, starting from `w = 1`, `b = 0` (batch norm's scale and shift).
    TrainedFromOnes,
    /// Not trained: a running average of what each training step measures (its gradient's
    /// place holds the step's value: see `ops::optim::apply`), starting from `w = 0`, `b = 1`
    /// (batch norm's running mean and variance).
    RunningAverage,
}

impl WeightShape {
    /// A trained `rows × cols` tensor with `bias` biases and the fans the initialisers use.
    pub const fn trained(rows: usize, cols: usize, bias: usize, fans: (usize, usize)) -> Self {
        WeightShape {
            rows,
            cols,
            bias,
            fan_in: fans.0,
            fan_out: fans.1,
            role: TensorRole::Trained,
        }
    }
}

/// Anything that lists weight tensors (a network): what parameters, gradients and optimizer
/// state are shaped by.
pub trait WeightShapes {
    /// Every weight tensor, in the order [`crate::params::Params`] holds them. An iterator, so
    /// that a count or a sum over a network claimed by untrusted metadata allocates nothing.
    fn weight_shapes(&self) -> impl Iterator<Item = WeightShape> + '_;
}
