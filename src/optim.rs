//! Optimizers: their hyper-parameters and their state. The update arithmetic lives with its
//! kernel in [`crate::ops::optim`].

use std::fmt;

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
        let name = match self {
            Optimizer::Sgd if wd == 0.0 => return self,
            Optimizer::Sgd => "momentum",
            _ => self.name(),
        };
        Optimizer::from_hyper_parameters(name, |k| {
            Ok(match k {
                "weight_decay" => wd,
                _ => self.hyper_parameter(k).unwrap_or(0.0),
            })
        })
        .expect("a known optimizer name")
    }

    /// The hyper-parameters by name, in a fixed order (what checkpoints record).
    pub fn hyper_parameters(&self) -> Vec<(&'static str, f32)> {
        match *self {
            Optimizer::Sgd => vec![],
            Optimizer::Momentum {
                momentum,
                weight_decay,
            } => vec![("momentum", momentum), ("weight_decay", weight_decay)],
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => vec![
                ("beta1", beta1),
                ("beta2", beta2),
                ("eps", eps),
                ("weight_decay", weight_decay),
            ],
        }
    }

    /// The hyper-parameter `name`, if this optimizer has one.
    pub fn hyper_parameter(&self, name: &str) -> Option<f32> {
        let found = self
            .hyper_parameters()
            .into_iter()
            .find(|(k, _)| *k == name);
        found.map(|(_, v)| v)
    }

    /// The optimizer called `name` (`sgd`, `momentum`, `adam`), taking each of its
    /// hyper-parameters from `value(key)`; the inverse of [`Optimizer::hyper_parameters`].
    pub fn from_hyper_parameters(
        name: &str,
        mut value: impl FnMut(&'static str) -> Result<f32>,
    ) -> Result<Self> {
        Ok(match name {
            "sgd" => Optimizer::Sgd,
            "momentum" => Optimizer::Momentum {
                momentum: value("momentum")?,
                weight_decay: value("weight_decay")?,
            },
            "adam" => Optimizer::Adam {
                beta1: value("beta1")?,
                beta2: value("beta2")?,
                eps: value("eps")?,
                weight_decay: value("weight_decay")?,
            },
            _ => return Err(Error::arg("optimizer", "one of: sgd momentum adam", name)),
        })
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
    pub fn check(
        &self,
        optimizer: &Optimizer,
        net: &impl crate::shape::WeightShapes,
    ) -> Result<()> {
        if self.slots.len() != optimizer.slots() {
            return Err(Error::shape(
                format!("{optimizer} optimizer state"),
                format!("{} slots", optimizer.slots()),
                format!("{} slots", self.slots.len()),
            ));
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
