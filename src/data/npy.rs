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

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

// ---------------------------------------------------------------------------------------------
// Where bytes come from, and how errors name it.

/// Where the bytes come from, which decides what a read error means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// A slice in memory: it cannot fail to read.
    Bytes,
    /// A file on disk: a failed read is an I/O error.
    File,
    /// An `.npz` member: a failed read is most likely corrupt compressed data.
    Member,
}

/// What errors call the array being read, and where its bytes come from.
struct Source<'a> {
    path: Cow<'a, Path>,
    origin: Origin,
}

impl<'a> Source<'a> {
    fn new(path: Cow<'a, Path>, origin: Origin) -> Self {
        Source { path, origin }
    }

    fn format(
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
    fn read_error(&self, e: io::Error) -> Error {
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

    fn read_exact(&self, r: &mut impl Read, buf: &mut [u8]) -> Result<()> {
        r.read_exact(buf).map_err(|e| self.read_error(e))
    }

    fn too_large(&self, what: &str, needed: u64, limit: u64) -> Error {
        Error::TooLarge {
            what: format!("{}: {what}", self.path.display()),
            needed: format!("{needed} bytes"),
            limit: format!("{limit} bytes"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The header.

/// The dtypes soma reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Signed,
    Unsigned,
    Float,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dtype {
    kind: Kind,
    /// Bytes per element: 1, 2, 4 or 8.
    size: usize,
    /// Whether multi-byte elements are stored most significant byte first.
    big_endian: bool,
}

impl Dtype {
    /// Bytes per element once widened ([`Values`]).
    fn widened_size(self) -> usize {
        match (self.kind, self.size) {
            (Kind::Bool, _) | (Kind::Unsigned, 1) => 1,
            (Kind::Float, _) => 4,
            _ => 8,
        }
    }
}

/// What the header says.
#[derive(Debug)]
struct Header {
    descr: String,
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<usize>,
}

const DTYPES_READ: &str = "a numeric dtype: |u1, |b1, |i1, i2, i4, i8, u2, u4, u8, f2, f4 or f8 \
                           (with <, > or = byte order)";

/// Parses a `descr` string such as `<f4` into the dtype it names.
fn parse_descr(src: &Source, descr: &str) -> Result<Dtype> {
    if descr.contains('O') {
        return Err(src.format(
            "dtype",
            "a numeric dtype (soma never unpickles object arrays: they can run arbitrary code)",
            format!("object dtype {descr:?}"),
        ));
    }
    let refuse = |why: &str| src.format("dtype", DTYPES_READ, format!("{descr:?} ({why})"));
    if descr.starts_with(['[', '(', '{']) {
        return Err(src.format(
            "dtype",
            DTYPES_READ,
            format!("{descr} (structured dtypes are not read)"),
        ));
    }
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(|| refuse("empty"))?;
    let kind = chars.next().ok_or_else(|| refuse("no type code"))?;
    let size: usize = match chars.as_str() {
        "1" => 1,
        "2" => 2,
        "4" => 4,
        "8" => 8,
        _ => return Err(refuse("unsupported size")),
    };
    let kind = match kind {
        'b' if size == 1 => Kind::Bool,
        'i' => Kind::Signed,
        'u' => Kind::Unsigned,
        'f' if size > 1 => Kind::Float,
        'U' | 'S' | 'a' => return Err(refuse("strings are not read")),
        'c' => return Err(refuse("complex numbers are not read")),
        'M' | 'm' => return Err(refuse("dates and times are not read")),
        _ => return Err(refuse("unsupported type")),
    };
    let big_endian = match order {
        '<' => false,
        '>' => true,
        '=' => cfg!(target_endian = "big"),
        '|' if size == 1 => false,
        '|' => return Err(refuse("a multi-byte dtype needs a byte order")),
        _ => return Err(refuse("no byte order character")),
    };
    Ok(Dtype {
        kind,
        size,
        big_endian,
    })
}

/// A strict reader of the header's Python dict literal: exactly the keys `descr`,
/// `fortran_order` and `shape`, in any order, with Python's optional spaces and trailing commas.
struct DictParser<'s, 'a> {
    text: &'s str,
    pos: usize,
    src: &'s Source<'a>,
}

impl<'s, 'a> DictParser<'s, 'a> {
    fn error(&self, expected: &str) -> Error {
        let rest: String = self.text[self.pos..].chars().take(40).collect();
        let found = if rest.is_empty() {
            "the end of the header".to_string()
        } else {
            format!(
                "{rest:?} at byte {} of the header {:?}",
                self.pos,
                self.text.trim_end()
            )
        };
        self.src.format("npy header", expected.to_string(), found)
    }

    fn skip_spaces(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len();
    }

    /// Skips spaces, then consumes `c` if it comes next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_spaces();
        if self.text[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, expected: &str) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    /// A Python string literal in single or double quotes, without escapes.
    fn string(&mut self) -> Result<&'s str> {
        self.skip_spaces();
        let rest = &self.text[self.pos..];
        let quote = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(self.error("a quoted string")),
        };
        let body = &rest[1..];
        let end = body
            .find([quote, '\\'])
            .filter(|&i| body[i..].starts_with(quote))
            .ok_or_else(|| self.error("a closed string without escapes"))?;
        self.pos += end + 2;
        Ok(&body[..end])
    }

    fn boolean(&mut self) -> Result<bool> {
        self.skip_spaces();
        for (word, value) in [("True", true), ("False", false)] {
            if self.text[self.pos..].starts_with(word) {
                self.pos += word.len();
                return Ok(value);
            }
        }
        Err(self.error("True or False"))
    }

    /// A non-negative Python int; `L` (Python 2's long suffix, in old files) is allowed.
    fn int(&mut self) -> Result<usize> {
        self.skip_spaces();
        let rest = &self.text[self.pos..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(self.error("an axis length (a non-negative integer)"));
        }
        let value = rest[..digits]
            .parse::<usize>()
            .map_err(|_| self.error("an axis length that fits in usize"))?;
        self.pos += digits;
        if self.text[self.pos..].starts_with('L') {
            self.pos += 1;
        }
        Ok(value)
    }

    /// A tuple of ints: `()`, `(3,)`, `(3, 4)`, `(3, 4,)`. `(3)` is an int in Python, not a
    /// tuple, and is refused as NumPy refuses it.
    fn shape(&mut self) -> Result<Vec<usize>> {
        self.expect('(', "a shape tuple such as (3, 4)")?;
        let mut shape = Vec::new();
        if self.eat(')') {
            return Ok(shape);
        }
        loop {
            if shape.len() == MAX_DIMS {
                return Err(self.error("at most 64 axes"));
            }
            shape.push(self.int()?);
            let comma = self.eat(',');
            if self.eat(')') {
                if shape.len() == 1 && !comma {
                    return Err(self.error("a tuple: a one-axis shape is written (n,)"));
                }
                return Ok(shape);
            }
            if !comma {
                return Err(self.error("',' or ')' in the shape tuple"));
            }
        }
    }

    /// A value that is not a string: a list or dict descr (a structured dtype), kept as text
    /// so that the refusal can quote it.
    fn raw_value(&mut self) -> Result<&'s str> {
        self.skip_spaces();
        let start = self.pos;
        let mut depth = 0usize;
        let mut quote = None;
        for (i, c) in self.text[start..].char_indices() {
            match (quote, c) {
                (Some(q), _) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '[' | '(' | '{') => depth += 1,
                (None, ']' | ')' | '}') if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos = start + i + 1;
                        return Ok(&self.text[start..self.pos]);
                    }
                }
                (None, ',' | '}') if depth == 0 => {
                    self.pos = start + i;
                    return Ok(self.text[start..self.pos].trim_end());
                }
                _ => {}
            }
        }
        Err(self.error("a complete value"))
    }

