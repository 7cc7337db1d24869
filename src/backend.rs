//! The `Backend` trait that the CPU reference and the GPU path both implement, and the choice
//! between them.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayView2};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::net::Network;
use crate::optim::{OptimState, Optimizer};
use crate::params::Params;

/// Loss and accuracy summed over the samples a backend has seen since they were last taken.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Sum over samples of each sample's loss.
    pub loss_sum: f64,
    /// Samples predicted correctly (arg-max, or the 0.5 threshold for one sigmoid output).
    pub correct: u64,
    /// Samples counted.
    pub samples: u64,
}

impl Stats {
    /// Mean loss per sample (NaN when empty).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples as f64
    }

    /// Fraction predicted correctly (NaN when empty).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples as f64
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: Stats) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.samples += other.samples;
    }
}

/// A place where a network trains: it owns the parameters, the optimizer state and the
/// training set for the whole run.
///
/// The loss of a batch of `B` samples is the mean of the per-sample losses: cross-entropy
/// `-ln softmax(z)[y]`, or for sigmoid-MSE the mean over outputs of `(a - y)²`.
pub trait Backend {
    /// A short description (`cpu`, or `gpu: <adapter>`).
    fn name(&self) -> String;

    /// A longer description for the start of a run (the GPU adds the adapter's backend,
    /// device type and driver).
    fn details(&self) -> String {
        self.name()
    }

    /// The network being trained.
    fn network(&self) -> &Network;

    /// The optimizer in use.
    fn optimizer(&self) -> Optimizer;

    /// Keeps `data` where the training steps read it (the GPU uploads it once, here).
    fn set_train_data(&mut self, data: &Dataset) -> Result<()>;

    /// Runs one optimizer step per consecutive `batch_size` indices of `order` into the training
    /// set (a shorter remainder is one smaller batch), all at learning rate `lr`. Loss and
    /// accuracy of each batch, measured in its forward pass, are added to the running [`Stats`].
    fn train_batches(&mut self, order: &[u32], batch_size: usize, lr: f32) -> Result<()>;

    /// The running training [`Stats`] since the last call, then resets them. On the GPU this is
    /// the one read-back per progress tick.
    fn take_stats(&mut self) -> Result<Stats>;

    /// Loss and accuracy of the current parameters over all of `data` (no update).
    fn evaluate(&mut self, data: &Dataset) -> Result<Stats>;

    /// The network's outputs (probabilities for softmax, sigmoids for MSE) for each row of
    /// `inputs`, which are used as given (no normalisation).
    fn predict(&mut self, inputs: ArrayView2<f32>) -> Result<Array2<f32>>;

    /// A copy of the current parameters.
    fn params(&mut self) -> Result<Params>;

    /// Replaces the parameters (shapes must match the network).
    fn set_params(&mut self, params: &Params) -> Result<()>;

    /// A copy of the optimizer state.
    fn optim_state(&mut self) -> Result<OptimState>;

    /// Replaces the optimizer state (for resuming from a checkpoint).
    fn set_optim_state(&mut self, state: &OptimState) -> Result<()>;
}

/// Checks that `data` has the input and target widths `net` needs (`what` names it in the
/// error).
pub(crate) fn check_data(net: &Network, data: &Dataset, what: &str) -> Result<()> {
    if data.features() != net.inputs() || data.targets().width() != net.outputs() {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: format!("{} inputs, {} targets", net.inputs(), net.outputs()),
            got: format!(
                "{} inputs, {} targets",
                data.features(),
                data.targets().width()
            ),
        });
    }
    Ok(())
}

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// The ndarray reference backend.
    Cpu,
    /// The wgpu backend, on whatever adapter is chosen (a software one too).
    Gpu,
    /// A hardware GPU if there is one, else the CPU backend (on a software adapter the CPU
    /// backend is faster).
    #[default]
    Auto,
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(BackendKind::Cpu),
            "gpu" => Ok(BackendKind::Gpu),
            "auto" => Ok(BackendKind::Auto),
            _ => Err(Error::arg("backend", "one of: cpu gpu auto", s)),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu => "gpu",
            BackendKind::Auto => "auto",
        })
    }
}

/// Settings that only some backends use.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// CPU threads for the matrix products.
    pub threads: usize,
    /// GPU adapter, by a case-insensitive substring of its name.
    pub adapter: Option<String>,
}

/// Builds the backend `kind` names for `net`, starting from `params`.
pub fn create(
    kind: BackendKind,
    net: &Network,
    params: Params,
    optimizer: Optimizer,
    options: &Options,
) -> Result<Box<dyn Backend>> {
    let cpu = |params| -> Result<Box<dyn Backend>> {
        Ok(Box::new(
            crate::cpu::CpuBackend::new(net, params, optimizer)?.with_threads(options.threads),
        ))
    };
    let gpu = |params| -> Result<Box<dyn Backend>> {
        let ctx = crate::gpu::GpuContext::new(&crate::gpu::GpuOptions {
            adapter: options.adapter.clone(),
        })?;
        Ok(Box::new(crate::gpu::GpuBackend::new(
            ctx, net, params, optimizer,
        )?))
    };
    match kind {
        BackendKind::Cpu => cpu(params),
        BackendKind::Gpu => gpu(params),
        // A named adapter is a request for the GPU; otherwise only hardware beats the CPU.
        BackendKind::Auto if options.adapter.is_some() => gpu(params),
        BackendKind::Auto => match crate::gpu::hardware_adapter() {
            Some(_) => gpu(params),
            None => cpu(params),
        },
    }
}
