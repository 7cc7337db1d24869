//! Which digit is in this picture? Reads a checkpoint saved by `mnist --save` and pictures
//! (PNG, JPEG or PGM, any size, colour or grey, dark-on-light or light-on-dark), brings each to
//! MNIST's form (`soma::digit::mnist_like`) and prints the three most probable classes.
//!
//! `cargo run --release --example predict -- --load model.safetensors digit.png [more…]`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use soma::data::{DatasetKind, locate};
use soma::model::top_k;
use soma::{BackendKind, ModelInfo, Normalize, Optimizer, Targets, checkpoint, digit};

// Shared with the `picture` fuzz target and the regression tests: the same decode, fuzzed.
#[path = "common/picture.rs"]
mod picture;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScaleArg {
    /// x / 255 (`mnist --scale unit`).
    Unit,
    /// Zero mean, unit variance over the training set (`mnist --scale standard`, the default
    /// there), recomputed from the training files.
    Standard,
}

/// Predict the digit in pictures with a network trained by the mnist example.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The checkpoint (`mnist --save FILE`).
    #[arg(long)]
    load: PathBuf,
    /// Pictures to read: PNG, JPEG or PGM/PPM.
    images: Vec<PathBuf>,
    /// Also predict these samples of the test set (0-based), showing their labels.
    #[arg(long)]
    dataset_index: Vec<usize>,
    /// Print one JSON object per picture instead of a line of text.
    #[arg(long)]
    json: bool,
    /// Where to run: cpu, gpu, or auto (a hardware GPU if present, else the CPU).
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    backend: BackendKind,
    /// GPU adapter to use, by a case-insensitive substring of its name.
    #[arg(long)]
    adapter: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
    /// For a version 1 checkpoint, which records no input scaling: the scaling it was trained
    /// with.
    #[arg(long, value_enum, conflicts_with_all = ["input_scale", "input_shift"])]
    scale: Option<ScaleArg>,
    /// For a version 1 checkpoint: network input = pixel · SCALE + SHIFT.
    #[arg(long, requires = "input_shift", allow_negative_numbers = true)]
    input_scale: Option<f32>,
    /// See --input-scale.
    #[arg(long, requires = "input_scale", allow_negative_numbers = true)]
    input_shift: Option<f32>,
    /// Directory holding the dataset's IDX files (for --dataset-index and --scale standard).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Which dataset --dataset-index reads (default: the one the checkpoint names).
    #[arg(long, value_parser = parse_dataset)]
    dataset: Option<DatasetKind>,
    /// Never download missing data.
    #[arg(long)]
    offline: bool,
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse().map_err(|e: soma::Error| e.to_string())
}
fn parse_dataset(s: &str) -> Result<DatasetKind, String> {
    s.parse().map_err(|e: soma::Error| e.to_string())
}

type Fail = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        // Some pictures could not be read: each was reported, the others predicted.
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One thing to predict: where it came from and its 28×28 stored pixels.
struct Item {
    source: Source,
    pixels: Vec<u8>,
}

enum Source {
    File(PathBuf),
    Test { index: usize, label: usize },
}

/// Predicts everything asked for; `Ok(false)` when some pictures failed (and were reported).
fn run(args: &Args) -> Result<bool, Fail> {
    if args.images.is_empty() && args.dataset_index.is_empty() {
        return Err("nothing to predict: give picture files or --dataset-index N".into());
    }
    let ckpt = checkpoint::load(&args.load)?;
    let info = model_info(args, &ckpt)?;
    let side = digit::SIDE;
    if ckpt.network.inputs() != side * side || info.image.is_some_and(|s| s != (side, side)) {
        return Err(soma::Error::Checkpoint {
            path: args.load.clone(),
            reason: format!(
                "the network takes {} inputs{}, but predict makes {side}×{side} images ({} inputs)",
                ckpt.network.inputs(),
                info.image
                    .map(|(r, c)| format!(" (a {r}×{c} image)"))
                    .unwrap_or_default(),
                side * side
            ),
        }
        .into());
    }

    let mut all_read = true;
    let mut items = Vec::new();
    for path in &args.images {
        match read_picture(path) {
            Ok(pixels) => items.push(Item {
                source: Source::File(path.clone()),
                pixels,
            }),
            Err(e) => {
                eprintln!("error: {e}");
                all_read = false;
            }
        }
    }
    if !args.dataset_index.is_empty() {
        items.extend(test_samples(args, &info)?);
    }
    if items.is_empty() {
        return Ok(false);
    }

    let opts = soma::select::Options {
        threads: args.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |t| t as usize,
        ),
        adapter: args.adapter.clone(),
    };
    // Plain SGD: prediction needs no optimizer state, so none is allocated.
    let mut backend = soma::select::create(
        args.backend,
        &ckpt.network,
        ckpt.params,
        Optimizer::Sgd,
        &opts,
    )?;
    let pixels: Vec<u8> = items
        .iter()
        .flat_map(|i| i.pixels.iter().copied())
        .collect();
    let inputs = info.inputs(&pixels, side * side)?;
    let probs = backend.predict(inputs.view())?;

    for (item, row) in items.iter().zip(probs.rows()) {
        let row = row.to_vec();
        let top = top_k(&row, 3);
        if args.json {
            let mut obj = serde_json::Map::new();
            match &item.source {
                Source::File(p) => {
                    obj.insert("file".into(), p.display().to_string().into());
                }
                Source::Test { index, label } => {
                    obj.insert("dataset_index".into(), (*index).into());
                    obj.insert("label".into(), info.class_name(*label).into());
                }
            }
            obj.insert("prediction".into(), info.class_name(top[0].0).into());
            let top_json: Vec<_> = top
                .iter()
                .map(|&(c, p)| {
                    serde_json::json!({"class": info.class_name(c), "index": c, "probability": p})
                })
                .collect();
            obj.insert("top".into(), top_json.into());
            obj.insert("probabilities".into(), row.clone().into());
            println!("{}", serde_json::Value::Object(obj));
        } else {
            let name = match &item.source {
                Source::File(p) => p.display().to_string(),
                Source::Test { index, label } => {
                    format!("test sample {index} (label {})", info.class_name(*label))
                }
            };
            let answers: Vec<String> = top
                .iter()
                .map(|&(c, p)| format!("{} {:.1}%", info.class_name(c), 100.0 * p))
                .collect();
            println!("{name}: {}", answers.join(", "));
        }
    }
    Ok(all_read)
}

