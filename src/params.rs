//! Weights and biases, their seeded initialisation, and (in [`crate::checkpoint`]) their
//! storage.

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::error::{Error, Result};
use crate::named_enum;
use crate::shape::{TensorRole, WeightShapes};

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

named_enum!(Init, "init", [
    "uniform" => Init::Uniform,
    "xavier" => Init::Xavier,
    "he" => Init::He,
]);

/// One dense layer: `z = x·w + b` with `w` of shape `fan_in × fan_out`.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

/// All trainable parameters of a network, first layer first.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub layers: Vec<Weights>,
}

impl Params {
    /// Draws parameters for `net` from `seed` (a tensor filled by its role draws nothing). The
    /// generator (PCG-64 MCG) and the order of the draws (layer by layer, `w` row-major then
    /// `b`) are fixed, so a seed gives bit-identical
    /// parameters on every run and machine.
    pub fn init(net: &impl WeightShapes, init: Init, seed: u64) -> Params {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let layers = net
            .weight_shapes()
            .map(|s| {
                let (fan_in, fan_out, n) = (s.fan_in, s.fan_out, s.rows * s.cols);
                let (w, b): (Vec<f32>, Vec<f32>) = match (s.role, init) {
                    (TensorRole::TrainedFromOnes, _) => (vec![1.0; n], vec![0.0; s.bias]),
                    (TensorRole::RunningAverage, _) => (vec![0.0; n], vec![1.0; s.bias]),
                    (_, Init::Uniform) => {
                        let bound = 1.0 / (fan_in as f64).sqrt();
                        (
                            uniform(&mut rng, n, bound),
                            uniform(&mut rng, s.bias, bound),
                        )
                    }
                    (_, Init::Xavier) => {
                        let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
                        (uniform(&mut rng, n, bound), vec![0.0; s.bias])
                    }
                    (_, Init::He) => {
                        let std = (2.0 / fan_in as f64).sqrt();
                        let w = (0..n)
                            .map(|_| (standard_normal(&mut rng) * std) as f32)
                            .collect();
                        (w, vec![0.0; s.bias])
                    }
                };
                Weights {
                    w: Array2::from_shape_vec((s.rows, s.cols), w).expect("sized above"),
                    b: Array1::from(b),
                }
            })
            .collect();
        Params { layers }
    }

    /// Zeros shaped like `net` (optimizer state, gradients).
    pub fn zeros(net: &impl WeightShapes) -> Params {
        Params {
            layers: net
                .weight_shapes()
                .map(|s| Weights {
                    w: Array2::zeros((s.rows, s.cols)),
                    b: Array1::zeros(s.bias),
                })
                .collect(),
        }
    }

    /// Zeros of the same shapes as `self`.
    pub fn zeros_like(&self) -> Params {
        Params {
            layers: self
                .layers
                .iter()
                .map(|l| Weights {
                    w: Array2::zeros(l.w.raw_dim()),
                    b: Array1::zeros(l.b.raw_dim()),
                })
                .collect(),
        }
    }

    /// Checks that these parameters have the shapes `net` describes.
    pub fn check_shape(&self, net: &impl WeightShapes, what: &str) -> Result<()> {
        let mismatch = |expected: String, got: String| Error::Shape {
            what: what.to_string(),
            expected,
            got,
        };
        let expected = net.weight_shapes().count();
        if self.layers.len() != expected {
            return Err(mismatch(
                format!("{expected} layers"),
                format!("{} layers", self.layers.len()),
            ));
        }
        for (l, (layer, s)) in self.layers.iter().zip(net.weight_shapes()).enumerate() {
            let (i, o) = (s.rows, s.cols);
            if layer.w.dim() != (i, o) || layer.b.len() != s.bias {
                return Err(mismatch(
                    format!("layer {l}: w {i}x{o}, b {}", s.bias),
                    format!(
                        "layer {l}: w {}x{}, b {}",
                        layer.w.nrows(),
                        layer.w.ncols(),
                        layer.b.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Largest absolute element-wise difference to `other` (same shapes assumed).
    pub fn max_abs_diff(&self, other: &Params) -> f32 {
        self.layers
            .iter()
            .zip(&other.layers)
            .flat_map(|(a, b)| {
                let dw = a.w.iter().zip(b.w.iter()).map(|(x, y)| (x - y).abs());
                let db = a.b.iter().zip(b.b.iter()).map(|(x, y)| (x - y).abs());
                dw.chain(db).collect::<Vec<_>>()
            })
            .fold(0.0, f32::max)
    }
}

/// `n` draws from U(-bound, bound), computed in f64 and rounded once.
fn uniform(rng: &mut Pcg64Mcg, n: usize, bound: f64) -> Vec<f32> {
    (0..n)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
        .collect()
}

/// One N(0, 1) draw by Box–Muller (explicit, so the stream never depends on a crate's choice).
fn standard_normal(rng: &mut Pcg64Mcg) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Activation, Network, Output};

    fn net() -> Network {
        Network::new(&[784, 64, 64, 10], Activation::Sigmoid, Output::default()).unwrap()
    }

    #[test]
    fn same_seed_gives_identical_bits() {
        for init in [Init::Uniform, Init::Xavier, Init::He] {
            let a = Params::init(&net(), init, 42);
            let b = Params::init(&net(), init, 42);
            assert_eq!(a, b);
            assert_ne!(a, Params::init(&net(), init, 43));
        }
    }

    #[test]
    fn uniform_init_respects_the_pytorch_bound() {
        let p = Params::init(&net(), Init::Uniform, 0);
        let bound = 1.0 / 784f32.sqrt();
        assert!(p.layers[0].w.iter().all(|w| w.abs() <= bound));
        let max = p.layers[0].w.iter().fold(0f32, |m, w| m.max(w.abs()));
        assert!(max > 0.99 * bound, "draws should fill the range, max {max}");
        let mean = p.layers[0].w.mean().unwrap();
        assert!(mean.abs() < 1e-3, "mean {mean}");
    }

    #[test]
    fn he_init_has_the_right_spread() {
        let p = Params::init(&net(), Init::He, 1);
        let w = &p.layers[0].w;
        let var = w.iter().map(|x| (x * x) as f64).sum::<f64>() / w.len() as f64;
        // 50176 draws: the sample variance is within ~1% of 2/784 with overwhelming odds.
        assert!((var / (2.0 / 784.0) - 1.0).abs() < 0.03, "variance {var}");
    }
}
