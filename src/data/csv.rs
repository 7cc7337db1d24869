//! CSV and TSV tables read into a train-ready `f32` matrix: [`parse_csv`] for bytes (any
//! target, one thread), [`read_csv`] for a file (native: streaming and parallel), and
//! [`parse_rows_with`] for prediction rows read against a table's known schema.
//!
//! # Format
//!
//! - **Delimiter**: a file named `*.tsv` is tab-separated. Otherwise the delimiter is the one of
//!   `,` `;` and tab (preferred in that order) that occurs, outside quotes, the same nonzero
//!   number of times on each of the first 20 non-blank lines. When none is that regular, the one
//!   that occurs most on the first line is used (so that an irregular row is reported as such);
//!   when none occurs at all the file has a single column, which is an error.
//! - **Header**: the first non-blank line is a header when some column is numeric in the sampled
//!   rows below it but its first-row cell is text. When no column is numeric below, it is a
//!   header when none of its cells recurs in its column in the rows below (a lone line of text is
//!   a header). Without a header, columns are named `column_1`, `column_2`, …
//! - **Quotes**: RFC 4180: a field may be wrapped in `"`, with `""` standing for one quote;
//!   spaces around the quotes are allowed. A quote elsewhere in a field is an ordinary character.
//!   A quoted field must close on its own line: multi-line fields are refused, which is what
//!   lets a file be split into chunks at any line end.
//! - **Lines**: `\n` or `\r\n` ends. A UTF-8 byte-order mark is skipped. Blank lines (empty or
//!   only spaces and tabs), anywhere, are skipped; line numbers still count them.
//! - **Cells**: spaces and tabs around a cell are trimmed. Numbers are decimal integers or floats
//!   with an optional sign and exponent; they must be finite, and fit `f32` for features.
//!   **Missing** cells are empty ones and the markers `NA`, `N/A`, `NaN` and `null` (any case).
//!
//! # Columns
//!
//! - **Label**: [`CsvOptions::label`] when given (a name, or a 0-based index); otherwise the first
//!   column named `label`, `target`, `class` or `y` (any case); otherwise the last column.
//!   Text labels become codes into their sorted levels ([`Labels::Text`]); numeric labels are
//!   kept as read ([`Labels::Numeric`]), and the caller decides between classes and regression.
//! - **Kinds** are decided from the first [`SAMPLE_ROWS`] rows: a column is numeric when every
//!   non-missing sampled cell is a number (a column missing throughout the sample is numeric).
//!   Text found later in a numeric column is an error naming its line and column.
//! - **Text features** are one-hot encoded over their sorted levels, collected over the whole
//!   file; a column with more than [`CsvOptions::max_levels`] distinct values is refused.
//! - **Missing** feature cells are an error unless [`CsvOptions::allow_missing`], which makes
//!   them NaN (every slot of a one-hot column); a missing label is always an error.
//!
//! # Limits
//!
//! - A table needs two columns or more and one data row or more.
//! - Detection reads at most 16 MB of the file's start (more only while the first line is
//!   longer), so a file with very long lines is sampled on fewer rows.
//! - Text that becomes a level must be UTF-8; label levels are not bounded, feature levels are
//!   (counted up to `max(max_levels + 1, 1000)` per column, so the count in the error for a
//!   column of identifiers is a lower bound).
//! - `rows × width` must fit memory; it is checked for overflow, not allocated on trust.
//!
//! # Why it is built this way
//!
//! A training matrix can be as large as memory allows, so reading one must not need a second
//! copy of it. No cell becomes a string: cells are parsed in place from the bytes read, short
//! unsigned integers (pixels) by a fast path, other numbers by `fast-float2`, text through a
//! map from bytes to level codes. [`read_csv`] reads the file twice in parallel byte ranges that
//! start and end at line ends: the first pass counts rows (and collects the levels of text
//! columns), so that the matrix is allocated once at its final size; the second parses each
//! range into its own disjoint rows of that matrix. Ranges are read through a fixed-size buffer,
//! not mapped, so peak memory stays near the size of the matrix. Every allocation is backed by
//! the input: rows by lines read, levels by distinct cells read.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Rows sampled at the start of a file to detect the header and the column kinds.
pub const SAMPLE_ROWS: usize = 1000;
/// Non-blank lines sampled to detect the delimiter.
const DELIMITER_LINES: usize = 20;
/// Candidate delimiters, in order of preference.
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];
/// Names that make a column the default label (compared without case).
const LABEL_NAMES: [&str; 4] = ["label", "target", "class", "y"];
/// Cell text quoted in an error message is cut to this many characters.
const QUOTE_CHARS: usize = 40;

/// Which column holds the label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelColumn {
    /// The column with this header name (exact match).
    Name(String),
    /// The column at this 0-based index.
    Index(usize),
}

/// How a table is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The label column; `None` picks it as the module documentation says.
    pub label: Option<LabelColumn>,
    /// Missing cells become NaN instead of an error.
    pub allow_missing: bool,
    /// Text feature columns with at most this many distinct values are one-hot encoded.
    pub max_levels: usize,
    /// Threads for [`read_csv`] (native); 0 uses rayon's global pool.
    pub threads: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label: None,
            allow_missing: false,
            max_levels: 20,
            threads: 0,
        }
    }
}

/// How a feature column becomes matrix values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// One value, the number read.
    Numeric,
    /// One value per level (sorted): 1 for the cell's level, 0 for the others.
    OneHot { levels: Vec<String> },
}

/// A source feature column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureColumn {
    pub name: String,
    pub encoding: Encoding,
}

impl FeatureColumn {
    /// Matrix values this column takes.
    pub fn width(&self) -> usize {
        match &self.encoding {
            Encoding::Numeric => 1,
            Encoding::OneHot { levels } => levels.len(),
        }
    }
}

/// The label of each row.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// Text labels: codes into sorted levels.
    Text {
        codes: Vec<u32>,
        levels: Vec<String>,
    },
    /// Numeric labels as read (the caller decides classes vs regression).
    Numeric(Vec<f64>),
}

impl Labels {
    /// Labels held (one per row).
    pub fn len(&self) -> usize {
        match self {
            Labels::Text { codes, .. } => codes.len(),
            Labels::Numeric(values) => values.len(),
        }
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A table read for training.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The delimiter used (`,`, `;` or tab).
    pub delimiter: u8,
    /// Whether the first line was a header.
    pub header: bool,
    /// The label column's name.
    pub label_name: String,
    /// The source feature columns in file order (the label excluded).
    pub columns: Vec<FeatureColumn>,
    /// Values per row after one-hot expansion.
    pub width: usize,
    /// `rows × width` values, row-major; NaN where a cell was missing (`allow_missing`).
    pub values: Vec<f32>,
    pub labels: Labels,
    /// The physical (1-based) line number of each row.
    pub lines: Vec<u64>,
    /// Missing feature cells (each NaN-filled cell counts once, one-hot or not).
    pub missing: usize,
}

impl Table {
    /// Rows read.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }

    /// One name per matrix value: the column's name, or `column=level` for one-hot columns.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width);
        for column in &self.columns {
            match &column.encoding {
                Encoding::Numeric => names.push(column.name.clone()),
                Encoding::OneHot { levels } => {
                    names.extend(levels.iter().map(|l| format!("{}={l}", column.name)));
                }
            }
        }
        names
    }
}

/// Reads a table from the bytes of a file named `name` (its extension picks TSV; it names the
/// file in errors). One thread; the same result as [`read_csv`].
pub fn parse_csv(name: &Path, bytes: &[u8], opts: &CsvOptions) -> Result<Table> {
    let det = detect(name, bytes, true, opts)?;
    let body = &bytes[det.body_start..];
    let census = census(&Source::Bytes(body), &det, level_cap(opts))?;
    let counts = [census];
    let plan = plan_table(name, &det, &counts, opts)?;
    let mut out = Output::new(&plan, counts[0].rows)?;
    let missing = {
        let mut parts = out.split(&[counts[0].rows]);
        fill(&plan, &Source::Bytes(body), det.body_line, parts.remove(0))?
    };
    Ok(out.into_table(&det, plan, missing))
}

