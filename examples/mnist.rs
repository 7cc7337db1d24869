//! Trains the 784-64-64-10 network on MNIST (or Fashion-MNIST) and reports test accuracy.
//!
//! `cargo run --release --example mnist -- --help` lists the flags. The last line on stdout is
//! one JSON object with the run's results. `--report DIR` also writes the metrics of every
//! epoch and pictures of the run (see `common/report.rs`).

#[path = "common/plot.rs"]
mod plot;
#[path = "common/report.rs"]
mod report;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use soma::data::{DatasetKind, locate};
use soma::train::{
    Event, Recipe, Schedule, default_cnn_lr, default_lr, default_weight_decay, train_with,
};
use soma::{
    Activation, BackendKind, Dataset, Init, ModelInfo, Optimizer, Params, Targets, checkpoint,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OptimizerArg {
    Sgd,
    Momentum,
    Adam,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScheduleArg {
    Constant,
    Cosine,
}

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
    /// Where to train: cpu, gpu, or auto (a hardware GPU if present, else the CPU).
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    backend: BackendKind,
    /// GPU adapter to use, by a case-insensitive substring of its name.
    #[arg(long)]
    adapter: Option<String>,
    /// Epochs in total (a resumed run counts the ones already done).
    #[arg(long, default_value_t = Recipe::default().epochs, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = Recipe::default().batch_size as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch_size: u64,
    /// Peak learning rate (default: 0.1 for sgd and momentum, 0.002 for adam; for a CNN 0.01
    /// and 0.001).
    #[arg(long, value_parser = parse_lr)]
    lr: Option<f32>,
    /// Optimizer [default: momentum for the mlp model, adam for a CNN].
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    /// L2 weight decay (default: 1e-4 for momentum, 0 for the others).
    #[arg(long, value_parser = parse_decay)]
    weight_decay: Option<f32>,
    /// Learning-rate schedule over the run.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    schedule: ScheduleArg,
    /// The network: mlp (the dense stack of --hidden and --activation), a preset (cnn, tfjs,
    /// lenet) or a layer string such as conv8k5,relu,pool,conv16k5,relu,pool,dense10 (see the
    /// README).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Hidden layer sizes of the mlp model, comma separated [default: 64,64].
    #[arg(long, value_parser = parse_hidden)]
    hidden: Option<HiddenSizes>,
    /// Hidden activation of the mlp model: sigmoid, tanh, relu or leaky-relu [default: sigmoid].
    #[arg(long, value_parser = parse_activation)]
    activation: Option<Activation>,
    /// Weight initialisation: uniform (PyTorch's nn.Linear), xavier or he.
    #[arg(long, default_value = "uniform", value_parser = parse_init)]
    init: Init,
    /// Input scaling.
    #[arg(long, value_enum, default_value_t = ScaleArg::Standard)]
    scale: ScaleArg,
    /// Shift training images by up to N pixels (random each epoch); 0 turns it off [default: 1,
    /// 2 for a CNN].
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=7))]
    augment: Option<u8>,
    /// Seed of the initialisation and of the batch order.
    #[arg(long, default_value_t = Recipe::default().seed)]
    seed: u64,
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
    /// Save a checkpoint here after every epoch (atomically: never half-written). A run
    /// resumed from it with the same flags continues exactly as if never stopped.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Start from this checkpoint (parameters, optimizer state and epoch count).
    #[arg(long)]
    load: Option<PathBuf>,
    /// CPU threads: each batch is split into row blocks, one per thread (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
    /// Batches per progress tick (and per GPU submit and read-back).
    #[arg(long, default_value_t = Recipe::default().batches_per_tick as u64, value_parser = clap::value_parser!(u64).range(1..))]
    tick: u64,
    /// Write metrics.jsonl, curves.png, confusion.png and mistakes.png into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Clone, Debug)]
