//! The XOR exercise: a 2-4-1 network with biases, sigmoid hidden units and a sigmoid output
//! trained on mean squared error, full batch.
//!
//! ```text
//! cargo run --release --example xor -- --optimizer adam --epochs 3000
//! ```
//!
//! It prints the loss every few hundred epochs, then the four predictions and the final MSE.

use clap::{Parser, ValueEnum};
use ndarray::Array2;
use soma::{Activation, BackendKind, Dataset, Init, Network, Optimizer, Output, Params};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OptimizerArg {
    Sgd,
    Momentum,
    Adam,
}

/// Train a 2-4-1 network on XOR with soma.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Full-batch training epochs (one optimizer step each).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Learning rate (default: 2 for sgd, 0.5 for momentum, 0.02 for adam).
    #[arg(long, value_parser = parse_lr)]
    lr: Option<f32>,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Momentum)]
    optimizer: OptimizerArg,
    /// Seed of the initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to train: cpu, gpu, or auto.
    #[arg(long, default_value = "cpu", value_parser = parse_backend)]
    backend: BackendKind,
    /// Print the loss every this many epochs.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
}

fn parse_lr(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive learning rate")),
    }
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse().map_err(|e: soma::Error| e.to_string())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> soma::Result<()> {
    let net = Network::new(&[2, 4, 1], Activation::Sigmoid, Output::SigmoidMse)?;
    let inputs = [[0., 0.], [0., 1.], [1., 0.], [1., 1.]];
    let data = Dataset::from_rows(
        &inputs.map(|r: [f32; 2]| r.to_vec()),
        &[vec![0.], vec![1.], vec![1.], vec![0.]],
    )?;
    let (optimizer, default_lr) = match args.optimizer {
        OptimizerArg::Sgd => (Optimizer::Sgd, 2.0),
        OptimizerArg::Momentum => (Optimizer::momentum(), 0.5),
        OptimizerArg::Adam => (Optimizer::adam(), 0.02),
    };
    let lr = args.lr.unwrap_or(default_lr);
    let params = Params::init(&net, Init::Uniform, args.seed);
    let opts = soma::select::Options {
        threads: 1,
        adapter: None,
    };
    let mut backend = soma::select::create(args.backend, &net, params, optimizer, &opts)?;
    backend.set_train_data(&data)?;
    println!(
        "network: {net}; backend: {}; {optimizer} lr {lr}; {} epochs; seed {}",
        backend.name(),
        args.epochs,
        args.seed
    );

    let order = [0u32, 1, 2, 3];
    for epoch in 1..=args.epochs {
        backend.train_batches(&order, order.len(), lr)?;
        let stats = backend.take_stats()?;
        if epoch == 1 || epoch % args.every == 0 {
            // The loss of the forward pass that preceded this epoch's step.
            println!("epoch {epoch:>6}: loss {:.6}", stats.mean_loss());
        }
    }

    let x = Array2::from_shape_vec((4, 2), inputs.concat()).expect("4×2");
    let y = backend.predict(x.view())?;
    for (row, out) in inputs.iter().zip(y.rows()) {
        let target = (row[0] != row[1]) as u8;
        println!(
            "{} xor {} = {target}: predicted {:.4}",
            row[0], row[1], out[0]
        );
    }
    let final_stats = backend.evaluate(&data)?;
    println!(
        "final MSE: {:.6} (accuracy {:.0}%)",
        final_stats.mean_loss(),
        100.0 * final_stats.accuracy()
    );
    Ok(())
}
