//! Lines and cells: splitting bytes into non-blank lines and lines into cells, in place and
//! without allocating a string per cell. A quoted field must close on its own line, which is
//! what lets a file be cut into ranges at any line end; a line that cannot be read yields a
//! [`Fault`], turned into an error by the caller, which knows the file and the column names.
//! The missing-value markers and number parsing (with a fast path for short unsigned integers)
//! live here too, so detection and both passes agree on what a cell is.

use crate::error::Result;

/// A non-blank line: its text without the line end, its number, and the offset past its end.
#[derive(Clone, Copy)]
pub(super) struct Line<'a> {
    pub(super) text: &'a [u8],
    pub(super) number: u64,
    pub(super) end: usize,
}

/// The non-blank lines of a buffer; the last one may lack a line end.
pub(super) struct Lines<'a> {
    bytes: &'a [u8],
    at: usize,
    number: u64,
}

impl<'a> Lines<'a> {
    pub(super) fn new(bytes: &'a [u8], first_number: u64) -> Self {
        Lines {
            bytes,
            at: 0,
            number: first_number,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        while self.at < self.bytes.len() {
            let rest = &self.bytes[self.at..];
            let len = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let end = (self.at + len + 1).min(self.bytes.len());
            let text = trim_cr(&rest[..len]);
            let number = self.number;
            self.at = end;
            self.number += 1;
            if !is_blank(text) {
                return Some(Line { text, number, end });
            }
        }
        None
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&b| b == b' ' || b == b'\t' || b == b'\r')
}

/// Calls `f` on each non-blank line of `bytes` (whole lines; the last may lack its end), with
/// line numbers from `first_number`. Returns the number of line ends seen.
pub(super) fn each_line(
    bytes: &[u8],
    first_number: u64,
    mut f: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<u64> {
    let mut start = 0;
    let mut number = first_number;
    for end in memchr::memchr_iter(b'\n', bytes) {
        let line = trim_cr(&bytes[start..end]);
        if !is_blank(line) {
            f(line, number)?;
        }
        number += 1;
        start = end + 1;
    }
    let last = trim_cr(&bytes[start..]);
    if !is_blank(last) {
        f(last, number)?;
    }
    Ok(number - first_number)
}

/// Why a line could not be read; turned into an [`Error`](crate::error::Error) where the line is
/// known.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Fault {
    /// The row has `found` fields, not `expected`.
    Ragged { expected: usize, found: usize },
    /// A quoted field in column `col` does not close on its line.
    Unterminated { col: usize },
    /// Column `col` has text after its closing quote (`at` the text's start in the line).
    AfterQuote { col: usize, at: usize },
    /// Not a number.
    NotNumber { col: usize, cell: Cell },
    /// A number that is not finite (or does not fit `f32`).
    NotFinite { col: usize, cell: Cell },
    /// A missing feature cell without `allow_missing`.
    Missing { col: usize, cell: Cell },
    /// A missing label.
    MissingLabel { col: usize, cell: Cell },
    /// A level the column did not have.
    UnknownLevel { col: usize, cell: Cell },
    /// A label that is not one of the classes it is read against; `known` lists a few of them
    /// for the message (built only when the fault is).
    UnknownClass {
        col: usize,
        cell: Cell,
        known: String,
    },
}

/// A cell's content in its line: trimmed, inside its quotes; `escaped` when it holds `""` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cell {
    start: usize,
    end: usize,
    escaped: bool,
}

impl Cell {
    pub(super) fn raw<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        &line[self.start..self.end]
    }

    /// The cell's text with `""` pairs collapsed (in `scratch` when there are any).
    pub(super) fn text<'a>(&self, line: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let raw = self.raw(line);
        if !self.escaped {
            return raw;
        }
        scratch.clear();
        let mut i = 0;
        while i < raw.len() {
            scratch.push(raw[i]);
            i += if raw[i] == b'"' { 2 } else { 1 };
        }
        scratch
    }
}

fn is_space(b: u8, delimiter: u8) -> bool {
    (b == b' ' || b == b'\t') && b != delimiter
}

/// Reads the cell of column `col` starting at `pos`. Returns it and the offset of the delimiter
/// that ends it (or the line's length).
pub(super) fn next_cell(
    line: &[u8],
    mut pos: usize,
    delimiter: u8,
    col: usize,
) -> Result<(Cell, usize), Fault> {
    while pos < line.len() && is_space(line[pos], delimiter) {
        pos += 1;
    }
    if pos < line.len() && line[pos] == b'"' {
        return quoted_cell(line, pos, delimiter, col);
    }
    let end = memchr::memchr(delimiter, &line[pos..]).map_or(line.len(), |i| pos + i);
    let mut last = end;
    while last > pos && is_space(line[last - 1], delimiter) {
        last -= 1;
    }
    let cell = Cell {
        start: pos,
        end: last,
        escaped: false,
    };
    Ok((cell, end))
}

