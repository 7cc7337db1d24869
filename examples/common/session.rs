//! A training run as the `mnist` and `train` examples run it, once the data and the network are
//! known: the memory check, `--load` (a resume), the backend, the progress bar and per-epoch
//! lines (accuracy, or RMSE and R² for a regression model), `--save` after every epoch,
//! `--report`, and the closing JSON line's fields. Included
//! by both examples with `#[path]` (beside `plot.rs` and `report.rs`).

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use soma::train::{Event, Recipe, train_with};
use soma::{BackendKind, Dataset, Inputs, ModelInfo, Network, Params, Targets, checkpoint};

use super::plot::Fail;
use super::report;

/// Everything a run needs.
pub struct Session<'a> {
    pub backend: BackendKind,
    pub adapter: Option<String>,
    pub threads: usize,
    pub recipe: &'a Recipe,
    pub net: &'a Network,
    pub model: &'a ModelInfo,
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    /// Each test sample's origin (a file, a line), for the report's mistakes; empty: its index.
    pub test_origins: &'a [String],
    pub save: Option<PathBuf>,
    pub load: Option<PathBuf>,
    /// Created before the data was read (so that a bad directory costs nothing), and its path.
    pub report: Option<(report::Report, PathBuf)>,
}

/// Checks where a run's results go before anything is read or trained, so that a typo costs
/// nothing: creates the report directory (`--report`) and checks that a checkpoint can be
/// written (`--save`).
pub fn outputs(
    report: Option<&Path>,
    save: Option<&Path>,
) -> Result<Option<(report::Report, PathBuf)>, Fail> {
    let created = report.map(report::Report::create).transpose()?;
    if let Some(path) = save {
        checkpoint::check_writable(path)?;
    }
    Ok(created.zip(report.map(Path::to_path_buf)))
}

