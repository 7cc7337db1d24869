//! The `Backend` trait that the CPU reference and the GPU path both implement, and the argument
//! checks they share. Choosing between them is [`crate::select`].

use ndarray::{Array2, ArrayView2};

use crate::data::Dataset;
use crate::data::Sample;
use crate::error::{Error, Result};
use crate::net::Network;
pub use crate::ops::loss::Stats;
use crate::optim::{OptimState, Optimizer};
use crate::params::Params;

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

    /// Training [`Stats`] that have come back since the last `poll_stats` or `take_stats`,
    /// without waiting. On the GPU, loss and accuracy come back asynchronously: this returns the
    /// earlier ticks whose read-back has completed (typically one tick late) and leaves the rest
    /// for a later `poll_stats` or `take_stats`. Across the two, every sample is returned exactly
    /// once. The CPU has everything at once (the default: [`Backend::take_stats`]).
    fn poll_stats(&mut self) -> Result<Stats> {
        self.take_stats()
    }

    /// All training [`Stats`] not yet returned, then resets them. On the GPU this waits (with the
    /// device timeout) for every step submitted so far: call it at an epoch's end, not per tick.
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

/// Checks that `data` has the input and target widths `net` needs and, if it is images, an
/// image shape of as many values as each sample has (`what` names it in the error).
pub(crate) fn check_data(net: &Network, data: &Dataset, what: &str) -> Result<()> {
    if let Some(image) = data.image
        && image.len() != data.features()
    {
        return Err(Error::shape(
            format!("{what} image shape"),
            format!("{} values per sample", data.features()),
            format!("{image} = {} values", image.len()),
        ));
    }
    if data.features() != net.inputs() || data.targets().width() != net.outputs() {
        return Err(Error::shape(
            what,
            format!("{} inputs, {} targets", net.inputs(), net.outputs()),
            format!(
                "{} inputs, {} targets",
                data.features(),
                data.targets().width()
            ),
        ));
    }
    Ok(())
}

/// The checks of [`Backend::train_batches`]: a positive batch size, a training set, and an
/// order whose entries all name one of its `len` samples.
/// `data`: the training set's length and whether its samples are images (whose entries carry
/// shifts, [`Sample::index_of`]).
pub(crate) fn check_train_args(
    order: &[u32],
    batch_size: usize,
    data: Option<(usize, bool)>,
) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::arg("batch_size", "at least 1", 0));
    }
    let (len, image) = data.ok_or_else(|| {
        Error::arg(
            "training set",
            "set_train_data before train_batches",
            "none",
        )
    })?;
    let index = |&e: &u32| Sample::index_of(e, image);
    if let Some(bad) = order.iter().map(index).find(|&i| i >= len) {
        return Err(Error::arg("order", format!("indices below {len}"), bad));
    }
    Ok(())
}

/// The check of [`Backend::predict`]: one column per network input.
pub(crate) fn check_predict_inputs(net: &Network, inputs: &ArrayView2<f32>) -> Result<()> {
    if inputs.ncols() != net.inputs() {
        return Err(Error::shape(
            "predict inputs",
            format!("{} columns", net.inputs()),
            format!("{} columns", inputs.ncols()),
        ));
    }
    Ok(())
}
