//! The `train` example on a user's data as a user runs it: each format (a folder of pictures,
//! CSV, NumPy `.npz` and `.npy` pairs, a folder of IDX files) read, summarised, trained, saved
//! and answered by `predict`; and the bad-input catalogue, each case an error that names the
//! file and the line, column or path. The fixtures are in `tests/data/` (see their READMEs).

#[path = "common/bins.rs"]
mod bins;
mod common;

use std::path::{Path, PathBuf};

use bins::{assert_error, assert_ok, run, stderr, stdout};
use soma::checkpoint;
use soma::model::{Source, TableColumn};
use soma::shape::Chw;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

/// The closing JSON line of a run.
fn json(out: &std::process::Output) -> serde_json::Value {
    let text = stdout(out);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn train(args: &[&str]) -> std::process::Output {
    let mut all = vec!["--backend", "cpu", "--threads", "2"];
    all.extend_from_slice(args);
    run("train", &all, None)
}

fn predict(args: &[&str]) -> std::process::Output {
    let mut all = vec!["--backend", "cpu"];
    all.extend_from_slice(args);
    run("predict", &all, None)
}

/// Asserts a zero exit and that stderr says every one of `wants`; returns stderr.
fn assert_ok_saying(what: &str, out: &std::process::Output, wants: &[&str]) -> String {
    assert_ok(what, out);
    let err = stderr(out);
    for want in wants {
        assert!(err.contains(want), "{what}: missing `{want}`:\n{err}");
    }
    err
}

#[test]
fn a_picture_folder_is_summarised_trained_saved_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("pictures.safetensors");
    let report = dir.path().join("report");
    let out = train(&[
        &data("pictures"),
        "--model",
        "conv4k3same,relu,pool,dense3",
        "--epochs",
        "3",
        "--save",
        ckpt.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_ok_saying(
        "train on pictures",
        &out,
        &[
            "(folder)",
            "class_a",
            "class_c",
            "input: 3×8×8",
            "split: 20% of each class held out",
            "size: the most common size 8×8",
            "1 resized",
            "not pictures ignored",
            "per channel",
        ],
    );
    let j = json(&out);
    assert_eq!(j["format"], "folder");
    assert_eq!(j["classes"], 3);
    let c = checkpoint::load(&ckpt).unwrap();
    let model = c.model.expect("a model description");
    assert_eq!(model.source, Source::Pictures);
    assert_eq!(model.image, Some(Chw::new(3, 8, 8)));
    assert_eq!(model.classes, ["class_a", "class_b", "class_c"]);
    assert_eq!(model.channel_maps.len(), 3);
    for f in [
        "metrics.jsonl",
        "confusion.png",
        "mistakes.png",
        "curves.png",
    ] {
        assert!(report.join(f).is_file(), "{f}");
    }
    // predict reads a picture of another size and answers with a class name.
    let picture = first_file(&Path::new(&data("pictures")).join("class_b"));
    let out = predict(&[
        "--json",
        "--load",
        ckpt.to_str().unwrap(),
        picture.to_str().unwrap(),
    ]);
    assert_ok("predict a picture", &out);
    let answer: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let class = answer["prediction"].as_str().unwrap();
    assert!(class.starts_with("class_"), "{answer}");
}

/// The first picture file (sorted) in `dir`, hidden files aside (the fixture's is not one).
fn first_file(dir: &Path) -> PathBuf {
    use soma::data::folder::{is_hidden, is_picture};
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && is_picture(p) && !is_hidden(Path::new(p.file_name().unwrap())))
        .collect();
    files.sort();
    files.remove(0)
}

#[test]
fn a_picture_that_cannot_be_read_is_named_and_skip_bad_goes_on() {
    let model = ["--model", "conv4k3same,relu,pool,dense3", "--epochs", "1"];
    let mut args = vec![data("pictures_bad")];
    args.extend(model.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = train(&refs);
    assert_error("a broken picture", &out, &["broken.png"]);
    let mut skip = refs.clone();
    skip.push("--skip-bad");
    assert_ok_saying(
        "--skip-bad",
        &train(&skip),
        &[
            "skipped",
            "broken.png",
            "1 picture that cannot be read left out",
        ],
    );
}

#[test]
fn the_pictures_example_writes_colour_folders_that_train_reads() {
    let Some(mnist) = common::mnist_dir() else {
        return common::skip("MNIST not found (set MNIST_DIR)");
    };
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("digits");
    let out = run(
        "pictures",
        &[
            "--data",
            mnist.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--count",
            "60",
            "--size",
            "20",
            "--format",
            "jpeg",
            "--corrupt",
            "2",
        ],
        None,
    );
    assert_ok("pictures", &out);
    let j = json(&out);
    assert_eq!(j["pictures"], 60);
    // Ten class folders of colour pictures, the truncated ones in the first sample's class.
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 10);
    let args = [
        out_dir.to_str().unwrap(),
        "--model",
        "conv4k3same,relu,pool,dense10",
    ];
    assert_error("truncated pictures", &train(&args), &["corrupt-0.png"]);
    let mut skip = args.to_vec();
    skip.extend(["--epochs", "1", "--skip-bad"]);
    let out = train(&skip);
    assert_ok_saying(
        "the written folder",
        &out,
        &["input: 3×20×20", "2 pictures that cannot be read left out"],
    );
    assert_eq!(
        json(&out)["train_samples"].as_u64().unwrap()
            + json(&out)["test_samples"].as_u64().unwrap(),
        60
    );
    // The folder exists now: the example refuses to write over it.
    let again = run(
        "pictures",
        &[
            "--data",
            mnist.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        None,
    );
    assert_error("an existing folder", &again, &["already exists"]);
}

#[test]
fn a_csv_trains_and_predict_answers_each_row_in_csv() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("iris.safetensors");
    let iris = data("csv/iris.csv");
    let out = train(&[&iris, "--save", ckpt.to_str().unwrap()]);
    assert_ok_saying(
        "train on iris.csv",
        &out,
        &[
            "setosa",
            "input: 4 values",
            "label column `species`",
            "per feature",
        ],
    );
    let j = json(&out);
    assert_eq!(j["format"], "csv");
    assert!(j["test_accuracy"].as_f64().unwrap() >= 0.8, "{j}");
    let c = checkpoint::load(&ckpt).unwrap();
    let model = c.model.unwrap();
    let Source::Table { columns, label } = &model.source else {
        panic!("a table model: {:?}", model.source)
    };
    assert_eq!(label, "species");
    assert!(matches!(&columns[0], TableColumn::Numeric { name } if name == "sepal_length"));
    assert_eq!(model.feature_maps.len(), 4);

    let out = predict(&["--load", ckpt.to_str().unwrap(), &iris]);
    assert_ok("predict iris rows", &out);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "file,line,prediction,p_setosa,p_versicolor,p_virginica"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 30, "{text}");
    assert!(
        rows[0].contains(",2,"),
        "the first row is line 2: {}",
        rows[0]
    );
    let right = rows
        .iter()
        .zip(std::fs::read_to_string(&iris).unwrap().lines().skip(1))
        .filter(|(row, src)| row.split(',').nth(2) == src.split(',').next_back())
        .count();
    assert!(right >= 24, "{right} of 30 rows right:\n{text}");
}

