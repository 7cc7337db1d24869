//! Optimizers: their hyper-parameters, their state, and the CPU update that the GPU kernels in
//! `shaders/optim.wgsl` are held to.

use std::fmt;

use ndarray::{ArrayViewMut, Dimension, Zip};

use crate::error::{Error, Result};
use crate::params::Params;

/// An optimizer and its hyper-parameters. The learning rate is not here: the training loop
/// passes it to every step, so that schedules need no optimizer rebuild.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `p -= lr · g`.
    Sgd,
    /// Heavy-ball momentum with L2 weight decay (PyTorch's `SGD(momentum, weight_decay)`):
    /// `g' = g + wd·p; v = μ·v + g'; p -= lr · v`.
    Momentum { momentum: f32, weight_decay: f32 },
    /// Adam (Kingma & Ba) with bias correction; `weight_decay` is L2 added to the gradient.
    Adam {
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
    },
}

impl Optimizer {
    /// Momentum 0.9, no weight decay.
    pub fn momentum() -> Self {
        Optimizer::Momentum {
            momentum: 0.9,
            weight_decay: 0.0,
        }
    }

    /// Adam with the paper's defaults.
    pub fn adam() -> Self {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// Parses `sgd`, `momentum` or `adam` with default hyper-parameters.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "sgd" => Ok(Optimizer::Sgd),
            "momentum" => Ok(Optimizer::momentum()),
            "adam" => Ok(Optimizer::adam()),
            _ => Err(Error::arg("optimizer", "one of: sgd momentum adam", name)),
        }
    }

    /// `sgd`, `momentum` or `adam`.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum { .. } => "momentum",
            Optimizer::Adam { .. } => "adam",
        }
    }

    /// How many state tensors per parameter (0, 1 or 2).
    pub fn slots(&self) -> usize {
        match self {
            Optimizer::Sgd => 0,
            Optimizer::Momentum { .. } => 1,
            Optimizer::Adam { .. } => 2,
        }
    }

    /// Returns this optimizer with its weight decay set (SGD gains momentum 0 to carry it).
    pub fn with_weight_decay(self, wd: f32) -> Self {
        match self {
            Optimizer::Sgd | Optimizer::Momentum { .. } if wd == 0.0 => self,
            Optimizer::Sgd => Optimizer::Momentum {
                momentum: 0.0,
                weight_decay: wd,
            },
            Optimizer::Momentum { momentum, .. } => Optimizer::Momentum {
                momentum,
                weight_decay: wd,
            },
            Optimizer::Adam {
                beta1, beta2, eps, ..
            } => Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay: wd,
            },
        }
    }

    /// Checks the hyper-parameters: weight decay finite and not negative (a negative decay
    /// pushes weights away from zero, so training runs away), momentum and Adam's betas in
    /// [0, 1) (at 1 or above the state never forgets and grows without bound), eps finite and
    /// positive. Every backend and checkpoint goes through this.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &'static str, x: f32| {
            if (0.0..1.0).contains(&x) {
                Ok(())
            } else {
                Err(Error::arg(name, "a number in [0, 1)", x))
            }
        };
        let decay = |x: f32| {
            if x.is_finite() && x >= 0.0 {
                Ok(())
            } else {
                Err(Error::arg("weight decay", "a finite number ≥ 0", x))
            }
        };
        match *self {
            Optimizer::Sgd => Ok(()),
            Optimizer::Momentum {
                momentum,
                weight_decay,
            } => {
                unit("momentum", momentum)?;
                decay(weight_decay)
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(Error::arg("eps", "a finite number > 0", eps));
                }
                decay(weight_decay)
            }
        }
    }

    /// The bias corrections `(1 - β1^t, 1 - β2^t)` of Adam's step `t` (1-based); `(1, 1)`
    /// for the others. Computed in f64 on the host so both backends use the same values.
    pub fn bias_corrections(&self, t: u64) -> (f32, f32) {
        match *self {
            Optimizer::Adam { beta1, beta2, .. } => {
                let t = t.min(i32::MAX as u64) as i32;
                (
                    (1.0 - (beta1 as f64).powi(t)) as f32,
                    (1.0 - (beta2 as f64).powi(t)) as f32,
                )
            }
            _ => (1.0, 1.0),
        }
    }

    /// One update of one parameter tensor in place: the reference the GPU kernel matches.
    /// `state` holds `slots()` tensors shaped like `p`; `t` is the 1-based step number.
    pub fn update<D: Dimension>(
        &self,
        lr: f32,
        t: u64,
        mut p: ArrayViewMut<f32, D>,
        g: ndarray::ArrayView<f32, D>,
        state: &mut [ArrayViewMut<f32, D>],
    ) {
        match *self {
            Optimizer::Sgd => Zip::from(&mut p).and(&g).for_each(|p, &g| *p -= lr * g),
            Optimizer::Momentum {
                momentum,
                weight_decay,
            } => {
                let [v] = state else {
                    panic!("momentum has one state slot")
                };
                Zip::from(&mut p).and(&g).and(v).for_each(|p, &g, v| {
                    let g = g + weight_decay * *p;
                    *v = momentum * *v + g;
                    *p -= lr * *v;
                });
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let (c1, c2) = self.bias_corrections(t);
                let [m, v] = state else {
                    panic!("adam has two state slots")
                };
                Zip::from(&mut p)
                    .and(&g)
                    .and(m)
                    .and(v)
                    .for_each(|p, &g, m, v| {
                        let g = g + weight_decay * *p;
                        *m = beta1 * *m + (1.0 - beta1) * g;
                        *v = beta2 * *v + (1.0 - beta2) * g * g;
                        let m_hat = *m / c1;
                        let v_hat = *v / c2;
                        *p -= lr * m_hat / (v_hat.sqrt() + eps);
                    });
            }
        }
    }
}