/// Reads a table from a file, in parallel byte ranges with [`CsvOptions::threads`] threads.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_csv(path: &Path, opts: &CsvOptions) -> Result<Table> {
    native::read(path, opts, native::RANGES_PER_THREAD, native::BLOCK)
}

/// Parses prediction rows against a table's schema: `columns` as in [`Table::columns`], and the
/// label column's name, whose column the file may hold (it is then skipped).
///
/// The first line is a header when it names every feature column; columns are then matched by
/// name, in any order, and a column that is neither a feature nor the label is refused. Without
/// a header, each row holds the feature columns only, in the schema's order. A level a one-hot
/// column did not have in training is an error naming its line and column; missing cells are
/// NaN with `allow_missing`, an error otherwise. A header alone gives no rows.
///
/// Returns the `rows × width` values and the line number of each row.
pub fn parse_rows_with(
    name: &Path,
    bytes: &[u8],
    columns: &[FeatureColumn],
    label_name: Option<&str>,
    allow_missing: bool,
) -> Result<(Vec<f32>, Vec<u64>)> {
    let start = bom_len(bytes);
    // A model with one feature reads files of one column, which have no delimiter to detect.
    let delimiter = match detect_delimiter(name, &bytes[start..]) {
        Err(_) if columns.len() == 1 => b',',
        found => found?,
    };
    let first = first_line(bytes, start).ok_or_else(|| empty_file(name))?;
    let names = cell_names(first.text, delimiter).unwrap_or_default();
    let header = columns.iter().all(|c| names.contains(&c.name));
    let (slots, width) = predict_slots(name, columns, &names, header, label_name)?;
    let (body_start, body_line) = if header {
        (first.end, first.number + 1)
    } else {
        (start, 1)
    };
    let shown = if header {
        names
    } else {
        columns.iter().map(|c| c.name.clone()).collect()
    };
    let plan = Plan {
        path: name.to_path_buf(),
        delimiter,
        names: shown,
        slots,
        width,
        allow_missing,
    };
    let body = &bytes[body_start..];
    let rows = census_rows(&Source::Bytes(body))?;
    let mut values = alloc(name, rows, width)?;
    let mut lines = vec![0; rows];
    let part = Part {
        values: &mut values,
        labels: LabelSlice::None,
        lines: &mut lines,
    };
    fill(&plan, &Source::Bytes(body), body_line, part)?;
    Ok((values, lines))
}

// ---------------------------------------------------------------------------------------------
// Detection

/// What the start of a file says about all of it.
struct Detected {
    delimiter: u8,
    header: bool,
    /// Every source column's name.
    names: Vec<String>,
    /// Whether each source column is numeric (by the sample).
    numeric: Vec<bool>,
    /// The label column's index.
    label: usize,
    /// Byte offset of the first line after the header (or of the first line).
    body_start: usize,
    /// Line number of the line at `body_start`.
    body_line: u64,
}

/// Detects the format from `prefix`, the start of the file; `whole` says that it is the whole
/// file (otherwise its last, unterminated line is not used).
fn detect(name: &Path, prefix: &[u8], whole: bool, opts: &CsvOptions) -> Result<Detected> {
    let prefix = if whole {
        prefix
    } else {
        memchr::memrchr(b'\n', prefix).map_or(&prefix[..0], |i| &prefix[..=i])
    };
    let start = bom_len(prefix);
    let delimiter = detect_delimiter(name, &prefix[start..])?;
    let first = first_line(prefix, start).ok_or_else(|| empty_file(name))?;
    let first_cells = split_owned(first.text, delimiter)
        .map_err(|fault| fault_error(name, &[], first.number, first.text, fault))?;
    let ncols = first_cells.len();
    if ncols < 2 {
        return Err(Error::format(
            name,
            "columns",
            "at least two columns (features and a label) separated by `,`, `;` or tab",
            format!("a single column on line {}", first.number),
        ));
    }
    let sample = sample_rows(&prefix[first.end..], delimiter, ncols);
    let header = is_header(&first_cells, &sample);
    let names: Vec<String> = if header {
        cell_names(first.text, delimiter).unwrap_or_default()
    } else {
        (1..=ncols).map(column_name).collect()
    };
    let data: Vec<&Vec<&[u8]>> = if header {
        sample.iter().collect()
    } else {
        std::iter::once(&first_cells).chain(sample.iter()).collect()
    };
    let numeric = (0..ncols)
        .map(|c| data.iter().all(|row| is_number_or_missing(row[c])))
        .collect();
    let label = pick_label(name, &names, header, opts.label.as_ref())?;
    let (body_start, body_line) = if header {
        (first.end, first.number + 1)
    } else {
        (start, 1)
    };
    Ok(Detected {
        delimiter,
        header,
        names,
        numeric,
        label,
        body_start,
        body_line,
    })
}

/// The length of a UTF-8 byte-order mark at the start of `bytes` (0 or 3).
fn bom_len(bytes: &[u8]) -> usize {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    }
}

/// `column_N`, the name of the N-th (1-based) column of a file without a header.
fn column_name(n: usize) -> String {
    format!("column_{n}")
}

/// The delimiter of a file named `name` starting with `text` (past any byte-order mark).
fn detect_delimiter(name: &Path, text: &[u8]) -> Result<u8> {
    let tsv = name
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
    if tsv {
        return Ok(b'\t');
    }
    let lines: Vec<&[u8]> = Lines::new(text, 1)
        .map(|l| l.text)
        .take(DELIMITER_LINES)
        .collect();
    let Some(first) = lines.first() else {
        return Err(empty_file(name));
    };
    let count = |line: &[u8], d: u8| split_owned(line, d).map_or(0, |cells| cells.len() - 1);
    for d in DELIMITERS {
        let n = count(first, d);
        if n > 0 && lines.iter().all(|l| count(l, d) == n) {
            return Ok(d);
        }
    }
    // No regular delimiter: take the most frequent on the first line, and let the rows that
    // disagree be reported by line.
    let best = DELIMITERS
        .into_iter()
        .map(|d| (count(first, d), d))
        .filter(|&(n, _)| n > 0)
        .max_by_key(|&(n, d)| (n, std::cmp::Reverse(d)));
    match best {
        Some((_, d)) => Ok(d),
        None => Err(Error::format(
            name,
            "columns",
            "at least two columns (features and a label) separated by `,`, `;` or tab",
            "a single column on line 1 (no `,`, `;` or tab outside quotes)",
        )),
    }
}

/// The first non-blank line at or after `from`.
fn first_line(bytes: &[u8], from: usize) -> Option<Line<'_>> {
    let skipped = bytes[..from].iter().filter(|&&b| b == b'\n').count() as u64;
    let mut lines = Lines::new(&bytes[from..], skipped + 1);
    lines.next().map(|l| Line {
        end: l.end + from,
        ..l
    })
}

/// The cells of up to [`SAMPLE_ROWS`] rows of `text` that split cleanly into `ncols` cells.
fn sample_rows(text: &[u8], delimiter: u8, ncols: usize) -> Vec<Vec<&[u8]>> {
    Lines::new(text, 1)
        .take(SAMPLE_ROWS)
        .filter_map(|l| split_owned(l.text, delimiter).ok())
        .filter(|cells| cells.len() == ncols)
        .collect()
}

/// The header rule of the module documentation.
fn is_header(first: &[&[u8]], rows: &[Vec<&[u8]>]) -> bool {
    let numeric_below: Vec<bool> = (0..first.len())
        .map(|c| {
            rows.iter().any(|r| !is_missing(r[c]))
                && rows.iter().all(|r| is_number_or_missing(r[c]))
        })
        .collect();
    if numeric_below.iter().any(|&n| n) {
        return (0..first.len()).any(|c| {
            numeric_below[c] && !is_missing(first[c]) && parse_number(first[c]).is_none()
        });
    }
    if rows.is_empty() {
        return first.iter().all(|c| parse_number(c).is_none());
    }
    (0..first.len()).all(|c| rows.iter().all(|r| r[c] != first[c]))
}

