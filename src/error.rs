//! One error type for the whole crate. Every message says what went wrong, where, what was
//! expected and what was found, so that a user can act on it without reading the source.

use std::path::PathBuf;

/// Everything soma can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network description is not one soma can build.
    #[error("invalid network: {0}")]
    Network(String),

    /// A training or evaluation argument is out of range.
    #[error("invalid argument `{name}`: expected {expected}, got {got}")]
    Argument {
        name: &'static str,
        expected: String,
        got: String,
    },

    /// A file could not be opened, read or written.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A data file is malformed: `field` is what was being checked.
    #[error("{}: bad {field}: expected {expected}, found {found}", path.display())]
    Format {
        path: PathBuf,
        field: &'static str,
        expected: String,
        found: String,
    },

    /// Data does not fit what it is used for; `reason` says what was found and what to do.
    #[error("{}: {reason}", path.display())]
    Data { path: PathBuf, reason: String },

    /// Data files are missing and could not be obtained.
    #[error("{0}")]
    MissingData(String),

    /// A download failed or did not match its checksum.
    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },

    /// A checkpoint cannot be read, or does not fit the network it is loaded into.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },

    /// Shapes of two things that must agree do not.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },

    /// No GPU adapter (or none meeting the engine's needs) was found.
    #[error("no usable GPU adapter: {0}")]
    NoAdapter(String),

    /// The GPU reported an error; `context` names the kernel, buffer or operation.
    #[error("GPU error in {context}: {message}")]
    Gpu { context: String, message: String },

    /// Something would need more memory than there is: `what` needs `needed`, over `limit`.
    #[error("{what} needs {needed}, more than {limit}")]
    TooLarge {
        what: String,
        needed: String,
        limit: String,
    },

    /// The loss stopped being a finite number: training has diverged.
    #[error(
        "training diverged: the loss became {loss} in epoch {epoch}, steps {first_step}–{last_step} \
         (counted from 1 within the epoch) at learning rate {lr:?}; try a lower learning rate"
    )]
    Diverged {
        epoch: u64,
        first_step: usize,
        last_step: usize,
        lr: f32,
        loss: f64,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the file and what was being done to it.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// Builds an [`Error::Format`]: `path` is malformed in `field`.
    pub fn format(
        path: impl Into<PathBuf>,
        field: &'static str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Error::Format {
            path: path.into(),
            field,
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// Builds an [`Error::Data`]: the data at `path` cannot be used, for `reason`.
    pub fn data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Argument`].
    pub fn arg(name: &'static str, expected: impl Into<String>, got: impl ToString) -> Self {
        Error::Argument {
            name,
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// Builds an [`Error::Shape`].
    pub fn shape(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    /// Builds an [`Error::Gpu`].
    pub fn gpu(context: impl Into<String>, message: impl ToString) -> Self {
        Error::Gpu {
            context: context.into(),
            message: message.to_string(),
        }
    }
}
