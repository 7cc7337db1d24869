//! Trains a network on the user's own data, in whatever form it comes: a folder of pictures
//! with one subfolder per class, a CSV/TSV table, a NumPy `.npz` (or an `x.npy y.npy` pair), or
//! a folder of IDX files. Prints what it found (classes and their counts, or with `--task
//! regression` the targets' statistics; the input shape, the split, the model), then trains as `mnist` does, with the same flags for the network, the
//! optimizer, `--backend`, `--save`, `--load` and `--report`.
//!
//! `cargo run --release --example train -- PATH [--help]`. The last line on stdout is one JSON
//! object with the run's results.

#[path = "../common/flags.rs"]
mod flags;
mod load;
#[path = "../common/plot.rs"]
mod plot;
#[path = "../common/report.rs"]
mod report;
#[path = "../common/session.rs"]
mod session;

use std::path::PathBuf;

use clap::Parser;
use soma::train::Recipe;

use plot::Fail;

/// Train a network with soma on your own data: a folder of class subfolders of pictures, a
/// CSV/TSV file, a NumPy .npz or x.npy y.npy pair, or a folder of IDX files.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The data: a folder (class subfolders of pictures, or IDX files), a .csv/.tsv file, a
    /// .npz file, or two .npy files (inputs, then labels).
    #[arg(required = true, num_args = 1..=2)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    data: load::DataFlags,
    #[command(flatten)]
    run: flags::RunFlags,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Fail> {
    let flags = &args.run;
    let report = session::outputs(flags.report.as_deref(), flags.save.as_deref())?;
    let loaded = load::load(&args.paths, &args.data)?;
    let prepared = &loaded.prepared;
    let image = prepared.train.image;
    // The network's outputs: one per class, or one per regression target.
    let regression = !prepared.model.targets.is_empty();
    let outputs = if regression {
        prepared.model.targets.len()
    } else {
        prepared.model.classes.len()
    };
    let output = if regression {
        soma::Output::LinearMse
    } else {
        soma::Output::SoftmaxCrossEntropy
    };
    let (model_name, defaults) = Recipe::for_data(image, flags.model.as_deref());
    let cnn = soma::layers::model_layers(&model_name).is_some();
    let mut recipe = flags.recipe(defaults, cnn)?;
    if image.is_none() && flags.augment.is_none() {
        recipe.augment = 0;
    }
    load::print_summary(&loaded, &recipe);
    let net = recipe.network_for(
        &model_name,
        image,
        prepared.train.features(),
        outputs,
        output,
    )?;
    let mut json = session::run(session::Session {
        backend: flags.backend,
        adapter: flags.adapter.clone(),
        threads: flags.threads(),
        recipe: &recipe,
        net: &net,
        model: &prepared.model,
        train: &prepared.train,
        test: &prepared.test,
        test_origins: &prepared.test_origins,
        save: flags.save.clone(),
        load: flags.load.clone(),
        report,
    })?;
    json.insert("format".into(), loaded.format.into());
    json.insert(
        if regression { "targets" } else { "classes" }.into(),
        outputs.into(),
    );
    json.insert("train_samples".into(), prepared.train.len().into());
    json.insert("test_samples".into(), prepared.test.len().into());
    json.insert("load_seconds".into(), loaded.seconds.into());
    println!("{}", serde_json::Value::Object(json));
    Ok(())
}