    fn parse(mut self) -> Result<(String, bool, Vec<usize>)> {
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        self.expect('{', "a Python dict literal starting with '{'")?;
        while !self.eat('}') {
            let key = self.string()?;
            self.expect(':', "':' after the key")?;
            let duplicate = match key {
                "descr" => {
                    self.skip_spaces();
                    let value = match self.text[self.pos..].chars().next() {
                        Some('\'' | '"') => self.string()?,
                        _ => self.raw_value()?,
                    };
                    descr.replace(value).is_some()
                }
                "fortran_order" => fortran.replace(self.boolean()?).is_some(),
                "shape" => shape.replace(self.shape()?).is_some(),
                _ => {
                    return Err(self.src.format(
                        "npy header",
                        "only the keys 'descr', 'fortran_order' and 'shape'",
                        format!("key {key:?}"),
                    ));
                }
            };
            if duplicate {
                return Err(self.src.format(
                    "npy header",
                    "each key once",
                    format!("key {key:?} twice"),
                ));
            }
            if !self.eat(',') {
                self.expect('}', "',' or '}' after a value")?;
                break;
            }
        }
        self.skip_spaces();
        if self.pos != self.text.len() {
            return Err(self.error("nothing but spaces after the dict"));
        }
        match (descr, fortran, shape) {
            (Some(d), Some(f), Some(s)) => Ok((d.to_string(), f, s)),
            _ => Err(self.src.format(
                "npy header",
                "the keys 'descr', 'fortran_order' and 'shape'",
                format!("the header {:?}", self.text.trim_end()),
            )),
        }
    }
}

/// Reads the magic, version, header length and header; returns the header and its end offset.
fn read_header(src: &Source, r: &mut impl Read, total: u64) -> Result<(Header, u64)> {
    let mut prefix = [0u8; 8];
    if total < prefix.len() as u64 {
        return Err(src.format(
            "npy header",
            "at least 10 bytes: the magic \\x93NUMPY, a version and a header length",
            format!("a file of {total} bytes"),
        ));
    }
    src.read_exact(r, &mut prefix)?;
    if &prefix[..6] != MAGIC {
        return Err(src.format(
            "npy header",
            "the magic \\x93NUMPY that starts every .npy file",
            escape_bytes(&prefix[..6]),
        ));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(src.format(
                "npy header",
                "format version 1.0, 2.0 or 3.0",
                format!("version {major}.{minor}"),
            ));
        }
    };
    let start = 8 + len_bytes as u64;
    if total < start {
        return Err(src.format(
            "npy header",
            format!("a {len_bytes}-byte header length after the version"),
            format!("a file of {total} bytes"),
        ));
    }
    let mut len_buf = [0u8; 4];
    src.read_exact(r, &mut len_buf[..len_bytes])?;
    let header_len = u32::from_le_bytes(len_buf) as usize;
    if header_len > MAX_HEADER_LEN {
        return Err(src.format(
            "npy header",
            format!("a header of at most {MAX_HEADER_LEN} bytes"),
            format!("a header length of {header_len} bytes"),
        ));
    }
    let end = start + header_len as u64;
    if end > total {
        return Err(src.format(
            "npy header",
            format!("a header of {header_len} bytes, ending at byte {end}"),
            format!("a file of only {total} bytes"),
        ));
    }
    let mut raw = vec![0u8; header_len];
    src.read_exact(r, &mut raw)?;
    let text = if major == 3 {
        String::from_utf8(raw)
            .map_err(|_| src.format("npy header", "UTF-8 text (version 3.0)", "invalid UTF-8"))?
    } else {
        // Versions 1.0 and 2.0 are Latin-1: each byte is the code point of the same value.
        raw.iter().map(|&b| b as char).collect()
    };
    let (descr, fortran_order, shape) = DictParser {
        text: &text,
        pos: 0,
        src,
    }
    .parse()?;
    let dtype = parse_descr(src, &descr)?;
    let header = Header {
        descr,
        dtype,
        fortran_order,
        shape,
    };
    Ok((header, end))
}

/// Shows bytes as a Rust byte-string literal would.
fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::from("b\"");
    for &b in bytes {
        let _ = write!(out, "{}", std::ascii::escape_default(b));
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// The array.

/// Reads one `.npy` whose bytes (all of them, header included) are the next `total` bytes of
/// `r`. Every size is checked against `total` before anything is allocated from it.
fn read_npy(src: &Source, r: &mut impl Read, total: u64) -> Result<Array> {
    let (header, data_start) = read_header(src, r, total)?;
    let count = check_sizes(src, &header, total - data_start)?;
    let mut values = read_values(src, r, header.dtype, count)?;
    expect_end(src, r)?;
    if header.fortran_order && header.shape.len() > 1 {
        values = match values {
            Values::U8(v) => Values::U8(fortran_to_c(src, &v, &header.shape)?),
            Values::Int(v) => Values::Int(fortran_to_c(src, &v, &header.shape)?),
            Values::F32(v) => Values::F32(fortran_to_c(src, &v, &header.shape)?),
        };
    }
    Ok(Array {
        shape: header.shape,
        values,
        dtype: header.descr,
    })
}

/// Checks the shape against the limits and the data present; returns the element count.
fn check_sizes(src: &Source, header: &Header, present: u64) -> Result<usize> {
    let Header {
        descr,
        shape,
        dtype,
        ..
    } = header;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            src.format(
                "shape",
                "an element count that fits in usize",
                format!("shape {shape:?}, whose product overflows"),
            )
        })?;
    let what = |bytes: &str| format!("the {bytes} of an array of shape {shape:?} ({descr})");
    let in_file = (count as u64).checked_mul(dtype.size as u64);
    let widened = (count as u64).checked_mul(dtype.widened_size() as u64);
    let limit = MAX_NPY_BYTES.min(isize::MAX as u64);
    match (in_file, widened) {
        (Some(f), _) if f > limit => return Err(src.too_large(&what("data"), f, limit)),
        (_, Some(w)) if w > limit => return Err(src.too_large(&what("widened values"), w, limit)),
        (None, _) | (_, None) => return Err(src.too_large(&what("data"), u64::MAX, limit)),
        _ => {}
    }
    let needed = in_file.unwrap_or(u64::MAX);
    if present != needed {
        let found = if present < needed {
            format!("{present} bytes after the header: the file is truncated or the shape lies")
        } else {
            format!(
                "{present} bytes after the header: {} bytes past the array",
                present - needed
            )
        };
        return Err(src.format(
            "data length",
            format!("{needed} bytes for shape {shape:?} of {descr}"),
            found,
        ));
    }
    Ok(count)
}

/// After the array, the source must be at its end: a member that decompresses to more than it
/// declared, or a file that grew while being read, is an error.
fn expect_end(src: &Source, r: &mut impl Read) -> Result<()> {
    let mut probe = [0u8; 1];
    loop {
        match r.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                let (field, expected) = match src.origin {
                    Origin::Member => ("npz member", "exactly the size the archive declares"),
                    _ => ("data length", "the file to end after the array"),
                };
                return Err(src.format(field, expected, "more bytes"));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(src.read_error(e)),
        }
    }
}

/// A vector of `n` zeroes, or `TooLarge` where memory runs out. Zeroed allocation maps fresh
/// pages without writing them, so reading into it costs one pass.
fn zeroed<T: bytemuck::Zeroable>(src: &Source, n: usize) -> Result<Vec<T>> {
    let mut v = bytemuck::allocation::try_zeroed_vec(n).map_err(|()| out_of_memory::<T>(src, n))?;
    advise_huge_pages(&mut v);
    Ok(v)
}

