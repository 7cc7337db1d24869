//! The IDX reader and the file locator: synthetic files for every way a file can be wrong, raw and
//! gzip round trips, and the real MNIST files (when `MNIST_DIR` is set) checked against the facts in
//! `shared/data/README.md` and byte for byte against the `mnist` crate's reader (the oracle).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use soma::data::{DatasetKind, Inputs, Targets, idx, locate};
use soma::error::Error;

// ---- helpers ----------------------------------------------------------------------------------

/// An IDX file: the 4 magic bytes, big-endian u32 dimensions, then the payload.
fn idx_bytes(magic: [u8; 4], dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = magic.to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// 3 images of 2×2 pixels.
fn images_file() -> Vec<u8> {
    idx_bytes(
        [0, 0, 8, 3],
        &[3, 2, 2],
        &(0..12).map(|i| i * 20).collect::<Vec<u8>>(),
    )
}

fn labels_file(labels: &[u8]) -> Vec<u8> {
    idx_bytes([0, 0, 8, 1], &[labels.len() as u32], labels)
}

/// Asserts a format error about `path`, on `field`, whose message names both.
#[track_caller]
fn assert_format(err: Error, path: &Path, field: &str) -> String {
    let msg = err.to_string();
    match &err {
        Error::Format {
            path: p, field: f, ..
        } => {
            assert_eq!(p, path, "wrong path in {msg}");
            assert_eq!(*f, field, "wrong field in {msg}");
        }
        other => panic!("expected a format error on {field}, got {other:?}"),
    }
    assert!(
        msg.contains(&path.display().to_string()),
        "{msg} does not name the file"
    );
    assert!(msg.contains(field), "{msg} does not name the field");
    msg
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---- round trips ------------------------------------------------------------------------------

#[test]
fn raw_round_trip() {
    let d = tmp();
    let imgs = write(d.path(), "imgs", &images_file());
    let lbls = write(d.path(), "lbls", &labels_file(&[2, 0, 1]));
    let read = idx::read_images(&imgs).unwrap();
    assert_eq!((read.count, read.rows, read.cols), (3, 2, 2));
    assert_eq!(read.pixels, (0..12).map(|i| i * 20).collect::<Vec<u8>>());
    assert_eq!(idx::read_labels(&lbls).unwrap(), vec![2, 0, 1]);

    let set = idx::load(&imgs, &lbls, 3).unwrap();
    assert_eq!((set.len(), set.features()), (3, 4));
    assert_eq!(set.inputs(), &Inputs::U8(read.pixels));
    assert_eq!(
        set.targets(),
        &Targets::Labels {
            labels: vec![2, 0, 1],
            classes: 3
        }
    );
    assert_eq!(set.normalize, soma::data::Normalize::UNIT);
}

#[test]
fn gzip_round_trip_detected_by_content() {
    let d = tmp();
    // Named without .gz: compression is recognised from the content.
    let imgs = write(d.path(), "imgs.idx", &gzip(&images_file()));
    let lbls = write(d.path(), "lbls.gz", &gzip(&labels_file(&[2, 0, 1])));
    let raw = idx::read_images(&write(d.path(), "raw", &images_file())).unwrap();
    assert_eq!(idx::read_images(&imgs).unwrap(), raw);
    assert_eq!(idx::read_labels(&lbls).unwrap(), vec![2, 0, 1]);
    assert_eq!(idx::load(&imgs, &lbls, 3).unwrap().len(), 3);
}

#[test]
fn named_gz_but_raw_content_is_read_as_raw() {
    let d = tmp();
    let imgs = write(d.path(), "train-images-idx3-ubyte.gz", &images_file());
    assert_eq!(idx::read_images(&imgs).unwrap().count, 3);
    let bad = write(d.path(), "bad.gz", b"this is not an IDX file");
    assert_format(idx::read_images(&bad).unwrap_err(), &bad, "magic");
}

// ---- malformed files --------------------------------------------------------------------------

#[test]
fn empty_file() {
    let d = tmp();
    let p = write(d.path(), "empty", b"");
    let msg = assert_format(idx::read_images(&p).unwrap_err(), &p, "magic");
    assert!(msg.contains("empty"), "{msg}");
    let msg = assert_format(idx::read_labels(&p).unwrap_err(), &p, "magic");
    assert!(msg.contains("empty"), "{msg}");
    // A valid gzip stream of nothing.
    let gz = write(d.path(), "empty.gz", &gzip(b""));
    let msg = assert_format(idx::read_labels(&gz).unwrap_err(), &gz, "magic");
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn bad_magic() {
    let d = tmp();
    let p = write(
        d.path(),
        "magic",
        &idx_bytes([1, 2, 8, 3], &[3, 2, 2], &[0; 12]),
    );
    let msg = assert_format(idx::read_images(&p).unwrap_err(), &p, "magic");
    assert!(
        msg.contains("0x00000803") && msg.contains("0x01020803"),
        "{msg}"
    );
    let short = write(d.path(), "short", &[0, 0, 8]);
    assert_format(idx::read_images(&short).unwrap_err(), &short, "magic");
}

#[test]
fn wrong_data_type() {
    let d = tmp();
    // 0x0d = f32.
    let p = write(
        d.path(),
        "f32",
        &idx_bytes([0, 0, 0x0d, 3], &[3, 2, 2], &[0; 48]),
    );
    let msg = assert_format(idx::read_images(&p).unwrap_err(), &p, "data type");
    assert!(msg.contains("0x08") && msg.contains("0x0d"), "{msg}");
    let l = write(d.path(), "i32", &idx_bytes([0, 0, 0x0c, 1], &[3], &[0; 12]));
    assert_format(idx::read_labels(&l).unwrap_err(), &l, "data type");
}

#[test]
fn wrong_rank() {
    let d = tmp();
    let labels = write(d.path(), "labels", &labels_file(&[1, 2, 3]));
    let msg = assert_format(idx::read_images(&labels).unwrap_err(), &labels, "rank");
    assert!(
        msg.contains("expected 3") && msg.contains("found 1"),
        "{msg}"
    );
    let images = write(d.path(), "images", &images_file());
    assert_format(idx::read_labels(&images).unwrap_err(), &images, "rank");
}

#[test]
fn zero_and_oversized_dimensions() {
    let d = tmp();
    let p = write(d.path(), "zero", &idx_bytes([0, 0, 8, 3], &[3, 0, 2], &[]));
    assert_format(idx::read_images(&p).unwrap_err(), &p, "dimension 1");
    let p = write(d.path(), "zero_count", &idx_bytes([0, 0, 8, 1], &[0], &[]));
    assert_format(idx::read_labels(&p).unwrap_err(), &p, "label count");
    let p = write(
        d.path(),
        "wide",
        &idx_bytes([0, 0, 8, 3], &[1, 2, 1 << 20], &[]),
    );
    assert_format(idx::read_images(&p).unwrap_err(), &p, "dimension 2");
}

#[test]
fn truncated_header() {
    let d = tmp();
    let mut bytes = images_file();
    bytes.truncate(10); // magic, count and half of the rows
    let p = write(d.path(), "hdr", &bytes);
    let msg = assert_format(idx::read_images(&p).unwrap_err(), &p, "dimension 1");
    assert!(msg.contains("header"), "{msg}");
}

#[test]
fn truncated_payload() {
    let d = tmp();
    let mut bytes = images_file();
    bytes.pop();
    let raw = write(d.path(), "raw", &bytes);
    let msg = assert_format(idx::read_images(&raw).unwrap_err(), &raw, "payload length");
    assert!(
        msg.contains("12 bytes") && msg.contains("11 bytes"),
        "{msg}"
    );
    let gz = write(d.path(), "gz", &gzip(&bytes));
    let msg = assert_format(idx::read_images(&gz).unwrap_err(), &gz, "payload length");
    assert!(msg.contains("truncated"), "{msg}");
    let mut labels = labels_file(&[1, 2, 3]);
    labels.pop();
    let l = write(d.path(), "labels.gz", &gzip(&labels));
    assert_format(idx::read_labels(&l).unwrap_err(), &l, "payload length");
}

#[test]
fn trailing_bytes() {
    let d = tmp();
    let mut bytes = images_file();
    bytes.extend_from_slice(&[7, 7]);
    let raw = write(d.path(), "raw", &bytes);
    let msg = assert_format(idx::read_images(&raw).unwrap_err(), &raw, "payload length");
    assert!(msg.contains("trailing"), "{msg}");
    let gz = write(d.path(), "gz", &gzip(&bytes));
    let msg = assert_format(idx::read_images(&gz).unwrap_err(), &gz, "payload length");
    assert!(msg.contains("trailing"), "{msg}");
}

/// A header claiming ~10^12 bytes must be refused from the header alone: reading or allocating
/// that much would abort the test process, so passing at all shows nothing was allocated.
#[test]
fn huge_header_fails_before_allocating() {
    let d = tmp();
    // 10^6 images of 1000×1000: 10^12 pixels, every field within its own cap.
    let pixels = idx_bytes([0, 0, 8, 3], &[1_000_000, 1000, 1000], &[1, 2, 3]);
    for (name, bytes) in [("px", pixels.clone()), ("px.gz", gzip(&pixels))] {
        let p = write(d.path(), name, &bytes);
        let msg = assert_format(idx::read_images(&p).unwrap_err(), &p, "payload length");
        assert!(msg.contains("1000000000000 bytes"), "{msg}");
    }
    // An item count beyond the cap (4·10^9 images / labels).
    let count = idx_bytes([0, 0, 8, 3], &[4_000_000_000, 1, 1], &[1, 2, 3]);
    let p = write(d.path(), "count.gz", &gzip(&count));
    assert_format(idx::read_images(&p).unwrap_err(), &p, "image count");
    let labels = idx_bytes([0, 0, 8, 1], &[4_000_000_000], &[1, 2, 3]);
    let p = write(d.path(), "labels", &labels);
    assert_format(idx::read_labels(&p).unwrap_err(), &p, "label count");
    // Within the caps but far larger than the file: the raw size check refuses it up front.
    let big = idx_bytes([0, 0, 8, 1], &[99_000_000], &[1, 2, 3]);
    let p = write(d.path(), "big", &big);
    assert_format(idx::read_labels(&p).unwrap_err(), &p, "payload length");
}

#[test]
fn corrupt_gzip_stream() {
    let d = tmp();
    // A gzip header followed by a deflate block of the reserved type 3.
    let mut bytes = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    bytes.extend_from_slice(&[0xff; 32]);
    let p = write(d.path(), "corrupt.gz", &bytes);
    assert_format(idx::read_images(&p).unwrap_err(), &p, "gzip stream");

    // A valid stream cut short: the decompressor runs out of input.
    let full = gzip(&images_file());
    let cut = write(d.path(), "cut.gz", &full[..full.len() - 10]);
    let err = idx::read_images(&cut).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&cut.display().to_string()), "{msg}");
    assert!(matches!(err, Error::Format { .. }), "{msg}");

    // A stream whose checksum does not match its content.
    let mut bad_crc = full.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let p = write(d.path(), "crc.gz", &bad_crc);
    assert_format(idx::read_images(&p).unwrap_err(), &p, "gzip stream");
}

#[test]
fn image_and_label_counts_must_agree() {
    let d = tmp();
    let imgs = write(d.path(), "imgs", &images_file());
    let lbls = write(d.path(), "lbls", &labels_file(&[1, 2]));
    let msg = assert_format(
        idx::load(&imgs, &lbls, 10).unwrap_err(),
        &lbls,
        "label count",
    );
    assert!(msg.contains("3 labels") && msg.contains("found 2"), "{msg}");
    assert!(msg.contains(&imgs.display().to_string()), "{msg}");
}

#[test]
fn label_out_of_range() {
    let d = tmp();
    let imgs = write(d.path(), "imgs", &images_file());
    let lbls = write(d.path(), "lbls", &labels_file(&[1, 12, 2]));
    let msg = assert_format(idx::load(&imgs, &lbls, 10).unwrap_err(), &lbls, "label");
    assert!(
        msg.contains("12 at index 1") && msg.contains("below 10"),
        "{msg}"
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let d = tmp();
    let p = d.path().join("nope");
    let err = idx::read_images(&p).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
}

// ---- locate -----------------------------------------------------------------------------------

const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

#[test]
fn locate_explicit_dir_missing_files_is_an_error() {
    let d = tmp();
    write(
        d.path(),
        "train-images-idx3-ubyte.gz",
        &gzip(&images_file()),
    );
    write(d.path(), "t10k-labels-idx1-ubyte", &labels_file(&[1, 2, 3]));
    // download=true must not be attempted for an explicit directory either.
    let err = locate(DatasetKind::Mnist, Some(d.path()), true).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::MissingData(_)), "{err:?}");
    assert!(msg.contains(&d.path().display().to_string()), "{msg}");
    assert!(
        msg.contains("train-labels-idx1-ubyte") && msg.contains("t10k-images-idx3-ubyte"),
        "{msg}"
    );
    assert!(
        !msg.contains("train-images") && !msg.contains("t10k-labels"),
        "{msg}"
    );
}