/// The label column's index, as the module documentation says.
fn pick_label(
    name: &Path,
    names: &[String],
    header: bool,
    asked: Option<&LabelColumn>,
) -> Result<usize> {
    let listed = || {
        let all: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        all.join(", ")
    };
    match asked {
        Some(LabelColumn::Name(label)) => names.iter().position(|n| n == label).ok_or_else(|| {
            Error::format(
                name,
                "label",
                format!("the name of a column: {}", listed()),
                format!("`{label}`"),
            )
        }),
        Some(LabelColumn::Index(i)) if *i < names.len() => Ok(*i),
        Some(LabelColumn::Index(i)) => Err(Error::format(
            name,
            "label",
            format!(
                "a 0-based column index below {} (columns {})",
                names.len(),
                listed()
            ),
            i.to_string(),
        )),
        None => {
            let named = names
                .iter()
                .position(|n| LABEL_NAMES.iter().any(|l| n.eq_ignore_ascii_case(l)));
            Ok(named.filter(|_| header).unwrap_or(names.len() - 1))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lines and cells

/// A non-blank line: its text without the line end, its number, and the offset past its end.
#[derive(Clone, Copy)]
struct Line<'a> {
    text: &'a [u8],
    number: u64,
    end: usize,
}

/// The non-blank lines of a buffer; the last one may lack a line end.
struct Lines<'a> {
    bytes: &'a [u8],
    at: usize,
    number: u64,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8], first_number: u64) -> Self {
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
fn each_line(
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

/// Why a line could not be read; turned into an [`Error`] where the line is known.
#[derive(Clone, Debug, PartialEq)]
enum Fault {
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
}

/// A cell's content in its line: trimmed, inside its quotes; `escaped` when it holds `""` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cell {
    start: usize,
    end: usize,
    escaped: bool,
}

impl Cell {
    fn raw<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        &line[self.start..self.end]
    }

    /// The cell's text with `""` pairs collapsed (in `scratch` when there are any).
    fn text<'a>(&self, line: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
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
fn next_cell(
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
fn split_owned(line: &[u8], delimiter: u8) -> Result<Vec<&[u8]>, Fault> {
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
fn cell_names(line: &[u8], delimiter: u8) -> Result<Vec<String>, Fault> {
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
fn count_fields(line: &[u8], mut pos: usize, delimiter: u8, before: usize) -> usize {
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
fn is_missing(cell: &[u8]) -> bool {
    match cell.len() {
        0 => true,
        2 => cell.eq_ignore_ascii_case(b"na"),
        3 => cell.eq_ignore_ascii_case(b"n/a") || cell.eq_ignore_ascii_case(b"nan"),
        4 => cell.eq_ignore_ascii_case(b"null"),
        _ => false,
    }
}

fn is_number_or_missing(cell: &[u8]) -> bool {
    is_missing(cell) || parse_number(cell).is_some()
}

/// A decimal number (maybe infinite: the caller refuses those), or `None`.
fn parse_number(cell: &[u8]) -> Option<f64> {
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
fn short_uint(line: &[u8], pos: usize, delimiter: u8) -> Option<(u32, usize)> {
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

// ---------------------------------------------------------------------------------------------
// Pass 1: rows and levels

/// Where a range's bytes come from.
enum Source<'a> {
    /// Whole lines in memory.
    Bytes(&'a [u8]),
    /// Whole lines of a file, `start..end`, read through a buffer of `block` bytes.
    #[cfg(not(target_arch = "wasm32"))]
    File {
        path: &'a Path,
        start: u64,
        end: u64,
        block: usize,
    },
}

impl Source<'_> {
    /// [`each_line`] over the source's lines.
    fn lines(&self, first_number: u64, f: impl FnMut(&[u8], u64) -> Result<()>) -> Result<u64> {
        match self {
            Source::Bytes(bytes) => each_line(bytes, first_number, f),
            #[cfg(not(target_arch = "wasm32"))]
            Source::File {
                path,
                start,
                end,
                block,
            } => native::file_lines(path, *start, *end, *block, first_number, f),
        }
    }
}

/// What pass 1 found in a range.
struct Census {
    /// Non-blank lines (rows, if they parse).
    rows: usize,
    /// Line ends seen.
    newlines: u64,
    /// The distinct cells of each text column (`None` for numeric ones).
    levels: Vec<Option<HashSet<Vec<u8>>>>,
    /// The first text cell that is not UTF-8: its line (counted from 0 in the range) and text.
    bad_utf8: Option<(u64, usize, Vec<u8>)>,
}

/// Counts rows only.
fn census_rows(source: &Source) -> Result<usize> {
    let mut rows = 0;
    source.lines(0, |_, _| {
        rows += 1;
        Ok(())
    })?;
    Ok(rows)
}

/// How many distinct values pass 1 keeps per text feature column: enough to say how many a
/// column has when it has a few too many, and a bound on the memory an identifier column takes.
fn level_cap(opts: &CsvOptions) -> usize {
    opts.max_levels.saturating_add(1).max(1000)
}

/// Pass 1 over a range: rows, and the levels of text columns from the lines that split into
/// the right number of cells (the others are reported by pass 2). A feature column keeps at
/// most `cap` levels; the label keeps all of its.
fn census(source: &Source, det: &Detected, cap: usize) -> Result<Census> {
    let ncols = det.names.len();
    let mut levels: Vec<Option<HashSet<Vec<u8>>>> = det
        .numeric
        .iter()
        .map(|&numeric| (!numeric).then(HashSet::new))
        .collect();
    let text_columns = levels.iter().any(Option::is_some);
    let mut rows = 0;
    let mut bad_utf8 = None;
    let mut scratch = Vec::new();
    let newlines = source.lines(0, |line, number| {
        rows += 1;
        if !text_columns || bad_utf8.is_some() {
            return Ok(());
        }
        let Some(cells) = split_cells(line, det.delimiter, ncols) else {
            return Ok(());
        };
        for (col, cell) in cells.iter().enumerate() {
            let Some(set) = levels[col].as_mut() else {
                continue;
            };
            let text = cell.text(line, &mut scratch);
            let full = col != det.label && set.len() >= cap;
            if full || is_missing(text) || set.contains(text) {
                continue;
            }
            if std::str::from_utf8(text).is_err() {
                bad_utf8 = Some((number, col, text.to_vec()));
                return Ok(());
            }
            set.insert(text.to_vec());
        }
        Ok(())
    })?;
    Ok(Census {
        rows,
        newlines,
        levels,
        bad_utf8,
    })
}

/// The cells of a line when it has exactly `ncols` and they all split cleanly.
fn split_cells(line: &[u8], delimiter: u8, ncols: usize) -> Option<Vec<Cell>> {
    let mut cells = Vec::with_capacity(ncols);
    let mut pos = 0;
    loop {
        let (cell, end) = next_cell(line, pos, delimiter, cells.len()).ok()?;
        cells.push(cell);
        if end >= line.len() {
            return (cells.len() == ncols).then_some(cells);
        }
        if cells.len() == ncols {
            return None;
        }
        pos = end + 1;
    }
}

// ---------------------------------------------------------------------------------------------
// The plan: what each source column becomes

/// Text levels: cell bytes to code. Codes follow the sorted order of the levels.
struct Levels {
    codes: HashMap<Vec<u8>, u32>,
}

impl Levels {
    fn new(sorted: &[String]) -> Self {
        let codes = sorted
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_bytes().to_vec(), i as u32))
            .collect();
        Levels { codes }
    }
}

/// What one source column becomes.
enum Slot {
    /// The number at `at` in the row.
    Number { at: usize },
    /// 1 at `at + code` in the row.
    OneHot { at: usize, levels: Levels },
    /// The numeric label.
    LabelNumber,
    /// The text label's code.
    LabelText(Levels),
    /// Read past (the label column of a prediction file).
    Skip,
}

/// How pass 2 reads rows.
struct Plan {
    path: PathBuf,
    delimiter: u8,
    /// Every source column's name.
    names: Vec<String>,
    slots: Vec<Slot>,
    width: usize,
    allow_missing: bool,
}

/// The label of a row.
enum LabelValue {
    None,
    Number(f64),
    Code(u32),
}

/// Merges pass 1's findings and decides every column's encoding.
fn plan_table(name: &Path, det: &Detected, counts: &[Census], opts: &CsvOptions) -> Result<Plan> {
    let mut line = det.body_line;
    for c in counts {
        if let Some((rel, col, text)) = &c.bad_utf8 {
            return Err(Error::format(
                name,
                "cell",
                format!("UTF-8 text ({})", column_ref(&det.names, *col)),
                format!("`{}` on line {}", quote(text), line + rel),
            ));
        }
        line += c.newlines;
    }
    if counts.iter().all(|c| c.rows == 0) {
        return Err(if det.header {
            Error::format(
                name,
                "file",
                "data rows after the header",
                format!("only the header (line {})", det.body_line - 1),
            )
        } else {
            empty_file(name)
        });
    }
    let mut slots = Vec::with_capacity(det.names.len());
    let mut width = 0;
    for col in 0..det.names.len() {
        let levels = merged_levels(counts, col);
        let slot = match levels {
            None if col == det.label => Slot::LabelNumber,
            None => Slot::Number { at: width },
            Some(l) if col == det.label => Slot::LabelText(Levels::new(&l)),
            Some(l) if l.len() > opts.max_levels => {
                return Err(too_many_levels(name, &det.names, col, l.len(), opts));
            }
            Some(l) => Slot::OneHot {
                at: width,
                levels: Levels::new(&l),
            },
        };
        width += match &slot {
            Slot::Number { .. } => 1,
            Slot::OneHot { levels, .. } => levels.codes.len(),
            _ => 0,
        };
        slots.push(slot);
    }
    Ok(Plan {
        path: name.to_path_buf(),
        delimiter: det.delimiter,
        names: det.names.clone(),
        slots,
        width,
        allow_missing: opts.allow_missing,
    })
}

/// The sorted union of a text column's levels over all ranges (`None` for numeric columns).
fn merged_levels(counts: &[Census], col: usize) -> Option<Vec<String>> {
    counts.first()?.levels[col].as_ref()?;
    let mut all: HashSet<&[u8]> = HashSet::new();
    for c in counts {
        if let Some(set) = &c.levels[col] {
            all.extend(set.iter().map(Vec::as_slice));
        }
    }
    // Pass 1 admitted only UTF-8 levels.
    let mut levels: Vec<String> = all.into_iter().map(lossy).collect();
    levels.sort_unstable();
    Some(levels)
}

fn too_many_levels(
    name: &Path,
    names: &[String],
    col: usize,
    count: usize,
    opts: &CsvOptions,
) -> Error {
    Error::format(
        name,
        "column",
        format!(
            "a text column with at most {} distinct values, to one-hot encode ({}); drop the \
             column or encode it as numbers",
            opts.max_levels,
            column_ref(names, col)
        ),
        if count >= level_cap(opts) {
            format!("at least {count} distinct values")
        } else {
            format!("{count} distinct values")
        },
    )
}

/// The slots of a prediction file's columns (`names`, from its first line) against a schema.
fn predict_slots(
    path: &Path,
    columns: &[FeatureColumn],
    names: &[String],
    header: bool,
    label_name: Option<&str>,
) -> Result<(Vec<Slot>, usize)> {
    let mut offsets = Vec::with_capacity(columns.len());
    let mut width = 0;
    for c in columns {
        offsets.push(width);
        width += c.width();
    }
    let slot = |i: usize| match &columns[i].encoding {
        Encoding::Numeric => Slot::Number { at: offsets[i] },
        Encoding::OneHot { levels } => Slot::OneHot {
            at: offsets[i],
            levels: Levels::new(levels),
        },
    };
    if !header {
        return Ok(((0..columns.len()).map(slot).collect(), width));
    }
    let mut slots = Vec::with_capacity(names.len());
    let mut used = vec![false; columns.len()];
    for (col, name) in names.iter().enumerate() {
        match columns.iter().position(|c| &c.name == name) {
            Some(i) if !used[i] => {
                used[i] = true;
                slots.push(slot(i));
            }
            _ if label_name == Some(name.as_str()) => slots.push(Slot::Skip),
            _ => {
                let known: Vec<String> = columns.iter().map(|c| format!("`{}`", c.name)).collect();
                return Err(Error::format(
                    path,
                    "column",
                    format!("the training columns {}", known.join(", ")),
                    format!("column `{name}` ({}) on line 1", col + 1),
                ));
            }
        }
    }
    Ok((slots, width))
}

// ---------------------------------------------------------------------------------------------
// Pass 2: values

/// The matrix and label storage, allocated once.
struct Output {
    width: usize,
    values: Vec<f32>,
    labels: Labels,
    lines: Vec<u64>,
}

/// One range's disjoint share of [`Output`].
struct Part<'a> {
    values: &'a mut [f32],
    labels: LabelSlice<'a>,
    lines: &'a mut [u64],
}

enum LabelSlice<'a> {
    None,
    Number(&'a mut [f64]),
    Code(&'a mut [u32]),
}

/// A zeroed `rows × width` matrix, or an error when its size overflows or cannot be had.
fn alloc(name: &Path, rows: usize, width: usize) -> Result<Vec<f32>> {
    let too_large = || Error::TooLarge {
        what: format!(
            "the matrix of {} ({rows} rows × {width} values)",
            name.display()
        ),
        needed: format!("{rows} × {width} × 4 bytes"),
        limit: "the memory available".into(),
    };
    let len = rows.checked_mul(width).ok_or_else(too_large)?;
    len.checked_mul(4)
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(too_large)?;
    // Zeroed memory comes from the allocator untouched: pages cost memory only once written.
    Ok(vec![0.0; len])
}

impl Output {
    fn new(plan: &Plan, rows: usize) -> Result<Self> {
        let text = plan.slots.iter().find_map(|s| match s {
            Slot::LabelText(levels) => Some(levels),
            _ => None,
        });
        let labels = match text {
            Some(levels) => {
                let mut sorted: Vec<(&Vec<u8>, &u32)> = levels.codes.iter().collect();
                sorted.sort_unstable_by_key(|&(_, &code)| code);
                Labels::Text {
                    codes: vec![0; rows],
                    levels: sorted.into_iter().map(|(l, _)| lossy(l)).collect(),
                }
            }
            None => Labels::Numeric(vec![0.0; rows]),
        };
        Ok(Output {
            width: plan.width,
            values: alloc(&plan.path, rows, plan.width)?,
            labels,
            lines: vec![0; rows],
        })
    }

    /// Splits into consecutive parts of `rows[i]` rows each.
    fn split(&mut self, rows: &[usize]) -> Vec<Part<'_>> {
        let width = self.width;
        let mut values: &mut [f32] = &mut self.values;
        let mut lines: &mut [u64] = &mut self.lines;
        let mut labels = match &mut self.labels {
            Labels::Text { codes, .. } => LabelSlice::Code(codes),
            Labels::Numeric(v) => LabelSlice::Number(v),
        };
        let mut parts = Vec::with_capacity(rows.len());
        for &n in rows {
            let (v, v_rest) = std::mem::take(&mut values).split_at_mut(n * width);
            let (l, l_rest) = std::mem::take(&mut lines).split_at_mut(n);
            let (lab, lab_rest) = labels.split_at(n);
            values = v_rest;
            lines = l_rest;
            labels = lab_rest;
            parts.push(Part {
                values: v,
                labels: lab,
                lines: l,
            });
        }
        parts
    }

    fn into_table(self, det: &Detected, plan: Plan, missing: usize) -> Table {
        let columns = plan
            .slots
            .iter()
            .zip(&plan.names)
            .filter_map(|(slot, name)| {
                let encoding = match slot {
                    Slot::Number { .. } => Encoding::Numeric,
                    Slot::OneHot { levels, .. } => {
                        let mut sorted: Vec<(&Vec<u8>, &u32)> = levels.codes.iter().collect();
                        sorted.sort_unstable_by_key(|&(_, &code)| code);
                        let levels = sorted.into_iter().map(|(l, _)| lossy(l)).collect();
                        Encoding::OneHot { levels }
                    }
                    _ => return None,
                };
                Some(FeatureColumn {
                    name: name.clone(),
                    encoding,
                })
            })
            .collect();
        Table {
            delimiter: det.delimiter,
            header: det.header,
            label_name: det.names[det.label].clone(),
            columns,
            width: plan.width,
            values: self.values,
            labels: self.labels,
            lines: self.lines,
            missing,
        }
    }
}

impl<'a> LabelSlice<'a> {
    fn split_at(self, n: usize) -> (Self, Self) {
        match self {
            LabelSlice::None => (LabelSlice::None, LabelSlice::None),
            LabelSlice::Number(v) => {
                let (a, b) = v.split_at_mut(n);
                (LabelSlice::Number(a), LabelSlice::Number(b))
            }
            LabelSlice::Code(v) => {
                let (a, b) = v.split_at_mut(n);
                (LabelSlice::Code(a), LabelSlice::Code(b))
            }
        }
    }

    fn set(&mut self, row: usize, value: LabelValue) {
        match (self, value) {
            (LabelSlice::Number(v), LabelValue::Number(x)) => v[row] = x,
            (LabelSlice::Code(v), LabelValue::Code(c)) => v[row] = c,
            _ => {}
        }
    }
}

/// Pass 2 over a range whose first line is `first_number`: parses its rows into `part`, which
/// pass 1 sized to them. Returns the missing cells filled.
fn fill(plan: &Plan, source: &Source, first_number: u64, mut part: Part) -> Result<usize> {
    let rows = part.lines.len();
    let mut row = 0;
    let mut missing = 0;
    let mut scratch = Vec::new();
    source.lines(first_number, |line, number| {
        if row == rows {
            return Err(changed(&plan.path));
        }
        let values = &mut part.values[row * plan.width..(row + 1) * plan.width];
        match parse_row(plan, line, values, &mut scratch) {
            Ok((label, m)) => {
                part.labels.set(row, label);
                missing += m;
            }
            Err(fault) => return Err(fault_error(&plan.path, &plan.names, number, line, fault)),
        }
        part.lines[row] = number;
        row += 1;
        Ok(())
    })?;
    if row != rows {
        return Err(changed(&plan.path));
    }
    Ok(missing)
}

/// Parses one row into `values` (zeroed, `plan.width` long). Returns its label and its missing
/// cells.
fn parse_row(
    plan: &Plan,
    line: &[u8],
    values: &mut [f32],
    scratch: &mut Vec<u8>,
) -> Result<(LabelValue, usize), Fault> {
    let ncols = plan.slots.len();
    let mut label = LabelValue::None;
    let mut missing = 0;
    let mut pos = 0;
    for (col, slot) in plan.slots.iter().enumerate() {
        if col > 0 {
            if pos >= line.len() {
                return Err(Fault::Ragged {
                    expected: ncols,
                    found: col,
                });
            }
            pos += 1;
        }
        if let Slot::Number { at } = slot {
            if let Some((v, end)) = short_uint(line, pos, plan.delimiter) {
                values[*at] = v as f32;
                pos = end;
                continue;
            }
        }
        let (cell, end) = next_cell(line, pos, plan.delimiter, col)?;
        missing += parse_cell(plan, slot, col, line, cell, values, scratch, &mut label)?;
        pos = end;
    }
    if pos < line.len() {
        let found = count_fields(line, pos + 1, plan.delimiter, ncols);
        return Err(Fault::Ragged {
            expected: ncols,
            found,
        });
    }
    Ok((label, missing))
}

/// Parses one cell for its slot. Returns 1 when it was missing (and filled), else 0.
#[allow(clippy::too_many_arguments)]
fn parse_cell(
    plan: &Plan,
    slot: &Slot,
    col: usize,
    line: &[u8],
    cell: Cell,
    values: &mut [f32],
    scratch: &mut Vec<u8>,
    label: &mut LabelValue,
) -> Result<usize, Fault> {
    let text = cell.text(line, scratch);
    let absent = is_missing(text);
    match slot {
        Slot::Skip => {}
        Slot::LabelNumber | Slot::LabelText(_) if absent => {
            return Err(Fault::MissingLabel { col, cell });
        }
        _ if absent && !plan.allow_missing => return Err(Fault::Missing { col, cell }),
        Slot::Number { at } if absent => values[*at] = f32::NAN,
        Slot::OneHot { at, levels } if absent => {
            values[*at..*at + levels.codes.len()].fill(f32::NAN)
        }
        Slot::Number { at } => {
            let v = parse_number(text).ok_or(Fault::NotNumber { col, cell })?;
            let v = v as f32;
            if !v.is_finite() {
                return Err(Fault::NotFinite { col, cell });
            }
            values[*at] = v;
        }
        Slot::OneHot { at, levels } => {
            let code = levels
                .codes
                .get(text)
                .ok_or(Fault::UnknownLevel { col, cell })?;
            values[*at + *code as usize] = 1.0;
        }
        Slot::LabelNumber => {
            let v = parse_number(text).ok_or(Fault::NotNumber { col, cell })?;
            if !v.is_finite() {
                return Err(Fault::NotFinite { col, cell });
            }
            *label = LabelValue::Number(v);
        }
        Slot::LabelText(levels) => {
            let code = levels
                .codes
                .get(text)
                .ok_or(Fault::UnknownLevel { col, cell })?;
            *label = LabelValue::Code(*code);
        }
    }
    Ok(usize::from(absent && !matches!(slot, Slot::Skip)))
}

// ---------------------------------------------------------------------------------------------
// Errors

fn empty_file(path: &Path) -> Error {
    Error::format(path, "file", "a header or data rows", "an empty file")
}

fn changed(path: &Path) -> Error {
    Error::format(
        path,
        "file",
        "the same contents on both passes over it",
        "a file that changed while it was read",
    )
}

/// `column `name`, N` with N 1-based.
fn column_ref(names: &[String], col: usize) -> String {
    match names.get(col) {
        Some(name) => format!("column `{name}`, {}", col + 1),
        None => format!("column {}", col + 1),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Cell text for a message: lossy UTF-8, cut to [`QUOTE_CHARS`] characters.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().nth(QUOTE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The error for a fault on line `number`, whose text is `line`.
fn fault_error(path: &Path, names: &[String], number: u64, line: &[u8], fault: Fault) -> Error {
    let cell_text = |cell: Cell| {
        let raw = cell.raw(line);
        if raw.is_empty() {
            format!("an empty cell on line {number}")
        } else {
            format!("`{}` on line {number}", quote(raw))
        }
    };
    let (field, expected, found) = match fault {
        Fault::Ragged { expected, found } => (
            "row",
            format!("{expected} fields, as on the first line"),
            format!("{found} fields on line {number}"),
        ),
        Fault::Unterminated { col } => (
            "quote",
            format!(
                "a quoted field closed on its own line ({}); multi-line fields are not supported",
                column_ref(names, col)
            ),
            format!("an unterminated quote on line {number}"),
        ),
        Fault::AfterQuote { col, at } => (
            "quote",
            format!(
                "a delimiter after the closing quote ({})",
                column_ref(names, col)
            ),
            format!("`{}` on line {number}", quote(&line[at..])),
        ),
        Fault::NotNumber { col, cell } => (
            "cell",
            format!("a number ({})", column_ref(names, col)),
            cell_text(cell),
        ),
        Fault::NotFinite { col, cell } => (
            "cell",
            format!("a finite number that fits f32 ({})", column_ref(names, col)),
            cell_text(cell),
        ),
        Fault::Missing { col, cell } => (
            "cell",
            format!(
                "a value ({}); missing cells are refused unless filled with `--fill mean|zero`",
                column_ref(names, col)
            ),
            cell_text(cell),
        ),
        Fault::MissingLabel { col, cell } => (
            "label",
            format!(
                "a label ({}); rows without one cannot be used",
                column_ref(names, col)
            ),
            cell_text(cell),
        ),
        Fault::UnknownLevel { col, cell } => (
            "cell",
            format!(
                "one of the column's training levels ({})",
                column_ref(names, col)
            ),
            cell_text(cell),
        ),
    };
    Error::format(path, field, expected, found)
}

// ---------------------------------------------------------------------------------------------
// Files, in parallel

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::fs::File;
    use std::io::{Read, Seek, SeekFrom};
    use std::path::Path;

    use rayon::prelude::*;

    use super::{
        CsvOptions, Detected, Output, Source, Table, census, detect, each_line, fill, level_cap,
        plan_table,
    };
    use crate::error::{Error, Result};

    /// Bytes read at a time by each range.
    pub(super) const BLOCK: usize = 8 << 20;
    /// Ranges per thread, so that a thread that finishes early takes another.
    pub(super) const RANGES_PER_THREAD: usize = 4;
    /// The most of a file's start read to detect its format (more only for a longer first line).
    const PREFIX_MAX: usize = 16 << 20;
    /// Ranges are at least this long, so that small files are not cut into slivers.
    const MIN_RANGE: u64 = 1 << 20;

    /// [`super::read_csv`] with its range count and block size exposed for tests.
    pub(super) fn read(
        path: &Path,
        opts: &CsvOptions,
        ranges_per_thread: usize,
        block: usize,
    ) -> Result<Table> {
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, "read metadata of", e))?
            .len();
        let (prefix, whole) = read_prefix(path, len)?;
        let det = detect(path, &prefix, whole, opts)?;
        drop(prefix);
        in_pool(opts.threads, |threads| {
            // Tests force small blocks to get many ranges from a small file.
            let min_range = if block < BLOCK { 1 } else { MIN_RANGE };
            let count = threads * ranges_per_thread;
            let bounds = ranges(path, det.body_start as u64, len, count, min_range)?;
            let sources: Vec<Source> = bounds
                .windows(2)
                .map(|w| Source::File {
                    path,
                    start: w[0],
                    end: w[1],
                    block,
                })
                .collect();
            let cap = level_cap(opts);
            let counts = in_order(sources.par_iter().map(|s| census(s, &det, cap)).collect())?;
            let plan = plan_table(path, &det, &counts, opts)?;
            let rows: Vec<usize> = counts.iter().map(|c| c.rows).collect();
            let mut out = Output::new(&plan, rows.iter().sum())?;
            let firsts = first_lines(&det, &counts);
            let filled = out
                .split(&rows)
                .into_par_iter()
                .zip(sources.par_iter().zip(firsts))
                .map(|(part, (source, first))| fill(&plan, source, first, part))
                .collect();
            let missing = in_order(filled)?.into_iter().sum();
            Ok(out.into_table(&det, plan, missing))
        })
    }

    /// The ranges' results, or the error of the first range (in file order) that failed.
    fn in_order<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
        results.into_iter().collect()
    }

    /// The first line number of each range.
    fn first_lines(det: &Detected, counts: &[super::Census]) -> Vec<u64> {
        let mut line = det.body_line;
        counts
            .iter()
            .map(|c| {
                let first = line;
                line += c.newlines;
                first
            })
            .collect()
    }

    /// Runs `f` with the thread count asked (0: rayon's global pool) and passes it the count.
    fn in_pool<R: Send>(threads: usize, f: impl FnOnce(usize) -> R + Send) -> R {
        if threads == 0 {
            return f(rayon::current_num_threads());
        }
        match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => pool.install(|| f(threads)),
            Err(_) => f(rayon::current_num_threads()),
        }
    }

    /// The file's start for detection: [`super::SAMPLE_ROWS`] lines past the header, within
    /// [`PREFIX_MAX`] bytes unless the first line is longer. Also says whether it is the whole
    /// file.
    fn read_prefix(path: &Path, len: u64) -> Result<(Vec<u8>, bool)> {
        let mut file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        let mut prefix = Vec::new();
        let mut want = 1usize << 20;
        loop {
            let have = prefix.len();
            let n = (&mut file)
                .take((want - have) as u64)
                .read_to_end(&mut prefix)
                .map_err(|e| Error::io(path, "read", e))?;
            let whole = prefix.len() as u64 >= len || n == 0;
            let lines = memchr::memchr_iter(b'\n', &prefix).count();
            let enough = lines > super::SAMPLE_ROWS + 1 || (want >= PREFIX_MAX && lines > 0);
            if whole || enough {
                return Ok((prefix, whole));
            }
            want *= 2;
        }
    }

    /// Range bounds: `start`, points past the line end at or after each even cut, and `len`.
    fn ranges(path: &Path, start: u64, len: u64, count: usize, min: u64) -> Result<Vec<u64>> {
        let span = len.saturating_sub(start);
        let count = (count as u64).clamp(1, (span / min).max(1));
        let mut bounds = vec![start];
        for i in 1..count {
            let cut = next_line_start(path, start + span * i / count, len)?;
            if cut > *bounds.last().unwrap_or(&start) && cut < len {
                bounds.push(cut);
            }
        }
        bounds.push(len.max(start));
        Ok(bounds)
    }

    /// The offset past the first `\n` at or after `at` (or `len`).
    fn next_line_start(path: &Path, at: u64, len: u64) -> Result<u64> {
        let mut file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        file.seek(SeekFrom::Start(at))
            .map_err(|e| Error::io(path, "seek in", e))?;
        let mut buf = vec![0; 64 << 10];
        let mut pos = at;
        while pos < len {
            let n = file
                .read(&mut buf)
                .map_err(|e| Error::io(path, "read", e))?;
            if n == 0 {
                break;
            }
            if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
                return Ok(pos + i as u64 + 1);
            }
            pos += n as u64;
        }
        Ok(len)
    }

    /// [`each_line`] over the lines of `start..end` of a file, read `block` bytes at a time
    /// (more when one line is longer).
    pub(super) fn file_lines(
        path: &Path,
        start: u64,
        end: u64,
        block: usize,
        first_number: u64,
        mut f: impl FnMut(&[u8], u64) -> Result<()>,
    ) -> Result<u64> {
        let mut file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(path, "seek in", e))?;
        let left_total = end.saturating_sub(start);
        let size = usize::try_from(left_total).map_or(block, |n| n.clamp(1, block.max(1)));
        let mut buf = vec![0u8; size];
        let (mut have, mut left, mut number) = (0usize, left_total, first_number);
        loop {
            if have == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let want = usize::try_from(left).map_or(buf.len() - have, |l| l.min(buf.len() - have));
            read_full(&mut file, &mut buf[have..have + want], path)?;
            have += want;
            left -= want as u64;
            if left == 0 {
                return Ok(number - first_number + each_line(&buf[..have], number, &mut f)?);
            }
            let Some(last) = memchr::memrchr(b'\n', &buf[..have]) else {
                continue;
            };
            number += each_line(&buf[..last], number, &mut f)? + 1;
            buf.copy_within(last + 1..have, 0);
            have -= last + 1;
        }
    }

    /// Fills `buf` from `file`; a file shorter than when it was measured is an error.
    fn read_full(file: &mut File, buf: &mut [u8], path: &Path) -> Result<()> {
        file.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                super::changed(path)
            } else {
                Error::io(path, "read", e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.csv")
    }

    fn parse(text: &str) -> Result<Table> {
        parse_csv(p(), text.as_bytes(), &CsvOptions::default())
    }

    fn err(text: &str, opts: &CsvOptions) -> String {
        parse_csv(p(), text.as_bytes(), opts)
            .unwrap_err()
            .to_string()
    }

    fn numeric(t: &Table) -> &[f64] {
        match &t.labels {
            Labels::Numeric(v) => v,
            Labels::Text { .. } => panic!("text labels"),
        }
    }

    #[test]
    fn detects_each_delimiter() {
        for (d, text) in [
            (b',', "a,b,c\n1,2,3\n4,5,6\n"),
            (b';', "a;b;c\n1;2,5;3\n4;5;6\n"),
            (b'\t', "a\tb\tc\n1\t2\t3\n4\t5\t6\n"),
        ] {
            let t = parse(text).unwrap();
            assert_eq!(t.delimiter, d, "{text}");
            assert_eq!(t.rows(), 2);
        }
        let tsv = parse_csv(
            Path::new("x.tsv"),
            b"1.5\t2\n3\t4\n",
            &CsvOptions::default(),
        );
        let t = tsv.unwrap();
        assert_eq!(t.delimiter, b'\t');
        assert!(!t.header);
    }

    #[test]
    fn semicolon_beats_decimal_commas_when_regular() {
        let t = parse("x;y\n1,5;2\n3;4\n").unwrap();
        assert_eq!(t.delimiter, b';');
        // `1,5` is not a number: the column is text.
        assert_eq!(t.feature_names(), ["x=1,5", "x=3"]);
    }

    #[test]
    fn detects_header_or_not() {
        let t = parse("x1,x2,label\n1,2,0\n3,4,1\n").unwrap();
        assert!(t.header);
        assert_eq!(t.label_name, "label");
        assert_eq!(t.lines, vec![2, 3]);
        let t = parse("1,2,0\n3,4,1\n").unwrap();
        assert!(!t.header);
        assert_eq!(t.label_name, "column_3");
        assert_eq!(t.lines, vec![1, 2]);
        assert_eq!(t.values, vec![1.0, 2.0, 3.0, 4.0]);
        // All text: a header when its cells do not recur below.
        let t = parse("color,size\nred,big\nblue,small\n").unwrap();
        assert!(t.header);
        let t = parse("red,big\nblue,small\nred,small\n").unwrap();
        assert!(!t.header);
        assert_eq!(t.rows(), 3);
    }

    #[test]
    fn bom_crlf_and_blank_lines() {
        let t = parse("\u{feff}a,b\r\n1,2\r\n\r\n  \r\n3,4\r\n\r\n").unwrap();
        assert!(t.header);
        assert_eq!(t.columns[0].name, "a");
        assert_eq!(t.values, vec![1.0, 3.0]);
        assert_eq!(numeric(&t), &[2.0, 4.0]);
        assert_eq!(t.lines, vec![2, 5]);
    }

    #[test]
    fn quotes_and_escaped_quotes() {
        let t = parse("\"name, full\",\"v\"\n\"say \"\"hi\"\"\", \"1\" \n\"x\",2\n").unwrap();
        assert_eq!(t.columns[0].name, "name, full");
        let Encoding::OneHot { levels } = &t.columns[0].encoding else {
            panic!("not one-hot");
        };
        assert_eq!(levels, &["say \"hi\"", "x"]);
        assert_eq!(t.values, vec![1.0, 0.0, 0.0, 1.0]);
        assert_eq!(numeric(&t), &[1.0, 2.0]);
    }

    #[test]
    fn quoted_newline_refused() {
        let e = err("a,b\n1,\"x\ny\"\n", &CsvOptions::default());
        assert!(e.contains("multi-line fields are not supported"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = err("a,b\n1,\"x\" y\n", &CsvOptions::default());
        assert!(e.contains("after the closing quote"), "{e}");
    }

    #[test]
    fn label_by_name_index_default_and_last() {
        let text = "id,Target,f\n1,2,3\n4,5,6\n";
        let t = parse(text).unwrap();
        assert_eq!(t.label_name, "Target");
        assert_eq!(numeric(&t), &[2.0, 5.0]);
        assert_eq!(t.feature_names(), ["id", "f"]);
        let by = |label| CsvOptions {
            label: Some(label),
            ..CsvOptions::default()
        };
        let t = parse_csv(p(), text.as_bytes(), &by(LabelColumn::Name("f".into()))).unwrap();
        assert_eq!(numeric(&t), &[3.0, 6.0]);
        let t = parse_csv(p(), text.as_bytes(), &by(LabelColumn::Index(0))).unwrap();
        assert_eq!(numeric(&t), &[1.0, 4.0]);
        let e = err(text, &by(LabelColumn::Name("nope".into())));
        assert!(
            e.contains("`id`, `Target`, `f`") && e.contains("`nope`"),
            "{e}"
        );
        let e = err(text, &by(LabelColumn::Index(3)));
        assert!(e.contains("below 3"), "{e}");
        for name in ["label", "CLASS", "y"] {
            let t = parse(&format!("a,{name},b\n1,2,3\n")).unwrap();
            assert_eq!(t.label_name, name);
        }
        let t = parse("a,b,c\n1,2,3\n").unwrap();
        assert_eq!(t.label_name, "c");
    }

    #[test]
    fn text_labels_sorted() {
        let t = parse("x,species\n1,virginica\n2,setosa\n3,versicolor\n4,setosa\n").unwrap();
        let Labels::Text { codes, levels } = &t.labels else {
            panic!("numeric labels");
        };
        assert_eq!(levels, &["setosa", "versicolor", "virginica"]);
        assert_eq!(codes, &[2, 0, 1, 0]);
    }

    #[test]
    fn one_hot_with_feature_names() {
        let t = parse("color,w,y\nred,1,0\nblue,2,1\nred,3,0\n").unwrap();
        assert_eq!(t.width, 3);
        assert_eq!(t.feature_names(), ["color=blue", "color=red", "w"]);
        assert_eq!(t.values, vec![0., 1., 1., 1., 0., 2., 0., 1., 3.]);
    }

    #[test]
    fn too_many_levels_refused() {
        let mut text = String::from("c,y\n");
        for i in 0..30 {
            text.push_str(&format!("v{i},1\n"));
        }
        let e = err(&text, &CsvOptions::default());
        assert!(
            e.contains("column `c`, 1") && e.contains("30 distinct values"),
            "{e}"
        );
        assert!(e.contains("at most 20"), "{e}");
        let many = CsvOptions {
            max_levels: 30,
            ..CsvOptions::default()
        };
        assert_eq!(parse_csv(p(), text.as_bytes(), &many).unwrap().width, 30);
    }

    #[test]
    fn ragged_rows() {
        let e = err("a,b,c\n1,2,3\n\n4,5\n", &CsvOptions::default());
        assert!(
            e.contains("3 fields") && e.contains("2 fields on line 4"),
            "{e}"
        );
        let e = err("a,b,c\n1,2,3\n4,5,6,7,8\n", &CsvOptions::default());
        assert!(e.contains("5 fields on line 3"), "{e}");
    }

    #[test]
    fn text_in_numeric_column() {
        let mut text = String::from("petal_length,petal_width,y\n");
        for _ in 0..SAMPLE_ROWS + 5 {
            text.push_str("1.5,0.2,0\n");
        }
        text.push_str("1.4,abc,1\n");
        let e = err(&text, &CsvOptions::default());
        let line = SAMPLE_ROWS + 7;
        assert!(e.contains("a number (column `petal_width`, 2)"), "{e}");
        assert!(e.contains(&format!("`abc` on line {line}")), "{e}");
    }

    #[test]
    fn missing_cells() {
        let text = "a,b,y\n1,,0\nNA,2,1\n3,null,0\n";
        let e = err(text, &CsvOptions::default());
        assert!(
            e.contains("column `b`, 2") && e.contains("empty cell on line 2"),
            "{e}"
        );
        assert!(e.contains("--fill mean|zero"), "{e}");
        let opts = CsvOptions {
            allow_missing: true,
            ..CsvOptions::default()
        };
        let t = parse_csv(p(), text.as_bytes(), &opts).unwrap();
        assert_eq!(t.missing, 3);
        assert!(t.values[1].is_nan() && t.values[2].is_nan() && t.values[5].is_nan());
        assert_eq!((t.values[0], t.values[3], t.values[4]), (1.0, 2.0, 3.0));
        // A one-hot cell missing: all its slots are NaN.
        let t = parse_csv(p(), b"c,y\nred,0\nN/A,1\nblue,0\n", &opts).unwrap();
        assert!(t.values[2..4].iter().all(|v| v.is_nan()));
        let e = err("a,y\n1,\n", &opts);
        assert!(e.contains("bad label") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn empty_header_only_single_column() {
        let opts = CsvOptions::default();
        assert!(err("", &opts).contains("an empty file"));
        assert!(err("\n \n", &opts).contains("an empty file"));
        let e = err("a,b,label\n", &opts);
        assert!(e.contains("only the header (line 1)"), "{e}");
        let e = err("a\n1\n2\n", &opts);
        assert!(e.contains("a single column"), "{e}");
    }

    #[test]
    fn infinities_refused() {
        for cell in ["inf", "-Infinity", "1e39"] {
            let e = err(&format!("a,y\n1,0\n{cell},1\n"), &CsvOptions::default());
            assert!(
                e.contains("finite") && e.contains(&format!("`{cell}` on line 3")),
                "{e}"
            );
        }
        let t = parse("a,y\n+1.5e2, -3 \n.5,2.\n").unwrap();
        assert_eq!(t.values, vec![150.0, 0.5]);
        assert_eq!(numeric(&t), &[-3.0, 2.0]);
    }

    #[test]
    fn prediction_rows() {
        let t = parse("color,w,y\nred,1,0\nblue,2,1\n").unwrap();
        let (values, lines) =
            parse_rows_with(p(), b"w,color\n5,blue\n\n6,red\n", &t.columns, None, false).unwrap();
        assert_eq!(values, vec![1., 0., 5., 0., 1., 6.]);
        assert_eq!(lines, vec![2, 4]);
        let (values, _) =
            parse_rows_with(p(), b"red,7\nblue,8\n", &t.columns, Some("y"), false).unwrap();
        assert_eq!(values, vec![0., 1., 7., 1., 0., 8.]);
        let (values, _) =
            parse_rows_with(p(), b"y,color,w\n1,red,9\n", &t.columns, Some("y"), false).unwrap();
        assert_eq!(values, vec![0., 1., 9.]);
        let e = parse_rows_with(p(), b"color,w\ngreen,1\n", &t.columns, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column `color`, 1") && e.contains("`green` on line 2"),
            "{e}"
        );
        let e = parse_rows_with(p(), b"color,w,z\nred,1,2\n", &t.columns, None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("column `z`"), "{e}");
        // One feature: a file of one column has no delimiter to detect.
        let one = [FeatureColumn {
            name: "w".into(),
            encoding: Encoding::Numeric,
        }];
        let (values, lines) = parse_rows_with(p(), b"w\n1.5\nNA\n", &one, None, true).unwrap();
        assert_eq!((values[0], lines), (1.5, vec![2, 3]));
        assert!(values[1].is_nan());
    }

    /// A fixture of tests/data/csv, read by `read_csv` (and checked against `parse_csv`).
    #[cfg(not(target_arch = "wasm32"))]
    fn fixture(name: &str, opts: &CsvOptions) -> Result<Table> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/csv")
            .join(name);
        let bytes = std::fs::read(&path).unwrap();
        let read = read_csv(&path, opts);
        let parsed = parse_csv(&path, &bytes, opts);
        // Debug text, so that NaN cells compare equal.
        assert_eq!(format!("{read:?}"), format!("{parsed:?}"));
        read
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn fixtures() {
        let opts = CsvOptions::default();
        let iris = fixture("iris.csv", &opts).unwrap();
        assert_eq!((iris.rows(), iris.width, iris.delimiter), (30, 4, b','));
        assert_eq!(iris.label_name, "species");
        assert_eq!(&iris.values[..4], &[5.1, 3.5, 1.4, 0.2]);
        let Labels::Text { codes, levels } = &iris.labels else {
            panic!("numeric species");
        };
        assert_eq!(levels, &["setosa", "versicolor", "virginica"]);
        assert_eq!((codes[0], codes[10], codes[29]), (0, 1, 2));

        let semi = fixture("semicolon.csv", &opts).unwrap();
        assert_eq!(semi.delimiter, b';');
        let names = [
            "area",
            "rooms",
            "heating=electric",
            "heating=gas",
            "heating=heat pump",
        ];
        assert_eq!(semi.feature_names(), names);
        assert_eq!(&semi.values[..5], &[54.5, 2.0, 0.0, 1.0, 0.0]);
        assert!(matches!(&semi.labels, Labels::Numeric(p) if p[0] == 182000.0));

        let tsv = fixture("no_header.tsv", &opts).unwrap();
        assert!(!tsv.header);
        assert_eq!(
            (tsv.rows(), tsv.width, tsv.label_name.as_str()),
            (6, 3, "column_4")
        );

        let e = fixture("missing.csv", &opts).unwrap_err().to_string();
        assert!(
            e.contains("column `income`, 2") && e.contains("empty cell on line 3"),
            "{e}"
        );
        let filled = CsvOptions {
            allow_missing: true,
            ..CsvOptions::default()
        };
        let missing = fixture("missing.csv", &filled).unwrap();
        assert_eq!((missing.rows(), missing.missing), (6, 4));
        // Two incomes and an age, and the three slots of the missing city.
        assert_eq!(
            missing.values.iter().filter(|v| v.is_nan()).count(),
            2 + 1 + 3
        );

        let e = fixture("ragged.csv", &opts).unwrap_err().to_string();
        assert!(
            e.contains("4 fields") && e.contains("3 fields on line 4"),
            "{e}"
        );

        let e = fixture("text_in_number.csv", &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("(column `petal_width`, 1)"), "{e}");
        assert!(e.contains("`abc` on line 1012"), "{e}");
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn iris_predicted_against_its_schema() {
        let iris = fixture("iris.csv", &CsvOptions::default()).unwrap();
        let text = "petal_width,petal_length,sepal_width,sepal_length\n0.2,1.4,3.5,5.1\n";
        let (values, lines) =
            parse_rows_with(p(), text.as_bytes(), &iris.columns, Some("species"), false).unwrap();
        assert_eq!((values, lines), (vec![5.1, 3.5, 1.4, 0.2], vec![2]));
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn parallel_equals_single_threaded() {
        let mut text = String::from("\u{feff}px1;px2;\"kind\";label\r\n");
        for i in 0..2000u32 {
            if i % 97 == 0 {
                text.push('\n');
            }
            let kind = ["a", "b", "\"c\"\"\""][(i % 3) as usize];
            text.push_str(&format!("{};{}.5;{kind};{}\r\n", i % 256, i, i % 10));
        }
        let dir = std::env::temp_dir().join(format!("soma-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("multi.csv");
        std::fs::write(&path, &text).unwrap();
        let opts = CsvOptions {
            threads: 3,
            ..CsvOptions::default()
        };
        let single = parse_csv(&path, text.as_bytes(), &opts).unwrap();
        let chunked = native::read(&path, &opts, 5, 64).unwrap();
        let whole = read_csv(&path, &opts).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(single.rows(), 2000);
        // A blank line before rows 0, 97, … 1940: 21 of them.
        assert_eq!(single.lines[0], 3);
        assert_eq!(single.lines[1999], 1 + 21 + 2000);
        assert_eq!(single, chunked);
        assert_eq!(single, whole);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn parallel_errors_name_the_same_line() {
        let mut text = String::from("a,b\n");
        for i in 0..SAMPLE_ROWS + 100 {
            text.push_str(&format!("{i},1\n"));
        }
        text.push_str("7,x\n");
        let dir = std::env::temp_dir().join(format!("soma-csv-e{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.csv");
        std::fs::write(&path, &text).unwrap();
        let opts = CsvOptions {
            threads: 2,
            ..CsvOptions::default()
        };
        let chunked = native::read(&path, &opts, 4, 32).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        let line = SAMPLE_ROWS + 102;
        assert!(
            chunked.contains(&format!("`x` on line {line}")),
            "{chunked}"
        );
    }
}
