//! The folder reader's tests: layouts, rules, bad pictures, the parallel passes against one
//! thread and against `read_files` on the same bytes, and the committed fixtures.

use super::*;
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use std::io::Cursor;

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A grey picture whose pixels depend on `seed`.
fn grey(w: u32, h: u32, seed: u8) -> DynamicImage {
    let f = |x: u32, y: u32| Luma([(x * 7 + y * 13) as u8 ^ seed]);
    DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, f))
}

fn rgb(w: u32, h: u32, seed: u8) -> DynamicImage {
    let f = |x: u32, y: u32| {
        Rgb([
            x as u8 ^ seed,
            (y * 3) as u8,
            ((x * y) as u8).wrapping_add(seed),
        ])
    };
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, f))
}

fn png(img: DynamicImage) -> Vec<u8> {
    encode(&img, ImageFormat::Png)
}

/// A fresh folder with `files` (path relative to it, bytes) written into it.
fn folder(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, bytes) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

fn read(dir: &tempfile::TempDir) -> Result<FolderData> {
    read_folder(dir.path(), &FolderOptions::default())
}

fn skipping(dir: &tempfile::TempDir) -> Result<FolderData> {
    let opts = FolderOptions {
        skip_bad: true,
        ..Default::default()
    };
    read_folder(dir.path(), &opts)
}

fn paths(list: &[&str]) -> Vec<PathBuf> {
    list.iter().map(PathBuf::from).collect()
}

fn message(r: Result<FolderData>) -> String {
    r.expect_err("an error").to_string()
}

#[test]
fn classes_are_sorted_extensions_any_case_hidden_skipped_others_ignored() {
    let dir = folder(&[
        ("b/1.PNG", png(grey(8, 8, 1))),
        ("a/x/2.Jpg", encode(&grey(8, 8, 2), ImageFormat::Jpeg)),
        ("a/1.bmp", encode(&grey(8, 8, 3), ImageFormat::Bmp)),
        ("a/2.pgm", encode(&grey(8, 8, 3), ImageFormat::Pnm)),
        ("C/1.pgm", encode(&grey(8, 8, 4), ImageFormat::Pnm)),
        ("a/.hidden.png", b"not even a picture".to_vec()),
        (".git/objects/x.png", b"not a picture".to_vec()),
        ("b/.cache/y.png", b"not a picture".to_vec()),
        ("README.txt", b"ignored".to_vec()),
        ("top.png", png(grey(8, 8, 5))),
        ("a/notes.txt", b"ignored".to_vec()),
    ]);
    let data = read(&dir).unwrap();
    assert_eq!(data.classes, ["C", "a", "b"]);
    let files = paths(&["C/1.pgm", "a/1.bmp", "a/2.pgm", "a/x/2.Jpg", "b/1.PNG"]);
    assert_eq!(data.train.files, files);
    assert_eq!(data.train.labels, [0, 1, 1, 1, 2]);
    assert_eq!(
        data.ignored,
        paths(&["README.txt", "a/notes.txt", "top.png"])
    );
    // A grey BMP is written with a palette, which reads as colour.
    assert_eq!((data.channels, data.height, data.width), (3, 8, 8));
    assert_eq!(data.train.pixels.len(), 5 * 3 * 64);
    // Its grey planes are equal, and the BMP's equal the PGM's.
    assert_eq!(data.train.pixels[192..384], data.train.pixels[384..576]);
    std::fs::remove_file(dir.path().join("a/1.bmp")).unwrap();
    assert_eq!(read(&dir).unwrap().channels, 1);
    assert_eq!(
        (data.test, data.split_folder, data.resized),
        (None, None, 0)
    );
    assert_eq!(data.size_rule, "every picture is 8×8");
}