struct HiddenSizes(Vec<usize>);

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
    // Where the results go is checked before anything else, so that a typo costs no training.
    let mut report = args
        .report
        .as_deref()
        .map(report::Report::create)
        .transpose()?;
    if let Some(path) = &args.save {
        checkpoint::check_writable(path)?;
    }
    let files = locate(args.dataset, args.data.as_deref(), !args.offline)?;
    let load_started = Instant::now();
    let (mut train_set, mut test_set) = files.load()?;
    if let Some(n) = args.limit {
        train_set = train_set.head(n);
    }
    let layers = soma::layers::model_layers(&args.model);
    let cnn = layers.is_some();
    let optimizer = match args.optimizer {
        Some(OptimizerArg::Sgd) => Optimizer::Sgd,
        Some(OptimizerArg::Momentum) => Optimizer::momentum(),
        Some(OptimizerArg::Adam) => Optimizer::adam(),
        None if cnn => Optimizer::adam(),
        None => Optimizer::momentum(),
    };
    if cnn && (args.hidden.is_some() || args.activation.is_some()) {
        return Err(format!(
            "--hidden and --activation describe the mlp model; --model {} gives its own layers",
            args.model
        )
        .into());
    }
    let defaults = if cnn {
        Recipe::cnn()
    } else {
        Recipe::default()
    };
    let lr_for = if cnn { default_cnn_lr } else { default_lr };
    let recipe = Recipe {
        hidden: args
            .hidden
            .as_ref()
            .map_or(defaults.hidden, |h| h.0.clone()),
        activation: args.activation.unwrap_or(defaults.activation),
        init: args.init,
        lr: args.lr.unwrap_or(lr_for(&optimizer)),
        optimizer: optimizer.with_weight_decay(
            args.weight_decay
                .unwrap_or(default_weight_decay(&optimizer)),
        ),
        schedule: match args.schedule {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Cosine => Schedule::Cosine { floor: 0.0 },
        },
        epochs: args.epochs,
        batch_size: args.batch_size as usize,
        augment: args.augment.unwrap_or(defaults.augment),
        seed: args.seed,
        standardize: matches!(args.scale, ScaleArg::Standard),
        batches_per_tick: args.tick as usize,
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

    let (h, w) = train_set.image.ok_or("the dataset has no image shape")?;
    let image = soma::ops::conv::Chw::new(1, h, w);
    let net = soma::layers::model_network(&args.model, image, 10, || {
        recipe.network(train_set.features(), 10)
    })?;
    eprint!("{}", soma::layers::summary(&net));
    let optimizer = recipe.optimizer;
    optimizer.validate()?;
    let lr = recipe.lr;
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |t| t as usize,
    );
    // Before the parameters are allocated: a network that cannot fit is an error with its
    // sizes, not an abort halfway through allocating it.
    soma::memory::check_training(&net, &optimizer, args.batch_size as usize, threads)?;

    let (params, state, start_epoch) = match &args.load {
        Some(path) => {
            let ckpt = checkpoint::load_into(path, &net)?;
            if ckpt.optimizer.name() != optimizer.name() {
                return Err(soma::Error::Checkpoint {
                    path: path.clone(),
                    reason: format!(
                        "saved with optimizer {}, the run asks for {}",
                        ckpt.optimizer, optimizer
                    ),
                }
                .into());
            }
            eprintln!(
                "resuming from {} after epoch {}",
                path.display(),
                ckpt.epoch
            );
            (ckpt.params, Some(ckpt.state), ckpt.epoch)
        }
        None => (Params::init(&net, recipe.init, recipe.seed), None, 0),
    };
    if let Some(r) = report.as_mut() {
        r.resume(start_epoch)?;
    }

    let opts = soma::select::Options {
        threads,
        adapter: args.adapter.clone(),
    };
    let mut backend = soma::select::create(args.backend, &net, params, optimizer, &opts)?;
    if let Some(state) = &state {
        backend.set_optim_state(state)?;
    }
    eprintln!(
        "network: {net}, {} parameters; backend: {}; {optimizer} lr {lr} ({:?}), batch {}",
        net.parameter_count(),
        backend.details(),
        args.schedule,
        args.batch_size
    );

    let cfg = recipe.train_config();

    let bar = ProgressBar::new(train_set.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix:>3} [{bar:30}] {pos:>6}/{len} {msg} ({elapsed})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let model = ModelInfo::for_dataset(args.dataset, normalize);
    // The learning rate at the first step of each epoch, for the report.
    let mut epoch_lr: Vec<f32> = Vec::new();
    let mut report_error = None;
    let save = |backend: &mut dyn soma::Backend, epoch: u64| -> soma::Result<()> {
        let Some(path) = &args.save else {
            return Ok(());
        };
        checkpoint::save(
            path,
            &checkpoint::Checkpoint {
                network: net.clone(),
                params: backend.params()?,
                optimizer,
                state: backend.optim_state()?,
                epoch,
                model: Some(model.clone()),
            },
        )
    };
    let run_report = train_with(
        backend.as_mut(),
        &train_set,
        Some(&test_set),
        &cfg,
        start_epoch,
        |event| match event {
            Event::Progress {
                epoch,
                done,
                stats,
                samples_per_second,
                lr,
                ..
            } => {
                if epoch_lr.len() < *epoch as usize {
                    epoch_lr.resize(*epoch as usize, *lr);
                }
                bar.set_prefix(epoch.to_string());
                bar.set_position(*done as u64);
                bar.set_message(format!(
                    "loss {:.4}  {:.0} samples/s",
                    stats.mean_loss(),
                    samples_per_second
                ));
            }
            Event::Epoch(e) => {
                let test = e.test.expect("a test set is given");
                bar.suspend(|| {
                    eprintln!(
                        "epoch {:>3}: train loss {:.4}  test loss {:.4}  test accuracy {:.2}%  {:.2} s ({:.0} samples/s)",
                        e.epoch,
                        e.train.mean_loss(),
                        test.mean_loss(),
                        100.0 * test.accuracy(),
                        e.seconds,
                        train_set.len() as f64 / e.seconds
                    )
                });
                bar.reset();
                if let Some(r) = report.as_mut() {
                    let row = report::EpochRow {
                        epoch: e.epoch,
                        train_loss: e.train.mean_loss(),
                        train_accuracy: e.train.accuracy(),
                        test_loss: test.mean_loss(),
                        test_accuracy: test.accuracy(),
                        lr: epoch_lr.get(e.epoch as usize - 1).copied().unwrap_or(lr),
                        seconds: e.seconds,
                        samples_per_second: train_set.len() as f64 / e.seconds,
                    };
                    if let Err(err) = r.epoch(row) {
                        report_error.get_or_insert(err);
                    }
                }
            }
        },
        save,
    );
    bar.finish_and_clear();
    let run_report = run_report?;
    if let Some(e) = report_error {
        return Err(e);
    }

    if let Some(path) = &args.save {
        eprintln!("saved {}", path.display());
    }

    let final_train = backend.evaluate(&train_set)?;
    if let Some(r) = &report {
        let (matrix, mistakes) = confusion(backend.as_mut(), &test_set)?;
        let classes = &model.classes;
        eprintln!(
            "test confusion matrix (rows: label, columns: prediction):\n{}",
            report::confusion_table(&matrix, classes)
        );
        r.finish(&matrix, classes, &mistakes)?;
        eprintln!(
            "report written to {}",
            args.report.as_ref().expect("set").display()
        );
    }
    let last = run_report.epochs.last();
    let json = serde_json::json!({
        "backend": backend.name(),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": optimizer.name(),
        // Through the shortest decimal form, so that 0.1f32 prints as 0.1.
        "lr": lr.to_string().parse::<f64>().unwrap_or(f64::NAN),
        "test_accuracy": last.and_then(|e| e.test).map(|t| t.accuracy()),
        "train_seconds": run_report.train_seconds(),
        "samples_per_second": run_report.median_samples_per_second(train_set.len()),
        "final_train_loss": final_train.mean_loss(),
    });
    println!("{json}");
    Ok(())
}

