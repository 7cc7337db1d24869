//! From what a reader found to datasets a backend trains on: classes from labels (or
//! standardised real-valued targets, for regression), the split (the files' own, or a seeded
//! stratified one), each sample's origin, the input maps computed
//! on the training part only, and the [`ModelInfo`] that lets a checkpoint prepare new inputs
//! the same way. The readers are `folder`, `csv` and `npy`; the `train` example and the page
//! both come through here, so that one set of rules holds for both.

use std::collections::BTreeMap;

use super::split::{self, Split};
use super::{Dataset, Inputs, MAX_CHANNEL_MAPS, Normalize, Targets};
use crate::error::{Error, Result};
use crate::model::{ModelInfo, Target};
use crate::shape::Chw;

/// How missing table cells are filled (`--fill`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// The column's mean over the training part.
    Mean,
    /// Zero (before standardisation).
    Zero,
}

/// The choices preparation leaves to the user.
#[derive(Clone, Debug, PartialEq)]
pub struct PrepareOptions {
    /// The fraction of each class held out for testing when the data brings no split of its own.
    pub val: f64,
    /// Seeds the split.
    pub seed: u64,
    /// How missing table cells are filled; `None`: a missing cell is an error.
    pub fill: Option<Fill>,
}

impl Default for PrepareOptions {
    /// 20% held out: Keras' and fastai's usual `validation_split` / `valid_pct`.
    fn default() -> Self {
        PrepareOptions {
            val: 0.2,
            seed: 0,
            fill: None,
        }
    }
}

/// Datasets ready to train on, and what a checkpoint records about them.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub train: Dataset,
    pub test: Dataset,
    /// Each training sample's origin (a file, `line N`), in dataset order.
    pub train_origins: Vec<String>,
    pub test_origins: Vec<String>,
    pub model: ModelInfo,
    /// How the split was made, for the summary.
    pub split: String,
    /// Other facts the summary states (a size rule, encodings, fills), one line each.
    pub notes: Vec<String>,
}

impl Prepared {
    /// Samples per class in each part (`(train, test)`), in class order.
    pub fn class_counts(&self) -> Vec<(usize, usize)> {
        let count = |d: &Dataset| match d.targets() {
            Targets::Labels { labels, classes } => {
                let mut n = vec![0usize; *classes];
                labels.iter().for_each(|&l| n[l as usize] += 1);
                n
            }
            Targets::Values { .. } => Vec::new(),
        };
        let (a, b) = (count(&self.train), count(&self.test));
        a.into_iter().zip(b).collect()
    }
}

/// Class indices for integer labels: the distinct values, sorted, are the classes (named by
/// their numbers). Fails on fewer than two classes.
pub fn classes_of_ints(values: &[i64], what: &str) -> Result<(Vec<u32>, Vec<String>)> {
    let distinct: BTreeMap<i64, u32> = values.iter().map(|&v| (v, 0)).collect();
    let classes: BTreeMap<i64, u32> = distinct
        .into_keys()
        .enumerate()
        .map(|(i, v)| (v, i as u32))
        .collect();
    check_classes(classes.len(), what)?;
    let labels = values.iter().map(|v| classes[v]).collect();
    Ok((labels, classes.keys().map(|v| v.to_string()).collect()))
}

/// Fails unless there are at least two classes.
pub fn check_classes(count: usize, what: &str) -> Result<()> {
    if count < 2 {
        return Err(Error::arg(
            "classes",
            format!("at least 2 classes in {what}"),
            format!("{count}"),
        ));
    }
    Ok(())
}

/// The stratified split of `labels` by `opts`; fails when no sample is left for testing.
fn split_of(labels: &[u32], classes: usize, opts: &PrepareOptions) -> Result<(Split, String)> {
    let s = split::stratified(labels, classes, opts.val, opts.seed)?;
    if s.test.is_empty() || s.train.is_empty() {
        return Err(Error::arg(
            "validation split",
            "samples for both training and testing (each class needs two samples to be split)",
            format!(
                "{} training and {} test samples from {} samples in {classes} classes",
                s.train.len(),
                s.test.len(),
                labels.len()
            ),
        ));
    }
    let text = format!(
        "{:.0}% of each class held out for testing (stratified, seed {})",
        100.0 * opts.val,
        opts.seed
    );
    Ok((s, text))
}