/// An empty vector with room for `n` values, or `TooLarge` where memory runs out.
fn with_capacity<T>(src: &Source, n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| out_of_memory::<T>(src, n))?;
    advise_huge_pages(v.spare_capacity_mut());
    Ok(v)
}

fn out_of_memory<T>(src: &Source, n: usize) -> Error {
    let bytes = (n as u64).saturating_mul(size_of::<T>() as u64);
    Error::TooLarge {
        what: format!("{}: the array's values", src.path.display()),
        needed: format!("{bytes} bytes"),
        limit: "the memory that could be allocated".to_string(),
    }
}

/// Reads `count` elements of `dtype` and widens them.
fn read_values(src: &Source, r: &mut impl Read, dtype: Dtype, count: usize) -> Result<Values> {
    let native = dtype.big_endian == cfg!(target_endian = "big");
    let be = dtype.big_endian;
    // Reads through the chunk buffer, converting each element of `$n` bytes with `$f`.
    macro_rules! convert {
        ($variant:ident, $n:literal, $f:expr) => {
            Values::$variant(convert(src, r, count, $n, map::<_, $n>($f))?)
        };
    }
    Ok(match (dtype.kind, dtype.size) {
        (Kind::Unsigned, 1) => Values::U8(read_direct(src, r, count)?),
        (Kind::Bool, _) => {
            let mut v: Vec<u8> = read_direct(src, r, count)?;
            v.iter_mut().for_each(|b| *b = u8::from(*b != 0));
            Values::U8(v)
        }
        (Kind::Float, 4) if native => Values::F32(read_direct(src, r, count)?),
        (Kind::Signed, 8) if native => Values::Int(read_direct(src, r, count)?),
        (Kind::Float, 2) => convert!(F32, 2, |b| f16_to_f32(word::<2, u16>(b, be))),
        (Kind::Float, 4) => convert!(F32, 4, |b| f32::from_bits(word::<4, u32>(b, be))),
        (Kind::Float, _) => convert!(F32, 8, |b| f64::from_bits(word::<8, u64>(b, be)) as f32),
        (Kind::Signed, 1) => convert!(Int, 1, |b| i64::from(b[0] as i8)),
        (Kind::Signed, 2) => convert!(Int, 2, |b| i64::from(word::<2, u16>(b, be) as i16)),
        (Kind::Signed, 4) => convert!(Int, 4, |b| i64::from(word::<4, u32>(b, be) as i32)),
        (Kind::Signed, _) => convert!(Int, 8, |b| word::<8, u64>(b, be) as i64),
        (Kind::Unsigned, 2) => convert!(Int, 2, |b| i64::from(word::<2, u16>(b, be))),
        (Kind::Unsigned, 4) => convert!(Int, 4, |b| i64::from(word::<4, u32>(b, be))),
        (Kind::Unsigned, _) => Values::Int(convert(src, r, count, 8, |bytes, first, out| {
            u64_to_i64(src, bytes, first, be, out)
        })?),
    })
}

/// Reads elements whose file bytes are already their in-memory values straight into the
/// final vector: one pass, no intermediate copy.
fn read_direct<T: bytemuck::Pod>(src: &Source, r: &mut impl Read, count: usize) -> Result<Vec<T>> {
    let mut values = zeroed::<T>(src, count)?;
    src.read_exact(r, bytemuck::cast_slice_mut(&mut values))?;
    Ok(values)
}

/// Asks Linux to back a large, not yet touched buffer with transparent huge pages, as NumPy
/// does for its arrays: reading into fresh memory is otherwise dominated by one page fault
/// per 4 KB, and the kernel's default (`madvise`) grants huge pages only to those who ask.
#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(values: &mut [T]) {
    const PAGE: usize = 4096;
    const MIN_BYTES: usize = 4 << 20;
    let bytes = size_of_val(values);
    if bytes < MIN_BYTES {
        return;
    }
    let start = values.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(PAGE);
    let length = (start + bytes - aligned) / PAGE * PAGE;
    // SAFETY: the range lies inside `values`' allocation (its start rounded up and its length
    // down to whole pages), and MADV_HUGEPAGE is advice only: it changes neither the contents
    // nor the mapping's permissions. A failure (say, a kernel without THP) is harmless.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, length, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_values: &mut [T]) {}

/// Reads `count` elements of `size` bytes through one reused chunk buffer; `step` converts a
/// chunk (whose first element has index `first`) and appends it to the output.
fn convert<T>(
    src: &Source,
    r: &mut impl Read,
    count: usize,
    size: usize,
    mut step: impl FnMut(&[u8], usize, &mut Vec<T>) -> Result<()>,
) -> Result<Vec<T>> {
    let mut out = with_capacity(src, count)?;
    let per_chunk = (CHUNK_BYTES / size).min(count);
    let mut buf = vec![0u8; per_chunk * size];
    while out.len() < count {
        let n = per_chunk.min(count - out.len());
        let bytes = &mut buf[..n * size];
        src.read_exact(r, bytes)?;
        step(bytes, out.len(), &mut out)?;
    }
    Ok(out)
}

/// Turns an element conversion into a chunk step for [`convert`].
fn map<T, const N: usize>(
    f: impl Fn([u8; N]) -> T,
) -> impl FnMut(&[u8], usize, &mut Vec<T>) -> Result<()> {
    move |bytes, _, out| {
        out.extend(
            bytes
                .chunks_exact(N)
                .map(|b| f(b.try_into().unwrap_or([0; N]))),
        );
        Ok(())
    }
}

/// An unsigned word from its bytes in the file's byte order.
fn word<const N: usize, W: Word<N>>(b: [u8; N], big_endian: bool) -> W {
    if big_endian {
        W::from_be(b)
    } else {
        W::from_le(b)
    }
}

trait Word<const N: usize> {
    fn from_le(b: [u8; N]) -> Self;
    fn from_be(b: [u8; N]) -> Self;
}

macro_rules! word {
    ($t:ty, $n:literal) => {
        impl Word<$n> for $t {
            fn from_le(b: [u8; $n]) -> Self {
                <$t>::from_le_bytes(b)
            }
            fn from_be(b: [u8; $n]) -> Self {
                <$t>::from_be_bytes(b)
            }
        }
    };
}
word!(u16, 2);
word!(u32, 4);
word!(u64, 8);

/// Widens a chunk of `u8` elements, refusing values that `i64` cannot hold.
fn u64_to_i64(
    src: &Source,
    bytes: &[u8],
    first: usize,
    be: bool,
    out: &mut Vec<i64>,
) -> Result<()> {
    for (i, b) in bytes.chunks_exact(8).enumerate() {
        let v: u64 = word(b.try_into().unwrap_or([0; 8]), be);
        let v = i64::try_from(v).map_err(|_| {
            src.format(
                "dtype",
                "u8 values up to i64::MAX (9223372036854775807)",
                format!("{v} at element {} (in file order)", first + i),
            )
        })?;
        out.push(v);
    }
    Ok(())
}

/// An IEEE half-precision value as f32; exact, since every f16 is an f32.
fn f16_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match exp {
        // Zero or subnormal: frac · 2^-24, exact in f32.
        0 => {
            let magnitude = frac as f32 * f32::from_bits(0x3380_0000);
            return if negative { -magnitude } else { magnitude };
        }
        // Infinity or NaN: the payload moves to the top of f32's fraction.
        0x1f => 0x7f80_0000 | (frac << 13),
        _ => ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits | u32::from(negative) << 31)
}

