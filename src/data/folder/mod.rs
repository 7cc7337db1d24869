//! Reads a folder of class subfolders of pictures (the layout torchvision's `ImageFolder`
//! reads) into compact samples: `u8` pixels, `channels × height × width` each, planar.
//!
//! ```text
//! root/cat/001.png          root/train/cat/001.png
//! root/cat/more/002.JPG     root/train/dog/001.png
//! root/dog/001.bmp          root/test/cat/900.png     (or val/, valid/, validation/)
//! ```
//!
//! Rules:
//! - The classes are the subfolders of the root (or of `train/`), sorted by name in byte
//!   order; a class's label is its index in that order. There must be at least two, and every
//!   class must hold at least one picture.
//! - A root with a `train/` folder and one of [`SPLIT_FOLDERS`] is split by folder: the test
//!   samples come from the split folder (the first of [`SPLIT_FOLDERS`] present), whose
//!   classes must be those of `train/`. A root whose only folder is `train/` reads `train/`'s
//!   classes. Otherwise every top-level folder is a class.
//! - Pictures are found at any depth below a class folder, sorted by path; the samples come in
//!   (class, path) order, and the caller shuffles and splits them.
//! - A picture is a file whose extension is one of [`EXTENSIONS`], in any case. Hidden files
//!   and folders (a name starting with `.`) are skipped entirely; other files (a README, files
//!   directly in the root) are skipped and listed in [`FolderData::ignored`].
//! - The size is the one asked for, else the size every picture has, else the most common
//!   size (ties: the larger area, then the larger height); other pictures are resized (see
//!   [`picture::resize`]). The channels are the ones asked for, else 1 when every picture is
//!   grey, else 3. A colour picture in a grey set becomes grey with the ITU-R BT.601 luma
//!   weights (0.299 R + 0.587 G + 0.114 B, as PIL's `convert("L")` and torchvision's
//!   `Grayscale`); a grey picture in a colour set has its plane repeated three times.
//! - A picture that cannot be read (not a picture, corrupt, truncated, too large or too small,
//!   see [`picture`]) is an error naming it, unless [`FolderOptions::skip_bad`]: then it is
//!   listed in [`FolderData::bad`] and the others are read.
//!
//! Reading is two passes over the pictures. The first reads only headers, in parallel: it
//! fixes the size and channels, and finds pictures that are refused from their header before
//! anything large is allocated. The second decodes each picture once, in parallel, resizes it
//! if need be and writes it into its own slice of the one pixel array, allocated once after
//! its size has been checked against [`MAX_BYTES`]. Errors only a full decode can find
//! (truncated data) come from the second pass. No file's bytes are kept past its decode.
//!
//! The walking of a folder on disk is native only; [`plan`] (which file goes where) and
//! [`read_files`] (pictures given as bytes, e.g. files dropped on a browser page) are the same
//! rules on data, single-threaded on wasm32.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::picture::{self, Decoded, Header};
use crate::error::{Error, Result};

/// The extensions of picture files, compared without regard to case.
pub const EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "pgm", "ppm", "pbm", "pnm"];

/// Top-level folders that, next to `train/`, hold the test samples; the first present wins.
pub const SPLIT_FOLDERS: [&str; 4] = ["test", "val", "valid", "validation"];

/// The most bytes of pixels a folder may decode to, train and test together: 8 GiB.
pub const MAX_BYTES: u64 = 8 << 30;

/// How deep folders may nest below the root; deeper is taken for a symbolic-link loop.
#[cfg(not(target_arch = "wasm32"))]
const MAX_DEPTH: usize = 32;

/// How to read a folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// `(height, width)` of every sample; `None` chooses it from the pictures.
    pub size: Option<(u32, u32)>,
    /// 1 (grey) or 3 (RGB); `None` chooses it from the pictures.
    pub channels: Option<u8>,
    /// Lists pictures that cannot be read in [`FolderData::bad`] instead of failing.
    pub skip_bad: bool,
}

/// Samples of one split.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Samples {
    /// `channels · height · width` bytes per sample, one after the other.
    pub pixels: Vec<u8>,
    /// Class index per sample.
    pub labels: Vec<u32>,
    /// Each sample's file, relative to the root.
    pub files: Vec<PathBuf>,
}