/// Pictures or image arrays as datasets: `pixels` holds `image`-shaped samples (channel-major),
/// `labels` their classes; `test` a given test part. Without one, the split is drawn. Each
/// channel gets its own map from the training part (one map for all channels past
/// [`MAX_CHANNEL_MAPS`]).
#[allow(clippy::too_many_arguments)]
pub fn images(
    image: Chw,
    inputs: Inputs,
    labels: Vec<u32>,
    origins: Vec<String>,
    test: Option<(Inputs, Vec<u32>, Vec<String>)>,
    classes: Vec<String>,
    model: ModelInfo,
    opts: &PrepareOptions,
) -> Result<Prepared> {
    check_classes(classes.len(), "the data")?;
    let f = image.len();
    let (train_part, test_part, split_text) = match test {
        Some(t) => (
            (inputs, labels, origins),
            t,
            "the data's own test part".to_string(),
        ),
        None => {
            let (s, text) = split_of(&labels, classes.len(), opts)?;
            let part = |idx: &[usize]| {
                let inputs = match &inputs {
                    Inputs::U8(v) => Inputs::U8(split::take_rows(v, f, idx)),
                    Inputs::F32(v) => Inputs::F32(split::take_rows(v, f, idx)),
                };
                let labels = idx.iter().map(|&i| labels[i]).collect::<Vec<_>>();
                let origins = idx
                    .iter()
                    .filter_map(|&i| origins.get(i).cloned())
                    .collect();
                (inputs, labels, origins)
            };
            (part(&s.train), part(&s.test), text)
        }
    };
    let maps = match &train_part.0 {
        Inputs::U8(v) => split::channel_maps(v, image),
        Inputs::F32(v) => split::channel_maps(v, image),
    };
    let (normalize, channel_maps) = if image.c == 1 {
        (maps[0], Vec::new())
    } else if image.c <= MAX_CHANNEL_MAPS {
        (Normalize::IDENTITY, maps)
    } else {
        // One map for all: the mean of the channels' maps is not a standardisation, so the
        // whole set's statistics are taken instead.
        let all = match &train_part.0 {
            Inputs::U8(v) => split::channel_maps(v, Chw::new(1, 1, v.len().max(1))),
            Inputs::F32(v) => split::channel_maps(v, Chw::new(1, 1, v.len().max(1))),
        };
        (all[0], Vec::new())
    };
    let n_classes = classes.len();
    let build = |(inputs, labels, _): (Inputs, Vec<u32>, Vec<String>)| -> Result<Dataset> {
        let mut d = Dataset::new(
            f,
            inputs,
            Targets::Labels {
                labels,
                classes: n_classes,
            },
            normalize,
        )?;
        d.image = Some(image);
        d.set_channel_maps(channel_maps.clone())?;
        Ok(d)
    };
    let (train_origins, test_origins) = (train_part.2.clone(), test_part.2.clone());
    let model = ModelInfo {
        normalize,
        channel_maps: channel_maps.clone(),
        feature_maps: Vec::new(),
        image: Some(image),
        classes,
        ..model
    };
    let mut notes = Vec::new();
    if image.c > MAX_CHANNEL_MAPS {
        notes.push(format!(
            "inputs standardised with one mean and deviation for all {} channels (per channel \
             up to {MAX_CHANNEL_MAPS})",
            image.c
        ));
    } else {
        notes.push("inputs standardised per channel, from the training part".into());
    }
    Ok(Prepared {
        train: build(train_part)?,
        test: build(test_part)?,
        train_origins,
        test_origins,
        model,
        split: split_text,
        notes,
    })
}

/// Vectors (table rows, `[n, d]` arrays) as datasets: `values` holds `width` f32 per sample,
/// NaN where missing. Missing values are filled by `opts.fill` (an error naming the sample's
/// origin without it); every input whose flag in `one_hot` is unset is standardised by the
/// training part's mean and deviation, in place (the datasets then map nothing); the maps go
/// into the model for prediction.
#[allow(clippy::too_many_arguments)]
pub fn vectors(
    width: usize,
    values: Vec<f32>,
    labels: Vec<u32>,
    origins: Vec<String>,
    test: Option<(Vec<f32>, Vec<u32>, Vec<String>)>,
    classes: Vec<String>,
    one_hot: &[bool],
    feature_names: &[String],
    model: ModelInfo,
    opts: &PrepareOptions,
) -> Result<Prepared> {
    check_classes(classes.len(), "the data")?;
    let mut notes = Vec::new();
    let (train_part, test_part, split_text, maps) = vector_parts(
        width,
        1,
        (values, labels, origins),
        test,
        |labels| split_of(labels, classes.len(), opts),
        (one_hot, feature_names),
        opts,
        &mut notes,
    )?;
    let n_classes = classes.len();
    let labelled = |(values, labels, origins): (Vec<f32>, Vec<u32>, Vec<String>)| {
        let targets = Targets::Labels {
            labels,
            classes: n_classes,
        };
        (values, targets, origins)
    };
    let model = ModelInfo {
        classes,
        ..vector_model(maps, model)
    };
    vector_sets(
        width,
        [labelled(train_part), labelled(test_part)],
        model,
        split_text,
        notes,
    )
}

