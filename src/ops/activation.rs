//! Activations: `f(z)` beside its derivative, the CPU twin of `shaders/activation.wgsl`.
//!
//! Every derivative is written in terms of the activation's *output* `a = f(z)`, as the
//! tutorials do for the sigmoid (`a(1-a)`): the backward pass then needs only the activations the
//! forward pass kept, never the pre-activations.
//!
//! **NaN** goes through every activation, ReLU's included (not `max`, which drops a NaN in
//! Rust and does either on GPUs; the kernels tell a NaN by its bits), as it wins a pool's
//! window (`ops::pool`): a NaN reaches the loss and the training loop's divergence check
//! instead of turning into a 0 somewhere in the middle. The GPU kernels follow the same rule.

use super::Shared;
use crate::named_enum;

/// An activation function: a layer of its own in a network's list, fused into the layer
/// before it when lowered.
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

named_enum!(Activation, "activation", [
    "sigmoid" => Activation::Sigmoid,
    "tanh" => Activation::Tanh,
    "relu" => Activation::Relu,
    "leaky-relu" => Activation::LeakyRelu,
]);

/// Slope of leaky ReLU for negative inputs (PyTorch's default).
pub const LEAKY_SLOPE: f32 = 0.01;

/// The identity "activation" code: the last layer's logits go through the matmul epilogue
/// unchanged.
pub const ACT_IDENTITY: u32 = 4;

pub(crate) const WGSL: &str = include_str!("../../shaders/activation.wgsl");

pub(crate) const SHARED: &[Shared] = &[
    Shared::U32("ACT_SIGMOID", Activation::Sigmoid.code()),
    Shared::U32("ACT_TANH", Activation::Tanh.code()),
    Shared::U32("ACT_RELU", Activation::Relu.code()),
    Shared::U32("ACT_LEAKY_RELU", Activation::LeakyRelu.code()),
    Shared::U32("ACT_IDENTITY", ACT_IDENTITY),
    Shared::F32("LEAKY_SLOPE", LEAKY_SLOPE),
];

impl Activation {
    /// `f(z)`.
    #[inline]
    pub fn apply(self, z: f32) -> f32 {
        match self {
            Activation::Sigmoid => sigmoid(z),
            Activation::Tanh => z.tanh(),
            Activation::Relu => relu(z),
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

    /// The code the WGSL kernels switch on (`ACT_*` in the generated prelude).
    pub const fn code(self) -> u32 {
        match self {
            Activation::Sigmoid => 0,
            Activation::Tanh => 1,
            Activation::Relu => 2,
            Activation::LeakyRelu => 3,
        }
    }

    /// The code of an optional activation: `None` is the identity ([`ACT_IDENTITY`]).
    pub const fn code_of(act: Option<Activation>) -> u32 {
        match act {
            Some(a) => a.code(),
            None => ACT_IDENTITY,
        }
    }
}

/// `max(z, 0)` with NaN kept (see the module's NaN rule); branch-free, so loops vectorise.
#[inline]
pub fn relu(z: f32) -> f32 {
    if z <= 0.0 { 0.0 } else { z }
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

#[cfg(test)]
mod tests {
    use super::*;

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
