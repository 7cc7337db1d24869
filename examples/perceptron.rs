//! The classic single neuron: three inputs, one sigmoid output, trained on four examples to
//! learn "the output is the first input", then asked about a situation it has never seen.
//!
//! ```text
//! cargo run --release --example perceptron -- 1 0 0
//! ```
//!
//! With no numbers on the command line it asks for them when run in a terminal, and otherwise
//! uses `[1, 0, 0]`.

use std::io::{BufRead, IsTerminal, Write};

use clap::Parser;
use ndarray::Array2;
use soma::{Activation, Backend, CpuBackend, Dataset, Init, Network, Optimizer, Output, Params};

/// Train one sigmoid neuron on the tutorial's table and predict a new situation.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The new situation's three inputs (asked for when omitted and stdin is a terminal,
    /// else 1 0 0).
    #[arg(num_args = 0..=3, allow_negative_numbers = true)]
    inputs: Vec<f32>,
    /// Full-batch training iterations.
    #[arg(long, default_value_t = 10_000)]
    iterations: u64,
    /// Seed of the initial weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Learning rate of plain SGD. With the mean-squared-error gradient `2(a-y)/(B·K)` over
    /// B = 4 samples and K = 1 output, lr = 2 is exactly the tutorial's unscaled update
    /// `w += Xᵀ·[(y - a)·a(1 - a)]`.
    #[arg(long, default_value_t = 2.0, value_parser = parse_lr)]
    lr: f32,
}

fn parse_lr(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive learning rate")),
    }
}

fn main() {
    let args = Args::parse();
    if !args.inputs.is_empty() && args.inputs.len() != 3 {
        eprintln!(
            "error: expected 3 inputs for the new situation, got {}",
            args.inputs.len()
        );
        std::process::exit(2);
    }
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Prints the weights of the one neuron (a 3×1 matrix) and its bias.
fn print_params(title: &str, p: &Params) {
    let layer = &p.layers[0];
    let w: Vec<String> = layer.w.iter().map(|w| format!("{w:.6}")).collect();
    println!(
        "{title}: weights [{}], bias {:.6}",
        w.join(", "),
        layer.b[0]
    );
}

/// Reads the new situation from the terminal, one input at a time, as the tutorial does.
fn ask() -> Result<[f32; 3], String> {
    println!("New situation:");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut out = [0f32; 3];
    for (i, v) in out.iter_mut().enumerate() {
        loop {
            print!("input {}: ", i + 1);
            std::io::stdout().flush().map_err(|e| e.to_string())?;
            let line = match lines.next() {
                Some(line) => line.map_err(|e| e.to_string())?,
                None => return Err("stdin closed before three inputs were given".into()),
            };
            match line.trim().parse::<f32>() {
                Ok(x) if x.is_finite() => {
                    *v = x;
                    break;
                }
                _ => eprintln!("`{}` is not a number, try again", line.trim()),
            }
        }
    }
    Ok(out)
}

fn run(args: &Args) -> soma::Result<()> {
    // Our layers always carry a bias, unlike the tutorial's bare neuron. It changes nothing
    // essential: the neuron still learns "output = first input", with a large positive first
    // weight. (The third input is 1 in every training row, so its weight and the bias share one
    // job: only their sum is pinned down, and together they pull the output to 0 when the first
    // input is 0.)
    let net = Network::new(&[3, 1], Activation::Sigmoid, Output::SigmoidMse)?;
    let data = Dataset::from_rows(
        &[
            vec![0., 0., 1.],
            vec![1., 1., 1.],
            vec![1., 0., 1.],
            vec![0., 1., 1.],
        ],
        &[vec![0.], vec![1.], vec![1.], vec![0.]],
    )?;
    let params = Params::init(&net, Init::Uniform, args.seed);
    print_params("Random starting weights", &params);

    let mut cpu = CpuBackend::new(&net, params, Optimizer::Sgd)?;
    cpu.set_train_data(&data)?;
    for _ in 0..args.iterations {
        cpu.train_batches(&[0, 1, 2, 3], 4, args.lr)?;
    }
    let trained = cpu.params()?;
    print_params("Weights after training", &trained);
    let stats = cpu.evaluate(&data)?;
    println!(
        "Training loss (MSE) after {} iterations: {:.6}",
        args.iterations,
        stats.mean_loss()
    );

    let situation = if args.inputs.len() == 3 {
        [args.inputs[0], args.inputs[1], args.inputs[2]]
    } else if std::io::stdin().is_terminal() {
        ask().map_err(|e| soma::Error::arg("new situation", "three numbers", e))?
    } else {
        [1.0, 0.0, 0.0]
    };
    let x = Array2::from_shape_vec((1, 3), situation.to_vec()).expect("1×3");
    let y = cpu.predict(x.view())?;
    println!(
        "Considering new situation [{}, {}, {}] -> ?: {:.6}",
        situation[0],
        situation[1],
        situation[2],
        y[[0, 0]]
    );
    Ok(())
}