/// `model` for vectors mapped per feature by `maps`.
fn vector_model(maps: Vec<Normalize>, model: ModelInfo) -> ModelInfo {
    ModelInfo {
        normalize: Normalize::IDENTITY,
        channel_maps: Vec::new(),
        feature_maps: maps,
        image: None,
        ..model
    }
}

/// The datasets of two parts of vectors (`width` mapped values per sample, their targets and
/// origins), and the rest of what [`Prepared`] holds.
fn vector_sets(
    width: usize,
    [train, test]: [(Vec<f32>, Targets, Vec<String>); 2],
    model: ModelInfo,
    split: String,
    notes: Vec<String>,
) -> Result<Prepared> {
    let set =
        |values, targets| Dataset::new(width, Inputs::F32(values), targets, Normalize::IDENTITY);
    Ok(Prepared {
        train: set(train.0, train.1)?,
        test: set(test.0, test.1)?,
        train_origins: train.2,
        test_origins: test.2,
        model,
        split,
        notes,
    })
}

/// Samples of `width` values and `k` targets each, with their origins.
type Part<T> = (Vec<f32>, Vec<T>, Vec<String>);

/// The training and test parts, the split's text and the input maps.
type Parts<T> = (Part<T>, Part<T>, String, Vec<Normalize>);

/// The training and test parts of vectors: `test` when the data brings one, else the samples
/// of `all` that `split` (given the targets) draws for each; then both parts' inputs mapped by
/// [`map_vectors`] with `one_hot` and `feature_names`. Returns the parts, the split's text and
/// the input maps.
#[allow(clippy::too_many_arguments)]
fn vector_parts<T: Copy>(
    width: usize,
    k: usize,
    all: Part<T>,
    test: Option<Part<T>>,
    split: impl FnOnce(&[T]) -> Result<(Split, String)>,
    (one_hot, feature_names): (&[bool], &[String]),
    opts: &PrepareOptions,
    notes: &mut Vec<String>,
) -> Result<Parts<T>> {
    let (mut train, mut test, text) = match test {
        Some(t) => (all, t, "the data's own test part".to_string()),
        None => {
            let (values, targets, origins) = &all;
            let (s, text) = split(targets)?;
            let part = |idx: &[usize]| {
                (
                    split::take_rows(values, width, idx),
                    split::take_rows(targets, k, idx),
                    idx.iter()
                        .filter_map(|&i| origins.get(i).cloned())
                        .collect(),
                )
            };
            (part(&s.train), part(&s.test), text)
        }
    };
    let maps = map_vectors(
        width,
        [(&mut train.0, &train.2[..]), (&mut test.0, &test.2[..])],
        one_hot,
        feature_names,
        opts,
        notes,
    )?;
    Ok((train, test, text, maps))
}

/// Fills the missing values of both parts (`values`, `origins`) and standardises every input
/// whose `one_hot` flag is unset, in place, with the training part's (the first) statistics;
/// returns the maps and says what it did in `notes`.
fn map_vectors(
    width: usize,
    [train, test]: [(&mut Vec<f32>, &[String]); 2],
    one_hot: &[bool],
    feature_names: &[String],
    opts: &PrepareOptions,
    notes: &mut Vec<String>,
) -> Result<Vec<Normalize>> {
    let means = split::column_means(train.0, width);
    for (values, origins) in [(&mut *train.0, train.1), (&mut *test.0, test.1)] {
        let filled = fill_missing(values, width, &means, opts.fill, origins, feature_names)?;
        if filled > 0 {
            notes.push(format!(
                "{filled} missing values filled with {}",
                match opts.fill {
                    Some(Fill::Zero) => "zero",
                    _ => "the column's training mean",
                }
            ));
        }
    }
    let maps = split::feature_maps(train.0, width, one_hot);
    split::apply_feature_maps(train.0, &maps);
    split::apply_feature_maps(test.0, &maps);
    notes.push("numeric inputs standardised per feature, from the training part".into());
    Ok(maps)
}

