//! What a trained model says about new inputs. Reads a checkpoint saved by `mnist --save` or
//! `train --save` and prepares each input as training prepared its data, from what the
//! checkpoint records (`soma::model::Source`):
//! - a digit model (IDX images): pictures (PNG, JPEG, BMP or PGM, any size, colour or grey,
//!   dark-on-light or light-on-dark) brought to MNIST's form (`soma::digit::mnist_like`), or
//!   `--dataset-index` samples of the test set;
//! - a picture model (`train` on a folder): pictures resized to its input and made grey or RGB;
//! - a table model (`train` on a CSV): CSV files of rows, answered as CSV (each row's line,
//!   prediction and class probabilities);
//! - an array model (`train` on NumPy data): `.npy` files of inputs shaped as in training.
//!
//! Prints the three most probable classes of each input (or one JSON object each, `--json`);
//! for a regression model (`train --task regression`), each input's predicted values in the
//! targets' units (CSV for table rows).
//!
//! `cargo run --release --example predict -- --load model.safetensors digit.png [more…]`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use soma::data::{DatasetKind, locate};
use soma::model::Source as ModelSource;
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

/// Predict with a network trained by the mnist or train example: pictures, CSV rows or .npy
/// arrays, as the checkpoint's model reads them.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The checkpoint (`mnist --save FILE`).
    #[arg(long)]
    load: PathBuf,
    /// What to predict: pictures (PNG, JPEG, BMP, PGM/PPM), CSV/TSV files of rows (a table
    /// model), or .npy files of inputs (an array model).
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

/// One thing to predict: where it came from and its network inputs.
struct Item {
    source: Source,
    inputs: Vec<f32>,
}

enum Source {
    File(PathBuf),
    Test {
        index: usize,
        label: usize,
    },
    /// Sample `index` of an array file.
    Sample {
        file: PathBuf,
        index: usize,
    },
    /// The row on line `line` of a CSV file.
    Row {
        file: PathBuf,
        line: u64,
    },
}