#[test]
fn one_hot_columns_and_fills_are_stated() {
    let semicolon = data("csv/semicolon.csv");
    // Its label is a price: whole numbers, one per row.
    let out = train(&[&semicolon]);
    assert_error("a price as classes", &out, &["price", "regression"]);
    let out = train(&[
        &semicolon, "--label", "heating", "--val", "0.4", "--epochs", "2",
    ]);
    assert_ok("classes of heating", &out);
    let missing = data("csv/missing.csv");
    let out = train(&[&missing]);
    assert_error("a missing cell", &out, &["missing.csv", "--fill"]);
    let out = train(&[&missing, "--fill", "mean", "--epochs", "2", "--val", "0.5"]);
    assert_ok_saying(
        "--fill mean",
        &out,
        &[
            "one-hot encoded text columns: city",
            "filled with the column's training mean",
        ],
    );
}

#[test]
fn numpy_archives_and_pairs_train() {
    let out = train(&[&data("npy/keras.npz"), "--model", "mlp", "--epochs", "2"]);
    assert_ok_saying(
        "keras.npz",
        &out,
        &["the data's own test part", "input: 1×4×4"],
    );
    let out = train(&[
        &data("npy/xy_compressed.npz"),
        "--epochs",
        "2",
        "--val",
        "0.3",
    ]);
    assert_ok_saying("xy_compressed.npz", &out, &["input: 3 values"]);
    // An x, y pair whose labels are one per sample, but not one class each: six samples of
    // six classes cannot be split.
    let out = train(&[
        &data("npy/x_u8.npy"),
        &data("npy/y_i64.npy"),
        "--model",
        "mlp",
    ]);
    assert_error("six classes of one sample", &out, &["split"]);
}

