//! Which dataset a run or a model is about: names and defaults only, nothing that touches
//! the disk (that is `locate`, native-only), so that it is available in a browser too.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Which dataset to look for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// Handwritten digits (LeCun, Cortes, Burges).
    Mnist,
    /// Zalando's Fashion-MNIST: same format, 10 clothing classes.
    Fashion,
}

impl DatasetKind {
    /// The environment variable that may point at the files.
    pub fn env_var(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST_DIR",
            DatasetKind::Fashion => "FASHION_MNIST_DIR",
        }
    }

    /// The default directory, relative to the working directory; downloads go there.
    pub fn default_dir(self) -> PathBuf {
        match self {
            DatasetKind::Mnist => PathBuf::from("./data/mnist"),
            DatasetKind::Fashion => PathBuf::from("./data/fashion-mnist"),
        }
    }

    /// The dataset's name as people write it.
    pub fn title(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::Fashion => "Fashion-MNIST",
        }
    }
}

impl FromStr for DatasetKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion" | "fashion-mnist" => Ok(DatasetKind::Fashion),
            _ => Err(Error::arg("dataset", "mnist or fashion", s)),
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::Fashion => "fashion",
        })
    }
}