#[test]
fn train_and_split_folders_give_test_samples() {
    for split in SPLIT_FOLDERS {
        let dir = folder(&[
            ("train/a/1.png", png(grey(8, 8, 1))),
            ("train/a/2.png", png(grey(8, 8, 2))),
            ("train/b/1.png", png(grey(8, 8, 3))),
            (&format!("{split}/a/9.png"), png(grey(8, 8, 4))),
            (&format!("{split}/b/9.png"), png(grey(8, 8, 5))),
            ("LICENSE", b"ignored".to_vec()),
        ]);
        let data = read(&dir).unwrap();
        assert_eq!(data.classes, ["a", "b"]);
        assert_eq!(data.split_folder.as_deref(), Some(split));
        assert_eq!(data.train.labels, [0, 0, 1]);
        let test = data.test.unwrap();
        assert_eq!(test.labels, [0, 1]);
        let expected = [format!("{split}/a/9.png"), format!("{split}/b/9.png")];
        assert_eq!(test.files, expected.map(PathBuf::from));
        assert_eq!(
            test.pixels,
            [grey(8, 8, 4), grey(8, 8, 5)]
                .map(|g| g.into_bytes())
                .concat()
        );
    }
    // A lone train/ folder holds the classes.
    let dir = folder(&[
        ("train/a/1.png", png(grey(8, 8, 1))),
        ("train/b/1.png", png(grey(8, 8, 2))),
    ]);
    let data = read(&dir).unwrap();
    assert_eq!((data.classes.len(), data.test), (2, None));
    assert_eq!(data.train.files, paths(&["train/a/1.png", "train/b/1.png"]));
}

#[test]
fn mismatched_split_classes_are_named() {
    let dir = folder(&[
        ("train/a/1.png", png(grey(8, 8, 1))),
        ("train/b/1.png", png(grey(8, 8, 2))),
        ("test/a/1.png", png(grey(8, 8, 3))),
        ("test/c/1.png", png(grey(8, 8, 4))),
    ]);
    let err = message(read(&dir));
    assert!(
        err.contains("test/ lacks `b`") && err.contains("`c`, which train/ lacks"),
        "{err}"
    );
}

#[test]
fn folders_without_two_classes_of_pictures_are_refused() {
    let err = message(read(&folder(&[("a/1.png", png(grey(8, 8, 1)))])));
    assert!(err.contains("single class folder, `a`"), "{err}");
    let err = message(read(&folder(&[("1.png", png(grey(8, 8, 1)))])));
    assert!(err.contains("no subfolder"), "{err}");
    let dir = folder(&[
        ("a/1.png", png(grey(8, 8, 1))),
        ("b/readme.md", b"x".to_vec()),
    ]);
    std::fs::create_dir(dir.path().join("c")).unwrap();
    let err = message(read(&dir));
    let b = dir.path().join("b").display().to_string();
    assert!(err.starts_with(&b) && err.contains("no picture"), "{err}");
    let missing = dir.path().join("nowhere");
    let err = message(read_folder(&missing, &FolderOptions::default()));
    assert!(
        err.contains("nowhere") && err.contains("no such folder"),
        "{err}"
    );
    let file = dir.path().join("a/1.png");
    let err = message(read_folder(&file, &FolderOptions::default()));
    assert!(err.contains("1.png") && err.contains("a file"), "{err}");
}

#[test]
fn a_bad_picture_is_an_error_naming_it_or_skipped() {
    let good = png(rgb(8, 8, 1));
    let truncated = good[..good.len() - 20].to_vec();
    let dir = folder(&[
        ("a/1.png", good.clone()),
        ("a/2.png", truncated),
        ("a/3.jpg", b"a text file dressed as a JPEG".to_vec()),
        ("b/1.png", png(rgb(8, 8, 2))),
        ("b/2.png", png(rgb(8, 8, 3))),
    ]);
    let err = message(read(&dir));
    // The header pass finds the fake JPEG before the truncated PNG is decoded.
    assert!(
        err.contains("3.jpg") && err.contains("bad picture"),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("a/3.jpg")).unwrap();
    let err = message(read(&dir));
    assert!(err.contains("2.png"), "{err}");
    std::fs::write(dir.path().join("a/3.jpg"), b"still not a JPEG").unwrap();
    let data = skipping(&dir).unwrap();
    let bad: Vec<_> = data.bad.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(bad, paths(&["a/3.jpg", "a/2.png"]));
    assert_eq!(data.train.files, paths(&["a/1.png", "b/1.png", "b/2.png"]));
    assert_eq!(data.train.labels, [0, 1, 1]);
    let expected = [rgb(8, 8, 1), rgb(8, 8, 2), rgb(8, 8, 3)].map(|p| planar(&p));
    assert_eq!(data.train.pixels, expected.concat());
    // A class left with no picture is still an error.
    std::fs::remove_file(dir.path().join("a/1.png")).unwrap();
    let err = message(skipping(&dir));
    assert!(err.contains("every one is bad"), "{err}");
}

