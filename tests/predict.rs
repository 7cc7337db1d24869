//! The `predict` example: on pictures made from MNIST test images (shifted, scaled, inverted,
//! coloured) its answers equal the library's on the same pixels and its accuracy stays within a
//! point of the test accuracy; every bad input is a clear error naming the file.

#[path = "common/bins.rs"]
mod bins;
mod common;

use std::path::{Path, PathBuf};

use image::imageops::{FilterType, resize};
use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use soma::checkpoint::{self, Checkpoint};
use soma::data::{DatasetKind, locate};
use soma::train::{Schedule, TrainConfig, train};
use soma::{
    Activation, Backend, CpuBackend, Init, ModelInfo, Network, Normalize, OptimState, Optimizer,
    Output, Params, Targets, digit,
};

use bins::{assert_error, assert_ok, run, stderr, stdout};

/// A checkpoint of an untrained `sizes` network with `model` (for the error cases, which need
/// no trained weights).
fn untrained(dir: &Path, name: &str, sizes: &[usize], model: Option<ModelInfo>) -> PathBuf {
    let network = Network::new(sizes, Activation::Sigmoid, Output::SoftmaxCrossEntropy).unwrap();
    let params = Params::init(&network, Init::Uniform, 1);
    let path = dir.join(name);
    Checkpoint {
        state: OptimState::new(&Optimizer::Sgd, &params),
        network,
        params,
        optimizer: Optimizer::Sgd,
        epoch: 0,
        model,
    }
    .save(&path)
    .unwrap();
    path
}

fn mnist_info() -> ModelInfo {
    ModelInfo::for_dataset(DatasetKind::Mnist, Normalize::UNIT)
}

/// A 60×50 picture of a bright bar on black, which any network can be asked about.
fn bar_png(dir: &Path) -> PathBuf {
    let mut img = GrayImage::new(60, 50);
    for y in 10..40 {
        for x in 28..33 {
            img.put_pixel(x, y, Luma([255]));
        }
    }
    let path = dir.join("bar.png");
    img.save(&path).unwrap();
    path
}