impl Samples {
    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A folder's pictures as samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderData {
    /// The class names, sorted; a label indexes this.
    pub classes: Vec<String>,
    /// Every sample is `channels × height × width` bytes, planar (all of channel 0, then
    /// channel 1, …), each plane row-major with the top row first.
    pub channels: u8,
    /// Rows of every sample.
    pub height: u32,
    /// Columns of every sample.
    pub width: u32,
    /// The samples of the root's class folders, or of `train/`.
    pub train: Samples,
    /// From the split folder, when the root has `train/` and one of [`SPLIT_FOLDERS`].
    pub test: Option<Samples>,
    /// The split folder's name (`"test"`, `"val"`, …) when the split came from folders.
    pub split_folder: Option<String>,
    /// One line for a summary: how the size was chosen.
    pub size_rule: String,
    /// How many pictures were resized to the size.
    pub resized: usize,
    /// Files that are not pictures, relative to the root, sorted.
    pub ignored: Vec<PathBuf>,
    /// Pictures that could not be read (with [`FolderOptions::skip_bad`]), relative to the
    /// root, with the reason.
    pub bad: Vec<(PathBuf, String)>,
}

/// Which file goes where: the rules of this module applied to a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Sorted class names.
    pub classes: Vec<String>,
    /// The folder holding the classes, relative to the root: empty, or `train`.
    pub train_folder: PathBuf,
    /// Pictures relative to the root with their class index, in (class, path) order.
    pub train: Vec<(PathBuf, u32)>,
    /// The split folder's pictures, the same way.
    pub test: Option<Vec<(PathBuf, u32)>>,
    /// The split folder's name.
    pub split_folder: Option<String>,
    /// Files that are not pictures, sorted.
    pub ignored: Vec<PathBuf>,
}

/// Whether any component of `rel` is hidden (starts with `.`).
pub fn is_hidden(rel: &Path) -> bool {
    rel.components()
        .any(|c| c.as_os_str().as_encoded_bytes().first() == Some(&b'.'))
}