#[test]
fn locate_accepts_raw_and_gzip_names() {
    let d = tmp();
    write(d.path(), NAMES[0], &images_file()); // raw
    write(d.path(), NAMES[1], &labels_file(&[9, 0, 1])); // raw
    write(d.path(), &format!("{}.gz", NAMES[2]), &gzip(&images_file()));
    write(d.path(), NAMES[3], &labels_file(&[3, 4, 5]));
    let files = locate(DatasetKind::Fashion, Some(d.path()), false).unwrap();
    assert_eq!(files.dir, d.path());
    assert_eq!(files.train_images, d.path().join(NAMES[0]));
    assert_eq!(files.test_images, d.path().join(format!("{}.gz", NAMES[2])));
    let (train, test) = files.load().unwrap();
    assert_eq!((train.len(), test.len(), train.features()), (3, 3, 4));
    assert_eq!(test.targets().width(), 10);
}

#[test]
fn dataset_kind_parses_and_displays() {
    for kind in [DatasetKind::Mnist, DatasetKind::Fashion] {
        assert_eq!(kind.to_string().parse::<DatasetKind>().unwrap(), kind);
    }
    assert_eq!(
        "fashion".parse::<DatasetKind>().unwrap(),
        DatasetKind::Fashion
    );
    assert!("cifar".parse::<DatasetKind>().is_err());
}

