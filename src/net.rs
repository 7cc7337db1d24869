//! The network description (layer sizes, hidden activation, output and loss) and the CPU math of
//! each activation beside its derivative.
//!
//! Every derivative here is written in terms of the activation's *output* `a = f(z)`, as the
//! tutorials do for the sigmoid (`a(1-a)`): the backward pass then needs only the activations the
//! forward pass kept, never the pre-activations.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Slope of leaky ReLU for negative inputs (PyTorch's default).
pub const LEAKY_SLOPE: f32 = 0.01;

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
    /// `z` for `z > 0`, else `LEAKY_SLOPE · z`.
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

    /// `f(z)`.
    #[inline]
    pub fn apply(self, z: f32) -> f32 {
        match self {
            Activation::Sigmoid => sigmoid(z),
            Activation::Tanh => z.tanh(),
            Activation::Relu => z.max(0.0),
            Activation::LeakyRelu => {
                if z > 0.0 {
                    z
                } else {
                    LEAKY_SLOPE * z
                }
            }
        }
    }

    /// `f'(z)` written in terms of `a = f(z)`. For the ReLUs the output has the sign of the
    /// input, so `a > 0` is `z > 0`; at `z = 0` the derivative is taken as the left one.
    #[inline]
    pub fn derivative_from_output(self, a: f32) -> f32 {
        match self {
            Activation::Sigmoid => a * (1.0 - a),
            Activation::Tanh => 1.0 - a * a,
            Activation::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu => {
                if a > 0.0 {
                    1.0
                } else {
                    LEAKY_SLOPE
                }
            }
        }
    }

    /// The code the WGSL kernels switch on (see `shaders/common.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Activation::Sigmoid => 0,
            Activation::Tanh => 1,
            Activation::Relu => 2,
            Activation::LeakyRelu => 3,
        }
    }

    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky-relu",
        }
    }
}

/// The logistic function `1 / (1 + e^-z)`. Branch-free (through [`exp`]) so that loops over
/// slices vectorise; `e^-z` saturates to 0 or +∞ and the result to 1 or 0 without NaN.
#[inline]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// `e^x` in f32 within 2 ulp of the correctly rounded value for x in [-87, 88] (0 below,
/// +∞ above), written branch-free so that the compiler vectorises loops that call it; libm's
/// `expf` is a scalar call and was a tenth of the CPU step's time.
///
/// Cody–Waite reduction `x = n·ln2 + r` with `|r| ≤ ln2/2`, then a degree-6 minimax polynomial
/// for `e^r` (Cephes' `expf` coefficients) and `2^n` built in the exponent bits.
#[inline]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.3, 88.7);
    // Round to nearest by the 1.5·2^23 trick: `round()` and `mul_add` are libm calls on the
    // baseline x86-64 target, which would stop the loop from vectorising.
    const ROUND: f32 = 12_582_912.0;
    let n = (xc * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = (p * r * r + r) + 1.0;
    // 2^n with n in [-126, 128]: split so that each factor is a normal float.
    let n = n as i32;
    let half = n >> 1;
    let pow = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let y = e * pow(half) * pow(n - half);
    if x < -87.3 {
        0.0
    } else if x > 88.7 {
        f32::INFINITY
    } else {
        y
    }
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

    /// The name used in checkpoints and messages.
    pub fn name(self) -> &'static str {
        match self {
            Output::SoftmaxCrossEntropy => "softmax-cross-entropy",
            Output::SigmoidMse => "sigmoid-mse",
        }
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

macro_rules! named_enum {
    ($ty:ty, $what:literal, [$($name:literal => $variant:expr),+ $(,)?]) => {
        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($name => Ok($variant),)+
                    _ => Err(Error::arg($what, concat!("one of:" $(, " ", $name)+), s)),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let name = match self {
                    $(v if *v == $variant => $name,)+
                    _ => unreachable!(),
                };
                f.write_str(name)
            }
        }
    };
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

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        // libm's expf is correctly rounded to within 1 ulp; ours must stay within 2 more.
        let mut worst = 0u32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(a.to_bits().abs_diff(b.to_bits()));
            x += 0.001_37;
        }
        assert!(worst <= 3, "worst ulp distance {worst}");
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(200.0), f32::INFINITY);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn derivatives_from_output_match_finite_differences() {
        // f64-free check at points away from the ReLU kink; h = 1e-3 keeps f32 rounding
        // (~1e-7/1e-3 = 1e-4) well below the 1e-3 tolerance.
        for act in Activation::ALL {
            for &z in &[-2.5f32, -0.7, 0.3, 1.9] {
                let h = 1e-3;
                let fd = (act.apply(z + h) - act.apply(z - h)) / (2.0 * h);
                let d = act.derivative_from_output(act.apply(z));
                assert!((fd - d).abs() < 1e-3, "{act} at {z}: {fd} vs {d}");
            }
        }
    }
}
