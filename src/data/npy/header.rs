//! The `.npy` header: the magic, version and header length, then the Python dict literal naming
//! `descr`, `fortran_order` and `shape`, and the dtypes soma reads. The dict is parsed strictly
//! (exactly those three keys, in any order) and every length is checked against
//! [`MAX_HEADER_LEN`], [`MAX_DIMS`] and the bytes present before anything is allocated from
//! it, since the header is untrusted. Object, structured, string, complex and date dtypes are
//! refused here, before any data is read.

use std::fmt::Write as _;
use std::io::Read;

#[cfg(doc)]
use super::Values;
use super::source::Source;
use super::{MAGIC, MAX_DIMS, MAX_HEADER_LEN};
use crate::error::{Error, Result};

/// The dtypes soma reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Bool,
    Signed,
    Unsigned,
    Float,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Dtype {
    pub(super) kind: Kind,
    /// Bytes per element: 1, 2, 4 or 8.
    pub(super) size: usize,
    /// Whether multi-byte elements are stored most significant byte first.
    pub(super) big_endian: bool,
}

impl Dtype {
    /// Bytes per element once widened ([`Values`]).
    pub(super) fn widened_size(self) -> usize {
        match (self.kind, self.size) {
            (Kind::Bool, _) | (Kind::Unsigned, 1) => 1,
            (Kind::Float, _) => 4,
            _ => 8,
        }
    }
}

/// What the header says.
#[derive(Debug)]
pub(super) struct Header {
    pub(super) descr: String,
    pub(super) dtype: Dtype,
    pub(super) fortran_order: bool,
    pub(super) shape: Vec<usize>,
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
pub(super) fn read_header(src: &Source, r: &mut impl Read, total: u64) -> Result<(Header, u64)> {
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