// ---- the real files ---------------------------------------------------------------------------

fn mnist_or_skip(test: &str) -> Option<PathBuf> {
    let dir = common::mnist_dir();
    if dir.is_none() {
        common::skip(&format!("{test} needs the MNIST files: set MNIST_DIR"));
    }
    dir
}

/// Facts from shared/data/README.md.
#[test]
fn real_mnist_matches_published_facts() {
    let Some(dir) = mnist_or_skip("real_mnist_matches_published_facts") else {
        return;
    };
    let files = locate(DatasetKind::Mnist, Some(&dir), false).unwrap();
    let train = idx::read_images(&files.train_images).unwrap();
    let test = idx::read_images(&files.test_images).unwrap();
    assert_eq!((train.count, train.rows, train.cols), (60000, 28, 28));
    assert_eq!((test.count, test.rows, test.cols), (10000, 28, 28));
    let labels = idx::read_labels(&files.train_labels).unwrap();
    assert_eq!(&labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    let mean =
        train.pixels.iter().map(|&p| p as u64).sum::<u64>() as f64 / train.pixels.len() as f64;
    // The README gives the mean to three decimals.
    assert!((mean - 33.318).abs() < 1e-3, "mean pixel {mean}");

    let (train_set, test_set) = files.load().unwrap();
    assert_eq!(
        (train_set.len(), test_set.len(), train_set.features()),
        (60000, 10000, 784)
    );
}

/// Oracle: the `mnist` crate reads the gunzipped files; ours must agree byte for byte.
#[test]
fn real_mnist_matches_mnist_crate() {
    let Some(dir) = mnist_or_skip("real_mnist_matches_mnist_crate") else {
        return;
    };
    let files = locate(DatasetKind::Mnist, Some(&dir), false).unwrap();
    let out = tmp();
    for (src, name) in [
        (&files.train_images, NAMES[0]),
        (&files.train_labels, NAMES[1]),
        (&files.test_images, NAMES[2]),
        (&files.test_labels, NAMES[3]),
    ] {
        let bytes = std::fs::read(src).unwrap();
        let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut v)
                .unwrap();
            v
        } else {
            bytes
        };
        std::fs::write(out.path().join(name), raw).unwrap();
    }
    let base = out.path().to_str().unwrap();
    let oracle = mnist::MnistBuilder::new()
        .base_path(base)
        .training_set_length(60000)
        .validation_set_length(0)
        .test_set_length(10000)
        .finalize();
    let ours = |n: usize| out.path().join(NAMES[n]);
    assert!(idx::read_images(&files.train_images).unwrap().pixels == oracle.trn_img);
    assert!(idx::read_images(&ours(0)).unwrap().pixels == oracle.trn_img);
    assert_eq!(
        idx::read_labels(&files.train_labels).unwrap(),
        oracle.trn_lbl
    );
    assert!(idx::read_images(&files.test_images).unwrap().pixels == oracle.tst_img);
    assert_eq!(idx::read_labels(&ours(3)).unwrap(), oracle.tst_lbl);
}

/// Fashion-MNIST from Debian's package, when installed (not required, so never strict).
#[test]
fn system_fashion_mnist_when_installed() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.is_dir() {
        eprintln!("SKIPPED: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
        return;
    }
    let (train, test) = locate(DatasetKind::Fashion, Some(dir), false)
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(
        (train.len(), test.len(), train.features()),
        (60000, 10000, 784)
    );
}
