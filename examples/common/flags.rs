//! The training flags the `mnist` and `train` examples share (`#[command(flatten)]`): where to
//! train, the network, the optimizer and schedule, checkpoints and the report; and the
//! [`Recipe`] they make over an example's defaults.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use soma::train::{Recipe, Schedule, default_weight_decay};
use soma::{Activation, BackendKind, Init, Optimizer};

use super::plot::Fail;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Momentum,
    Adam,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScheduleArg {
    Constant,
    Cosine,
}

#[derive(Args, Debug)]
pub struct RunFlags {
    /// Where to train: cpu, gpu, or auto (a hardware GPU if present, else the CPU).
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    pub backend: BackendKind,
    /// GPU adapter to use, by a case-insensitive substring of its name.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Epochs in total (a resumed run counts the ones already done) [default: 10].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Samples per mini-batch [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_size: Option<u64>,
    /// Peak learning rate (default: 0.1 for sgd and momentum, 0.002 for adam; for a CNN 0.01
    /// and 0.001).
    #[arg(long, value_parser = parse_lr)]
    pub lr: Option<f32>,
    /// Optimizer [default: momentum for the mlp model, adam for a CNN].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// L2 weight decay (default: 1e-4 for momentum, 0 for the others).
    #[arg(long, value_parser = parse_decay)]
    pub weight_decay: Option<f32>,
    /// Learning-rate schedule over the run [default: cosine; constant for tables].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// The network: mlp (the dense stack of --hidden and --activation), a preset (cnn, tfjs,
    /// lenet, cnn-bn; its last layer has one unit per class) or a layer string such as
    /// conv8k5,relu,pool,conv16k5,relu,pool,dense10 (see the README).
    #[arg(long)]
    pub model: Option<String>,
    /// Hidden layer sizes of the mlp model, comma separated [default: 64,64].
    #[arg(long, value_parser = parse_hidden)]
    pub hidden: Option<HiddenSizes>,
    /// Hidden activation of the mlp model: sigmoid, tanh, relu or leaky-relu [default: sigmoid].
    #[arg(long, value_parser = parse_activation)]
    pub activation: Option<Activation>,
    /// Weight initialisation: uniform (PyTorch's nn.Linear), xavier or he [default: uniform].
    #[arg(long, value_parser = parse_init)]
    pub init: Option<Init>,
    /// Shift training images by up to N pixels (random each epoch); 0 turns it off [default: 1,
    /// 2 for a CNN].
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=7))]
    pub augment: Option<u8>,
    /// Seed of the initialisation and of the batch order.
    #[arg(long, default_value_t = Recipe::default().seed)]
    pub seed: u64,
    /// Save a checkpoint here after every epoch (atomically: never half-written). A run
    /// resumed from it with the same flags continues exactly as if never stopped.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Start from this checkpoint (parameters, optimizer state and epoch count).
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// CPU threads: each batch is split into row blocks, one per thread (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: Option<u64>,
    /// Batches per progress tick (and per GPU submit and read-back).
    #[arg(long, default_value_t = Recipe::default().batches_per_tick as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub tick: u64,
    /// Write metrics.jsonl, curves.png, confusion.png and mistakes.png into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl RunFlags {
    /// The recipe these flags ask for over `defaults` (the example's recipe for the model);
    /// `cnn` says whether the model is convolutional (its own layers, no --hidden).
    pub fn recipe(&self, defaults: Recipe, cnn: bool) -> Result<Recipe, Fail> {
        if cnn && (self.hidden.is_some() || self.activation.is_some()) {
            return Err(format!(
                "--hidden and --activation describe the mlp model; --model {} gives its own layers",
                self.model.as_deref().unwrap_or("")
            )
            .into());
        }
        let optimizer = match self.optimizer {
            Some(OptimizerArg::Sgd) => Optimizer::Sgd,
            Some(OptimizerArg::Momentum) => Optimizer::momentum(),
            Some(OptimizerArg::Adam) => Optimizer::adam(),
            None => defaults.optimizer.with_weight_decay(0.0),
        };
        // The defaults' rate and decay belong to their optimizer; another one gets its own.
        let same = optimizer.name() == defaults.optimizer.name();
        let lr = match self.lr {
            Some(lr) => lr,
            None if same => defaults.lr,
            None if cnn => soma::train::default_cnn_lr(&optimizer),
            None => soma::train::default_lr(&optimizer),
        };
        let decay = match self.weight_decay {
            Some(d) => d,
            None if same => defaults
                .optimizer
                .hyper_parameter("weight_decay")
                .unwrap_or(0.0),
            None => default_weight_decay(&optimizer),
        };
        Ok(Recipe {
            hidden: self
                .hidden
                .as_ref()
                .map_or(defaults.hidden, |h| h.0.clone()),
            activation: self.activation.unwrap_or(defaults.activation),
            init: self.init.unwrap_or(defaults.init),
            lr,
            optimizer: optimizer.with_weight_decay(decay),
            schedule: match self.schedule {
                Some(ScheduleArg::Constant) => Schedule::Constant,
                Some(ScheduleArg::Cosine) => Schedule::Cosine { floor: 0.0 },
                None => defaults.schedule,
            },
            epochs: self.epochs.unwrap_or(defaults.epochs),
            batch_size: self.batch_size.map_or(defaults.batch_size, |b| b as usize),
            augment: self.augment.unwrap_or(defaults.augment),
            seed: self.seed,
            standardize: defaults.standardize,
            batches_per_tick: self.tick as usize,
        })
    }

    /// CPU threads: the flag, or every core.
    pub fn threads(&self) -> usize {
        self.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |t| t as usize,
        )
    }
}

#[derive(Clone, Debug)]
pub struct HiddenSizes(pub Vec<usize>);

fn parse_hidden(s: &str) -> Result<HiddenSizes, String> {
    let sizes = s
        .split(',')
        .map(|p| match p.trim().parse::<usize>() {
            Ok(0) | Err(_) => Err(format!("`{p}` is not a positive layer size")),
            Ok(n) => Ok(n),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if sizes.is_empty() {
        return Err("expected at least one hidden layer size".into());
    }
    Ok(HiddenSizes(sizes))
}

fn parse_lr(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive learning rate")),
    }
}

fn parse_decay(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a weight decay (a number ≥ 0)")),
    }
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse().map_err(|e: soma::Error| e.to_string())
}
fn parse_activation(s: &str) -> Result<Activation, String> {
    s.parse().map_err(|e: soma::Error| e.to_string())
}
fn parse_init(s: &str) -> Result<Init, String> {
    s.parse().map_err(|e: soma::Error| e.to_string())
}
