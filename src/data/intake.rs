//! From what a reader found to datasets, format by format: a picture folder's samples, a
//! table's rows (with an optional test file's), a NumPy archive's arrays. The `train` example
//! reads files and the page reads dropped bytes with the same readers, then both come through
//! here, so that a folder, a CSV or an `.npz` gives the same classes, split, maps and model
//! record wherever it is read.

use std::path::{Path, PathBuf};

use super::arrays::{self, Layout, SampleShape};
use super::csv::{self, Labels, Table};
use super::folder::FolderData;
use super::npy::Array;
use super::prepare::{self, PrepareOptions, Prepared};
use super::{Inputs, Normalize};
use crate::error::{Error, Result};
use crate::model::{ModelInfo, Source, TableColumn};
use crate::shape::Chw;

/// What to predict from a table's label column or NumPy's `y`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Task {
    /// Classes: softmax outputs and cross-entropy, accuracy.
    #[default]
    Classification,
    /// Real values: linear outputs and mean squared error on standardised targets.
    Regression,
}

/// The most classes a numeric label column may name (text labels may name any number).
pub const MAX_NUMERIC_CLASSES: usize = 1000;

/// The name a model records for data at `path`: its file or folder name.
pub fn dataset_name(path: &Path) -> String {
    path.file_stem()
        .or_else(|| path.file_name())
        .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned())
}

/// A folder's pictures (read by `folder::read_folder` or `folder::read_files` from `dir`):
/// its split folder or a drawn split, per-channel maps, each sample's file as its origin.
pub fn pictures(dir: &Path, data: FolderData, opts: &PrepareOptions) -> Result<Prepared> {
    let image = Chw::new(
        data.channels as usize,
        data.height as usize,
        data.width as usize,
    );
    let origins = |files: &[PathBuf]| -> Vec<String> {
        files.iter().map(|f| f.display().to_string()).collect()
    };
    let test = data
        .test
        .map(|t| (Inputs::U8(t.pixels), t.labels, origins(&t.files)));
    let train_origins = origins(&data.train.files);
    let mut prepared = prepare::images(
        image,
        Inputs::U8(data.train.pixels),
        data.train.labels,
        train_origins,
        test,
        data.classes,
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
        let n = data.ignored.len();
        prepared.notes.push(format!(
            "{n} file{} that {} not pictures ignored",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" }
        ));
    }
    if !data.bad.is_empty() {
        let n = data.bad.len();
        prepared.notes.push(format!(
            "{n} picture{} that cannot be read left out",
            if n == 1 { "" } else { "s" }
        ));
    }
    Ok(prepared)
}

/// A test file's rows, read against the training table's columns
/// (`csv::read_labelled_rows_with` or `parse_labelled_rows_with`).
pub struct TestRows {
    pub path: PathBuf,
    pub values: Vec<f32>,
    pub labels: Labels,
    pub lines: Vec<u64>,
}

