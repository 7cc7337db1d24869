//! `train`'s data: the format told from the path, read by `soma::data`'s readers, prepared by
//! `soma::data::prepare` (split, maps, origins), and the summary printed before training.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use soma::data::arrays::{self, Layout};
use soma::data::csv::{self, CsvOptions};
use soma::data::folder::{self, FolderOptions};
use soma::data::npy::{self, Array};
use soma::data::prepare::{self, Fill, PrepareOptions, Prepared};
use soma::model::{ModelInfo, Source, TableColumn};
use soma::shape::Chw;
use soma::train::{Recipe, Schedule};
use soma::{Activation, Init, Inputs, Normalize, Optimizer};

use super::plot::Fail;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FillArg {
    Mean,
    Zero,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TaskArg {
    /// Classes: softmax outputs and cross-entropy, accuracy.
    Classification,
    /// Real values (tables and NumPy vectors): linear outputs and mean squared error on
    /// standardised targets, RMSE and R².
    Regression,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LayoutArg {
    /// Samples × height × width × channels (NumPy's and Keras' image layout).
    Nhwc,
    /// Samples × channels × height × width (PyTorch's).
    Nchw,
}

/// How the data is read and split.
#[derive(Args, Debug)]
pub struct DataFlags {
    /// What to predict from the label column (tables) or y (NumPy).
    #[arg(long, value_enum, default_value = "classification")]
    pub task: TaskArg,
    /// The fraction of each class held out for testing when the data has no test part of its
    /// own (a test/ or val/ folder, x_test in an .npz).
    #[arg(long, default_value_t = 0.2)]
    pub val: f64,
    /// Seed of the split (the run's --seed seeds the rest).
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Pictures: resize every picture to HxW (e.g. 64x64) [default: the size they share, else
    /// the most common one].
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// Pictures: 1 (grey) or 3 (RGB) [default: grey when every picture is grey].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub channels: Option<u8>,
    /// Pictures: list the files that cannot be read and train on the rest (default: such a
    /// file is an error).
    #[arg(long)]
    pub skip_bad: bool,
    /// Tables: the label column, by name or 0-based index [default: a column named label,
    /// target, class or y, else the last].
    #[arg(long)]
    pub label: Option<String>,
    /// Tables: fill missing cells with the column's training mean, or zero (default: a missing
    /// cell is an error).
    #[arg(long, value_enum)]
    pub fill: Option<FillArg>,
    /// Tables: a test file with the same columns (a header naming them), used as the test part
    /// instead of a split of the training file.
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// NumPy: the layout of 4-D inputs [default: nhwc when the last axis has 1-4 values].
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{s}` is not a size HxW such as 64x64");
    let (h, w) = s.split_once(['x', 'X', '×']).ok_or_else(bad)?;
    match (h.trim().parse::<u32>(), w.trim().parse::<u32>()) {
        (Ok(h), Ok(w)) if h > 0 && w > 0 => Ok((h, w)),
        _ => Err(bad()),
    }
}

/// What was read, prepared, and how long it took.
pub struct Loaded {
    pub format: &'static str,
    pub source: String,
    pub prepared: Prepared,
    pub seconds: f64,
}

/// The tabular recipe, scikit-learn's `MLPClassifier` and `MLPRegressor` defaults: one hidden
/// layer of 100 ReLUs (Glorot-uniform init), Adam at a constant 0.001, batches of 200 (or the
/// whole table when smaller), 200 epochs, no augmentation (scikit-learn stops earlier when its
/// training loss stalls; soma runs them all, in well under a second on such tables). Against
/// the He init, cosine schedule and batch 32 of the image recipes, it matched scikit-learn's
/// test scores on its bundled tables and Friedman's function, where those had fallen short on
/// the regressions (BENCHMARKS.md).
pub fn tabular_recipe() -> Recipe {
    Recipe {
        hidden: vec![100],
        activation: Activation::Relu,
        init: Init::Xavier,
        optimizer: Optimizer::adam(),
        lr: 0.001,
        schedule: Schedule::Constant,
        epochs: 200,
        batch_size: 200,
        augment: 0,
        ..Recipe::default()
    }
}

/// Reads `paths` (see the example's docs) and prepares the datasets.
pub fn load(paths: &[PathBuf], flags: &DataFlags) -> Result<Loaded, Fail> {
    let started = Instant::now();
    let opts = PrepareOptions {
        val: flags.val,
        seed: flags.split_seed,
        fill: flags.fill.map(|f| match f {
            FillArg::Mean => Fill::Mean,
            FillArg::Zero => Fill::Zero,
        }),
    };
    let first = &paths[0];
    let ext = |p: &Path| {
        p.extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default()
    };
    if let Some(test) = &flags.test
        && !matches!(ext(first).as_str(), "csv" | "tsv" | "txt")
    {
        return Err(format!(
            "--test {}: a test file is for tables (.csv, .tsv); a picture folder takes a test/ \
             folder, an .npz x_test and y_test",
            test.display()
        )
        .into());
    }
    let (format, prepared) = match (paths.len(), ext(first).as_str()) {
        (2, _) => ("npy", arrays_pair(&paths[0], &paths[1], flags, &opts)?),
        (_, "npz") => ("npz", npz(first, flags, &opts)?),
        (_, "csv" | "tsv" | "txt") => ("csv", table(first, flags, &opts)?),
        (_, "npy") => {
            return Err(format!(
                "{}: a single .npy holds no labels; give the inputs and the labels as two files \
                 (x.npy y.npy) or an .npz",
                first.display()
            )
            .into());
        }
        _ if first.is_dir() && has_idx(first) => ("idx", idx(first)?),
        _ if first.is_dir() => ("folder", pictures(first, flags, &opts)?),
        _ if !first.exists() => {
            return Err(format!("{}: no such file or folder", first.display()).into());
        }
        _ => {
            return Err(format!(
                "{}: not a format train reads: a folder of class subfolders of pictures, a \
                 folder of IDX files, .csv, .tsv, .npz, or two .npy files",
                first.display()
            )
            .into());
        }
    };
    Ok(Loaded {
        format,
        source: paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        prepared,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The name a model records for data at `path`: its file or folder name.
fn dataset_name(path: &Path) -> String {
    path.file_stem()
        .or_else(|| path.file_name())
        .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned())
}

fn has_idx(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("-images-idx3-ubyte")
        })
    })
}

/// A folder of MNIST's four IDX files (MNIST, Fashion-MNIST, or any set in that form), with
/// the files' own split.
fn idx(dir: &Path) -> Result<Prepared, Fail> {
    let files = soma::data::MnistFiles::in_dir(dir).map_err(|missing| {
        format!(
            "{}: a folder of IDX files needs MNIST's four; missing {}",
            dir.display(),
            missing.join(", ")
        )
    })?;
    let (train, test) = files.load()?;
    let Some(image) = train.image else {
        return Err("the IDX images have no shape".into());
    };
    let (Inputs::U8(train_px), soma::Targets::Labels { labels, classes }) =
        (train.inputs(), train.targets())
    else {
        return Err("IDX data is labelled bytes".into());
    };
    let (
        Inputs::U8(test_px),
        soma::Targets::Labels {
            labels: test_labels,
            ..
        },
    ) = (test.inputs(), test.targets())
    else {
        return Err("IDX data is labelled bytes".into());
    };
    let names = (0..*classes).map(|c| c.to_string()).collect();
    let origins = |n: usize, part: &str| (0..n).map(|i| format!("{part} #{i}")).collect();
    Ok(prepare::images(
        image,
        Inputs::U8(train_px.clone()),
        labels.clone(),
        origins(train.len(), "train"),
        Some((
            Inputs::U8(test_px.clone()),
            test_labels.clone(),
            origins(test.len(), "test"),
        )),
        names,
        ModelInfo {
            dataset: dataset_name(dir),
            source: Source::Idx,
            ..ModelInfo::plain(Normalize::IDENTITY)
        },
        &PrepareOptions::default(),
    )?)
}

fn pictures(dir: &Path, flags: &DataFlags, opts: &PrepareOptions) -> Result<Prepared, Fail> {
    let data = folder::read_folder(
        dir,
        &FolderOptions {
            size: flags.size,
            channels: flags.channels,
            skip_bad: flags.skip_bad,
        },
    )?;
    for (file, why) in &data.bad {
        eprintln!("skipped {}: {why}", file.display());
    }
    let image = Chw::new(
        data.channels as usize,
        data.height as usize,
        data.width as usize,
    );
    let origins = |files: &[PathBuf]| -> Vec<String> {
        files.iter().map(|f| f.display().to_string()).collect()
    };
    let test = data.test.as_ref().map(|t| {
        (
            Inputs::U8(t.pixels.clone()),
            t.labels.clone(),
            origins(&t.files),
        )
    });
    let mut prepared = prepare::images(
        image,
        Inputs::U8(data.train.pixels.clone()),
        data.train.labels.clone(),
        origins(&data.train.files),
        test,
        data.classes.clone(),
        ModelInfo {
            dataset: dataset_name(dir),
            source: Source::Pictures,
            ..ModelInfo::plain(Normalize::IDENTITY)
        },
        opts,
    )?;
    if let Some(name) = &data.split_folder {
        prepared.split = format!("the {name}/ folder");
    }
    prepared
        .notes
        .insert(0, format!("size: {}", data.size_rule));
    if !data.ignored.is_empty() {
        prepared.notes.push(format!(
            "{} files that are not pictures ignored",
            data.ignored.len()
        ));
    }
    if !data.bad.is_empty() {
        prepared.notes.push(format!(
            "{} pictures that cannot be read skipped (--skip-bad)",
            data.bad.len()
        ));
    }
    Ok(prepared)
}

/// The most classes a numeric label column may name (text labels may name any number).
const MAX_NUMERIC_CLASSES: usize = 1000;

fn table(path: &Path, flags: &DataFlags, opts: &PrepareOptions) -> Result<Prepared, Fail> {
    let label = flags.label.as_ref().map(|l| match l.parse::<usize>() {
        Ok(i) => csv::LabelColumn::Index(i),
        Err(_) => csv::LabelColumn::Name(l.clone()),
    });
    let t = csv::read_csv(
        path,
        &CsvOptions {
            label,
            allow_missing: opts.fill.is_some(),
            ..CsvOptions::default()
        },
    )?;
    let columns: Vec<TableColumn> = t
        .columns
        .iter()
        .map(|c| match &c.encoding {
            csv::Encoding::Numeric => TableColumn::Numeric {
                name: c.name.clone(),
            },
            csv::Encoding::OneHot { levels } => TableColumn::OneHot {
                name: c.name.clone(),
                levels: levels.clone(),
            },
        })
        .collect();
    let one_hot: Vec<bool> = columns
        .iter()
        .flat_map(|c| std::iter::repeat_n(matches!(c, TableColumn::OneHot { .. }), c.width()))
        .collect();
    let origins = t.lines.iter().map(|l| format!("line {l}")).collect();
    let names = t.feature_names();
    let encoded: Vec<&str> = t
        .columns
        .iter()
        .filter(|c| matches!(c.encoding, csv::Encoding::OneHot { .. }))
        .map(|c| c.name.as_str())
        .collect();
    let model = ModelInfo {
        dataset: dataset_name(path),
        source: Source::Table {
            columns,
            label: t.label_name.clone(),
        },
        ..ModelInfo::plain(Normalize::IDENTITY)
    };
    let regression = flags.task == TaskArg::Regression;
    if let (true, csv::Labels::Text { levels, .. }) = (regression, &t.labels) {
        return Err(format!(
            "{}: --task regression needs numbers in the label column `{}`; it holds text \
             (`{}`, …): pick the column to predict with --label",
            path.display(),
            t.label_name,
            levels.first().map_or("", String::as_str)
        )
        .into());
    }
    // A test file's rows, read against this table's columns and classes.
    let test = match &flags.test {
        Some(test_path) => {
            let schema = match &t.labels {
                csv::Labels::Text { levels, .. } => csv::LabelSchema::Text(levels),
                csv::Labels::Numeric(_) => csv::LabelSchema::Numeric,
            };
            let (values, labels, lines) = csv::read_labelled_rows_with(
                test_path,
                &t.columns,
                &t.label_name,
                schema,
                opts.fill.is_some(),
            )?;
            let name = test_path.display();
            let origins: Vec<String> = lines.iter().map(|l| format!("{name} line {l}")).collect();
            Some((test_path.as_path(), values, labels, origins))
        }
        None => None,
    };
    let mut prepared = if regression {
        let numbers = |labels: &csv::Labels| match labels {
            csv::Labels::Numeric(v) => v.iter().map(|&v| v as f32).collect(),
            csv::Labels::Text { .. } => unreachable!("text labels are refused above"),
        };
        let targets = numbers(&t.labels);
        let test = test.map(|(_, values, labels, origins)| (values, numbers(&labels), origins));
        prepare::regression(
            t.width,
            t.values,
            targets,
            origins,
            test,
            std::slice::from_ref(&t.label_name),
            &one_hot,
            &names,
            model,
            opts,
        )?
    } else {
        let (labels, classes) = table_classes(path, &t)?;
        let test = match test {
            Some((test_path, values, test_labels, origins)) => {
                let codes = test_codes(test_path, &test_labels, &classes, &origins, &t)?;
                Some((values, codes, origins))
            }
            None => None,
        };
        prepare::vectors(
            t.width, t.values, labels, origins, test, classes, &one_hot, &names, model, opts,
        )?
    };
    if let Some(test_path) = &flags.test {
        prepared.split = format!("the test file {}", test_path.display());
    }
    prepared.notes.insert(
        0,
        format!(
            "table: {} columns ({} delimited, {}), label column `{}`",
            t.columns.len() + 1,
            match t.delimiter {
                b'\t' => "tab".to_string(),
                d => format!("`{}`", d as char),
            },
            if t.header {
                "with a header"
            } else {
                "no header"
            },
            t.label_name
        ),
    );
    if !encoded.is_empty() {
        prepared.notes.push(format!(
            "one-hot encoded text columns: {}",
            encoded.join(", ")
        ));
    }
    Ok(prepared)
}

/// Classes of a table's label column: its text levels, or its whole numbers (refused when
/// they look like an amount rather than classes).
fn table_classes(path: &Path, t: &csv::Table) -> Result<(Vec<u32>, Vec<String>), Fail> {
    Ok(match &t.labels {
        csv::Labels::Text { codes, levels } => (codes.clone(), levels.clone()),
        csv::Labels::Numeric(values) => {
            let ints = arrays::integral(values).ok_or_else(|| {
                format!(
                    "{}: the label column `{}` holds numbers that are not whole; give class \
                     labels, or predict the values with --task regression",
                    path.display(),
                    t.label_name
                )
            })?;
            let (labels, classes) =
                prepare::classes_of_ints(&ints, &format!("column `{}`", t.label_name))?;
            // Whole numbers as many as the rows are amounts (prices, counts), not classes.
            if classes.len() > MAX_NUMERIC_CLASSES || classes.len() * 2 > labels.len() {
                return Err(format!(
                    "{}: the label column `{}` holds {} distinct numbers in {} rows: that looks \
                     like an amount to predict, not classes; predict it with --task regression, \
                     or pick the class column with --label",
                    path.display(),
                    t.label_name,
                    classes.len(),
                    labels.len()
                )
                .into());
            }
            (labels, classes)
        }
    })
}

/// A test file's labels as the training table's classes: text labels come as its codes already;
/// whole numbers must be among the numbers training found.
fn test_codes(
    path: &Path,
    labels: &csv::Labels,
    classes: &[String],
    origins: &[String],
    t: &csv::Table,
) -> Result<Vec<u32>, Fail> {
    match labels {
        csv::Labels::Text { codes, .. } => Ok(codes.clone()),
        csv::Labels::Numeric(values) => values
            .iter()
            .zip(origins)
            .map(|(&v, origin)| {
                let name = arrays::integral(&[v]).map(|i| i[0].to_string());
                name.and_then(|n| classes.iter().position(|c| *c == n))
                    .map(|c| c as u32)
                    .ok_or_else(|| {
                        format!(
                            "{}: the label `{v}` in column `{}` at {origin} is not one of the \
                             classes training found ({})",
                            path.display(),
                            t.label_name,
                            classes.join(", ")
                        )
                        .into()
                    })
            })
            .collect(),
    }
}

fn npz(path: &Path, flags: &DataFlags, opts: &PrepareOptions) -> Result<Prepared, Fail> {
    let mut members = npy::load_npz(path)?;
    let mut take = |name: &str| {
        members
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| members.remove(i).1)
    };
    let name = dataset_name(path);
    match (
        take("x_train"),
        take("y_train"),
        take("x_test"),
        take("y_test"),
    ) {
        (Some(x), Some(y), Some(xt), Some(yt)) => {
            arrays(path, x, y, Some((xt, yt)), flags, opts, name)
        }
        (Some(x), Some(y), None, None) => arrays(path, x, y, None, flags, opts, name),
        _ => match (take("x"), take("y")) {
            (Some(x), Some(y)) => arrays(path, x, y, None, flags, opts, name),
            _ => Err(format!(
                "{}: expected arrays x_train, y_train (and x_test, y_test), as keras.datasets \
                 writes them, or x and y",
                path.display()
            )
            .into()),
        },
    }
}

fn arrays_pair(
    x: &Path,
    y: &Path,
    flags: &DataFlags,
    opts: &PrepareOptions,
) -> Result<Prepared, Fail> {
    let (xa, ya) = (npy::load_npy(x)?, npy::load_npy(y)?);
    arrays(x, xa, ya, None, flags, opts, dataset_name(x))
}

fn arrays(
    path: &Path,
    x: Array,
    y: Array,
    test: Option<(Array, Array)>,
    flags: &DataFlags,
    opts: &PrepareOptions,
    name: String,
) -> Result<Prepared, Fail> {
    let n = x.shape.first().copied().unwrap_or(0);
    let layout = flags.layout.map(|l| match l {
        LayoutArg::Nhwc => Layout::Nhwc,
        LayoutArg::Nchw => Layout::Nchw,
    });
    let shape = arrays::sample_shape(path, &x.shape, layout)?;
    if flags.task == TaskArg::Regression {
        return regression_arrays(path, x, y, test, &shape, opts, name);
    }
    let mut ints = arrays::labels(path, &y, n)?;
    let test = match test {
        Some((xt, yt)) => {
            let nt = test_samples(path, &x, &xt)?;
            ints.extend(arrays::labels(path, &yt, nt)?);
            Some((xt, nt))
        }
        None => None,
    };
    let (all_labels, classes) = prepare::classes_of_ints(&ints, "the labels")?;
    let (labels, test_labels) = all_labels.split_at(n);
    let origins = |n: usize, part: &str| (0..n).map(|i| format!("{part}[{i}]")).collect();
    let train_part = if test.is_some() { "x_train" } else { "x" };
    let model = ModelInfo {
        dataset: name,
        source: Source::Arrays,
        ..ModelInfo::plain(Normalize::IDENTITY)
    };
    let inputs = |a: Array| arrays::inputs(a, &shape);
    if let Some(chw) = shape.image {
        let test = test.map(|(xt, nt)| (inputs(xt), test_labels.to_vec(), origins(nt, "x_test")));
        return Ok(prepare::images(
            chw,
            inputs(x),
            labels.to_vec(),
            origins(n, train_part),
            test,
            classes,
            model,
            opts,
        )?);
    }
    let f32s = |a: Array| match inputs(a) {
        Inputs::U8(v) => v.into_iter().map(f32::from).collect(),
        Inputs::F32(v) => v,
    };
    let test = test.map(|(xt, nt)| (f32s(xt), test_labels.to_vec(), origins(nt, "x_test")));
    let names: Vec<String> = (0..shape.width).map(|j| format!("x[{j}]")).collect();
    Ok(prepare::vectors(
        shape.width,
        f32s(x),
        labels.to_vec(),
        origins(n, train_part),
        test,
        classes,
        &vec![false; shape.width],
        &names,
        model,
        opts,
    )?)
}

/// The number of `x_test`'s samples, which must be shaped as `x_train`'s.
fn test_samples(path: &Path, x: &Array, xt: &Array) -> Result<usize, Fail> {
    if xt.shape.get(1..) != x.shape.get(1..) {
        return Err(format!(
            "{}: x_test's samples are {:?}, x_train's {:?}",
            path.display(),
            xt.shape.get(1..),
            x.shape.get(1..)
        )
        .into());
    }
    Ok(xt.shape.first().copied().unwrap_or(0))
}

/// Arrays with real-valued targets: x of vectors `[n, d]`, y `[n]` or `[n, k]`.
fn regression_arrays(
    path: &Path,
    x: Array,
    y: Array,
    test: Option<(Array, Array)>,
    shape: &arrays::SampleShape,
    opts: &PrepareOptions,
    name: String,
) -> Result<Prepared, Fail> {
    if let Some(chw) = shape.image {
        return Err(format!(
            "{}: --task regression reads vectors (x of shape [n, d]); x holds images of \
             {chw}: reshape them to [n, {}]",
            path.display(),
            chw.len()
        )
        .into());
    }
    let f32s = |a: Array| match arrays::inputs(a, shape) {
        Inputs::U8(v) => v.into_iter().map(f32::from).collect::<Vec<f32>>(),
        Inputs::F32(v) => v,
    };
    let origins = |n: usize, part: &str| (0..n).map(|i| format!("{part}[{i}]")).collect();
    let n = x.shape[0];
    let (targets, k) = arrays::targets(path, &y, n)?;
    let test = match test {
        Some((xt, yt)) => {
            let nt = test_samples(path, &x, &xt)?;
            let (test_targets, kt) = arrays::targets(path, &yt, nt)?;
            if kt != k {
                return Err(format!(
                    "{}: y_test has {kt} targets per sample, y_train {k}",
                    path.display()
                )
                .into());
            }
            Some((f32s(xt), test_targets, origins(nt, "x_test")))
        }
        None => None,
    };
    let train_part = if test.is_some() { "x_train" } else { "x" };
    let target_names: Vec<String> = if k == 1 {
        vec!["y".into()]
    } else {
        (0..k).map(|j| format!("y[{j}]")).collect()
    };
    let names: Vec<String> = (0..shape.width).map(|j| format!("x[{j}]")).collect();
    Ok(prepare::regression(
        shape.width,
        f32s(x),
        targets,
        origins(n, train_part),
        test,
        &target_names,
        &vec![false; shape.width],
        &names,
        ModelInfo {
            dataset: name,
            source: Source::Arrays,
            ..ModelInfo::plain(Normalize::IDENTITY)
        },
        opts,
    )?)
}

/// What was found, before training: the source, the classes with their counts, the input
/// shape, the split and the notes.
pub fn print_summary(loaded: &Loaded, recipe: &Recipe) {
    let p = &loaded.prepared;
    eprintln!(
        "data: {} ({}) read in {:.2} s: {} training and {} test samples",
        loaded.source,
        loaded.format,
        loaded.seconds,
        p.train.len(),
        p.test.len()
    );
    if p.model.targets.is_empty() {
        print_classes(p);
    } else {
        print_targets(p);
    }
    let input = match p.train.image {
        Some(chw) => format!("{chw} (channels × height × width)"),
        None => format!("{} values", p.train.features()),
    };
    eprintln!("input: {input}");
    eprintln!("split: {}", p.split);
    for note in &p.notes {
        eprintln!("{note}");
    }
    if recipe.augment > 0 {
        eprintln!(
            "augmentation: random shifts of up to {} pixels",
            recipe.augment
        );
    }
}

/// Each regression target's statistics over the training part, in its own units.
fn print_targets(p: &Prepared) {
    let soma::Targets::Values { values, width: k } = p.train.targets() else {
        return;
    };
    let width = p
        .model
        .targets
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    eprintln!(
        "  {:<width$}  {:>12}  {:>12}  {:>12}  {:>12}",
        "target", "mean", "deviation", "min", "max"
    );
    for (j, t) in p.model.targets.iter().enumerate() {
        let column: Vec<f64> = values
            .iter()
            .skip(j)
            .step_by(*k)
            .map(|&v| t.value(v) as f64)
            .collect();
        let n = column.len().max(1) as f64;
        let mean = column.iter().sum::<f64>() / n;
        let dev = (column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let (min, max) = column
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        eprintln!(
            "  {:<width$}  {mean:>12.4}  {dev:>12.4}  {min:>12.4}  {max:>12.4}",
            t.name
        );
    }
}

/// Each class with its training and test counts.
fn print_classes(p: &Prepared) {
    let counts = p.class_counts();
    let width = p
        .model
        .classes
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    eprintln!("  {:<width$}  {:>8}  {:>8}", "class", "train", "test");
    for (name, (train, test)) in p.model.classes.iter().zip(&counts) {
        eprintln!("  {name:<width$}  {train:>8}  {test:>8}");
    }
}