/// Vectors with real-valued targets (regression) as datasets: `values` holds `width` inputs per
/// sample (NaN where missing, handled as in [`vectors`]), `targets` one value per name in
/// `target_names` per sample. Without a `test` part, a seeded shuffle holds out `opts.val` of
/// the samples. Inputs are mapped as in [`vectors`]; each target is standardised by the training
/// part's mean and deviation, and the model records its map so that predictions come back in
/// the target's units. A missing or infinite target is an error naming its sample.
#[allow(clippy::too_many_arguments)]
pub fn regression(
    width: usize,
    values: Vec<f32>,
    targets: Vec<f32>,
    origins: Vec<String>,
    test: Option<(Vec<f32>, Vec<f32>, Vec<String>)>,
    target_names: &[String],
    one_hot: &[bool],
    feature_names: &[String],
    model: ModelInfo,
    opts: &PrepareOptions,
) -> Result<Prepared> {
    let k = target_names.len();
    let n = values.len() / width.max(1);
    if k == 0 || targets.len() != n * k {
        return Err(Error::shape(
            "regression targets",
            format!("{k} per sample for {n} samples"),
            format!("{} values", targets.len()),
        ));
    }
    let check_targets = |targets: &[f32], origins: &[String]| -> Result<()> {
        match targets.iter().position(|t| !t.is_finite()) {
            Some(i) => Err(Error::arg(
                "target",
                "a finite number for every sample",
                format!(
                    "{} for `{}` at {}",
                    targets[i],
                    target_names[i % k],
                    origins
                        .get(i / k)
                        .cloned()
                        .unwrap_or_else(|| format!("sample {}", i / k))
                ),
            )),
            None => Ok(()),
        }
    };
    check_targets(&targets, &origins)?;
    if let Some(t) = &test {
        check_targets(&t.1, &t.2)?;
    }
    let shuffled = |_: &[f32]| -> Result<(Split, String)> {
        // One class: the stratified split is a seeded shuffle of all samples.
        let s = split::stratified(&vec![0; n], 1, opts.val, opts.seed)?;
        if s.test.is_empty() || s.train.is_empty() {
            return Err(Error::arg(
                "validation split",
                "samples for both training and testing",
                format!(
                    "{} training and {} test samples from {n} samples",
                    s.train.len(),
                    s.test.len()
                ),
            ));
        }
        let text = format!(
            "{:.0}% of the samples held out for testing (shuffled, seed {})",
            100.0 * opts.val,
            opts.seed
        );
        Ok((s, text))
    };
    let mut notes = Vec::new();
    let (mut train_part, mut test_part, split_text, maps) = vector_parts(
        width,
        k,
        (values, targets, origins),
        test,
        shuffled,
        (one_hot, feature_names),
        opts,
        &mut notes,
    )?;
    let target_maps = split::feature_maps(&train_part.1, k, &vec![false; k]);
    split::apply_feature_maps(&mut train_part.1, &target_maps);
    split::apply_feature_maps(&mut test_part.1, &target_maps);
    notes.push("targets standardised, from the training part".into());
    let valued = |(values, targets, origins): (Vec<f32>, Vec<f32>, Vec<String>)| {
        let targets = Targets::Values {
            values: targets,
            width: k,
        };
        (values, targets, origins)
    };
    let targets = target_names
        .iter()
        .zip(target_maps)
        .map(|(name, map)| Target {
            name: name.clone(),
            map,
        })
        .collect();
    let model = ModelInfo {
        classes: Vec::new(),
        targets,
        ..vector_model(maps, model)
    };
    vector_sets(
        width,
        [valued(train_part), valued(test_part)],
        model,
        split_text,
        notes,
    )
}

