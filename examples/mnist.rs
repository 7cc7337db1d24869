//! Trains the 784-64-64-10 network on MNIST (or Fashion-MNIST) and reports test accuracy.
//!
//! `cargo run --release --example mnist -- --help` lists the flags. The last line on stdout is
//! one JSON object with the run's results. `--report DIR` also writes the metrics of every
//! epoch and pictures of the run (see `common/report.rs`).

#[path = "common/flags.rs"]
mod flags;
#[path = "common/plot.rs"]
mod plot;
#[path = "common/report.rs"]
mod report;
#[path = "common/session.rs"]
mod session;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use soma::ModelInfo;
use soma::data::{DatasetKind, locate};
use soma::train::Recipe;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScaleArg {
    /// x / 255, in [0, 1] (the tutorials').
    Unit,
    /// Zero mean, unit variance over the training set.
    Standard,
}

/// Train a network on MNIST with soma. The defaults are `soma::train::Recipe`'s (the
/// browser page trains with them too), and `Recipe::cnn()`'s for a convolutional model.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    run: flags::RunFlags,
    /// Input scaling.
    #[arg(long, value_enum, default_value_t = ScaleArg::Standard)]
    scale: ScaleArg,
    /// Directory holding the four IDX files (else $MNIST_DIR, ./data/mnist, or a download).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Which dataset: mnist or fashion.
    #[arg(long, default_value = "mnist", value_parser = parse_dataset)]
    dataset: DatasetKind,
    /// Never download missing data.
    #[arg(long)]
    offline: bool,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    limit: Option<usize>,
}

fn parse_dataset(s: &str) -> Result<DatasetKind, String> {
    s.parse().map_err(|e: soma::Error| e.to_string())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let flags = &args.run;
    let report = session::outputs(flags.report.as_deref(), flags.save.as_deref())?;
    let files = locate(args.dataset, args.data.as_deref(), !args.offline)?;
    let load_started = Instant::now();
    let (mut train_set, mut test_set) = files.load()?;
    if let Some(n) = args.limit {
        train_set = train_set.head(n);
    }
    let model_name = flags.model.as_deref().unwrap_or("mlp");
    let cnn = soma::layers::model_layers(model_name).is_some();
    let defaults = if cnn {
        Recipe::cnn()
    } else {
        Recipe::default()
    };
    let recipe = Recipe {
        standardize: matches!(args.scale, ScaleArg::Standard),
        ..flags.recipe(defaults, cnn)?
    };
    let normalize = recipe.normalize(&train_set);
    train_set.normalize = normalize;
    test_set.normalize = normalize;
    eprintln!(
        "data: {} ({} train, {} test) from {} in {:.2} s",
        args.dataset,
        train_set.len(),
        test_set.len(),
        files.dir.display(),
        load_started.elapsed().as_secs_f64()
    );

    let image = train_set.image.ok_or("the dataset has no image shape")?;
    let net = soma::layers::model_network(
        model_name,
        image,
        10,
        soma::Output::SoftmaxCrossEntropy,
        || recipe.network(train_set.features(), 10),
    )?;
    let model = ModelInfo::for_dataset(args.dataset, normalize);
    let json = session::run(session::Session {
        backend: flags.backend,
        adapter: flags.adapter.clone(),
        threads: flags.threads(),
        recipe: &recipe,
        net: &net,
        model: &model,
        train: &train_set,
        test: &test_set,
        test_origins: &[],
        save: flags.save.clone(),
        load: flags.load.clone(),
        report,
    })?;
    println!("{}", serde_json::Value::Object(json));
    Ok(())
}