/// [`next_cell`] for a cell whose opening quote is at `open`.
fn quoted_cell(
    line: &[u8],
    open: usize,
    delimiter: u8,
    col: usize,
) -> Result<(Cell, usize), Fault> {
    let mut escaped = false;
    let mut at = open + 1;
    let close = loop {
        let Some(i) = memchr::memchr(b'"', &line[at..]) else {
            return Err(Fault::Unterminated { col });
        };
        if line.get(at + i + 1) == Some(&b'"') {
            escaped = true;
            at += i + 2;
        } else {
            break at + i;
        }
    };
    let mut end = close + 1;
    while end < line.len() && is_space(line[end], delimiter) {
        end += 1;
    }
    if end < line.len() && line[end] != delimiter {
        return Err(Fault::AfterQuote { col, at: end });
    }
    let cell = Cell {
        start: open + 1,
        end: close,
        escaped,
    };
    Ok((cell, end))
}

/// All cells of a line (their raw content), for detection.
pub(super) fn split_owned(line: &[u8], delimiter: u8) -> Result<Vec<&[u8]>, Fault> {
    let mut cells = Vec::new();
    let mut pos = 0;
    loop {
        let (cell, end) = next_cell(line, pos, delimiter, cells.len())?;
        cells.push(cell.raw(line));
        if end >= line.len() {
            return Ok(cells);
        }
        pos = end + 1;
    }
}

/// The cells of a line as text (quotes undone), for column names.
pub(super) fn cell_names(line: &[u8], delimiter: u8) -> Result<Vec<String>, Fault> {
    let mut names = Vec::new();
    let mut scratch = Vec::new();
    let mut pos = 0;
    loop {
        let (cell, end) = next_cell(line, pos, delimiter, names.len())?;
        names.push(lossy(cell.text(line, &mut scratch)));
        if end >= line.len() {
            return Ok(names);
        }
        pos = end + 1;
    }
}

/// Counts the fields of a line from the one starting at `pos`, for a ragged-row message.
pub(super) fn count_fields(line: &[u8], mut pos: usize, delimiter: u8, before: usize) -> usize {
    let mut n = before;
    loop {
        n += 1;
        match next_cell(line, pos, delimiter, n - 1) {
            Ok((_, end)) if end < line.len() => pos = end + 1,
            Ok(_) => return n,
            // Past a broken quote the count is not well defined: report the delimiters.
            Err(_) => return n + memchr::memchr_iter(delimiter, &line[pos..]).count(),
        }
    }
}

/// Whether a cell is one of the missing-value markers.
pub(super) fn is_missing(cell: &[u8]) -> bool {
    match cell.len() {
        0 => true,
        2 => cell.eq_ignore_ascii_case(b"na"),
        3 => cell.eq_ignore_ascii_case(b"n/a") || cell.eq_ignore_ascii_case(b"nan"),
        4 => cell.eq_ignore_ascii_case(b"null"),
        _ => false,
    }
}

pub(super) fn is_number_or_missing(cell: &[u8]) -> bool {
    is_missing(cell) || parse_number(cell).is_some()
}

/// A decimal number (maybe infinite: the caller refuses those), or `None`.
pub(super) fn parse_number(cell: &[u8]) -> Option<f64> {
    if !cell.is_empty() && cell.len() <= 15 && cell.iter().all(u8::is_ascii_digit) {
        let v = cell.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
        return Some(v as f64);
    }
    // fast-float2 also reads `inf`, `infinity` and `nan` spellings; NaN is a missing marker
    // (or, spelled otherwise, not a number here).
    fast_float2::parse::<f64, _>(cell)
        .ok()
        .filter(|v| !v.is_nan())
}

/// A short unsigned integer ending at a delimiter or the line end, read straight from the
/// line: the common case of pixel-like data. Returns the value and the offset past it.
#[inline(always)]
pub(super) fn short_uint(line: &[u8], pos: usize, delimiter: u8) -> Option<(u32, usize)> {
    let mut value = 0u32;
    let mut i = pos;
    while i < line.len() && i - pos < 9 {
        let digit = line[i].wrapping_sub(b'0');
        if digit >= 10 {
            break;
        }
        value = value * 10 + u32::from(digit);
        i += 1;
    }
    let ends = i == line.len() || line[i] == delimiter;
    (i > pos && ends).then_some((value, i))
}

/// `bytes` as text, invalid UTF-8 replaced (names, levels and messages are text).
pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