/// Turns Fortran-ordered values (first axis fastest) into C order (last axis fastest).
///
/// The permutation reverses the axes. For each index of the middle axes, the first and last
/// axes form a 2-D transpose (source contiguous along the first axis, destination along the
/// last), done in square blocks so that both sides stay in cache.
fn fortran_to_c<T: bytemuck::Zeroable + Copy>(
    src: &Source,
    values: &[T],
    shape: &[usize],
) -> Result<Vec<T>> {
    const BLOCK: usize = 32;
    let mut out = zeroed::<T>(src, values.len())?;
    let (Some(&rows), Some(&cols)) = (shape.first(), shape.last()) else {
        return Ok(values.to_vec());
    };
    if values.is_empty() || shape.len() < 2 {
        out.copy_from_slice(values);
        return Ok(out);
    }
    let axes = shape.len();
    // Source strides: axis k moves by the product of the axes before it (first axis fastest).
    let src_strides: Vec<usize> = (0..axes).map(|k| shape[..k].iter().product()).collect();
    // Destination strides: axis k moves by the product of the axes after it (C order).
    let dst_strides: Vec<usize> = (0..axes).map(|k| shape[k + 1..].iter().product()).collect();
    let (src_col_stride, dst_row_stride) = (src_strides[axes - 1], dst_strides[0]);
    // The index of the middle axes (1 to axes-2), advanced like an odometer.
    let mut index = vec![0usize; axes - 2];
    loop {
        let middle = index.iter().zip(1..);
        let src_base: usize = middle.clone().map(|(&i, k)| i * src_strides[k]).sum();
        let dst_base: usize = middle.map(|(&i, k)| i * dst_strides[k]).sum();
        for r0 in (0..rows).step_by(BLOCK) {
            for c0 in (0..cols).step_by(BLOCK) {
                for r in r0..(r0 + BLOCK).min(rows) {
                    let (src_row, dst_row) = (src_base + r, dst_base + r * dst_row_stride);
                    for c in c0..(c0 + BLOCK).min(cols) {
                        out[dst_row + c] = values[src_row + c * src_col_stride];
                    }
                }
            }
        }
        let Some(k) = (0..index.len())
            .rev()
            .find(|&k| index[k] + 1 < shape[k + 1])
        else {
            return Ok(out);
        };
        index[k] += 1;
        index[k + 1..].iter_mut().for_each(|i| *i = 0);
    }
}

// ---------------------------------------------------------------------------------------------
// The archive.

/// Reads every member of an `.npz` archive, after checking all their declared sizes.
fn read_npz<R: Read + Seek>(name: &Path, reader: R) -> Result<Vec<(String, Array)>> {
    let archive_src = Source::new(name.into(), Origin::File);
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| zip_error(&archive_src, e))?;
    if archive.has_duplicate_names() {
        return Err(archive_src.format(
            "npz member",
            "distinct member names",
            "a member name used twice",
        ));
    }
    let sizes = declared_sizes(name, &mut archive)?;
    let mut arrays = Vec::with_capacity(sizes.len());
    let mut seen = HashSet::new();
    for (index, (member, size)) in sizes.into_iter().enumerate() {
        let src = member_source(name, &member);
        let key = member.strip_suffix(".npy").unwrap_or(&member).to_string();
        if !seen.insert(key.clone()) {
            return Err(src.format(
                "npz member",
                "distinct array names",
                format!("a second array named {key:?}"),
            ));
        }
        let file = archive.by_index(index).map_err(|e| zip_error(&src, e))?;
        let array = read_npy(&src, &mut file.take(size.saturating_add(1)), size)?;
        arrays.push((key, array));
    }
    Ok(arrays)
}

/// Every member's name and declared size, checked against the limits before any member is
/// decompressed.
fn declared_sizes<R: Read + Seek>(
    name: &Path,
    archive: &mut zip::ZipArchive<R>,
) -> Result<Vec<(String, u64)>> {
    let mut sizes = Vec::with_capacity(archive.len());
    let mut total = 0u64;
    for index in 0..archive.len() {
        let file = archive
            .by_index_raw(index)
            .map_err(|e| zip_error(&Source::new(name.into(), Origin::File), e))?;
        let member = String::from_utf8_lossy(file.name_raw()).into_owned();
        let src = member_source(name, &member);
        let (size, packed) = (file.size(), file.compressed_size());
        match file.compression() {
            zip::CompressionMethod::Stored if size != packed => {
                return Err(src.format(
                    "npz member",
                    "a stored member's size equal to its stored bytes",
                    format!("{size} bytes declared, {packed} stored"),
                ));
            }
            zip::CompressionMethod::Stored => {}
            zip::CompressionMethod::Deflated if size > packed.saturating_mul(DEFLATE_MAX_RATIO) => {
                return Err(src.format(
                    "npz member",
                    format!(
                        "at most {DEFLATE_MAX_RATIO}× its {packed} compressed bytes \
                         (deflate's limit)"
                    ),
                    format!("a declared size of {size} bytes"),
                ));
            }
            zip::CompressionMethod::Deflated => {}
            other => {
                return Err(src.format(
                    "npz member",
                    "stored or deflated data (what np.savez and np.savez_compressed write)",
                    format!("compression {other:?}"),
                ));
            }
        }
        total = total.saturating_add(size);
        if total > MAX_NPZ_BYTES {
            return Err(Source::new(name.into(), Origin::File).too_large(
                "the members of the archive",
                total,
                MAX_NPZ_BYTES,
            ));
        }
        sizes.push((member, size));
    }
    Ok(sizes)
}

fn member_source(name: &Path, member: &str) -> Source<'static> {
    let path = PathBuf::from(format!("{}: member {member}", name.display()));
    Source::new(path.into(), Origin::Member)
}