/// Replaces NaN in `values` (`width` per row) by `fill`; returns how many. Without a fill, the
/// first NaN is an error naming its row's origin and its column.
fn fill_missing(
    values: &mut [f32],
    width: usize,
    means: &[f64],
    fill: Option<Fill>,
    origins: &[String],
    names: &[String],
) -> Result<usize> {
    let mut filled = 0;
    for (r, row) in values.chunks_exact_mut(width.max(1)).enumerate() {
        for (j, v) in row.iter_mut().enumerate().filter(|(_, v)| v.is_nan()) {
            *v = match fill {
                Some(Fill::Mean) => means[j] as f32,
                Some(Fill::Zero) => 0.0,
                None => {
                    let name = names
                        .get(j)
                        .cloned()
                        .unwrap_or_else(|| format!("{}", j + 1));
                    let at = origins
                        .get(r)
                        .cloned()
                        .unwrap_or_else(|| format!("sample {r}"));
                    return Err(Error::arg(
                        "missing value",
                        "a value in every cell, or --fill mean|zero",
                        format!("an empty cell in column `{name}` at {at}"),
                    ));
                }
            };
            filled += 1;
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_labels_become_sorted_classes() {
        let (labels, names) = classes_of_ints(&[7, -1, 7, 3], "y").unwrap();
        assert_eq!(labels, vec![2, 0, 2, 1]);
        assert_eq!(names, vec!["-1", "3", "7"]);
        assert!(classes_of_ints(&[4, 4], "y").is_err(), "one class");
    }

    #[test]
    fn rgb_images_get_a_map_per_channel_and_keep_their_origins() {
        let image = Chw::new(3, 2, 2);
        let n = 20;
        let pixels: Vec<u8> = (0..n * 12).map(|i| (i * 7 % 251) as u8).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 2).collect();
        let origins: Vec<String> = (0..n).map(|i| format!("f{i}.png")).collect();
        let p = images(
            image,
            Inputs::U8(pixels),
            labels,
            origins,
            None,
            vec!["a".into(), "b".into()],
            ModelInfo::plain(Normalize::IDENTITY),
            &PrepareOptions::default(),
        )
        .unwrap();
        assert_eq!((p.train.len(), p.test.len()), (16, 4));
        assert_eq!(p.train.channel_maps().len(), 3);
        assert_eq!(p.model.channel_maps, p.train.channel_maps());
        assert_eq!(p.test_origins.len(), 4);
        assert_eq!(p.class_counts(), vec![(8, 2), (8, 2)]);
    }

    #[test]
    fn vectors_are_standardised_on_the_training_part_and_missing_values_need_a_fill() {
        let values = vec![1.0, 0.0, 3.0, 1.0, f32::NAN, 0.0, 5.0, 1.0];
        let labels = vec![0, 1, 0, 1];
        let origins: Vec<String> = (2..6).map(|l| format!("line {l}")).collect();
        let names = ["x".to_string(), "c=a".to_string()];
        let classes = vec!["n".to_string(), "y".to_string()];
        let run = |fill| {
            vectors(
                2,
                values.clone(),
                labels.clone(),
                origins.clone(),
                Some((values.clone(), labels.clone(), origins.clone())),
                classes.clone(),
                &[false, true],
                &names,
                ModelInfo::plain(Normalize::IDENTITY),
                &PrepareOptions {
                    fill,
                    ..PrepareOptions::default()
                },
            )
        };
        let err = run(None).unwrap_err().to_string();
        assert!(err.contains("column `x` at line 4"), "{err}");
        let p = run(Some(Fill::Mean)).unwrap();
        // Column x: 1, 3, (mean 3), 5 → mean 3, so the filled value maps to 0.
        let Inputs::F32(v) = p.train.inputs() else {
            panic!("f32 inputs")
        };
        assert_eq!(v[4], 0.0);
        assert_eq!(v[1], 0.0, "one-hot columns keep 0 and 1");
        assert_eq!(p.model.feature_maps[1], Normalize::IDENTITY);
    }

    #[test]
    fn regression_targets_are_standardised_on_the_training_part_and_must_be_finite() {
        let n = 10;
        let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let targets: Vec<f32> = (0..n).map(|i| 100.0 + 10.0 * i as f32).collect();
        let origins: Vec<String> = (0..n).map(|i| format!("line {}", i + 2)).collect();
        let run = |targets: Vec<f32>| {
            regression(
                1,
                values.clone(),
                targets,
                origins.clone(),
                None,
                &["price".to_string()],
                &[false],
                &["x".to_string()],
                ModelInfo::plain(Normalize::IDENTITY),
                &PrepareOptions::default(),
            )
        };
        let p = run(targets.clone()).unwrap();
        assert_eq!((p.train.len(), p.test.len()), (8, 2));
        let Targets::Values { values: t, width } = p.train.targets() else {
            panic!("values")
        };
        assert_eq!(*width, 1);
        let mean = t.iter().map(|&v| v as f64).sum::<f64>() / t.len() as f64;
        let var = t.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / t.len() as f64;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
        // Every training target comes back in its units through the model's map.
        let target = &p.model.targets[0];
        assert_eq!(target.name, "price");
        for (&std, origin) in t.iter().zip(&p.train_origins) {
            let line: usize = origin[5..].parse().unwrap();
            let original = 100.0 + 10.0 * (line - 2) as f32;
            assert!((target.value(std) - original).abs() < 1e-3, "{origin}");
        }
        let mut bad = targets;
        bad[3] = f32::NAN;
        let err = run(bad).unwrap_err().to_string();
        assert!(err.contains("`price` at line 5"), "{err}");
    }
}
