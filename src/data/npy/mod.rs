//! NumPy `.npy` arrays and `.npz` archives of them, read without Python.
//!
//! An `.npy` file is a 6-byte magic (`\x93NUMPY`), a version (1.0, 2.0 or 3.0), a header length
//! (2 bytes for 1.0, 4 for the others), a header that is a Python dict literal naming `descr`
//! (the dtype), `fortran_order` and `shape`, and then the raw elements. An `.npz` file is a zip
//! archive of such files, stored (`np.savez`) or deflated (`np.savez_compressed`), zip64 or not.
//!
//! Values are widened for training ([`Values`]): bytes and booleans stay bytes, integers become
//! `i64`, floats become `f32` (`f2` exactly, `f8` rounded to nearest). Fortran-ordered arrays are
//! transposed, so callers always get C (row-major) order. Object arrays are refused, since
//! reading them means unpickling, which runs code the file chooses; so are structured, string,
//! complex and date dtypes, which no soma dataset holds.
//!
//! The input is untrusted, so every size a header claims is checked against the bytes actually
//! present before anything is allocated from it, and nothing panics on any input:
//! - the header is at most [`MAX_HEADER_LEN`] bytes and must lie inside the file;
//! - the shape's element count must not overflow, and the data must be exactly
//!   elements × itemsize bytes: fewer is a truncated file, more is trailing garbage;
//! - an array whose data in the file, or whose widened values, exceed [`MAX_NPY_BYTES`] is
//!   refused with [`Error::TooLarge`] before reading;
//! - in an `.npz`, every member's declared size is checked before any decompression: their
//!   sum must stay within [`MAX_NPZ_BYTES`], and a deflated member may not claim more than
//!   deflate's best ratio ([`DEFLATE_MAX_RATIO`]) allows from its compressed size. The member
//!   is then read through a reader bounded to its declared size + 1 byte, and must yield
//!   exactly its declared size: a member whose size lies (a "zip bomb") is an error, not an
//!   allocation.
//!
//! Speed: the payload is read once. A C-ordered array whose bytes are already the final
//! values (`|u1`, `|b1`, and native-endian `f4` and `i8`) is read straight into its final
//! vector; other dtypes are converted in chunks of [`CHUNK_BYTES`] through one reused buffer.
//! On Linux, large buffers are advised to use transparent huge pages before they are filled,
//! as NumPy's are: otherwise one page fault per 4 KB dominates the read. A Fortran-ordered
//! array costs a second buffer of its size for the transpose. `.npz` members are read from
//! the decompressor (or, stored, from the file) straight into their arrays.
//!
//! The byte forms ([`read_npy_bytes`], [`read_npz_bytes`]) serve the browser, which hands over
//! a fetched or dropped file's bytes; the file forms are native-only.

mod elements;
mod header;
mod npz;
mod source;
#[cfg(test)]
mod tests;

#[cfg(not(target_arch = "wasm32"))]
use std::io;
use std::io::Cursor;
use std::path::Path;

#[cfg(not(target_arch = "wasm32"))]
use crate::error::Error;
use crate::error::Result;
use elements::read_npy;
use npz::read_npz;
use source::{Origin, Source};

/// The most bytes an array's data may take, in the file or widened in memory.
pub const MAX_NPY_BYTES: u64 = 16 << 30;

/// The most bytes the members of one `.npz` may declare, all together.
pub const MAX_NPZ_BYTES: u64 = 16 << 30;

/// The most a header may take. NumPy's own reader refuses headers over 10 000 bytes; a
/// header naming the longest shape NumPy allows (64 axes) takes well under 2 KB.
pub const MAX_HEADER_LEN: usize = 64 << 10;

/// Deflate's best ratio: a 258-byte match costs at least 2 bits (1 for the length code,
/// 1 for the distance code), so `k` compressed bytes never inflate to more than 1032·k.
pub const DEFLATE_MAX_RATIO: u64 = 1032;

/// The most axes a shape may have (NumPy's own limit, `NPY_MAXDIMS`).
const MAX_DIMS: usize = 64;

/// How many bytes one conversion step reads: small enough to stay in cache, large enough
/// that the per-chunk overhead vanishes.
pub const CHUNK_BYTES: usize = 1 << 20;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Element values, widened for training: bytes stay compact, integers widen to i64, floats
/// become f32.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// `|u1`, and `|b1` as 0 or 1.
    U8(Vec<u8>),
    /// Every other integer dtype (`i1`–`i8`, `u2`–`u8`).
    Int(Vec<i64>),
    /// `f2`, `f4` and `f8`.
    F32(Vec<f32>),
}

impl Values {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::U8(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::F32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One array, in C (row-major) order whatever order the file used.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// The extent of each axis; empty for a 0-d array (one element).
    pub shape: Vec<usize>,
    pub values: Values,
    /// The dtype as the file wrote it, e.g. "<i8".
    pub dtype: String,
}

impl Array {
    /// The number of elements (the product of `shape`).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no elements (some axis is 0).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Reads an `.npy` file's bytes; `name` is what errors call the source (a path or a browser
/// file name).
pub fn read_npy_bytes(name: &Path, bytes: &[u8]) -> Result<Array> {
    let source = Source::new(name.into(), Origin::Bytes);
    read_npy(&source, &mut { bytes }, bytes.len() as u64)
}

/// Reads an `.npz` archive's bytes: each member as (its name without ".npy", its array), in
/// archive order.
pub fn read_npz_bytes(name: &Path, bytes: &[u8]) -> Result<Vec<(String, Array)>> {
    read_npz(name, Cursor::new(bytes))
}

/// Reads an `.npy` file.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_npy(path: &Path) -> Result<Array> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, "open npy file", e))?;
    let total = file
        .metadata()
        .map_err(|e| Error::io(path, "read npy file", e))?
        .len();
    read_npy(&Source::new(path.into(), Origin::File), &mut file, total)
}

/// Reads an `.npz` file: each member as (its name without ".npy", its array), in archive order.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_npz(path: &Path) -> Result<Vec<(String, Array)>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, "open npz file", e))?;
    read_npz(path, io::BufReader::new(file))
}