/// Trains, evaluates and reports; returns the fields of the closing JSON line.
pub fn run(session: Session<'_>) -> Result<serde_json::Map<String, serde_json::Value>, Fail> {
    let Session {
        recipe,
        net,
        model,
        train: train_set,
        test: test_set,
        mut report,
        ..
    } = session;
    eprint!("{}", soma::layers::summary(net));
    let optimizer = recipe.optimizer;
    optimizer.validate()?;
    let lr = recipe.lr;
    // Before the parameters are allocated: a network that cannot fit is an error with its
    // sizes, not an abort halfway through allocating it.
    soma::memory::check_training(net, &optimizer, recipe.batch_size, session.threads)?;

    let (params, state, start_epoch) = match &session.load {
        Some(path) => {
            let ckpt = checkpoint::load_into(path, net)?;
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
        None => (Params::init(net, recipe.init, recipe.seed), None, 0),
    };
    if let Some((r, _)) = report.as_mut() {
        r.resume(start_epoch)?;
    }

    let opts = soma::select::Options {
        threads: session.threads,
        adapter: session.adapter.clone(),
    };
    let mut backend = soma::select::create(session.backend, net, params, optimizer, &opts)?;
    if let Some(state) = &state {
        backend.set_optim_state(state)?;
    }
    eprintln!(
        "network: {net}, {} parameters; backend: {}; {optimizer} lr {lr} ({:?}), batch {}",
        net.parameter_count(),
        backend.details(),
        recipe.schedule,
        recipe.batch_size
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
    // The learning rate at the first step of each epoch, for the report.
    let mut epoch_lr: Vec<f32> = Vec::new();
    let mut report_error = None;
    let save = |backend: &mut dyn soma::Backend, epoch: u64| -> soma::Result<()> {
        let Some(path) = &session.save else {
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
        train_set,
        Some(test_set),
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
                // A regression model's RMSE and R² from its mean losses; else accuracies.
                let fit = |mean_loss, set| model.regression_metrics(mean_loss, set);
                let (score, train_score, test_score, shown) = match (
                    fit(e.train.mean_loss(), train_set),
                    fit(test.mean_loss(), test_set),
                ) {
                    (Some(train), Some(t)) => (
                        report::Score::R2,
                        train.r2,
                        t.r2,
                        format!("test RMSE {:.4}  R² {:.4}", t.rmse, t.r2),
                    ),
                    _ => (
                        report::Score::Accuracy,
                        e.train.accuracy(),
                        test.accuracy(),
                        format!("test accuracy {:.2}%", 100.0 * test.accuracy()),
                    ),
                };
                bar.suspend(|| {
                    eprintln!(
                        "epoch {:>3}: train loss {:.4}  test loss {:.4}  {shown}  {:.2} s ({:.0} samples/s)",
                        e.epoch,
                        e.train.mean_loss(),
                        test.mean_loss(),
                        e.seconds,
                        train_set.len() as f64 / e.seconds
                    )
                });
                bar.reset();
                if let Some((r, _)) = report.as_mut() {
                    let row = report::EpochRow {
                        epoch: e.epoch,
                        score,
                        train_loss: e.train.mean_loss(),
                        train_score,
                        test_loss: test.mean_loss(),
                        test_score,
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
    if let Some(path) = &session.save {
        eprintln!("saved {}", path.display());
    }

    let final_train = backend.evaluate(train_set)?;
    let test_stats = run_report.epochs.last().and_then(|e| e.test);
    let regression = test_stats.and_then(|t| model.regression_metrics(t.mean_loss(), test_set));
    // The test set's scores: RMSE and R² for a regression model, else the accuracy.
    let scores = match regression {
        Some(t) => {
            let fits = fits(backend.as_mut(), model, test_set, session.test_origins)?;
            print_largest_errors(&fits, &model.targets[0].name);
            if let Some((r, dir)) = &report {
                let title = format!("Test set: RMSE {:.4}, R² {:.4}", t.rmse, t.r2);
                r.finish_regression(&fits, &model.targets[0].name, &title)?;
                eprintln!("report written to {}", dir.display());
            }
            serde_json::json!({ "test_rmse": t.rmse, "test_r2": t.r2 })
        }
        None => {
            if let Some((r, dir)) = &report {
                let dark_ink = model.source == soma::model::Source::Idx;
                let (matrix, mistakes) =
                    confusion(backend.as_mut(), test_set, session.test_origins, dark_ink)?;
                let classes: Vec<String> =
                    (0..net.outputs()).map(|c| model.class_name(c)).collect();
                eprintln!(
                    "test confusion matrix (rows: label, columns: prediction):\n{}",
                    report::confusion_table(&matrix, &classes)
                );
                r.finish(&matrix, &classes, &mistakes)?;
                eprintln!("report written to {}", dir.display());
            }
            serde_json::json!({ "test_accuracy": test_stats.map(|t| t.accuracy()) })
        }
    };
    let mut json = serde_json::json!({
        "backend": backend.name(),
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "optimizer": optimizer.name(),
        // Through the shortest decimal form, so that 0.1f32 prints as 0.1.
        "lr": lr.to_string().parse::<f64>().unwrap_or(f64::NAN),
        "train_seconds": run_report.train_seconds(),
        "samples_per_second": run_report.median_samples_per_second(train_set.len()),
        "final_train_loss": final_train.mean_loss(),
    })
    .as_object()
    .cloned()
    .expect("an object");
    json.extend(scores.as_object().cloned().expect("an object"));
    Ok(json)
}

/// Each test sample's target and prediction (of the first target), in the target's units.
fn fits(
    backend: &mut dyn soma::Backend,
    model: &ModelInfo,
    test: &Dataset,
    origins: &[String],
) -> soma::Result<Vec<report::Fit>> {
    let Targets::Values { values, width: k } = test.targets() else {
        return Err(soma::Error::arg(
            "report",
            "a test set of regression targets",
            "class labels",
        ));
    };
    let target = &model.targets[0];
    let mut fits = Vec::with_capacity(test.len());
    predict_chunks(backend, test, |i, row| {
        fits.push(report::Fit {
            index: i,
            origin: origins.get(i).cloned(),
            actual: target.value(values[i * k]) as f64,
            predicted: target.value(row[0]) as f64,
        });
    })?;
    Ok(fits)
}

/// Lines of the largest test errors printed after a regression run.
const LARGEST_ERRORS: usize = 5;

fn print_largest_errors(fits: &[report::Fit], target: &str) {
    let mut worst: Vec<&report::Fit> = fits.iter().collect();
    worst.sort_by(|a, b| {
        (b.predicted - b.actual)
            .abs()
            .total_cmp(&(a.predicted - a.actual).abs())
    });
    eprintln!("largest test errors ({target}):");
    for f in worst.iter().take(LARGEST_ERRORS) {
        eprintln!(
            "  {}: actual {:.4}, predicted {:.4}",
            f.origin.clone().unwrap_or_else(|| format!("#{}", f.index)),
            f.actual,
            f.predicted
        );
    }
}

/// Runs `backend.predict` over `set` in chunks (bounding the memory of the inputs), calling
/// `each` with every sample's index and output row.
fn predict_chunks(
    backend: &mut dyn soma::Backend,
    set: &Dataset,
    mut each: impl FnMut(usize, &[f32]),
) -> soma::Result<()> {
    let f = set.features();
    for start in (0..set.len()).step_by(4096) {
        let end = (start + 4096).min(set.len());
        let order: Vec<u32> = (start as u32..end as u32).collect();
        let mut x = ndarray::Array2::zeros((order.len(), f));
        soma::ops::gather::gather_inputs(set, &order, x.view_mut());
        let out = backend.predict(x.view())?;
        for (r, row) in out.rows().into_iter().enumerate() {
            each(start + r, row.as_slice().expect("rows"));
        }
    }
    Ok(())
}

/// Samples in the mistakes picture.
const MISTAKES_SHOWN: usize = 24;

/// The test set's confusion matrix (`[label][prediction]`) and its most confidently wrong
/// samples, from the network's predictions.
fn confusion(
    backend: &mut dyn soma::Backend,
    test: &Dataset,
    origins: &[String],
    dark_ink: bool,
) -> soma::Result<(Vec<Vec<u64>>, Vec<report::Mistake>)> {
    let Targets::Labels { labels, classes } = test.targets() else {
        return Err(soma::Error::arg(
            "report",
            "a labelled test set",
            "targets that are not classes",
        ));
    };
    let f = test.features();
    let mut matrix = vec![vec![0u64; *classes]; *classes];
    let mut wrong = Vec::new();
    predict_chunks(backend, test, |i, row| {
        let (predicted, confidence) = soma::model::top_k(row, 1)[0];
        let label = labels[i] as usize;
        matrix[label][predicted] += 1;
        if predicted != label {
            // A picture of the sample where it is one (bytes of an image).
            let pixels = match (test.inputs(), test.image) {
                (Inputs::U8(p), Some(image)) => Some((p[i * f..(i + 1) * f].to_vec(), image)),
                _ => None,
            };
            wrong.push(report::Mistake {
                index: i,
                origin: origins.get(i).cloned(),
                picture: pixels,
                dark_ink,
                label,
                predicted,
                confidence,
            });
        }
    })?;
    wrong.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    wrong.truncate(MISTAKES_SHOWN);
    Ok((matrix, wrong))
}