/// A table read from `path` (`csv::read_csv` or `parse_csv`), with its test file's rows if it
/// has one: classes from the label column (or standardised targets for `Task::Regression`),
/// per-feature maps, each row's line as its origin.
pub fn table(
    path: &Path,
    t: Table,
    test: Option<TestRows>,
    task: Task,
    opts: &PrepareOptions,
) -> Result<Prepared> {
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
    let encoded: Vec<String> = t
        .columns
        .iter()
        .filter(|c| matches!(c.encoding, csv::Encoding::OneHot { .. }))
        .map(|c| c.name.clone())
        .collect();
    let model = ModelInfo {
        dataset: dataset_name(path),
        source: Source::Table {
            columns,
            label: t.label_name.clone(),
        },
        ..ModelInfo::plain(Normalize::IDENTITY)
    };
    let notes = vec![format!(
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
    )];
    if let (Task::Regression, Labels::Text { levels, .. }) = (task, &t.labels) {
        return Err(Error::data(
            path,
            format!(
                "--task regression needs numbers in the label column `{}`; it holds text \
                 (`{}`, …): pick the column to predict with --label",
                t.label_name,
                levels.first().map_or("", String::as_str)
            ),
        ));
    }
    let test_path = test.as_ref().map(|r| r.path.clone());
    let test_origins = |r: &TestRows| -> Vec<String> {
        let name = r.path.display();
        r.lines.iter().map(|l| format!("{name} line {l}")).collect()
    };
    let mut prepared = if task == Task::Regression {
        let numbers = |labels: Labels| match labels {
            Labels::Numeric(v) => v.into_iter().map(|v| v as f32).collect(),
            Labels::Text { .. } => Vec::new(),
        };
        let test = test.map(|r| {
            let origins = test_origins(&r);
            (r.values, numbers(r.labels), origins)
        });
        let label = [t.label_name.clone()];
        prepare::regression(
            t.width,
            t.values,
            numbers(t.labels),
            origins,
            test,
            &label,
            &one_hot,
            &names,
            model,
            opts,
        )?
    } else {
        let (labels, classes) = table_classes(path, &t)?;
        let test = match test {
            Some(r) => {
                let origins = test_origins(&r);
                let codes = test_codes(&r, &classes, &origins, &t.label_name)?;
                Some((r.values, codes, origins))
            }
            None => None,
        };
        prepare::vectors(
            t.width, t.values, labels, origins, test, classes, &one_hot, &names, model, opts,
        )?
    };
    if let Some(test_path) = test_path {
        prepared.split = format!("the test file {}", test_path.display());
    }
    prepared.notes.splice(0..0, notes);
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
fn table_classes(path: &Path, t: &Table) -> Result<(Vec<u32>, Vec<String>)> {
    Ok(match &t.labels {
        Labels::Text { codes, levels } => (codes.clone(), levels.clone()),
        Labels::Numeric(values) => {
            let ints = arrays::integral(values).ok_or_else(|| {
                Error::data(
                    path,
                    format!(
                        "the label column `{}` holds numbers that are not whole; give class \
                         labels, or predict the values with --task regression",
                        t.label_name
                    ),
                )
            })?;
            let (labels, classes) =
                prepare::classes_of_ints(&ints, &format!("column `{}`", t.label_name))?;
            // Whole numbers as many as the rows are amounts (prices, counts), not classes.
            if classes.len() > MAX_NUMERIC_CLASSES || classes.len() * 2 > labels.len() {
                return Err(Error::data(
                    path,
                    format!(
                        "the label column `{}` holds {} distinct numbers in {} rows: that looks \
                         like an amount to predict, not classes; predict it with --task \
                         regression, or pick the class column with --label",
                        t.label_name,
                        classes.len(),
                        labels.len()
                    ),
                ));
            }
            (labels, classes)
        }
    })
}

/// A test file's labels as the training table's classes: text labels come as its codes already;
/// whole numbers must be among the numbers training found.
fn test_codes(
    rows: &TestRows,
    classes: &[String],
    origins: &[String],
    label_name: &str,
) -> Result<Vec<u32>> {
    match &rows.labels {
        Labels::Text { codes, .. } => Ok(codes.clone()),
        Labels::Numeric(values) => values
            .iter()
            .zip(origins)
            .map(|(&v, origin)| {
                let name = arrays::integral(&[v]).map(|i| i[0].to_string());
                name.and_then(|n| classes.iter().position(|c| *c == n))
                    .map(|c| c as u32)
                    .ok_or_else(|| {
                        Error::data(
                            &rows.path,
                            format!(
                                "the label `{v}` in column `{label_name}` at {origin} is not one \
                                 of the classes training found ({})",
                                classes.join(", ")
                            ),
                        )
                    })
            })
            .collect(),
    }
}

/// An `.npz`'s members (`npy::load_npz` or `read_npz_bytes` of `path`): `x_train`, `y_train`
/// (and `x_test`, `y_test`), as `keras.datasets` writes them, or `x` and `y`.
pub fn npz(
    path: &Path,
    mut members: Vec<(String, Array)>,
    layout: Option<Layout>,
    task: Task,
    opts: &PrepareOptions,
) -> Result<Prepared> {
    let mut take = |name: &str| {
        members
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| members.remove(i).1)
    };
    let name = dataset_name(path);
    let (x, y, test) = match (
        take("x_train"),
        take("y_train"),
        take("x_test"),
        take("y_test"),
    ) {
        (Some(x), Some(y), Some(xt), Some(yt)) => (x, y, Some((xt, yt))),
        (Some(x), Some(y), None, None) => (x, y, None),
        _ => match (take("x"), take("y")) {
            (Some(x), Some(y)) => (x, y, None),
            _ => {
                return Err(Error::data(
                    path,
                    "expected arrays x_train, y_train (and x_test, y_test), as keras.datasets \
                     writes them, or x and y",
                ));
            }
        },
    };
    self::arrays(path, x, y, test, layout, task, opts, name)
}

