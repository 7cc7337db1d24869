//! Finding the four IDX files of MNIST or Fashion-MNIST, and downloading them when allowed.
//!
//! Search order: the directory given explicitly (`--data DIR`; an error if it lacks files, never a
//! silent fallback), then `$MNIST_DIR` (`$FASHION_MNIST_DIR`), then `./data/mnist`
//! (`./data/fashion-mnist`), and for Fashion-MNIST `/usr/share/datasets/fashion-mnist` (Debian's
//! `dataset-fashion-mnist` package). Each file may be gzip (`NAME.gz`) or raw (`NAME`).

use std::path::{Path, PathBuf};

use super::{Dataset, DatasetKind, download, idx};
use crate::error::{Error, Result};

impl DatasetKind {
    /// Directories searched after the default one (system packages).
    fn system_dirs(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &[],
            DatasetKind::Fashion => &["/usr/share/datasets/fashion-mnist"],
        }
    }

    fn mirrors(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => download::MNIST_MIRRORS,
            DatasetKind::Fashion => download::FASHION_MIRRORS,
        }
    }

    fn remotes(self) -> &'static [download::Remote] {
        match self {
            DatasetKind::Mnist => &download::MNIST_FILES,
            DatasetKind::Fashion => &download::FASHION_FILES,
        }
    }
}

/// The file names, without `.gz`: train images, train labels, test images, test labels.
const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The four IDX files of a dataset, found in `dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MnistFiles {
    pub dir: PathBuf,
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

impl MnistFiles {
    /// Finds the four files in `dir` (each as `NAME.gz` or `NAME`); `Err` lists the names missing.
    pub fn in_dir(dir: &Path) -> Result<MnistFiles, Vec<&'static str>> {
        let mut found = Vec::with_capacity(4);
        let mut missing = Vec::new();
        for name in NAMES {
            let gz = dir.join(format!("{name}.gz"));
            let raw = dir.join(name);
            if gz.is_file() {
                found.push(gz);
            } else if raw.is_file() {
                found.push(raw);
            } else {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            return Err(missing);
        }
        let mut it = found.into_iter();
        let mut next = || it.next().unwrap_or_default();
        Ok(MnistFiles {
            dir: dir.to_path_buf(),
            train_images: next(),
            train_labels: next(),
            test_images: next(),
            test_labels: next(),
        })
    }

    /// Reads the training and test sets (10 classes each), in that order.
    pub fn load(&self) -> Result<(Dataset, Dataset)> {
        let train = idx::load(&self.train_images, &self.train_labels, 10)?;
        let test = idx::load(&self.test_images, &self.test_labels, 10)?;
        Ok((train, test))
    }
}

/// Finds the files of `kind`: in `explicit` if given (an error if they are not all there), else in
/// `$MNIST_DIR`/`$FASHION_MNIST_DIR`, the default `./data/…` directory and system directories.
/// When none holds them and `download` is true, downloads them into the default directory. The
/// error lists, for each directory searched, the files missing, and how to supply them.
pub fn locate(kind: DatasetKind, explicit: Option<&Path>, download: bool) -> Result<MnistFiles> {
    let title = kind.title();
    let env = kind.env_var();
    if let Some(dir) = explicit {
        return MnistFiles::in_dir(dir).map_err(|missing| {
            Error::MissingData(format!(
                "{title} files not found in {} (given with --data): missing {}. Each file may be \
                 gzip (NAME.gz) or raw (NAME).",
                dir.display(),
                list(&missing)
            ))
        });
    }

    let mut searched = Vec::new();
    let mut candidates = Vec::new();
    match std::env::var_os(env) {
        Some(v) if !v.is_empty() => candidates.push((PathBuf::from(v), format!("${env}"))),
        _ => searched.push(format!("  ${env} is not set")),
    }
    candidates.push((kind.default_dir(), "default".to_string()));
    for d in kind.system_dirs() {
        candidates.push((PathBuf::from(d), "system package".to_string()));
    }
    for (dir, source) in &candidates {
        match MnistFiles::in_dir(dir) {
            Ok(files) => return Ok(files),
            Err(missing) => searched.push(describe(dir, source, &missing)),
        }
    }

    let default = kind.default_dir();
    let mut failure = String::new();
    if download {
        eprintln!(
            "soma: {title} not found; downloading into {}",
            default.display()
        );
        match download::fetch(kind.mirrors(), &default, kind.remotes()) {
            Ok(()) => match MnistFiles::in_dir(&default) {
                Ok(files) => return Ok(files),
                Err(missing) => {
                    failure = format!(
                        "\nThe download finished but {} still lacks {}.",
                        default.display(),
                        list(&missing)
                    )
                }
            },
            Err(e) => failure = format!("\nThe download failed: {e}"),
        }
    }
    let how = if download {
        format!("--data DIR or {env}=DIR")
    } else {
        format!(
            "--data DIR, {env}=DIR, or allow the download into {}",
            default.display()
        )
    };
    Err(Error::MissingData(format!(
        "{title} files not found. Searched:\n{}{failure}\nSupply the four files (gzip NAME.gz or \
         raw NAME) with {how}.",
        searched.join("\n")
    )))
}

fn describe(dir: &Path, source: &str, missing: &[&str]) -> String {
    let exists = if dir.is_dir() {
        ""
    } else {
        ", which does not exist"
    };
    format!(
        "  {} ({source}{exists}): missing {}",
        dir.display(),
        list(missing)
    )
}

fn list(missing: &[&str]) -> String {
    missing
        .iter()
        .map(|m| format!("{m}[.gz]"))
        .collect::<Vec<_>>()
        .join(", ")
}