/// An RGB picture's bytes in planar order.
fn planar(img: &DynamicImage) -> Vec<u8> {
    let rgb = img.to_rgb8();
    (0..3)
        .flat_map(|c| rgb.pixels().map(move |p| p[c]))
        .collect()
}

#[test]
fn too_small_and_too_large_pictures_are_refused_from_the_header() {
    let dot = folder(&[
        ("a/1.png", png(grey(8, 8, 1))),
        ("b/dot.png", png(grey(1, 1, 0))),
    ]);
    let err = message(read(&dot));
    assert!(
        err.contains("dot.png") && err.contains("too small"),
        "{err}"
    );
    let huge = picture::tests::png_claiming(20_000, 20_000);
    let dir = folder(&[("a/1.png", png(grey(8, 8, 1))), ("b/huge.png", huge)]);
    let err = message(read(&dir));
    assert!(
        err.contains("huge.png") && err.contains("exceeds limit"),
        "{err}"
    );
}

#[test]
fn grey_and_colour_sets_are_told_apart() {
    let g = grey(6, 5, 9);
    let c = rgb(6, 5, 4);
    let dir = folder(&[("a/1.png", png(g.clone())), ("b/1.png", png(c.clone()))]);
    let data = read(&dir).unwrap();
    assert_eq!(data.channels, 3);
    // The grey picture is one plane three times.
    let plane = g.to_luma8().into_raw();
    assert_eq!(
        data.train.pixels[..90],
        [&plane[..], &plane, &plane].concat()[..]
    );
    assert_eq!(data.train.pixels[90..], planar(&c)[..]);
    // Asked for grey: the colour picture goes through BT.601 luma.
    let opts = FolderOptions {
        channels: Some(1),
        ..Default::default()
    };
    let data = read_folder(dir.path(), &opts).unwrap();
    assert_eq!(data.channels, 1);
    let luma: Vec<u8> = c
        .to_rgb8()
        .pixels()
        .map(|p| (0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64).round() as u8)
        .collect();
    assert_eq!(data.train.pixels[..30], plane[..]);
    assert_eq!(data.train.pixels[30..], luma[..]);
    let opts = FolderOptions {
        channels: Some(2),
        ..Default::default()
    };
    assert!(message(read_folder(dir.path(), &opts)).contains("channels"));
}

#[test]
fn the_planar_layout_is_channel_then_row_then_column() {
    // 3 wide, 2 high; pixel (x, y) is (10x + y, 100 + 10x + y, 200 + 10x + y).
    let img = RgbImage::from_fn(4, 5, |x, y| {
        let v = (10 * x + y) as u8;
        Rgb([v, 100 + v, 200 - v])
    });
    let dir = folder(&[("a/1.png", png(img.into())), ("b/1.png", png(rgb(4, 5, 0)))]);
    let data = read(&dir).unwrap();
    let (h, w) = (data.height as usize, data.width as usize);
    assert_eq!((data.channels, h, w), (3, 5, 4));
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let v = (10 * x + y) as u8;
                let want = [v, 100 + v, 200 - v][c];
                assert_eq!(
                    data.train.pixels[c * h * w + y * w + x],
                    want,
                    "c{c} y{y} x{x}"
                );
            }
        }
    }
}