/// Whether `path`'s extension is one of [`EXTENSIONS`], in any case.
pub fn is_picture(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Applies the rules to a listing: `files` and `folders` relative to `root` (which only
/// names it in errors). `folders` makes empty class folders visible; a listing without
/// folders (dropped files) may leave it empty.
pub fn plan(root: &Path, files: &[PathBuf], folders: &[PathBuf]) -> Result<Plan> {
    let files: Vec<&Path> = visible(files);
    let folders: Vec<&Path> = visible(folders);
    let tops = subfolders(Path::new(""), &files, &folders);
    let split = SPLIT_FOLDERS.iter().find(|s| tops.contains(**s));
    let train_dir = if tops.contains("train") && (split.is_some() || tops.len() == 1) {
        Some("train")
    } else {
        None
    };
    let split = split.filter(|_| train_dir.is_some()).map(|s| s.to_string());
    let train_prefix = PathBuf::from(train_dir.unwrap_or(""));
    let train = section(root, &train_prefix, &files, &folders)?;
    let test = match &split {
        Some(dir) => Some(section(root, Path::new(dir), &files, &folders)?),
        None => None,
    };
    if let Some(test) = &test {
        same_classes(root, &train, test, split.as_deref().unwrap_or(""))?;
    }
    let placed: BTreeSet<&Path> = train
        .values()
        .chain(test.iter().flat_map(|t| t.values()))
        .flatten()
        .map(PathBuf::as_path)
        .collect();
    let ignored = files
        .iter()
        .filter(|f| !placed.contains(*f))
        .map(|f| f.to_path_buf())
        .collect();
    Ok(Plan {
        classes: train.keys().cloned().collect(),
        train_folder: train_prefix,
        train: labelled(&train),
        test: test.as_ref().map(labelled),
        split_folder: split,
        ignored,
    })
}

fn visible(paths: &[PathBuf]) -> Vec<&Path> {
    let mut out: Vec<&Path> = paths
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| !is_hidden(p))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The names of the folders directly below `prefix`, seen as folders or as files' parents.
fn subfolders(prefix: &Path, files: &[&Path], folders: &[&Path]) -> BTreeSet<String> {
    let below = |p: &Path, min_depth: usize| {
        let rest = p.strip_prefix(prefix).ok()?;
        let mut parts = rest.components();
        let first = parts.next()?;
        (rest.components().count() >= min_depth)
            .then(|| first.as_os_str().to_string_lossy().into_owned())
    };
    let from_files = files.iter().filter_map(|f| below(f, 2));
    let from_folders = folders.iter().filter_map(|f| below(f, 1));
    from_files.chain(from_folders).collect()
}

/// The classes below `prefix` (sorted) with their pictures (sorted), every class checked to
/// hold at least one; there must be at least two classes.
fn section(
    root: &Path,
    prefix: &Path,
    files: &[&Path],
    folders: &[&Path],
) -> Result<BTreeMap<String, Vec<PathBuf>>> {
    let base = root.join(prefix);
    let mut classes: BTreeMap<String, Vec<PathBuf>> = subfolders(prefix, files, folders)
        .into_iter()
        .map(|c| (c, Vec::new()))
        .collect();
    for file in files.iter().filter(|f| is_picture(f)) {
        let Ok(rest) = file.strip_prefix(prefix) else {
            continue;
        };
        if rest.components().count() < 2 {
            continue;
        }
        let class = rest
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy());
        if let Some(list) = class.and_then(|c| classes.get_mut(c.as_ref())) {
            list.push(file.to_path_buf());
        }
    }
    let format = |path: PathBuf, field, expected: &str, found: String| Error::Format {
        path,
        field,
        expected: expected.into(),
        found,
    };
    let expected = "a subfolder per class, each with pictures (cat/1.png, dog/1.png, …)";
    match classes.len() {
        0 => {
            return Err(format(
                base,
                "class folders",
                expected,
                "no subfolder".into(),
            ));
        }
        1 => {
            let only = classes.keys().next().cloned().unwrap_or_default();
            let found = format!("a single class folder, `{only}` (at least two are needed)");
            return Err(format(base, "class folders", expected, found));
        }
        _ => {}
    }
    if let Some((class, _)) = classes.iter().find(|(_, pics)| pics.is_empty()) {
        let exts = EXTENSIONS.join(", ");
        let expected = format!("at least one picture ({exts})");
        let found = "no picture".to_string();
        return Err(format(base.join(class), "class folder", &expected, found));
    }
    Ok(classes)
}

/// Checks that the split folder has the classes of `train/`, naming the difference.
fn same_classes(
    root: &Path,
    train: &BTreeMap<String, Vec<PathBuf>>,
    test: &BTreeMap<String, Vec<PathBuf>>,
    split: &str,
) -> Result<()> {
    let list = |names: Vec<&String>| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing = list(train.keys().filter(|c| !test.contains_key(*c)).collect());
    let extra = list(test.keys().filter(|c| !train.contains_key(*c)).collect());
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut found = Vec::new();
    if !missing.is_empty() {
        found.push(format!("{split}/ lacks {missing}"));
    }
    if !extra.is_empty() {
        found.push(format!("{split}/ has {extra}, which train/ lacks"));
    }
    Err(Error::Format {
        path: root.join(split),
        field: "class folders",
        expected: "the same class folders as train/".into(),
        found: found.join("; "),
    })
}

fn labelled(classes: &BTreeMap<String, Vec<PathBuf>>) -> Vec<(PathBuf, u32)> {
    classes
        .values()
        .enumerate()
        .flat_map(|(label, pics)| pics.iter().map(move |p| (p.clone(), label as u32)))
        .collect()
}

/// `Sync` natively, where the passes run on several threads; anything on wasm32, where they
/// run on one (a browser's files are JavaScript objects, which are not `Sync`).
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// Where the pictures' bytes come from: the disk natively, memory, or a browser's files (read
/// in a worker). Errors are `String`s naming the file, as [`picture`]'s. Each picture is asked
/// for twice: its header in the first pass, its pixels in the second.
pub trait Source: MaybeSync {
    /// What errors call the picture at `rel`.
    fn name(&self, rel: &Path) -> String;
    fn header(&self, rel: &Path) -> std::result::Result<Header, String>;
    fn decode(&self, rel: &Path) -> std::result::Result<Decoded, String>;
}

/// Pictures given as bytes, by path relative to the root.
struct Memory<'a> {
    root: &'a Path,
    files: BTreeMap<&'a Path, &'a [u8]>,
}