/// The checkpoint's input description, or for a version 1 file the one given by the flags.
fn model_info(args: &Args, ckpt: &checkpoint::Checkpoint) -> Result<ModelInfo, Fail> {
    let given = match (args.scale, args.input_scale, args.input_shift) {
        (Some(ScaleArg::Unit), _, _) => Some(Normalize::UNIT),
        (Some(ScaleArg::Standard), _, _) => {
            let kind = args.dataset.unwrap_or(DatasetKind::Mnist);
            let files = locate(kind, args.data.as_deref(), !args.offline)?;
            let (train, _) = files.load()?;
            match train.inputs() {
                soma::Inputs::U8(pixels) => Some(Normalize::standardize(pixels)),
                soma::Inputs::F32(_) => None,
            }
        }
        (None, Some(scale), Some(shift)) => Some(Normalize { scale, shift }),
        _ => None,
    };
    match (&ckpt.model, given) {
        (Some(info), None) => Ok(info.clone()),
        (Some(_), Some(_)) => Err(soma::Error::Checkpoint {
            path: args.load.clone(),
            reason: "the checkpoint records its input scaling (format version 2); \
                     --scale, --input-scale and --input-shift are only for version 1 files"
                .into(),
        }
        .into()),
        (None, Some(normalize)) => {
            let info = ModelInfo {
                normalize,
                image: None,
                dataset: args.dataset.unwrap_or(DatasetKind::Mnist).to_string(),
                classes: Vec::new(),
            };
            info.check(&ckpt.network)?;
            Ok(info)
        }
        (None, None) => Err(soma::Error::Checkpoint {
            path: args.load.clone(),
            reason: "format version 1 records no input scaling, so its inputs cannot be \
                     prepared; give the scaling it was trained with: --scale standard (the \
                     mnist default), --scale unit, or --input-scale X --input-shift Y \
                     (or save it again with this version)"
                .into(),
        }
        .into()),
    }
}

/// Decodes a picture file and brings it to MNIST's form (see `common/picture.rs`).
fn read_picture(path: &Path) -> Result<Vec<u8>, Fail> {
    Ok(picture::read(path)?)
}

/// The test-set samples `--dataset-index` names, as stored (already in MNIST's form).
fn test_samples(args: &Args, info: &ModelInfo) -> Result<Vec<Item>, Fail> {
    let kind = match args.dataset {
        Some(k) => k,
        None => info.dataset.parse().unwrap_or(DatasetKind::Mnist),
    };
    let files = locate(kind, args.data.as_deref(), !args.offline)?;
    let (_, test) = files.load()?;
    let (soma::Inputs::U8(pixels), Targets::Labels { labels, .. }) =
        (test.inputs(), test.targets())
    else {
        return Err("the test set is not labelled byte images".into());
    };
    let f = test.features();
    args.dataset_index
        .iter()
        .map(|&index| {
            if index >= test.len() {
                return Err(format!(
                    "--dataset-index {index}: the {kind} test set has samples 0 to {}",
                    test.len() - 1
                )
                .into());
            }
            Ok(Item {
                source: Source::Test {
                    index,
                    label: labels[index] as usize,
                },
                pixels: pixels[index * f..(index + 1) * f].to_vec(),
            })
        })
        .collect()
}