#[test]
fn the_most_common_size_wins_and_others_are_resized() {
    let dir = folder(&[
        ("a/1.png", png(grey(8, 6, 1))),
        ("a/2.png", png(grey(8, 6, 2))),
        ("b/1.png", png(grey(16, 12, 3))),
        ("b/2.png", png(grey(8, 6, 4))),
    ]);
    let data = read(&dir).unwrap();
    assert_eq!((data.height, data.width, data.resized), (6, 8, 1));
    assert_eq!(
        data.size_rule,
        "the most common size 8×6 (3 of 4 pictures); 1 resized"
    );
    let big = picture::Decoded {
        width: 16,
        height: 12,
        channels: 1,
        pixels: grey(16, 12, 3).into_bytes(),
    };
    assert_eq!(
        data.train.pixels[96..144],
        picture::resize(&big, 6, 8).pixels[..]
    );
    // Asked for a size, every picture is brought to it.
    let opts = FolderOptions {
        size: Some((4, 5)),
        ..Default::default()
    };
    let data = read_folder(dir.path(), &opts).unwrap();
    assert_eq!((data.height, data.width, data.resized), (4, 5, 4));
    assert_eq!(data.size_rule, "5×4 as asked; 4 resized");
    // Ties: the larger area.
    let h = |width, height| Header {
        width,
        height,
        grey: true,
    };
    assert_eq!(choose_size(&[h(8, 8), h(4, 4)], None).unwrap(), (8, 8));
    assert_eq!(choose_size(&[h(4, 8), h(8, 4)], None).unwrap(), (8, 4));
}

#[test]
fn too_many_bytes_are_refused_before_allocating() {
    let shape = Shape {
        channels: 3,
        height: 4096,
        width: 4096,
    };
    assert!(check_total(170, shape).is_ok());
    let err = check_total(200, shape).unwrap_err().to_string();
    assert!(
        err.contains("200 samples of 3×4096×4096") && err.contains("8589934592"),
        "{err}"
    );
    assert!(check_total(usize::MAX, shape).is_err());
}

fn mixed_folder() -> tempfile::TempDir {
    let mut files = Vec::new();
    for i in 0..60u32 {
        let class = ["a", "b", "c"][i as usize % 3];
        let (w, h) = if i % 7 == 0 { (12, 10) } else { (9, 7) };
        let bytes = if i % 2 == 0 {
            png(rgb(w, h, i as u8))
        } else {
            encode(&grey(w, h, i as u8), ImageFormat::Jpeg)
        };
        files.push((
            format!("{class}/{i:03}.{}", if i % 2 == 0 { "png" } else { "jpg" }),
            bytes,
        ));
    }
    let refs: Vec<_> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    folder(&refs)
}

#[test]
fn parallel_reading_equals_one_thread_and_bytes_in_memory() {
    let dir = mixed_folder();
    let many = read(&dir).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let one = pool.install(|| read(&dir)).unwrap();
    assert_eq!(many, one);
    assert_eq!((many.train.len(), many.channels, many.resized), (60, 3, 9));
    let bytes: Vec<(PathBuf, Vec<u8>)> = many
        .train
        .files
        .iter()
        .map(|f| (f.clone(), std::fs::read(dir.path().join(f)).unwrap()))
        .collect();
    let given: Vec<(PathBuf, &[u8])> = bytes.iter().map(|(p, b)| (p.clone(), &b[..])).collect();
    let memory = read_files(dir.path(), &given, &FolderOptions::default()).unwrap();
    assert_eq!(memory, many);
}

#[test]
fn the_plan_works_on_a_bare_listing() {
    let files = paths(&[
        "b/1.png",
        "a/2.PNG",
        "a/1.png",
        ".DS_Store",
        "a/.x.png",
        "x.txt",
    ]);
    let plan = plan(Path::new("root"), &files, &[]).unwrap();
    assert_eq!(plan.classes, ["a", "b"]);
    let train = [("a/1.png", 0), ("a/2.PNG", 0), ("b/1.png", 1)];
    assert_eq!(plan.train, train.map(|(p, l)| (PathBuf::from(p), l)));
    assert_eq!(plan.ignored, paths(&["x.txt"]));
}