#[test]
fn bad_inputs_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = untrained(d, "good.safetensors", &[784, 10], Some(mnist_info()));
    let good_s = good.to_str().unwrap();
    let bar = bar_png(d);
    let bar_s = bar.to_str().unwrap();

    // The good case works, so that the failures below are the inputs' doing.
    let out = run(
        "predict",
        &["--backend", "cpu", "--load", good_s, bar_s],
        None,
    );
    assert_ok("predict on a bar", &out);
    let line = stdout(&out);
    assert!(line.starts_with(&format!("{bar_s}: ")), "{line}");
    assert_eq!(
        line.matches('%').count(),
        3,
        "three classes with probabilities: {line}"
    );

    // The same picture as PGM and JPEG reads the same way (JPEG's ringing stays under the
    // noise floor, so the bar's box and mass are unchanged).
    let img = image::open(&bar).unwrap();
    let (pgm, jpg) = (d.join("bar.pgm"), d.join("bar.jpg"));
    img.save(&pgm).unwrap();
    img.to_rgb8().save(&jpg).unwrap();
    let out = run(
        "predict",
        &[
            "--backend",
            "cpu",
            "--json",
            "--load",
            good_s,
            bar_s,
            pgm.to_str().unwrap(),
            jpg.to_str().unwrap(),
        ],
        None,
    );
    assert_ok("predict on PNG, PGM and JPEG", &out);
    let answers: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["top"], answers[1]["top"], "PNG vs PGM");
    assert_eq!(
        answers[0]["prediction"], answers[2]["prediction"],
        "PNG vs JPEG"
    );

    // A file that is no picture: named, and the good picture beside it is still predicted.
    let junk = d.join("junk.png");
    std::fs::write(&junk, b"not a picture").unwrap();
    let junk_s = junk.to_str().unwrap();
    let out = run(
        "predict",
        &["--backend", "cpu", "--load", good_s, junk_s, bar_s],
        None,
    );
    assert_error(
        "undecodable picture",
        &out,
        &[junk_s, "not a picture this reads"],
    );
    assert!(
        stdout(&out).starts_with(&format!("{bar_s}: ")),
        "{}",
        stdout(&out)
    );

    // A missing picture, and a blank one (nothing to read).
    let missing = d.join("missing.png");
    let out = run(
        "predict",
        &[
            "--backend",
            "cpu",
            "--load",
            good_s,
            missing.to_str().unwrap(),
        ],
        None,
    );
    assert_error(
        "missing picture",
        &out,
        &[missing.to_str().unwrap(), "cannot open"],
    );
    let blank = d.join("blank.png");
    GrayImage::from_pixel(30, 30, Luma([200]))
        .save(&blank)
        .unwrap();
    let out = run(
        "predict",
        &[
            "--backend",
            "cpu",
            "--load",
            good_s,
            blank.to_str().unwrap(),
        ],
        None,
    );
    assert_error("blank picture", &out, &[blank.to_str().unwrap(), "blank"]);

    // A checkpoint for another input size.
    let other = untrained(
        d,
        "other.safetensors",
        &[100, 10],
        Some(ModelInfo {
            image: Some(soma::shape::Chw::new(1, 10, 10)),
            ..mnist_info()
        }),
    );
    let other_s = other.to_str().unwrap();
    let out = run(
        "predict",
        &["--backend", "cpu", "--load", other_s, bar_s],
        None,
    );
    assert_error(
        "100-input checkpoint",
        &out,
        &[other_s, "100 inputs", "10×10", "28×28"],
    );

    // A version 1 checkpoint: an error unless the scaling is given, then it predicts.
    let v1 = untrained(d, "v1.safetensors", &[784, 10], None);
    let v1_s = v1.to_str().unwrap();
    let out = run(
        "predict",
        &["--backend", "cpu", "--load", v1_s, bar_s],
        None,
    );
    assert_error(
        "version 1 checkpoint",
        &out,
        &[v1_s, "version 1", "--scale"],
    );
    let out = run(
        "predict",
        &[
            "--backend",
            "cpu",
            "--load",
            v1_s,
            "--input-scale",
            "0.00392",
            "--input-shift",
            "-0.1",
            bar_s,
        ],
        None,
    );
    assert_ok("version 1 with explicit scaling", &out);
    let out = run(
        "predict",
        &["--backend", "cpu", "--load", v1_s, "--scale", "unit", bar_s],
        None,
    );
    assert_ok("version 1 with --scale unit", &out);
    // ... but a version 2 file's own scaling is not overridden silently.
    let out = run(
        "predict",
        &[
            "--backend",
            "cpu",
            "--load",
            good_s,
            "--scale",
            "unit",
            bar_s,
        ],
        None,
    );
    assert_error(
        "version 2 with --scale",
        &out,
        &[good_s, "records its input scaling"],
    );

    // A checkpoint that is missing or not a checkpoint.
    let nope = d.join("nope.safetensors");
    let out = run("predict", &["--load", nope.to_str().unwrap(), bar_s], None);
    assert_error("missing checkpoint", &out, &[nope.to_str().unwrap()]);
    let out = run("predict", &["--load", bar_s, bar_s], None);
    assert_error("a picture as checkpoint", &out, &[bar_s, "safetensors"]);

    // Nothing to predict, and bad flags (clap's usage errors, exit 2).
    let out = run("predict", &["--load", good_s], None);
    assert_error("no pictures", &out, &["nothing to predict"]);
    for args in [
        &["--load", good_s, "--backend", "tpu", bar_s][..],
        &["--load", good_s, "--dataset-index", "x"],
        &["--load", good_s, "--input-scale", "1", bar_s], // needs --input-shift too
        &[bar_s],                                         // no --load
    ] {
        let out = run("predict", args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "predict {args:?}: {}",
            stderr(&out)
        );
    }
}

/// Writes the `i`-th test picture (`pixels`, 28×28) to `p` in disguise.
fn write_disguised(i: usize, pixels: &[u8], p: &Path) {
    let digit = GrayImage::from_raw(28, 28, pixels.to_vec()).unwrap();
    // Offsets and scales vary with `i` so that no two neighbours look alike.
    let (ox, oy) = ((i * 7) % 23, (i * 3) % 13);
    match i % 4 {
        // Light on dark, shifted in a larger grey picture.
        0 => {
            let mut img = GrayImage::new(60, 50);
            image::imageops::overlay(&mut img, &digit, ox as i64, oy as i64);
            img.save(p).unwrap();
        }
        // Dark on light (inverted), three times the size.
        1 => {
            let big = resize(&digit, 84, 84, FilterType::Triangle);
            let mut img = GrayImage::from_pixel(110, 100, Luma([255]));
            for (x, y, px) in big.enumerate_pixels() {
                img.put_pixel(x + ox as u32, y + oy as u32, Luma([255 - px[0]]));
            }
            img.save(p).unwrap();
        }
        // Dark blue ink on cream paper, in colour, one and a half times the size.
        2 => {
            let big = resize(&digit, 42, 42, FilterType::Triangle);
            let (paper, ink) = ([250.0, 244.0, 228.0], [20.0, 30.0, 120.0]);
            let mut img = RgbImage::from_pixel(70, 60, Rgb([250, 244, 228]));
            for (x, y, px) in big.enumerate_pixels() {
                let t = px[0] as f32 / 255.0;
                let c = |k: usize| (paper[k] + (ink[k] - paper[k]) * t).round() as u8;
                img.put_pixel(x + ox as u32, y + oy as u32, Rgb([c(0), c(1), c(2)]));
            }
            img.save(p).unwrap();
        }
        // Twice the size, light on dark with an alpha channel.
        _ => {
            let big = resize(&digit, 56, 56, FilterType::CatmullRom);
            let mut img = RgbaImage::from_pixel(80, 70, Rgba([0, 0, 0, 255]));
            for (x, y, px) in big.enumerate_pixels() {
                let v = px[0];
                img.put_pixel(x + ox as u32 / 2, y + oy as u32, Rgba([v, v, v, 255]));
            }
            img.save(p).unwrap();
        }
    }
}

