//! Where an array's bytes come from, and how errors name it. A [`Source`] carries the path (or
//! `archive: member name`) that every error message starts with, and an [`Origin`] that decides
//! what a failed read means: a slice in memory cannot fail, a file that ends early shrank while
//! being read, and an `.npz` member that ends early or fails to inflate is corrupt data, not an
//! I/O error.

use std::borrow::Cow;
use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// Where the bytes come from, which decides what a read error means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// A slice in memory: it cannot fail to read.
    Bytes,
    /// A file on disk: a failed read is an I/O error.
    File,
    /// An `.npz` member: a failed read is most likely corrupt compressed data.
    Member,
}

/// What errors call the array being read, and where its bytes come from.
pub(super) struct Source<'a> {
    pub(super) path: Cow<'a, Path>,
    pub(super) origin: Origin,
}

impl<'a> Source<'a> {
    pub(super) fn new(path: Cow<'a, Path>, origin: Origin) -> Self {
        Source { path, origin }
    }

    pub(super) fn format(
        &self,
        field: &'static str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Error {
        Error::Format {
            path: self.path.to_path_buf(),
            field,
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// A read that failed after the sizes were checked: the file shrank, a member's data
    /// ended before its declared size, the compressed data is corrupt, or the disk failed.
    pub(super) fn read_error(&self, e: io::Error) -> Error {
        match (e.kind(), self.origin) {
            (io::ErrorKind::UnexpectedEof, Origin::Member) => self.format(
                "npz member",
                "as many bytes as the archive declares for it",
                "fewer: the member's data ends early",
            ),
            (io::ErrorKind::UnexpectedEof, _) => self.format(
                "data length",
                "as many bytes as the file's size said",
                "fewer: the file ended early (was it changed while being read?)",
            ),
            (io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput, Origin::Member) => {
                self.format("npz member", "intact compressed data", e.to_string())
            }
            (_, Origin::Member) => Error::io(self.path.to_path_buf(), "read npz file", e),
            _ => Error::io(self.path.to_path_buf(), "read npy file", e),
        }
    }

    pub(super) fn read_exact(&self, r: &mut impl Read, buf: &mut [u8]) -> Result<()> {
        r.read_exact(buf).map_err(|e| self.read_error(e))
    }

    pub(super) fn too_large(&self, what: &str, needed: u64, limit: u64) -> Error {
        Error::TooLarge {
            what: format!("{}: {what}", self.path.display()),
            needed: format!("{needed} bytes"),
            limit: format!("{limit} bytes"),
        }
    }
}