/// The decoder panic the fuzzer found, eight times in one folder read on rayon: errors,
/// never a panic.
#[test]
fn decoder_panics_in_a_folder_are_bad_pictures() {
    let crash = include_bytes!("../../../tests/data/fuzz/picture-zune-jpeg-avx2-idct-panic.jpg");
    let mut files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("a/crash{i}.jpg"), crash.to_vec()))
        .collect();
    files.push(("a/ok.png".into(), png(grey(8, 8, 1))));
    files.push(("b/ok.png".into(), png(grey(8, 8, 2))));
    let refs: Vec<_> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let dir = folder(&refs);
    let opts = FolderOptions {
        size: Some((8, 8)),
        channels: Some(1),
        skip_bad: true,
    };
    let data = read_folder(dir.path(), &opts).unwrap();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        assert_eq!(data.bad.len(), 8, "{:?}", data.bad);
        assert!(
            data.bad
                .iter()
                .all(|(_, why)| why.contains("decoder failed"))
        );
    }
    assert_eq!(data.train.len() + data.bad.len(), 10);
}

/// The fixtures in tests/data/pictures (see its README.md).
#[test]
fn the_fixture_folders_read_as_documented() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let data = read_folder(&base.join("pictures"), &FolderOptions::default()).unwrap();
    assert_eq!(data.classes, ["class_a", "class_b", "class_c"]);
    assert_eq!((data.channels, data.height, data.width), (3, 8, 8));
    assert_eq!((data.train.len(), data.resized), (9, 1));
    assert_eq!(data.ignored, paths(&["README.md", "class_b/README.txt"]));
    let err = message(read_folder(
        &base.join("pictures_bad"),
        &FolderOptions::default(),
    ));
    assert!(err.contains("broken.png"), "{err}");
    let opts = FolderOptions {
        skip_bad: true,
        ..Default::default()
    };
    let data = read_folder(&base.join("pictures_bad"), &opts).unwrap();
    assert_eq!(data.bad.len(), 1);
    assert_eq!(data.bad[0].0, PathBuf::from("class_a/broken.png"));
    assert_eq!(data.train.len(), 9);
}

/// Writes the fixtures: `SOMA_WRITE_FIXTURES=tests/data cargo test -- --ignored
/// write_fixtures` from the crate's root.
#[test]
#[ignore = "writes the fixture folders"]
fn write_fixtures() {
    let base = PathBuf::from(std::env::var("SOMA_WRITE_FIXTURES").unwrap());
    let disc = |w: u32, c: [u8; 3]| {
        let r = w as f32 / 2.0;
        RgbImage::from_fn(w, w, |x, y| {
            let d = (x as f32 + 0.5 - r).hypot(y as f32 + 0.5 - r);
            if d < r * 0.7 {
                Rgb(c)
            } else {
                Rgb([255, 255, 255])
            }
        })
    };
    let cross = |c: u8| {
        GrayImage::from_fn(8, 8, |x, y| {
            Luma([if x == y || x + y == 7 { c } else { 0 }])
        })
    };
    let bars = |c: u8| GrayImage::from_fn(8, 8, |x, _| Luma([if x % 3 == 0 { c } else { 30 }]));
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("class_a/1.png", png(disc(8, [200, 30, 30]).into())),
        (
            "class_a/2.JPG",
            encode(&disc(8, [30, 30, 200]).into(), ImageFormat::Jpeg),
        ),
        ("class_a/big.png", png(disc(12, [30, 160, 30]).into())),
        (
            "class_a/.hidden.png",
            b"a hidden file: skipped, never read".to_vec(),
        ),
        ("class_b/1.Png", png(cross(255).into())),
        (
            "class_b/2.bmp",
            encode(&cross(180).into(), ImageFormat::Bmp),
        ),
        (
            "class_b/3.PGM",
            encode(&cross(120).into(), ImageFormat::Pnm),
        ),
        ("class_b/README.txt", b"Not a picture: ignored.\n".to_vec()),
        ("class_c/1.pgm", encode(&bars(250).into(), ImageFormat::Pnm)),
        (
            "class_c/2.jpeg",
            encode(&bars(200).into(), ImageFormat::Jpeg),
        ),
        ("class_c/sub/3.png", png(bars(150).into())),
    ];
    for root in ["pictures", "pictures_bad"] {
        for (rel, bytes) in &files {
            let path = base.join(root).join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    let whole = png(disc(8, [90, 90, 90]).into());
    let broken = base.join("pictures_bad/class_a/broken.png");
    std::fs::write(broken, &whole[..whole.len() / 2]).unwrap();
}