#[test]
fn predict_matches_the_library_and_keeps_accuracy_on_disguised_pictures() {
    let Some(dir) = common::mnist_dir() else {
        common::skip("MNIST_DIR is not set: predict's accuracy test is skipped");
        return;
    };
    let (mut train_set, mut test_set) = locate(DatasetKind::Mnist, Some(&dir), false)
        .unwrap()
        .load()
        .unwrap();
    let soma::Inputs::U8(train_pixels) = train_set.inputs() else {
        panic!("MNIST images are bytes")
    };
    let normalize = Normalize::standardize(train_pixels);
    train_set.normalize = normalize;
    test_set.normalize = normalize;

    // The mnist defaults (10 epochs, 2.2 s on two cores): the model a user gets. Measured:
    // 97.92% on the test set, 97.70% on the disguised pictures. Two epochs (96.77%) lost 0.9
    // points on them, mostly on the resampled ones, which a weaker network reads less well.
    let net = Network::new(
        &[784, 64, 64, 10],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let mut cpu = CpuBackend::new(
        &net,
        Params::init(&net, Init::Uniform, 0),
        Optimizer::momentum(),
    )
    .unwrap()
    .with_threads(2);
    let cfg = TrainConfig {
        epochs: 10,
        batch_size: 64,
        lr: 0.1,
        schedule: Schedule::Cosine { floor: 0.0 },
        seed: 0,
        batches_per_tick: 50,
        augment: 1,
    };
    train(&mut cpu, &train_set, None, &cfg, 0, |_| {}).unwrap();
    let test_accuracy = cpu.evaluate(&test_set).unwrap().accuracy();
    let work = tempfile::tempdir().unwrap();
    let model = ModelInfo::for_dataset(DatasetKind::Mnist, normalize);
    let ckpt_path = work.path().join("model.safetensors");
    Checkpoint {
        network: net.clone(),
        params: cpu.params().unwrap(),
        optimizer: Optimizer::momentum(),
        state: cpu.optim_state().unwrap(),
        epoch: 10,
        model: Some(model.clone()),
    }
    .save(&ckpt_path)
    .unwrap();

    // 1000 test images spread over the whole set (its two halves differ in difficulty).
    let (soma::Inputs::U8(pixels), Targets::Labels { labels, .. }) =
        (test_set.inputs(), test_set.targets())
    else {
        panic!("MNIST test set is labelled bytes")
    };
    let chosen: Vec<usize> = (0..1000).map(|i| i * 10).collect();
    let mut files = Vec::new();
    for (i, &index) in chosen.iter().enumerate() {
        let path = work.path().join(format!("{i:04}.png"));
        write_disguised(i, &pixels[index * 784..(index + 1) * 784], &path);
        files.push(path);
    }

    let mut args = vec![
        "--backend".to_string(),
        "cpu".into(),
        "--threads".into(),
        "1".into(),
        "--json".into(),
        "--load".into(),
        ckpt_path.display().to_string(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("predict", &arg_refs, None);
    assert_ok("predict on 1000 pictures", &out);
    let answers: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(answers.len(), files.len());

    // The library on the same pixels: decode, bring to MNIST's form, normalise, predict, all
    // in one batch on one thread as the example does, so the numbers must match exactly.
    let mut prepared = Vec::new();
    for f in &files {
        let rgba = image::open(f).unwrap().to_rgba8();
        let grey = digit::grey_from_rgba(rgba.as_raw()).unwrap();
        prepared.extend(
            digit::mnist_like(&grey, rgba.width() as usize, rgba.height() as usize).unwrap(),
        );
    }
    let mut one = CpuBackend::new(&net, cpu.params().unwrap(), Optimizer::Sgd)
        .unwrap()
        .with_threads(1);
    let probs = one
        .predict(model.inputs(&prepared, 784).unwrap().view())
        .unwrap();

    let mut correct = 0;
    // Right answers by disguise (see `disguise`).
    let mut per = [0usize; 4];
    for (k, (answer, row)) in answers.iter().zip(probs.rows()).enumerate() {
        assert_eq!(answer["file"], files[k].display().to_string());
        let printed: Vec<f32> = answer["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        // f32 → JSON's shortest f64 decimal → f32 is exact, so equality is bitwise.
        assert_eq!(printed, row.to_vec(), "{}", files[k].display());
        let best = soma::model::top_k(&printed, 1)[0].0;
        assert_eq!(answer["prediction"], best.to_string());
        assert_eq!(answer["top"].as_array().unwrap().len(), 3);
        if best == labels[chosen[k]] as usize {
            correct += 1;
            per[k % 4] += 1;
        }
    }
    let accuracy = correct as f64 / files.len() as f64;
    eprintln!(
        "disguised pictures: {:.2}% of 1000 right (by disguise, of 250 each: {per:?}); \
         test set: {:.2}%",
        100.0 * accuracy,
        100.0 * test_accuracy
    );
    // The bound. The 1000 pictures are a sample (standard error 0.45 points at 98%),
    // but a fixed one, and training is seeded: the margin measured is 0.22 points.
    assert!(
        accuracy >= test_accuracy - 0.01,
        "disguised pictures {accuracy:.4} vs test accuracy {test_accuracy:.4}"
    );

    // The same network saved as version 1 (no scaling recorded), told `--scale standard`:
    // the scaling recomputed from the training files is the one training used, so on the same
    // batch the answers are the same to the bit.
    let v1 = work.path().join("v1.safetensors");
    let mut old = checkpoint::load(&ckpt_path).unwrap();
    old.model = None;
    old.save(&v1).unwrap();
    let mut v1_args = vec!["--scale".to_string(), "standard".into(), "--offline".into()];
    v1_args.extend(args.iter().cloned());
    let at = v1_args.iter().position(|a| a == "--load").unwrap();
    v1_args[at + 1] = v1.display().to_string();
    let v1_refs: Vec<&str> = v1_args.iter().map(String::as_str).collect();
    let out = run("predict", &v1_refs, Some(&dir));
    assert_ok("version 1 with --scale standard", &out);
    let v1_answers: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v1_answers.len(), answers.len());
    for (a, b) in v1_answers.iter().zip(&answers) {
        assert_eq!(a["probabilities"], b["probabilities"], "{}", a["file"]);
    }

    // --dataset-index shows the label and predicts the stored sample; a bad index is named.
    let ck = ckpt_path.to_str().unwrap();
    let out = run(
        "predict",
        &[
            "--backend",
            "cpu",
            "--offline",
            "--load",
            ck,
            "--dataset-index",
            "0",
            "--dataset-index",
            "9999",
        ],
        Some(&dir),
    );
    assert_ok("predict --dataset-index", &out);
    let text = stdout(&out);
    assert!(text.starts_with("test sample 0 (label 7): 7 "), "{text}");
    assert!(text.contains("test sample 9999 (label "), "{text}");
    let out = run(
        "predict",
        &[
            "--backend",
            "cpu",
            "--offline",
            "--load",
            ck,
            "--dataset-index",
            "10000",
        ],
        Some(&dir),
    );
    assert_error(
        "--dataset-index 10000",
        &out,
        &["--dataset-index 10000", "0 to 9999"],
    );
}

/// The library's preprocessing leaves MNIST's own digits nearly as they are (they were made by
/// the same recipe), so a network reads them as well after it as before.
#[test]
fn mnist_digits_survive_the_preprocessing() {
    let Some(dir) = common::mnist_dir() else {
        common::skip("MNIST_DIR is not set");
        return;
    };
    let (_, test) = locate(DatasetKind::Mnist, Some(&dir), false)
        .unwrap()
        .load()
        .unwrap();
    let soma::Inputs::U8(pixels) = test.inputs() else {
        panic!("bytes")
    };
    // Of 1000 digits, the mean absolute change per pixel: measured 0.46 grey levels (of 255),
    // from whole-pixel centring; centring half a pixel off (at the geometric centre instead of
    // MNIST's pixel 14) measured 14.6, and a lost aspect ratio or inversion more.
    let mut total = 0u64;
    for i in 0..1000 {
        let img = &pixels[i * 784..(i + 1) * 784];
        let out = digit::mnist_like(img, 28, 28).unwrap();
        total += img
            .iter()
            .zip(&out)
            .map(|(&a, &b)| a.abs_diff(b) as u64)
            .sum::<u64>();
    }
    let mean = total as f64 / (1000.0 * 784.0);
    eprintln!("mean absolute change per pixel: {mean:.2}");
    assert!(mean < 2.0, "mean absolute change {mean}");
}