/// Predicts everything asked for; `Ok(false)` when some inputs failed (and were reported).
fn run(args: &Args) -> Result<bool, Fail> {
    if args.images.is_empty() && args.dataset_index.is_empty() {
        return Err("nothing to predict: give picture files or --dataset-index N".into());
    }
    let ckpt = checkpoint::load(&args.load)?;
    let info = model_info(args, &ckpt)?;
    let width = ckpt.network.inputs();
    if !args.dataset_index.is_empty() && info.source != ModelSource::Idx {
        return Err(
            "--dataset-index reads the MNIST test set; this model was trained on other \
                    data"
                .into(),
        );
    }
    let mut all_read = true;
    let mut items = Vec::new();
    for path in &args.images {
        let read = match &info.source {
            ModelSource::Idx => digit_item(args, &ckpt, &info, path),
            ModelSource::Pictures => picture_item(&info, path),
            ModelSource::Table { .. } => table_items(&info, path),
            ModelSource::Arrays => array_items(&info, path, width),
        };
        match read {
            Ok(read) => items.extend(read),
            Err(e) => {
                eprintln!("error: {e}");
                all_read = false;
            }
        }
    }
    if !args.dataset_index.is_empty() {
        check_digit_model(args, &ckpt, &info)?;
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
    let values: Vec<f32> = items
        .iter()
        .flat_map(|i| i.inputs.iter().copied())
        .collect();
    let inputs = ndarray::Array2::from_shape_vec((items.len(), width), values)?;
    let probs = backend.predict(inputs.view())?;
    let table = matches!(info.source, ModelSource::Table { .. });
    if !info.targets.is_empty() {
        print_values(&items, &probs, &info, args.json, table);
        return Ok(all_read);
    }
    if table && !args.json {
        print_csv(&items, &probs, &info);
        return Ok(all_read);
    }
    for (item, row) in items.iter().zip(probs.rows()) {
        let row = row.to_vec();
        let top = top_k(&row, 3);
        if args.json {
            let mut obj = source_json(item, &info);
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
            let answers: Vec<String> = top
                .iter()
                .map(|&(c, p)| format!("{} {:.1}%", info.class_name(c), 100.0 * p))
                .collect();
            println!("{}: {}", source_name(item, &info), answers.join(", "));
        }
    }
    Ok(all_read)
}

/// Where an input came from, for a line of text.
fn source_name(item: &Item, info: &ModelInfo) -> String {
    match &item.source {
        Source::File(p) => p.display().to_string(),
        Source::Test { index, label } => {
            format!("test sample {index} (label {})", info.class_name(*label))
        }
        Source::Sample { file, index } => format!("{}[{index}]", file.display()),
        Source::Row { file, line } => format!("{} line {line}", file.display()),
    }
}

/// Where an input came from, as the first fields of its JSON line.
fn source_json(item: &Item, info: &ModelInfo) -> serde_json::Map<String, serde_json::Value> {
    let mut obj = serde_json::Map::new();
    match &item.source {
        Source::File(p) => {
            obj.insert("file".into(), p.display().to_string().into());
        }
        Source::Test { index, label } => {
            obj.insert("dataset_index".into(), (*index).into());
            obj.insert("label".into(), info.class_name(*label).into());
        }
        Source::Sample { file, index } => {
            obj.insert("file".into(), file.display().to_string().into());
            obj.insert("index".into(), (*index).into());
        }
        Source::Row { file, line } => {
            obj.insert("file".into(), file.display().to_string().into());
            obj.insert("line".into(), (*line).into());
        }
    }
    obj
}

/// A regression model's predictions, in each target's units: CSV for table rows (each row's
/// file and line, then a column per target), one JSON object per input with `--json` (its
/// source and `predictions`, by target name), else a line each.
fn print_values(
    items: &[Item],
    outputs: &ndarray::Array2<f32>,
    info: &ModelInfo,
    json: bool,
    table: bool,
) {
    let values = |row: ndarray::ArrayView1<f32>| -> Vec<f32> {
        info.targets
            .iter()
            .zip(row)
            .map(|(t, &v)| t.value(v))
            .collect()
    };
    if table && !json {
        let header: Vec<String> = ["file".to_string(), "line".to_string()]
            .into_iter()
            .chain(info.targets.iter().map(|t| csv_quote(&t.name)))
            .collect();
        println!("{}", header.join(","));
    }
    for (item, row) in items.iter().zip(outputs.rows()) {
        let values = values(row);
        if json {
            let mut obj = source_json(item, info);
            let by_name: serde_json::Map<String, serde_json::Value> = info
                .targets
                .iter()
                .zip(&values)
                .map(|(t, &v)| (t.name.clone(), v.into()))
                .collect();
            obj.insert("predictions".into(), by_name.into());
            println!("{}", serde_json::Value::Object(obj));
        } else if let (true, Source::Row { file, line }) = (table, &item.source) {
            let mut cells = vec![csv_quote(&file.display().to_string()), line.to_string()];
            cells.extend(values.iter().map(|v| v.to_string()));
            println!("{}", cells.join(","));
        } else {
            let answers: Vec<String> = info
                .targets
                .iter()
                .zip(&values)
                .map(|(t, v)| format!("{} {v}", t.name))
                .collect();
            println!("{}: {}", source_name(item, info), answers.join(", "));
        }
    }
}

/// A CSV cell: quoted where it holds a delimiter, a quote or a line break.
fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Table predictions as CSV: each row's file and line, the predicted class, then one
/// probability column per class.
fn print_csv(items: &[Item], probs: &ndarray::Array2<f32>, info: &ModelInfo) {
    let quote = csv_quote;
    let classes: Vec<String> = (0..probs.ncols()).map(|c| info.class_name(c)).collect();
    let header: Vec<String> = ["file", "line", "prediction"]
        .into_iter()
        .map(String::from)
        .chain(classes.iter().map(|c| quote(&format!("p_{c}"))))
        .collect();
    println!("{}", header.join(","));
    for (item, row) in items.iter().zip(probs.rows()) {
        let (file, line) = match &item.source {
            Source::Row { file, line } => (file.display().to_string(), line.to_string()),
            _ => unreachable!("table models predict rows"),
        };
        let best = top_k(row.as_slice().expect("rows"), 1)[0].0;
        let mut cells = vec![quote(&file), line, quote(&classes[best])];
        cells.extend(row.iter().map(|p| format!("{p}")));
        println!("{}", cells.join(","));
    }
}

/// A digit model reads 28×28 pictures (a version 1 checkpoint records nothing: the network's
/// 784 inputs say it).
fn check_digit_model(
    args: &Args,
    ckpt: &checkpoint::Checkpoint,
    info: &ModelInfo,
) -> Result<(), Fail> {
    let side = digit::SIDE;
    let digit_shape = soma::shape::Chw::new(1, side, side);
    if ckpt.network.inputs() != side * side || info.image.is_some_and(|s| s != digit_shape) {
        return Err(soma::Error::Checkpoint {
            path: args.load.clone(),
            reason: format!(
                "the network takes {} inputs{}, but predict makes {side}×{side} images ({} inputs)",
                ckpt.network.inputs(),
                info.image
                    .map(|i| format!(" (a {i} image)"))
                    .unwrap_or_default(),
                side * side
            ),
        }
        .into());
    }
    Ok(())
}

/// A picture for a digit model, in MNIST's form (see `common/picture.rs`).
fn digit_item(
    args: &Args,
    ckpt: &checkpoint::Checkpoint,
    info: &ModelInfo,
    path: &Path,
) -> Result<Vec<Item>, Fail> {
    check_digit_model(args, ckpt, info)?;
    let pixels = picture::read(path)?;
    let side = digit::SIDE;
    Ok(vec![Item {
        source: Source::File(path.to_path_buf()),
        inputs: info
            .inputs(&pixels, side * side)?
            .into_raw_vec_and_offset()
            .0,
    }])
}

/// A picture for a picture model: resized to its input (the triangle filter training used),
/// grey or RGB as its channels are.
fn picture_item(info: &ModelInfo, path: &Path) -> Result<Vec<Item>, Fail> {
    let bytes = std::fs::read(path).map_err(|e| soma::Error::io(path, "read picture", e))?;
    let pixels = soma::data::intake::picture_sample(info, &path.display().to_string(), &bytes)?;
    let image = info.image.expect("picture_sample checked the image shape");
    Ok(vec![Item {
        source: Source::File(path.to_path_buf()),
        inputs: info
            .inputs(&pixels, image.len())?
            .into_raw_vec_and_offset()
            .0,
    }])
}

/// The rows of a CSV file for a table model, its feature columns found by name (or in order
/// without a header); a missing cell is an error naming its line and column.
fn table_items(info: &ModelInfo, path: &Path) -> Result<Vec<Item>, Fail> {
    let (schema, label) = soma::data::intake::table_schema(info).expect("called for table models");
    let bytes = std::fs::read(path).map_err(|e| soma::Error::io(path, "read CSV", e))?;
    let (values, lines) =
        soma::data::csv::parse_rows_with(path, &bytes, &schema, Some(label), false)?;
    let width = values.len() / lines.len().max(1);
    let inputs = info.inputs_f32(&values, width.max(1))?;
    Ok(inputs
        .rows()
        .into_iter()
        .zip(lines)
        .map(|(row, line)| Item {
            source: Source::Row {
                file: path.to_path_buf(),
                line,
            },
            inputs: row.to_vec(),
        })
        .collect())
}

/// The samples of a `.npy` file for an array model: `[n, …]` shaped as the training inputs
/// (channel-last images reordered as in training).
fn array_items(info: &ModelInfo, path: &Path, width: usize) -> Result<Vec<Item>, Fail> {
    let x = soma::data::npy::load_npy(path)?;
    let shape = soma::data::arrays::sample_shape(path, &x.shape, None)?;
    if shape.width != width || (info.image.is_some() && shape.image != info.image) {
        return Err(format!(
            "{}: samples of shape {:?}; the model reads {}",
            path.display(),
            &x.shape[1..],
            info.image
                .map_or_else(|| format!("{width} values"), |i| i.to_string())
        )
        .into());
    }
    let inputs = match soma::data::arrays::inputs(x, &shape) {
        soma::Inputs::U8(v) => info.inputs(&v, width)?,
        soma::Inputs::F32(v) => info.inputs_f32(&v, width)?,
    };
    Ok(inputs
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| Item {
            source: Source::Sample {
                file: path.to_path_buf(),
                index: i,
            },
            inputs: row.to_vec(),
        })
        .collect())
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
                dataset: args.dataset.unwrap_or(DatasetKind::Mnist).to_string(),
                ..ModelInfo::plain(normalize)
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
                inputs: info
                    .inputs(&pixels[index * f..(index + 1) * f], f)?
                    .into_raw_vec_and_offset()
                    .0,
            })
        })
        .collect()
}