/// Images in the mistakes picture.
const MISTAKES_SHOWN: usize = 24;

/// The test set's confusion matrix (`[label][prediction]`) and its most confidently wrong
/// images, from the network's predictions.
fn confusion(
    backend: &mut dyn soma::Backend,
    test: &Dataset,
) -> soma::Result<(Vec<Vec<u64>>, Vec<report::Mistake>)> {
    let (Targets::Labels { labels, classes }, soma::Inputs::U8(pixels)) =
        (test.targets(), test.inputs())
    else {
        return Err(soma::Error::arg(
            "report",
            "a test set of labelled byte images",
            "another kind of dataset",
        ));
    };
    let f = test.features();
    let mut matrix = vec![vec![0u64; *classes]; *classes];
    let mut wrong = Vec::new();
    // Chunks bound the memory of the inputs; the backend is told nothing about them.
    for start in (0..test.len()).step_by(4096) {
        let end = (start + 4096).min(test.len());
        let order: Vec<u32> = (start as u32..end as u32).collect();
        let mut x = ndarray::Array2::zeros((order.len(), f));
        soma::ops::gather::gather_inputs(test, &order, x.view_mut());
        let probs = backend.predict(x.view())?;
        for (r, row) in probs.rows().into_iter().enumerate() {
            let i = start + r;
            let (predicted, confidence) = soma::model::top_k(row.as_slice().expect("rows"), 1)[0];
            let label = labels[i] as usize;
            matrix[label][predicted] += 1;
            if predicted != label {
                wrong.push(report::Mistake {
                    index: i,
                    pixels: pixels[i * f..(i + 1) * f].to_vec(),
                    label,
                    predicted,
                    confidence,
                });
            }
        }
    }
    wrong.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    wrong.truncate(MISTAKES_SHOWN);
    Ok((matrix, wrong))
}