impl Source for Memory<'_> {
    fn name(&self, rel: &Path) -> String {
        self.root.join(rel).display().to_string()
    }
    fn header(&self, rel: &Path) -> std::result::Result<Header, String> {
        picture::header(&self.name(rel), self.files[rel])
    }
    fn decode(&self, rel: &Path) -> std::result::Result<Decoded, String> {
        picture::decode(&self.name(rel), self.files[rel])
    }
}

/// Reads pictures given as bytes (`files`: path relative to the root, bytes), by the rules of
/// [`read_folder`]; `root` only names the folder in errors. Only the files' paths show the
/// folders, so a class folder with no file at all is not seen.
pub fn read_files(
    root: &Path,
    files: &[(PathBuf, &[u8])],
    opts: &FolderOptions,
) -> Result<FolderData> {
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let files = files.iter().map(|(p, b)| (p.as_path(), *b)).collect();
    read_from(root, &paths, &Memory { root, files }, opts)
}

/// Reads the pictures at `paths` (relative to `root`) from `source`, by the rules of
/// [`read_folder`]; `root` only names the folder in errors. As with [`read_files`], a class
/// folder with no file at all is not seen.
pub fn read_from(
    root: &Path,
    paths: &[PathBuf],
    source: &impl Source,
    opts: &FolderOptions,
) -> Result<FolderData> {
    let plan = plan(root, paths, &[])?;
    read_planned(plan, source, opts)
}

/// Reads the folder at `root` (see the module's rules).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_folder(root: &Path, opts: &FolderOptions) -> Result<FolderData> {
    let meta = std::fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::MissingData(format!("{}: no such folder", root.display()))
        }
        _ => Error::io(root, "cannot open the folder", e),
    })?;
    if !meta.is_dir() {
        return Err(Error::Format {
            path: root.to_path_buf(),
            field: "dataset folder",
            expected: "a folder with a subfolder of pictures per class".into(),
            found: "a file".into(),
        });
    }
    let (mut files, mut folders) = (Vec::new(), Vec::new());
    walk(root, Path::new(""), 0, &mut files, &mut folders)?;
    let plan = plan(root, &files, &folders)?;
    read_planned(plan, &Disk { root }, opts)
}

/// Lists the visible files and folders below `root.join(rel)`, following symbolic links.
#[cfg(not(target_arch = "wasm32"))]
fn walk(
    root: &Path,
    rel: &Path,
    depth: usize,
    files: &mut Vec<PathBuf>,
    folders: &mut Vec<PathBuf>,
) -> Result<()> {
    let dir = root.join(rel);
    if depth > MAX_DEPTH {
        return Err(Error::Format {
            path: dir,
            field: "folder depth",
            expected: format!("folders at most {MAX_DEPTH} deep"),
            found: "deeper (a symbolic-link loop?)".into(),
        });
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, "cannot list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, "cannot list", e))?;
        let child = rel.join(entry.file_name());
        if is_hidden(Path::new(&entry.file_name())) {
            continue;
        }
        let path = entry.path();
        // `metadata` follows a symbolic link; `entry.file_type` would not.
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, "cannot read", e))?;
        if meta.is_dir() {
            walk(root, &child, depth + 1, files, folders)?;
            folders.push(child);
        } else {
            files.push(child);
        }
    }
    Ok(())
}

/// Pictures on disk below `root`.
#[cfg(not(target_arch = "wasm32"))]
struct Disk<'a> {
    root: &'a Path,
}

#[cfg(not(target_arch = "wasm32"))]
impl Source for Disk<'_> {
    fn name(&self, rel: &Path) -> String {
        self.root.join(rel).display().to_string()
    }
    fn header(&self, rel: &Path) -> std::result::Result<Header, String> {
        let name = self.name(rel);
        let file = std::fs::File::open(self.root.join(rel))
            .map_err(|e| format!("{name}: cannot open: {e}"))?;
        let len = file
            .metadata()
            .map_err(|e| format!("{name}: cannot read: {e}"))?
            .len();
        picture::header_reader(&name, len, std::io::BufReader::new(file))
    }
    fn decode(&self, rel: &Path) -> std::result::Result<Decoded, String> {
        let name = self.name(rel);
        let bytes =
            std::fs::read(self.root.join(rel)).map_err(|e| format!("{name}: cannot read: {e}"))?;
        picture::decode(&name, &bytes)
    }
}