#[test]
fn an_array_model_answers_npy_samples() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("arrays.safetensors");
    let out = train(&[
        &data("npy/keras.npz"),
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--save",
        ckpt.to_str().unwrap(),
    ]);
    assert_ok("keras.npz", &out);
    // Three 4×4 samples of bytes, as a .npy.
    let x = dir.path().join("x.npy");
    write_npy_u8(
        &x,
        &[3, 4, 4],
        &(0..48).map(|i| (i * 5) as u8).collect::<Vec<_>>(),
    );
    let out = predict(&["--load", ckpt.to_str().unwrap(), x.to_str().unwrap()]);
    assert_ok("predict x.npy", &out);
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    assert!(stdout(&out).contains("x.npy[2]:"), "{}", stdout(&out));
    // Samples of another shape are refused, naming the file.
    let bad = dir.path().join("bad.npy");
    write_npy_u8(&bad, &[2, 5, 5], &[0; 50]);
    let out = predict(&["--load", ckpt.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_error("wrong shape", &out, &["bad.npy", "[5, 5]"]);
}

/// Writes a C-order `|u1` .npy file.
fn write_npy_u8(path: &Path, shape: &[usize], values: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values);
    std::fs::write(path, bytes).unwrap();
}

/// `rows` rows of a table whose `price` is a known function of a number, another number and a
/// text column (no noise), with a header; the generator is a fixed LCG.
fn price_table(rows: usize) -> (String, Vec<f64>) {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut text = String::from("area,age,colour,price\n");
    let mut prices = Vec::new();
    for _ in 0..rows {
        let (area, age) = (50.0 + 100.0 * next(), 30.0 * next());
        let red = next() < 0.5;
        let price = 1000.0 + 20.0 * area - 15.0 * age + if red { 300.0 } else { 0.0 };
        let colour = if red { "red" } else { "blue" };
        text.push_str(&format!("{area:.3},{age:.3},{colour},{price:.3}\n"));
        prices.push(price);
    }
    (text, prices)
}

