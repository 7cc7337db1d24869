//! `train`'s data: the format told from the path, read by `soma::data`'s readers, prepared by
//! `soma::data::prepare` (split, maps, origins), and the summary printed before training.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use soma::data::arrays::Layout;
use soma::data::csv::{self, CsvOptions};
use soma::data::folder::{self, FolderOptions};
use soma::data::intake::{self, Task};
use soma::data::npy;
use soma::data::prepare::{self, Fill, PrepareOptions, Prepared};
use soma::model::{ModelInfo, Source};
use soma::train::Recipe;
use soma::{Inputs, Normalize};

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

impl From<TaskArg> for Task {
    fn from(t: TaskArg) -> Task {
        match t {
            TaskArg::Classification => Task::Classification,
            TaskArg::Regression => Task::Regression,
        }
    }
}

impl DataFlags {
    fn layout(&self) -> Option<Layout> {
        self.layout.map(|l| match l {
            LayoutArg::Nhwc => Layout::Nhwc,
            LayoutArg::Nchw => Layout::Nchw,
        })
    }
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
            dataset: intake::dataset_name(dir),
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
    Ok(intake::pictures(dir, data, opts)?)
}

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
            Some(intake::TestRows {
                path: test_path.clone(),
                values,
                labels,
                lines,
            })
        }
        None => None,
    };
    Ok(intake::table(path, t, test, flags.task.into(), opts)?)
}

fn npz(path: &Path, flags: &DataFlags, opts: &PrepareOptions) -> Result<Prepared, Fail> {
    let members = npy::load_npz(path)?;
    Ok(intake::npz(
        path,
        members,
        flags.layout(),
        flags.task.into(),
        opts,
    )?)
}

fn arrays_pair(
    x: &Path,
    y: &Path,
    flags: &DataFlags,
    opts: &PrepareOptions,
) -> Result<Prepared, Fail> {
    let (xa, ya) = (npy::load_npy(x)?, npy::load_npy(y)?);
    Ok(intake::arrays(
        x,
        xa,
        ya,
        None,
        flags.layout(),
        flags.task.into(),
        opts,
        intake::dataset_name(x),
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