/// The two passes over a plan's pictures.
fn read_planned(plan: Plan, source: &impl Source, opts: &FolderOptions) -> Result<FolderData> {
    check_channels(opts.channels)?;
    let mut bad = Vec::new();
    let train = headers(&plan.train, source, opts, &mut bad)?;
    let test = match &plan.test {
        Some(list) => Some(headers(list, source, opts, &mut bad)?),
        None => None,
    };
    let all: Vec<Header> = train
        .iter()
        .chain(test.iter().flatten())
        .map(|p| p.1)
        .collect();
    let (height, width) = choose_size(&all, opts.size)?;
    let channels = opts.channels.unwrap_or_else(|| choose_channels(&all));
    let shape = Shape {
        channels,
        height,
        width,
    };
    check_total(all.len(), shape)?;
    let classes = &plan.classes;
    let (train, train_resized) = decode_all(&train, source, shape, opts, &mut bad)?;
    check_classes(&train, classes, source, &plan.train_folder)?;
    let (test, test_resized) = match test {
        Some(list) => {
            let (samples, resized) = decode_all(&list, source, shape, opts, &mut bad)?;
            let folder = PathBuf::from(plan.split_folder.as_deref().unwrap_or(""));
            check_classes(&samples, classes, source, &folder)?;
            (Some(samples), resized)
        }
        None => (None, 0),
    };
    let resized = train_resized + test_resized;
    Ok(FolderData {
        size_rule: size_rule(&all, opts.size, (height, width), resized),
        classes: plan.classes,
        channels,
        height,
        width,
        train,
        test,
        split_folder: plan.split_folder,
        resized,
        ignored: plan.ignored,
        bad,
    })
}

/// A picture to read: its path, label and header.
type Entry = (PathBuf, Header, u32);