/// Inputs `x` and labels or targets `y` (with a test pair), read from `path`; `name` is the
/// dataset's name in the model record.
#[allow(clippy::too_many_arguments)]
pub fn arrays(
    path: &Path,
    x: Array,
    y: Array,
    test: Option<(Array, Array)>,
    layout: Option<Layout>,
    task: Task,
    opts: &PrepareOptions,
    name: String,
) -> Result<Prepared> {
    let n = x.shape.first().copied().unwrap_or(0);
    let shape = arrays::sample_shape(path, &x.shape, layout)?;
    if task == Task::Regression {
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
    let train_part = if test.is_some() { "x_train" } else { "x" };
    let model = ModelInfo {
        dataset: name,
        source: Source::Arrays,
        ..ModelInfo::plain(Normalize::IDENTITY)
    };
    let inputs = |a: Array| arrays::inputs(a, &shape);
    if let Some(chw) = shape.image {
        let test = test.map(|(xt, nt)| (inputs(xt), test_labels.to_vec(), origins(nt, "x_test")));
        return prepare::images(
            chw,
            inputs(x),
            labels.to_vec(),
            origins(n, train_part),
            test,
            classes,
            model,
            opts,
        );
    }
    let test = test.map(|(xt, nt)| {
        (
            f32s(xt, &shape),
            test_labels.to_vec(),
            origins(nt, "x_test"),
        )
    });
    prepare::vectors(
        shape.width,
        f32s(x, &shape),
        labels.to_vec(),
        origins(n, train_part),
        test,
        classes,
        &vec![false; shape.width],
        &feature_names(shape.width),
        model,
        opts,
    )
}

/// Each sample's origin: `part[i]`.
fn origins(n: usize, part: &str) -> Vec<String> {
    (0..n).map(|i| format!("{part}[{i}]")).collect()
}

/// The features of NumPy vectors, `x[j]`.
fn feature_names(width: usize) -> Vec<String> {
    (0..width).map(|j| format!("x[{j}]")).collect()
}

/// An array's samples as f32 vectors.
fn f32s(a: Array, shape: &SampleShape) -> Vec<f32> {
    match arrays::inputs(a, shape) {
        Inputs::U8(v) => v.into_iter().map(f32::from).collect(),
        Inputs::F32(v) => v,
    }
}

/// The number of `x_test`'s samples, which must be shaped as `x_train`'s.
fn test_samples(path: &Path, x: &Array, xt: &Array) -> Result<usize> {
    if xt.shape.get(1..) != x.shape.get(1..) {
        return Err(Error::data(
            path,
            format!(
                "x_test's samples are {:?}, x_train's {:?}",
                xt.shape.get(1..),
                x.shape.get(1..)
            ),
        ));
    }
    Ok(xt.shape.first().copied().unwrap_or(0))
}

/// Arrays with real-valued targets: x of vectors `[n, d]`, y `[n]` or `[n, k]`.
fn regression_arrays(
    path: &Path,
    x: Array,
    y: Array,
    test: Option<(Array, Array)>,
    shape: &SampleShape,
    opts: &PrepareOptions,
    name: String,
) -> Result<Prepared> {
    if let Some(chw) = shape.image {
        return Err(Error::data(
            path,
            format!(
                "--task regression reads vectors (x of shape [n, d]); x holds images of {chw}: \
                 reshape them to [n, {}]",
                chw.len()
            ),
        ));
    }
    let n = x.shape[0];
    let (targets, k) = arrays::targets(path, &y, n)?;
    let test = match test {
        Some((xt, yt)) => {
            let nt = test_samples(path, &x, &xt)?;
            let (test_targets, kt) = arrays::targets(path, &yt, nt)?;
            if kt != k {
                return Err(Error::data(
                    path,
                    format!("y_test has {kt} targets per sample, y_train {k}"),
                ));
            }
            Some((f32s(xt, shape), test_targets, origins(nt, "x_test")))
        }
        None => None,
    };
    let train_part = if test.is_some() { "x_train" } else { "x" };
    let target_names: Vec<String> = if k == 1 {
        vec!["y".into()]
    } else {
        (0..k).map(|j| format!("y[{j}]")).collect()
    };
    prepare::regression(
        shape.width,
        f32s(x, shape),
        targets,
        origins(n, train_part),
        test,
        &target_names,
        &vec![false; shape.width],
        &feature_names(shape.width),
        ModelInfo {
            dataset: name,
            source: Source::Arrays,
            ..ModelInfo::plain(Normalize::IDENTITY)
        },
        opts,
    )
}

/// A picture (`name`'s `bytes`) as a picture model's sample: decoded, resized to the model's
/// input with the filter training used, grey or RGB as its channels are; `C×H×W` bytes.
pub fn picture_sample(model: &ModelInfo, name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let image = model.image.ok_or_else(|| {
        Error::data(
            name,
            "the model reads vectors, not pictures (it records no image shape)",
        )
    })?;
    let decoded = super::picture::decode(name, bytes).map_err(|why| {
        let reason = why.strip_prefix(&format!("{name}: ")).unwrap_or(&why);
        Error::format(
            name,
            "picture",
            "a picture that decodes (PNG, JPEG, BMP or PGM/PPM)",
            reason,
        )
    })?;
    let mut pixels = vec![0u8; image.len()];
    super::folder::pack(
        &decoded,
        image.c as u8,
        image.h as u32,
        image.w as u32,
        &mut pixels,
    );
    Ok(pixels)
}

/// A table model's feature columns and label column name, as the CSV reader takes them for
/// new rows (`csv::parse_rows_with`); `None` for a model of another source.
pub fn table_schema(model: &ModelInfo) -> Option<(Vec<csv::FeatureColumn>, &str)> {
    let Source::Table { columns, label } = &model.source else {
        return None;
    };
    let schema = columns
        .iter()
        .map(|c| csv::FeatureColumn {
            name: c.name().to_string(),
            encoding: match c {
                TableColumn::Numeric { .. } => csv::Encoding::Numeric,
                TableColumn::OneHot { levels, .. } => csv::Encoding::OneHot {
                    levels: levels.clone(),
                },
            },
        })
        .collect();
    Some((schema, label.as_str()))
}