fn zip_error(src: &Source, e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(e) if e.kind() != io::ErrorKind::UnexpectedEof => {
            Error::io(src.path.to_path_buf(), "read npz file", e)
        }
        e => src.format("npz archive", "a zip archive of .npy files", e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An `.npy` file of the given version: magic, version, header length, the dict padded
    /// with spaces and a newline to a multiple of 64 bytes (as NumPy pads it), then `data`.
    fn npy_with(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let len_bytes = if major == 1 { 2 } else { 4 };
        let unpadded = 8 + len_bytes + dict.len() + 1;
        let header_len = dict.len() + 1 + (64 - unpadded % 64) % 64;
        let mut out = MAGIC.to_vec();
        out.extend([major, 0]);
        out.extend(&(header_len as u32).to_le_bytes()[..len_bytes]);
        out.extend(dict.as_bytes());
        out.resize(8 + len_bytes + header_len - 1, b' ');
        out.push(b'\n');
        out.extend(data);
        out
    }

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let fortran = if fortran { "True" } else { "False" };
        let dict =
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
        npy_with(1, &dict, data)
    }

    fn read(bytes: &[u8]) -> Result<Array> {
        read_npy_bytes(Path::new("t.npy"), bytes)
    }

    fn err(bytes: &[u8]) -> String {
        match read(bytes) {
            Ok(a) => panic!("expected an error, read {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn ints(bytes: &[u8]) -> Vec<i64> {
        match read(bytes).unwrap().values {
            Values::Int(v) => v,
            other => panic!("expected Int values, got {other:?}"),
        }
    }

    fn floats(bytes: &[u8]) -> Vec<f32> {
        match read(bytes).unwrap().values {
            Values::F32(v) => v,
            other => panic!("expected F32 values, got {other:?}"),
        }
    }

    fn bytes_of(bytes: &[u8]) -> Vec<u8> {
        match read(bytes).unwrap().values {
            Values::U8(v) => v,
            other => panic!("expected U8 values, got {other:?}"),
        }
    }

    /// Each value's bytes in the given order (`le` little-endian, else big-endian).
    fn encode<const N: usize, T: Copy>(values: &[T], le: bool, to: fn(T) -> [u8; N]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|&v| {
                let mut b = to(v);
                if !le {
                    b.reverse();
                }
                b
            })
            .collect()
    }

    #[test]
    fn integers_in_both_byte_orders() {
        for (le, o) in [(true, '<'), (false, '>')] {
            let v8 = [-3i8, 0, 127, -128];
            let d = encode(&v8, le, i8::to_le_bytes);
            assert_eq!(ints(&npy("|i1", false, "(4,)", &d)), [-3, 0, 127, -128]);
            let v16 = [-30000i16, 1, 32767];
            let d = encode(&v16, le, i16::to_le_bytes);
            assert_eq!(
                ints(&npy(&format!("{o}i2"), false, "(3,)", &d)),
                [-30000, 1, 32767]
            );
            let v32 = [i32::MIN, -1, i32::MAX];
            let d = encode(&v32, le, i32::to_le_bytes);
            let want: Vec<i64> = v32.iter().map(|&v| v.into()).collect();
            assert_eq!(ints(&npy(&format!("{o}i4"), false, "(3,)", &d)), want);
            let v64 = [i64::MIN, -5, i64::MAX];
            let d = encode(&v64, le, i64::to_le_bytes);
            assert_eq!(ints(&npy(&format!("{o}i8"), false, "(3,)", &d)), v64);
            let u16s = [0u16, 65535, 258];
            let d = encode(&u16s, le, u16::to_le_bytes);
            assert_eq!(
                ints(&npy(&format!("{o}u2"), false, "(3,)", &d)),
                [0, 65535, 258]
            );
            let u32s = [0u32, u32::MAX, 1 << 24];
            let d = encode(&u32s, le, u32::to_le_bytes);
            let want: Vec<i64> = u32s.iter().map(|&v| v.into()).collect();
            assert_eq!(ints(&npy(&format!("{o}u4"), false, "(3,)", &d)), want);
            let u64s = [0u64, i64::MAX as u64, 7];
            let d = encode(&u64s, le, u64::to_le_bytes);
            assert_eq!(
                ints(&npy(&format!("{o}u8"), false, "(3,)", &d)),
                [0, i64::MAX, 7]
            );
        }
        assert_eq!(ints(&npy("=i2", false, "(1,)", &[1, 2])), [0x0201]);
    }

    #[test]
    fn u8_above_i64_max_is_refused_naming_the_element() {
        let d = encode(&[1u64, 2, 1 << 63], true, u64::to_le_bytes);
        let e = err(&npy("<u8", false, "(3,)", &d));
        assert!(e.contains("9223372036854775808 at element 2"), "{e}");
        let d = encode(&[u64::MAX], false, u64::to_le_bytes);
        assert!(err(&npy(">u8", false, "(1,)", &d)).contains("at element 0"));
    }

    #[test]
    fn floats_in_both_byte_orders() {
        for (le, o) in [(true, '<'), (false, '>')] {
            let f4 = [1.5f32, -0.0, f32::INFINITY, 3.4e38, 1e-45];
            let d = encode(&f4, le, f32::to_le_bytes);
            let got = floats(&npy(&format!("{o}f4"), false, "(5,)", &d));
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                f4.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            let f8 = [0.1f64, -2.5, 1e300, 1e-300, f64::NEG_INFINITY];
            let d = encode(&f8, le, f64::to_le_bytes);
            let want: Vec<f32> = f8.iter().map(|&v| v as f32).collect();
            assert_eq!(floats(&npy(&format!("{o}f8"), false, "(5,)", &d)), want);
            // 1, -2, 65504 (max), 2^-24 (least subnormal), 2^-14·1023/1024 (largest
            // subnormal), -0, inf, -inf, 2^-14 (least normal), 1/3 rounded.
            let f2 = [
                0x3c00u16, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x0400, 0x3555,
            ];
            let d = encode(&f2, le, u16::to_le_bytes);
            let got = floats(&npy(&format!("{o}f2"), false, "(10,)", &d));
            let want = [
                1.0,
                -2.0,
                65504.0,
                2f32.powi(-24),
                2f32.powi(-14) * 1023.0 / 1024.0,
                -0.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                2f32.powi(-14),
                0.333_251_95,
            ];
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v: &f32| v.to_bits()).collect::<Vec<_>>()
            );
        }
        let nan = floats(&npy("<f2", false, "(1,)", &[0x01, 0x7e]));
        assert!(nan[0].is_nan());
    }

    #[test]
    fn f2_conversion_is_exact_for_every_value() {
        for h in 0..=u16::MAX {
            let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
            let (exp, frac) = (i32::from((h >> 10) & 0x1f), f64::from(h & 0x3ff));
            let want = match exp {
                0 => sign * frac * 2f64.powi(-24),
                31 if frac == 0.0 => sign * f64::INFINITY,
                31 => f64::NAN,
                _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
            };
            let got = f16_to_f32(h);
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(got.to_bits(), (want as f32).to_bits(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn bytes_and_bools() {
        assert_eq!(
            bytes_of(&npy("|u1", false, "(4,)", &[0, 1, 200, 255])),
            [0, 1, 200, 255]
        );
        assert_eq!(
            bytes_of(&npy("|b1", false, "(4,)", &[0, 1, 2, 255])),
            [0, 1, 1, 1]
        );
        let a = read(&npy("|b1", false, "(2, 2)", &[1, 0, 0, 7])).unwrap();
        assert_eq!(
            (a.shape, a.dtype, a.values),
            (vec![2, 2], "|b1".into(), Values::U8(vec![1, 0, 0, 1]))
        );
        assert_eq!(bytes_of(&npy("<u1", false, "(1,)", &[9])), [9]);
    }

    #[test]
    fn zero_d_one_d_and_empty_shapes() {
        let a = read(&npy("<i4", false, "()", &7i32.to_le_bytes())).unwrap();
        assert_eq!((a.shape.clone(), a.len()), (vec![], 1));
        assert_eq!(a.values, Values::Int(vec![7]));
        let a = read(&npy("<f4", false, "(2,)", &[0, 0, 128, 63, 0, 0, 0, 64])).unwrap();
        assert_eq!((a.shape, a.values), (vec![2], Values::F32(vec![1.0, 2.0])));
        let a = read(&npy("<f8", true, "(0, 5)", &[])).unwrap();
        assert_eq!(
            (a.shape.clone(), a.len(), a.is_empty()),
            (vec![0, 5], 0, true)
        );
        // A 0-length axis makes any other axis length legal, even one near usize::MAX.
        let a = read(&npy("<i8", false, &format!("(0, {})", usize::MAX), &[])).unwrap();
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn fortran_order_2d_is_transposed_to_c_order() {
        // C-order [[0, 1, 2], [3, 4, 5]] is stored column by column in Fortran order.
        let a = read(&npy("|u1", true, "(2, 3)", &[0, 3, 1, 4, 2, 5])).unwrap();
        assert_eq!(
            (a.shape, a.values),
            (vec![2, 3], Values::U8(vec![0, 1, 2, 3, 4, 5]))
        );
        // Larger than a block in both axes, with ragged edges, widened and byte-swapped.
        let (rows, cols) = (70usize, 45usize);
        let fortran: Vec<i32> = (0..cols)
            .flat_map(|c| (0..rows).map(move |r| (r * cols + c) as i32))
            .collect();
        let d = encode(&fortran, false, i32::to_le_bytes);
        let got = ints(&npy(">i4", true, &format!("({rows}, {cols})"), &d));
        assert_eq!(got, (0..(rows * cols) as i64).collect::<Vec<_>>());
    }

    #[test]
    fn fortran_order_nd_reverses_the_axes() {
        for shape in [
            vec![2, 3, 4],
            vec![40, 3, 35],
            vec![2, 1, 3, 2],
            vec![3, 2, 2, 2, 3],
        ] {
            let n: usize = shape.iter().product();
            // Element at C index i holds i; Fortran order enumerates indices first axis fastest.
            let mut fortran = Vec::with_capacity(n);
            let mut index = vec![0usize; shape.len()];
            for _ in 0..n {
                let c = index
                    .iter()
                    .zip(&shape)
                    .fold(0, |acc, (&i, &d)| acc * d + i);
                fortran.push(c as f32);
                for (i, &d) in index.iter_mut().zip(&shape) {
                    *i += 1;
                    if *i < d {
                        break;
                    }
                    *i = 0;
                }
            }
            let d = encode(&fortran, true, f32::to_le_bytes);
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            let a = read(&npy("<f4", true, &format!("({})", dims.join(", ")), &d)).unwrap();
            assert_eq!(a.shape, shape);
            assert_eq!(
                a.values,
                Values::F32((0..n).map(|i| i as f32).collect()),
                "{shape:?}"
            );
        }
        // 1-d and 0-d arrays are the same in either order.
        assert_eq!(
            ints(&npy("<i2", true, "(3,)", &[1, 0, 2, 0, 3, 0])),
            [1, 2, 3]
        );
        assert_eq!(ints(&npy("<i2", true, "()", &[9, 0])), [9]);
    }

    #[test]
    fn header_versions_and_spellings() {
        let dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }";
        for major in [1, 2, 3] {
            assert_eq!(
                ints(&npy_with(major, dict, &[1, 0, 2, 0])),
                [1, 2],
                "version {major}"
            );
        }
        for dict in [
            "{'shape': (2,), 'fortran_order': False, 'descr': '<i2'}",
            "{\"descr\":\"<i2\",\"fortran_order\":False,\"shape\":(2L,)}",
            "{ 'fortran_order' : False , 'shape' : ( 2 , ) , 'descr' : '<i2' , }",
            "{'descr': '<i2', 'fortran_order': False, 'shape': (1, 2,)}",
        ] {
            assert_eq!(ints(&npy_with(1, dict, &[1, 0, 2, 0])), [1, 2], "{dict}");
        }
        // Version 3.0 is UTF-8; 1.0 is Latin-1, where the same bytes are other characters.
        let e = err(&npy_with(
            3,
            "{'descr': '<i2', 'fortran_order': False, 'shape': (1,), 'é': 1}",
            &[1, 0],
        ));
        assert!(e.contains("key \"é\""), "{e}");
        let mut bad_utf8 = npy_with(
            3,
            "{'descr': '<i2', 'fortran_order': False, 'shape': (1,)}",
            &[1, 0],
        );
        bad_utf8[20] = 0xff;
        assert!(err(&bad_utf8).contains("UTF-8"));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let cases = [
            ("[1, 2]", "a Python dict literal"),
            (
                "{'descr': '<i2', 'fortran_order': False}",
                "the keys 'descr', 'fortran_order' and 'shape'",
            ),
            (
                "{'descr': '<i2', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                "only the keys",
            ),
            (
                "{'descr': '<i2', 'descr': '<i2', 'fortran_order': False, 'shape': (1,)}",
                "each key once",
            ),
            (
                "{'descr': '<i2', 'fortran_order': 0, 'shape': (1,)}",
                "True or False",
            ),
            (
                "{'descr': '<i2', 'fortran_order': False, 'shape': (1)}",
                "a one-axis shape is written (n,)",
            ),
            (
                "{'descr': '<i2', 'fortran_order': False, 'shape': [1]}",
                "a shape tuple",
            ),
            (
                "{'descr': '<i2', 'fortran_order': False, 'shape': (-1,)}",
                "an axis length",
            ),
            (
                "{'descr': '<i2', 'fortran_order': False, 'shape': (1,) 'x'}",
                "',' or '}'",
            ),
            (
                "{'descr': '<i2', 'fortran_order': False, 'shape': (1,)} x",
                "nothing but spaces",
            ),
            (
                "{'descr': '<i\\x32', 'fortran_order': False, 'shape': (1,)}",
                "without escapes",
            ),
            (
                "{'descr': '<i2', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "fits in usize",
            ),
            (
                "{'descr': '<i2', 'fortran_order': False, 'shape': (1,",
                "an axis length",
            ),
            (
                "{'descr': '<i2', 'fortran_order': False, 'shape': (1 2)}",
                "',' or ')'",
            ),
        ];
        for (dict, want) in cases {
            let e = err(&npy_with(1, dict, &[1, 0]));
            assert!(
                e.contains("t.npy: bad npy header") && e.contains(want),
                "{dict}: {e}"
            );
        }
        let too_many_axes = format!("({})", vec!["1"; 65].join(", "));
        assert!(err(&npy("<i2", false, &too_many_axes, &[1, 0])).contains("at most 64 axes"));
    }

    #[test]
    fn unsupported_dtypes_are_refused_by_name() {
        for descr in ["|O", "<O8"] {
            let e = err(&npy(descr, false, "(1,)", &[0; 8]));
            assert!(e.contains("never unpickles") && e.contains(descr), "{e}");
        }
        let dict = "{'descr': [('a', '<i4'), ('b', '|O')], 'fortran_order': False, 'shape': (1,)}";
        assert!(err(&npy_with(1, dict, &[0; 12])).contains("never unpickles"));
        let dict = "{'descr': [('a', '<i4'), ('b', '<f8')], 'fortran_order': False, 'shape': (1,)}";
        let e = err(&npy_with(1, dict, &[0; 12]));
        assert!(
            e.contains("structured") && e.contains("('b', '<f8')"),
            "{e}"
        );
        for descr in [
            "<U3", "|S4", "<c8", "<M8[ns]", "<m8", "<f16", "|V4", "<i3", "|i2", "i4", "", "<",
            "|b2", "|f1",
        ] {
            let e = err(&npy(descr, false, "(1,)", &[0; 4]));
            assert!(
                e.contains("t.npy: bad dtype") && e.contains(&format!("{descr:?}")),
                "{descr}: {e}"
            );
        }
    }

    #[test]
    fn truncated_and_oversized_files_are_refused() {
        let good = npy("<i4", false, "(2,)", &[1, 0, 0, 0, 2, 0, 0, 0]);
        for len in [0, 5, 8, 9, 10, 50, good.len() - 1] {
            let e = err(&good[..len]);
            assert!(e.starts_with("t.npy: bad "), "{len}: {e}");
        }
        assert!(err(&good[..9]).contains("header length"));
        assert!(err(&good[..50]).contains("a file of only 50 bytes"));
        let mut bad = good.clone();
        bad[0] = b'P';
        assert!(err(&bad).contains("magic"));
        bad = good.clone();
        bad[6] = 4;
        assert!(err(&bad).contains("version 4.0"));
        // A header length past the end, and one over the limit.
        bad = good.clone();
        bad[8..10].copy_from_slice(&1000u16.to_le_bytes());
        assert!(err(&bad).contains("a header of 1000 bytes"));
        let mut v2 = npy_with(
            2,
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,)}",
            &[],
        );
        v2[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(err(&v2).contains("a header of at most 65536 bytes"));
        // A shape that claims more than present, and data past the array.
        let e = err(&npy("<i4", false, "(3,)", &[0; 8]));
        assert!(
            e.contains("bad data length: expected 12 bytes for shape [3] of <i4, found 8 bytes"),
            "{e}"
        );
        let e = err(&npy("<i4", false, "(2,)", &[0; 9]));
        assert!(e.contains("1 bytes past the array"), "{e}");
        let e = err(&npy("<i4", false, "(1000000, 1000000)", &[0; 8]));
        assert!(e.contains("4000000000000 bytes"), "{e}");
    }

    #[test]
    fn huge_shapes_are_refused_before_allocating() {
        let e = err(&npy("<f8", false, &format!("({}, 3)", usize::MAX / 2), &[]));
        assert!(e.contains("bad shape") && e.contains("overflows"), "{e}");
        let e = read(&npy("<f8", false, "(4294967296,)", &[])).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("34359738368 bytes"), "{e}");
        // The file's data fits the limit, the values widened to i64 would not.
        let e = read(&npy(
            "|i1",
            false,
            &format!("({},)", MAX_NPY_BYTES / 4),
            &[],
        ))
        .unwrap_err();
        assert!(
            matches!(e, Error::TooLarge { .. }) && e.to_string().contains("widened"),
            "{e}"
        );
    }

    #[test]
    fn large_direct_reads() {
        // Past the size where the buffer is advised to use huge pages.
        let n = (6 << 20) / 4 + 1;
        let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let got = floats(&npy(
            "<f4",
            false,
            &format!("({n},)"),
            bytemuck::cast_slice(&values),
        ));
        assert_eq!(got, values);
        let d: Vec<u8> = (0..n).map(|i| i as u8).collect();
        assert_eq!(bytes_of(&npy("|u1", false, &format!("({n},)"), &d)), d);
    }

    #[test]
    fn large_conversions_span_chunks() {
        // More than one chunk, and a chunk boundary inside the data.
        let n = CHUNK_BYTES / 8 * 2 + 3;
        let values: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
        let d = encode(&values, false, f64::to_le_bytes);
        let got = floats(&npy(">f8", false, &format!("({n},)"), &d));
        assert!(got.iter().enumerate().all(|(i, &v)| v == i as f32 * 0.5));
        let values: Vec<u64> = (0..n as u64).collect();
        let mut d = encode(&values, true, u64::to_le_bytes);
        d[(n - 1) * 8 + 7] = 0x80;
        let e = err(&npy("<u8", false, &format!("({n},)"), &d));
        assert!(e.contains(&format!("at element {}", n - 1)), "{e}");
    }

    // --- .npz ---------------------------------------------------------------------------

    struct Member<'a> {
        name: &'a str,
        data: Vec<u8>,
        deflate: bool,
        /// The uncompressed size written in the headers, when it should lie.
        declared: Option<u32>,
        /// The CRC written in the headers, when it should be wrong.
        crc: Option<u32>,
        /// Whether the sizes go in zip64 extra fields (as NumPy writes them), the 32-bit
        /// fields holding 0xFFFFFFFF.
        zip64: bool,
    }

    fn member(name: &str, data: Vec<u8>, deflate: bool) -> Member<'_> {
        Member {
            name,
            data,
            deflate,
            declared: None,
            crc: None,
            zip64: false,
        }
    }

    /// A zip archive of the members, written by hand so that tests can make its headers lie.
    fn zip(members: &[Member]) -> Vec<u8> {
        let (mut out, mut central) = (Vec::new(), Vec::new());
        for m in members {
            let mut crc = flate2::Crc::new();
            crc.update(&m.data);
            let crc = m.crc.unwrap_or(crc.sum());
            let packed = if m.deflate {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(&m.data).unwrap();
                e.finish().unwrap()
            } else {
                m.data.clone()
            };
            let size = m.declared.unwrap_or(m.data.len() as u32);
            let method: u16 = if m.deflate { 8 } else { 0 };
            let mut extra = Vec::new();
            let (mut packed32, mut size32) = (packed.len() as u32, size);
            if m.zip64 {
                extra.extend(1u16.to_le_bytes());
                extra.extend(16u16.to_le_bytes());
                extra.extend(u64::from(size).to_le_bytes());
                extra.extend((packed.len() as u64).to_le_bytes());
                (packed32, size32) = (u32::MAX, u32::MAX);
            }
            let fields = |out: &mut Vec<u8>| {
                for v in [45u16, 0, method, 0, 0x21] {
                    out.extend(v.to_le_bytes());
                }
                for v in [crc, packed32, size32] {
                    out.extend(v.to_le_bytes());
                }
                out.extend((m.name.len() as u16).to_le_bytes());
                out.extend((extra.len() as u16).to_le_bytes());
            };
            let offset = out.len() as u32;
            out.extend(0x0403_4b50u32.to_le_bytes());
            fields(&mut out);
            out.extend(m.name.as_bytes());
            out.extend(&extra);
            out.extend(&packed);
            central.extend(0x0201_4b50u32.to_le_bytes());
            central.extend(20u16.to_le_bytes());
            fields(&mut central);
            central.extend([0u8; 10]);
            central.extend(offset.to_le_bytes());
            central.extend(m.name.as_bytes());
            central.extend(&extra);
        }
        let (dir_offset, dir_len) = (out.len() as u32, central.len() as u32);
        out.extend(central);
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0u8; 4]);
        out.extend((members.len() as u16).to_le_bytes());
        out.extend((members.len() as u16).to_le_bytes());
        out.extend(dir_len.to_le_bytes());
        out.extend(dir_offset.to_le_bytes());
        out.extend([0u8; 2]);
        out
    }

    fn npz(bytes: &[u8]) -> Result<Vec<(String, Array)>> {
        read_npz_bytes(Path::new("d.npz"), bytes)
    }

    fn npz_err(bytes: &[u8]) -> String {
        match npz(bytes) {
            Ok(a) => panic!("expected an error, read {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn sample_x() -> Vec<u8> {
        npy("<f4", false, "(2,)", &[0, 0, 128, 63, 0, 0, 0, 64])
    }

    fn sample_y() -> Vec<u8> {
        npy("|u1", false, "(3,)", &[7, 8, 9])
    }

    #[test]
    fn npz_stored_and_deflated() {
        for deflate in [false, true] {
            let z = zip(&[
                member("x.npy", sample_x(), deflate),
                member("y.npy", sample_y(), deflate),
            ]);
            let got = npz(&z).unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].0, "x");
            assert_eq!(got[0].1.values, Values::F32(vec![1.0, 2.0]));
            assert_eq!(got[1].0, "y");
            assert_eq!(got[1].1.values, Values::U8(vec![7, 8, 9]));
        }
        // A member not named .npy is read when it is an .npy, and keeps its name.
        let got = npz(&zip(&[member("raw", sample_y(), true)])).unwrap();
        assert_eq!(got[0].0, "raw");
        let e = npz_err(&zip(&[
            member("x.npy", sample_x(), true),
            member("notes.txt", b"hello".to_vec(), true),
        ]));
        assert!(
            e.starts_with("d.npz: member notes.txt: bad npy header"),
            "{e}"
        );
        assert_eq!(npz(&zip(&[])).unwrap(), vec![]);
    }

    #[test]
    fn npz_zip64_sizes() {
        for deflate in [false, true] {
            let mut x = member("x.npy", sample_x(), deflate);
            x.zip64 = true;
            let got = npz(&zip(&[x, member("y.npy", sample_y(), deflate)])).unwrap();
            assert_eq!(got[0].1.values, Values::F32(vec![1.0, 2.0]));
            assert_eq!(got[1].1.values, Values::U8(vec![7, 8, 9]));
        }
        // A zip64 size that lies is caught as the 32-bit one is.
        let mut m = member("y.npy", sample_y(), true);
        (m.zip64, m.declared) = (true, Some(u32::MAX - 1));
        assert!(npz_err(&zip(&[m])).contains("deflate's limit"));
    }

    #[test]
    fn npz_member_errors_name_the_member() {
        let e = npz_err(&zip(&[member(
            "x.npy",
            npy("|O", false, "(1,)", &[0; 8]),
            true,
        )]));
        assert!(
            e.starts_with("d.npz: member x.npy: bad dtype") && e.contains("never unpickles"),
            "{e}"
        );
        let e = npz_err(b"PK\x03\x04 not really a zip");
        assert!(e.starts_with("d.npz: bad npz archive"), "{e}");
    }

    #[test]
    fn npz_declared_size_lies_are_caught() {
        // The data inflates to more than declared: the bounded reader stops one byte past.
        let header_only = npy("|u1", false, "(3,)", &[]);
        let mut longer = sample_y();
        longer.extend([0u8; 5000]);
        let mut m = member("y.npy", longer, true);
        m.declared = Some(sample_y().len() as u32);
        let e = npz_err(&zip(&[m]));
        assert!(e.starts_with("d.npz: member y.npy: bad npz member"), "{e}");
        // The data inflates to less than declared (header consistent with the declared size).
        let mut m = member("y.npy", header_only.clone(), true);
        m.declared = Some(sample_y().len() as u32);
        let e = npz_err(&zip(&[m]));
        assert!(
            e.starts_with("d.npz: member y.npy: bad npz member") && e.contains("ends early"),
            "{e}"
        );
        // A stored member whose size differs from its stored bytes.
        let mut m = member("y.npy", sample_y(), false);
        m.declared = Some(10_000);
        assert!(npz_err(&zip(&[m])).contains("a stored member's size equal to its stored bytes"));
        // A corrupt CRC.
        let mut m = member("y.npy", sample_y(), true);
        m.crc = Some(12345);
        let e = npz_err(&zip(&[m]));
        assert!(e.starts_with("d.npz: member y.npy: bad npz member"), "{e}");
    }

    #[test]
    fn npz_huge_declared_size_is_refused_before_inflating() {
        let mut m = member("y.npy", sample_y(), true);
        m.declared = Some(u32::MAX - 1);
        let e = npz_err(&zip(&[m]));
        assert!(
            e.contains("deflate's limit") && e.contains("4294967294 bytes"),
            "{e}"
        );
    }

    #[test]
    fn npz_duplicate_members_are_refused() {
        let e = npz_err(&zip(&[
            member("x.npy", sample_x(), false),
            member("x.npy", sample_x(), false),
        ]));
        assert!(e.contains("distinct member names"), "{e}");
        let e = npz_err(&zip(&[
            member("x.npy", sample_x(), false),
            member("x", sample_x(), false),
        ]));
        assert!(
            e.starts_with("d.npz: member x: bad npz member")
                && e.contains("a second array named \"x\""),
            "{e}"
        );
    }

    // --- Files NumPy wrote (tests/data/npy/make.py) ---------------------------------------

    fn fixture(name: &str) -> PathBuf {
        let dir = std::env::var_os("SOMA_NPY_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/npy"))
            });
        dir.join(name)
    }

    fn array(path: &Path) -> Array {
        let from_file = load_npy(path).unwrap();
        let from_bytes = read_npy_bytes(path, &std::fs::read(path).unwrap()).unwrap();
        assert_eq!(from_file, from_bytes);
        from_file
    }

    fn check(a: &Array, shape: &[usize], dtype: &str, values: Values) {
        assert_eq!((a.shape.as_slice(), a.dtype.as_str()), (shape, dtype));
        assert_eq!(a.values, values);
    }

    #[test]
    fn numpy_npy_files() {
        let x = array(&fixture("x_u8.npy"));
        let want = vec![
            186, 187, 182, 250, 243, 254, 8, 250, 129, 172, 233, 252, 247, 129, 84, 97, 180, 60,
            222, 43, 124, 221, 89, 236, 142, 62, 218, 26, 82, 70, 254, 66, 132, 30, 135, 35,
        ];
        check(&x, &[6, 2, 3], "|u1", Values::U8(want));
        let y = array(&fixture("y_i64.npy"));
        check(
            &y,
            &[6],
            "<i8",
            Values::Int(vec![-362, 72, -764, 591, -517, 572]),
        );
        let f = array(&fixture("x_f64_fortran.npy"));
        let want = vec![
            -36.5, 58.5, 92.75, 91.5, -47.5, 11.0, -12.0, -49.25, 21.75, 79.25, 72.5, 29.0,
        ];
        check(&f, &[3, 4], "<f8", Values::F32(want));
        let be = array(&fixture("x_f4_be.npy"));
        check(
            &be,
            &[2, 3],
            ">f4",
            Values::F32(vec![36.375, 1.75, 17.375, 45.5, 15.875, -45.375]),
        );
        let e = load_npy(&fixture("object.npy")).unwrap_err().to_string();
        assert!(
            e.contains("object.npy: bad dtype") && e.contains("never unpickles"),
            "{e}"
        );
    }

    #[test]
    fn numpy_npz_files() {
        let path = fixture("keras.npz");
        let got = load_npz(&path).unwrap();
        assert_eq!(
            got,
            read_npz_bytes(&path, &std::fs::read(&path).unwrap()).unwrap()
        );
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x_train", "y_train", "x_test", "y_test"]);
        let sum = |a: &Array| match &a.values {
            Values::U8(v) => v.iter().map(|&b| u64::from(b)).sum::<u64>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (
                got[0].1.shape.as_slice(),
                got[0].1.dtype.as_str(),
                sum(&got[0].1)
            ),
            (&[8, 4, 4][..], "|u1", 14381)
        );
        match &got[0].1.values {
            Values::U8(v) => assert_eq!(&v[..8], [212, 157, 90, 188, 242, 169, 25, 189]),
            other => panic!("{other:?}"),
        }
        check(
            &got[1].1,
            &[8],
            "<i8",
            Values::Int(vec![7, 6, 9, 7, 1, 8, 9, 3]),
        );
        assert_eq!(
            (got[2].1.shape.as_slice(), sum(&got[2].1)),
            (&[3, 4, 4][..], 6408)
        );
        check(&got[3].1, &[3], "<i8", Values::Int(vec![8, 8, 9]));

        let got = load_npz(&fixture("xy_compressed.npz")).unwrap();
        assert_eq!(
            got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["x", "y"]
        );
        let x = vec![
            -2.1875, 4.25, -0.9375, -0.6875, 3.1875, -1.625, 3.125, -0.25, -6.1875, -5.125, 3.25,
            -3.4375, 6.0, 0.4375, -4.125, 2.875, -3.8125, -0.6875, 1.0, -2.4375, 2.1875, 5.5625,
            -1.875, 3.125, -2.8125, -0.375, -4.9375, -0.5625, 2.125, 3.0625,
        ];
        check(&got[0].1, &[10, 3], "<f4", Values::F32(x));
        let y = vec![
            1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0,
            1.0, 0.0, 1.0,
        ];
        check(&got[1].1, &[10, 2], "<f4", Values::F32(y));
    }

    #[test]
    fn missing_files_are_io_errors() {
        let e = load_npy(Path::new("/nonexistent/a.npy")).unwrap_err();
        assert!(
            matches!(e, Error::Io { .. })
                && e.to_string()
                    .starts_with("/nonexistent/a.npy: open npy file")
        );
        let e = load_npz(Path::new("/nonexistent/a.npz")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