/// The first pass: every picture's header, in parallel. A refused picture is an error, or
/// with `skip_bad` goes to `bad`.
fn headers(
    list: &[(PathBuf, u32)],
    source: &impl Source,
    opts: &FolderOptions,
    bad: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<Entry>> {
    let found = par_map(list, |(path, _)| source.header(path));
    let mut out = Vec::with_capacity(list.len());
    for ((path, label), header) in list.iter().zip(found) {
        match header {
            Ok(h) => out.push((path.clone(), h, *label)),
            Err(why) => refuse(source, path, why, opts, bad)?,
        }
    }
    Ok(out)
}

/// A picture that cannot be read: an error, or with `skip_bad` an entry in `bad`.
fn refuse(
    source: &impl Source,
    path: &Path,
    why: String,
    opts: &FolderOptions,
    bad: &mut Vec<(PathBuf, String)>,
) -> Result<()> {
    let name = source.name(path);
    let reason = why
        .strip_prefix(&format!("{name}: "))
        .unwrap_or(&why)
        .to_string();
    if !opts.skip_bad {
        return Err(Error::Format {
            path: PathBuf::from(name),
            field: "picture",
            expected: "a picture that decodes (PNG, JPEG, BMP or PGM/PPM)".into(),
            found: reason,
        });
    }
    bad.push((path.to_path_buf(), reason));
    Ok(())
}

/// Checks that every class still has a sample once bad pictures are left out; `folder` is
/// the classes' folder relative to the root.
fn check_classes(
    samples: &Samples,
    classes: &[String],
    source: &impl Source,
    folder: &Path,
) -> Result<()> {
    let mut seen = vec![false; classes.len()];
    for &l in &samples.labels {
        seen[l as usize] = true;
    }
    match seen.iter().position(|s| !s) {
        None => Ok(()),
        Some(class) => Err(Error::Format {
            path: PathBuf::from(source.name(&folder.join(&classes[class]))),
            field: "class folder",
            expected: "at least one picture that can be read".into(),
            found: "none: every one is bad".into(),
        }),
    }
}

fn check_channels(channels: Option<u8>) -> Result<()> {
    match channels {
        None | Some(1) | Some(3) => Ok(()),
        Some(c) => Err(Error::arg("channels", "1 (grey) or 3 (RGB)", c)),
    }
}

/// The size of every sample, `(height, width)`: `asked`, else the most common size of
/// `headers` (ties: the larger area, then the larger height).
pub fn choose_size(headers: &[Header], asked: Option<(u32, u32)>) -> Result<(u32, u32)> {
    if let Some((h, w)) = asked {
        let ok = |s| (1..=picture::MAX_SIDE).contains(&s);
        if !ok(h) || !ok(w) {
            let expected = format!("a height and width from 1 to {}", picture::MAX_SIDE);
            return Err(Error::arg("size", expected, format!("{h}×{w}")));
        }
        return Ok((h, w));
    }
    let counts = size_counts(headers);
    let best = counts
        .iter()
        .max_by_key(|&(&(h, w), &n)| (n, u64::from(h) * u64::from(w), h));
    best.map(|(&size, _)| size)
        .ok_or_else(|| Error::MissingData("no picture to choose a size from".into()))
}

fn size_counts(headers: &[Header]) -> BTreeMap<(u32, u32), usize> {
    let mut counts = BTreeMap::new();
    for h in headers {
        *counts.entry((h.height, h.width)).or_insert(0) += 1;
    }
    counts
}

/// The channels of every sample: 1 when every picture is grey, else 3.
pub fn choose_channels(headers: &[Header]) -> u8 {
    if headers.iter().all(|h| h.grey) { 1 } else { 3 }
}

/// The summary line saying how the size was chosen; sizes are written width×height.
fn size_rule(
    headers: &[Header],
    asked: Option<(u32, u32)>,
    (h, w): (u32, u32),
    resized: usize,
) -> String {
    let resized_text = match resized {
        0 => String::new(),
        r => format!("; {} resized", thousands(r)),
    };
    if asked.is_some() {
        return format!("{w}×{h} as asked{resized_text}");
    }
    let counts = size_counts(headers);
    if counts.len() == 1 {
        return format!("every picture is {w}×{h}");
    }
    let n = counts.get(&(h, w)).copied().unwrap_or(0);
    format!(
        "the most common size {w}×{h} ({} of {} pictures){resized_text}",
        thousands(n),
        thousands(headers.len())
    )
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The form of every sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    channels: u8,
    height: u32,
    width: u32,
}

impl Shape {
    fn bytes(self) -> u64 {
        u64::from(self.channels) * u64::from(self.height) * u64::from(self.width)
    }
}

/// Refuses `n` samples of `shape` that come to more than [`MAX_BYTES`] or than fits a `usize`.
fn check_total(n: usize, shape: Shape) -> Result<()> {
    let total = (n as u128) * u128::from(shape.bytes());
    let limit = MAX_BYTES.min(usize::MAX as u64);
    if total <= u128::from(limit) {
        return Ok(());
    }
    let Shape {
        channels: c,
        height: h,
        width: w,
    } = shape;
    Err(Error::TooLarge {
        what: format!("{n} samples of {c}×{h}×{w} bytes"),
        needed: format!("{total} bytes"),
        limit: format!("{limit} bytes"),
    })
}

/// The second pass: decodes every picture straight into its sample, in parallel. Returns the
/// samples and how many were resized.
fn decode_all(
    list: &[Entry],
    source: &impl Source,
    shape: Shape,
    opts: &FolderOptions,
    bad: &mut Vec<(PathBuf, String)>,
) -> Result<(Samples, usize)> {
    let sample = shape.bytes() as usize;
    let mut pixels = vec![0u8; list.len() * sample];
    let results = par_fill(&mut pixels, sample, list, |(path, _, _), out| {
        let decoded = source.decode(path)?;
        Ok(pack(
            &decoded,
            shape.channels,
            shape.height,
            shape.width,
            out,
        ))
    });
    let mut keep = Vec::with_capacity(list.len());
    let mut resized = 0;
    for ((path, _, _), result) in list.iter().zip(results) {
        keep.push(match result {
            Ok(r) => {
                resized += usize::from(r);
                true
            }
            Err(why) => {
                refuse(source, path, why, opts, bad)?;
                false
            }
        });
    }
    let mut samples = Samples {
        pixels,
        labels: list.iter().map(|e| e.2).collect(),
        files: list.iter().map(|e| e.0.clone()).collect(),
    };
    if keep.iter().any(|k| !k) {
        compact(&mut samples, &keep, sample);
    }
    Ok((samples, resized))
}

/// Leaves out the samples whose `keep` is false, moving the others down in place.
fn compact(samples: &mut Samples, keep: &[bool], sample: usize) {
    let mut to = 0;
    for (from, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
        if from != to {
            samples
                .pixels
                .copy_within(from * sample..(from + 1) * sample, to * sample);
            samples.labels[to] = samples.labels[from];
            samples.files.swap(to, from);
        }
        to += 1;
    }
    samples.pixels.truncate(to * sample);
    samples.labels.truncate(to);
    samples.files.truncate(to);
}

/// Writes `src` into `out` as one sample of `channels × height × width` bytes, planar:
/// resized if its size differs (returns whether it was), colour made grey with the BT.601
/// luma weights, grey repeated to three planes.
pub fn pack(src: &Decoded, channels: u8, height: u32, width: u32, out: &mut [u8]) -> bool {
    let plane = height as usize * width as usize;
    assert_eq!(out.len(), plane * usize::from(channels), "a sample's bytes");
    let resized = (src.height, src.width) != (height, width);
    // Grey first when reducing: one plane to resize instead of three.
    let grey;
    let src = if src.channels == 3 && channels == 1 {
        grey = luma(src);
        &grey
    } else {
        src
    };
    let sized;
    let src = if resized {
        sized = picture::resize(src, height, width);
        &sized
    } else {
        src
    };
    match (src.channels, channels) {
        (1, _) => out
            .chunks_exact_mut(plane)
            .for_each(|p| p.copy_from_slice(&src.pixels)),
        (3, 3) => {
            for (i, px) in src.pixels.chunks_exact(3).enumerate() {
                out[i] = px[0];
                out[plane + i] = px[1];
                out[2 * plane + i] = px[2];
            }
        }
        (c, to) => unreachable!("{c} channels to {to}"),
    }
    resized
}

/// `src` (RGB) as grey: ITU-R BT.601 luma, `0.299 R + 0.587 G + 0.114 B` rounded, in the
/// fixed point PIL uses (weights in 1/65536).
fn luma(src: &Decoded) -> Decoded {
    let pixels = src
        .pixels
        .chunks_exact(3)
        .map(|p| {
            let y = 19595 * u32::from(p[0]) + 38470 * u32::from(p[1]) + 7471 * u32::from(p[2]);
            ((y + 0x8000) >> 16) as u8
        })
        .collect();
    Decoded {
        width: src.width,
        height: src.height,
        channels: 1,
        pixels,
    }
}

/// `f` over `items`, in parallel where there are threads, results in order.
#[cfg(not(target_arch = "wasm32"))]
fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    use rayon::prelude::*;
    items.par_iter().map(&f).collect()
}

#[cfg(target_arch = "wasm32")]
fn par_map<T, U>(items: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
    items.iter().map(f).collect()
}

/// `f` over `items`, each writing its own `chunk` bytes of `out`, in parallel where there are
/// threads; results in order.
#[cfg(not(target_arch = "wasm32"))]
fn par_fill<T: Sync, U: Send>(
    out: &mut [u8],
    chunk: usize,
    items: &[T],
    f: impl Fn(&T, &mut [u8]) -> U + Sync,
) -> Vec<U> {
    use rayon::prelude::*;
    out.par_chunks_mut(chunk)
        .zip(items.par_iter())
        .map(|(o, item)| f(item, o))
        .collect()
}

#[cfg(target_arch = "wasm32")]
fn par_fill<T, U>(
    out: &mut [u8],
    chunk: usize,
    items: &[T],
    f: impl Fn(&T, &mut [u8]) -> U,
) -> Vec<U> {
    out.chunks_mut(chunk)
        .zip(items)
        .map(|(o, item)| f(item, o))
        .collect()
}

#[cfg(test)]
mod tests;
