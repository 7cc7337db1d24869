//! The command line: what to measure, how long, and where the report goes. The parent and
//! its children share it (a child gets one backend, batch size and thread count, and `--child`).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Cpu,
    Gpu,
}

impl BackendArg {
    pub fn name(self) -> &'static str {
        match self {
            BackendArg::Cpu => "cpu",
            BackendArg::Gpu => "gpu",
        }
    }
}

/// Benchmark soma's training and inference throughput on MNIST.
#[derive(Parser, Debug, Clone)]
#[command(about)]
pub struct Args {
    /// Backends to measure, comma separated (default: cpu, plus gpu when a hardware adapter
    /// exists; name gpu to measure a software adapter such as lavapipe).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub backends: Vec<BackendArg>,
    /// The network: mlp (784-64-64-10, sigmoid), a preset (cnn, tfjs, lenet, cnn-bn) or a layer
    /// string.
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Batch sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024,4096",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_sizes: Vec<u64>,
    /// Timed epochs per configuration.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    /// Untimed warm-up epochs before them (workspaces, pipelines, caches).
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// CPU threads, comma separated (one row per value); ignored by the GPU.
    #[arg(long, value_delimiter = ',', default_value = "1",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: Vec<u64>,
    /// Learning rate (plain SGD, constant).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f32,
    /// Seed of the initialisation and of the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the four MNIST IDX files (else $MNIST_DIR, ./data/mnist, or a download).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Never download missing data.
    #[arg(long)]
    pub offline: bool,
    /// Use only the first N training images (quick runs; the test set stays whole).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Batches per call into the backend (per GPU submit and per read-back of the loss).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub tick: u64,
    /// Timed passes of `evaluate` over the test set (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub eval_repeats: u64,
    /// GPU adapter, by a case-insensitive substring of its name.
    #[arg(long)]
    pub adapter: Option<String>,
    /// GPU training step: fused or general (default: the backend's choice, which is the fused
    /// step on hardware GPUs for networks that fit it, the general one on software adapters).
    #[arg(long)]
    pub step_path: Option<soma::gpu::StepPath>,
    /// Write the machine and every row as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw training samples/s against batch size into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Also show the rows of an earlier `--json` file (table, plot and JSON); repeatable.
    #[arg(long = "with")]
    pub with: Vec<PathBuf>,
    /// Run one configuration and print one JSON line (used by the parent process).
    #[arg(long, hide = true)]
    pub child: bool,
}