impl fmt::Display for Optimizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The optimizer's state: the step count and `slots()` parameter-shaped tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimState {
    /// Number of steps taken so far.
    pub step: u64,
    /// Momentum velocity, or Adam's first and second moments.
    pub slots: Vec<Params>,
}

impl OptimState {
    /// Checks that this state fits `optimizer` (number of slots) and `net` (shapes).
    pub fn check(&self, optimizer: &Optimizer, net: &crate::net::Network) -> Result<()> {
        if self.slots.len() != optimizer.slots() {
            return Err(Error::Shape {
                what: format!("{optimizer} optimizer state"),
                expected: format!("{} slots", optimizer.slots()),
                got: format!("{} slots", self.slots.len()),
            });
        }
        self.slots
            .iter()
            .try_for_each(|slot| slot.check_shape(net, "optimizer state"))
    }

    /// Fresh state for `optimizer` over parameters shaped like `params`.
    pub fn new(optimizer: &Optimizer, params: &Params) -> Self {
        OptimState {
            step: 0,
            slots: (0..optimizer.slots())
                .map(|_| params.zeros_like())
                .collect(),
        }
    }
}

/// Applies one step of `optimizer` to every tensor of `params` (CPU), advancing `state.step`.
pub fn apply(
    optimizer: &Optimizer,
    lr: f32,
    params: &mut Params,
    grads: &Params,
    state: &mut OptimState,
) {
    state.step += 1;
    let t = state.step;
    for (l, (layer, grad)) in params.layers.iter_mut().zip(&grads.layers).enumerate() {
        // At most two state tensors: their views go in a fixed array, not a Vec, so that a
        // step allocates nothing; `update` reads only the first `slots()` of them.
        let mut slots = state.slots.iter_mut().map(|s| &mut s.layers[l]);
        let (mut s0, mut s1) = (slots.next(), slots.next());
        let n = optimizer.slots();
        let mut ws = [w_view(&mut s0), w_view(&mut s1)];
        optimizer.update(lr, t, layer.w.view_mut(), grad.w.view(), &mut ws[..n]);
        let mut bs = [b_view(&mut s0), b_view(&mut s1)];
        optimizer.update(lr, t, layer.b.view_mut(), grad.b.view(), &mut bs[..n]);
    }
}

/// The weights of a state slot, or an empty view where the optimizer has no such slot.
fn w_view<'a>(
    slot: &'a mut Option<&mut crate::params::Layer>,
) -> ArrayViewMut<'a, f32, ndarray::Ix2> {
    match slot {
        Some(s) => s.w.view_mut(),
        None => ArrayViewMut::from_shape((0, 0), &mut []).expect("an empty shape fits"),
    }
}

/// The biases of a state slot, or an empty view.
fn b_view<'a>(
    slot: &'a mut Option<&mut crate::params::Layer>,
) -> ArrayViewMut<'a, f32, ndarray::Ix1> {
    match slot {
        Some(s) => s.b.view_mut(),
        None => ArrayViewMut::from_shape(0, &mut []).expect("an empty shape fits"),
    }
}