#[test]
fn regression_on_a_table_reports_rmse_and_r2_and_predicts_in_its_units() {
    let dir = tempfile::tempdir().unwrap();
    let (text, prices) = price_table(400);
    let csv = dir.path().join("houses.csv");
    std::fs::write(&csv, &text).unwrap();
    let ckpt = dir.path().join("houses.safetensors");
    let report = dir.path().join("report");
    let out = train(&[
        csv.to_str().unwrap(),
        "--task",
        "regression",
        "--epochs",
        "60",
        "--save",
        ckpt.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_ok_saying(
        "regression",
        &out,
        &[
            "target",
            "deviation",
            "price",
            "20% of the samples held out for testing (shuffled",
            "targets standardised",
            "one-hot encoded text columns: colour",
            "linear-mse",
            "test RMSE",
            "R²",
            "largest test errors (price)",
        ],
    );
    let j = json(&out);
    assert_eq!(j["targets"], 1);
    // The price is exactly linear in the inputs: the tabular MLP fits it closely. Its spread
    // is about 600, so an RMSE under 60 is an R² above 0.99.
    let (r2, rmse) = (
        j["test_r2"].as_f64().unwrap(),
        j["test_rmse"].as_f64().unwrap(),
    );
    assert!(r2 > 0.99 && rmse < 60.0, "{j}");
    assert!(j.get("test_accuracy").is_none(), "{j}");
    let c = checkpoint::load(&ckpt).unwrap();
    assert_eq!(c.network.output(), soma::Output::LinearMse);
    let model = c.model.expect("a model description");
    assert_eq!(model.targets.len(), 1);
    assert_eq!(model.targets[0].name, "price");
    assert!(model.classes.is_empty());
    let metrics = std::fs::read_to_string(report.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"test_r2\""), "{metrics}");
    for f in ["curves.png", "predictions.png"] {
        assert!(report.join(f).is_file(), "{f}");
    }
    // predict answers rows without the price column, as CSV, in the price's units.
    let rows = dir.path().join("new.csv");
    let lines: Vec<&str> = text.lines().collect();
    let strip = |l: &str| l.rsplit_once(',').unwrap().0.to_string();
    let body: Vec<String> = lines[1..4].iter().map(|l| strip(l)).collect();
    std::fs::write(&rows, format!("{}\n{}\n", strip(lines[0]), body.join("\n"))).unwrap();
    let out = predict(&["--load", ckpt.to_str().unwrap(), rows.to_str().unwrap()]);
    assert_ok("predict prices", &out);
    let answer = stdout(&out);
    let mut answer_lines = answer.lines();
    assert_eq!(answer_lines.next(), Some("file,line,price"), "{answer}");
    for (line, want) in answer_lines.zip(&prices) {
        let got: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((got - want).abs() < 100.0, "{line}: want {want}");
    }
}

#[test]
fn regression_takes_numpy_targets_and_refuses_what_it_cannot_fit() {
    let out = train(&[
        &data("npy/xy_compressed.npz"),
        "--task",
        "regression",
        "--epochs",
        "2",
    ]);
    assert_ok_saying("npz regression", &out, &["input: 3 values", "target", "y"]);
    let dir = tempfile::tempdir().unwrap();
    let text_labels = dir.path().join("species.csv");
    std::fs::write(&text_labels, "a,b,species\n1,2,cat\n3,4,dog\n5,6,cat\n").unwrap();
    assert_error(
        "text targets",
        &train(&[text_labels.to_str().unwrap(), "--task", "regression"]),
        &[
            "species.csv",
            "numbers in the label column `species`",
            "cat",
        ],
    );
    let gap = dir.path().join("gap.csv");
    std::fs::write(&gap, "a,b,y\n1,2,3\n3,4,\n5,6,7\n7,8,9\n").unwrap();
    assert_error(
        "a missing target, filled inputs",
        &train(&[
            gap.to_str().unwrap(),
            "--task",
            "regression",
            "--fill",
            "mean",
        ]),
        &["gap.csv", "column `y`", "line 3"],
    );
    assert_error(
        "images",
        &train(&[&data("npy/keras.npz"), "--task", "regression"]),
        &["keras.npz", "vectors", "reshape"],
    );
}

#[test]
fn a_test_file_is_the_test_part_read_with_the_training_columns() {
    let dir = tempfile::tempdir().unwrap();
    let iris = std::fs::read_to_string(data("csv/iris.csv")).unwrap();
    let mut lines = iris.lines();
    let header = lines.next().unwrap();
    let (mut train_rows, mut test_rows) = (vec![header], vec![header]);
    for (i, line) in lines.enumerate() {
        let part = if i % 3 == 2 {
            &mut test_rows
        } else {
            &mut train_rows
        };
        part.push(line);
    }
    let (tr, te) = (dir.path().join("train.csv"), dir.path().join("test.csv"));
    std::fs::write(&tr, train_rows.join("\n")).unwrap();
    std::fs::write(&te, test_rows.join("\n")).unwrap();
    let out = train(&[
        tr.to_str().unwrap(),
        "--test",
        te.to_str().unwrap(),
        "--epochs",
        "3",
    ]);
    let err = assert_ok_saying("train.csv + test.csv", &out, &["split: the test file"]);
    assert!(err.contains("20 training and 10 test samples"), "{err}");
    // A class training never saw, and a test file for pictures, are refused by name.
    let owl = dir.path().join("owl.csv");
    std::fs::write(&owl, format!("{header}\n5.0,3.0,1.5,0.2,owl\n")).unwrap();
    assert_error(
        "an unseen class",
        &train(&[tr.to_str().unwrap(), "--test", owl.to_str().unwrap()]),
        &["owl.csv", "line 2", "owl"],
    );
    assert_error(
        "a test file for pictures",
        &train(&[&data("pictures"), "--test", te.to_str().unwrap()]),
        &["--test", "tables"],
    );
}

#[test]
fn a_folder_of_idx_files_trains_with_its_own_split() {
    let dir = tempfile::tempdir().unwrap();
    // 40 training and 20 test images of 4×4: the class is which half is brighter.
    let write = |name: &str, magic: u32, dims: &[u32], payload: &[u8]| {
        let mut b = magic.to_be_bytes().to_vec();
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(payload);
        std::fs::write(dir.path().join(name), b).unwrap();
    };
    for (part, n) in [("train", 40u32), ("t10k", 20)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
        let pixels: Vec<u8> = labels
            .iter()
            .flat_map(|&l| (0..16).map(move |p| if (p < 8) == (l == 0) { 200 } else { 10 }))
            .collect();
        write(
            &format!("{part}-images-idx3-ubyte"),
            0x803,
            &[n, 4, 4],
            &pixels,
        );
        write(&format!("{part}-labels-idx1-ubyte"), 0x801, &[n], &labels);
    }
    let out = train(&[
        dir.path().to_str().unwrap(),
        "--model",
        "mlp",
        "--epochs",
        "3",
    ]);
    assert_ok_saying("IDX folder", &out, &["(idx)", "40 training and 20 test"]);
}

#[test]
fn bad_data_is_an_error_naming_where() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "ragged rows",
            vec![data("csv/ragged.csv")],
            vec!["ragged.csv".into(), "line 4".into()],
        ),
        (
            "text where a number belongs",
            vec![data("csv/text_in_number.csv")],
            vec!["line 1012".into(), "petal_width".into(), "abc".into()],
        ),
        (
            "an object array",
            vec![data("npy/object.npy"), data("npy/y_i64.npy")],
            vec!["object.npy".into(), "unpickle".into()],
        ),
        (
            "x and y of different lengths",
            vec![data("npy/x_u8.npy"), data("npy/x_f4_be.npy")],
            vec!["x_u8.npy".into(), "labels".into()],
        ),
        (
            "a lone .npy",
            vec![data("npy/x_u8.npy")],
            vec!["x_u8.npy".into(), "two files".into()],
        ),
        (
            "no such path",
            vec![d.join("nowhere").display().to_string()],
            vec!["nowhere".into()],
        ),
    ];
    for (what, paths, needles) in cases {
        let args: Vec<&str> = paths.iter().map(String::as_str).collect();
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_error(what, &train(&args), &needles);
    }

    // Folders: one class, a class with no pictures, an empty file, a 1×1 picture.
    let picture = std::fs::read(first_file(&Path::new(&data("pictures")).join("class_a"))).unwrap();
    let one = d.join("one_class");
    std::fs::create_dir_all(one.join("cats")).unwrap();
    std::fs::write(one.join("cats/a.png"), &picture).unwrap();
    assert_error(
        "a single class",
        &train(&[one.to_str().unwrap()]),
        &["class"],
    );
    let empty = d.join("empty_class");
    std::fs::create_dir_all(empty.join("cats")).unwrap();
    std::fs::create_dir_all(empty.join("dogs")).unwrap();
    std::fs::write(empty.join("cats/a.png"), &picture).unwrap();
    assert_error(
        "an empty class",
        &train(&[empty.to_str().unwrap()]),
        &["dogs"],
    );
    let tiny = d.join("tiny");
    std::fs::create_dir_all(tiny.join("a")).unwrap();
    std::fs::create_dir_all(tiny.join("b")).unwrap();
    std::fs::write(tiny.join("a/x.png"), &picture).unwrap();
    image::GrayImage::new(1, 1)
        .save(tiny.join("b/dot.png"))
        .unwrap();
    assert_error(
        "a 1×1 picture",
        &train(&[tiny.to_str().unwrap()]),
        &["dot.png"],
    );
    let csv = d.join("empty.csv");
    std::fs::write(&csv, "").unwrap();
    assert_error(
        "an empty file",
        &train(&[csv.to_str().unwrap()]),
        &["empty.csv"],
    );
}
