//! CSV and TSV tables read into a train-ready `f32` matrix: [`parse_csv`] for bytes (any
//! target, one thread), [`read_csv`] for a file (native: streaming and parallel),
//! [`parse_rows_with`] for prediction rows read against a table's known schema, and
//! [`parse_labelled_rows_with`] (bytes) or [`read_labelled_rows_with`] (a file) for a separate
//! test file read against that schema with its labels kept.
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
//! # Files read against a schema
//!
//! Prediction and test files are read against the training table's columns: their one-hot
//! levels, the label's classes, and no detection of kinds. The first line is a header when it
//! names every feature column; columns are then matched by name, in any order, and a column that
//! is neither a feature nor the label (or repeats one) is refused. Prediction rows may omit the
//! header (rows then hold the feature columns in the schema's order) and the label (which is
//! read past). Test rows must have a header naming the label column and every feature column,
//! since without one neither the label column nor the order of the others is known. A level or
//! class that training did not have is an error naming its line and column.
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

mod cells;
mod census;
mod detect;
mod errors;
#[cfg(not(target_arch = "wasm32"))]
mod native;
mod plan;
mod source;
#[cfg(test)]
mod tests;
mod values;

use std::path::Path;

use crate::error::Result;
use census::{census, census_rows, level_cap};
use detect::detect;
use plan::{RowLabel, plan_table, schema_rows};
use source::Source;
use values::{LabelSlice, Output, Part, alloc, fill};

/// Rows sampled at the start of a file to detect the header and the column kinds.
pub const SAMPLE_ROWS: usize = 1000;

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

/// How a test file's label column is read ([`parse_labelled_rows_with`]): as the training
/// table's text classes, or as numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelSchema<'a> {
    /// The training table's classes, as in [`Labels::Text`] (sorted, distinct): each label must
    /// be one of them, and its code is its index here.
    Text(&'a [String]),
    /// Numbers, kept as read.
    Numeric,
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
/// name, in any order, and a column that is neither a feature nor the label (or repeats one) is
/// refused. Without a header, each row holds the feature columns only, in the schema's order. A
/// level a one-hot column did not have in training is an error naming its line and column;
/// missing cells are NaN with `allow_missing`, an error otherwise. A header alone gives no rows.
///
/// Returns the `rows × width` values and the line number of each row.
pub fn parse_rows_with(
    name: &Path,
    bytes: &[u8],
    columns: &[FeatureColumn],
    label_name: Option<&str>,
    allow_missing: bool,
) -> Result<(Vec<f32>, Vec<u64>)> {
    let file = schema_rows(
        name,
        bytes,
        columns,
        RowLabel::Skip(label_name),
        allow_missing,
    )?;
    let body = &bytes[file.body_start..];
    let rows = census_rows(&Source::Bytes(body))?.rows;
    // No label storage: prediction rows have none to keep.
    let mut values = alloc(name, rows, file.plan.width)?;
    let mut lines = vec![0; rows];
    let part = Part {
        values: &mut values,
        labels: LabelSlice::None,
        lines: &mut lines,
    };
    fill(&file.plan, &Source::Bytes(body), file.body_line, part)?;
    Ok((values, lines))
}

/// Parses a labelled test file (such as the `test.csv` shipped beside a `train.csv`) against a
/// table's schema: `columns` as in [`Table::columns`], the label column's name, and how its
/// cells are read, `label` (the training table's classes, or numbers). One thread; the same
/// result as [`read_labelled_rows_with`].
///
/// The file must have a header naming the label column and every feature column; columns are
/// matched by name, in any order, and a column that is neither a feature nor the label (or
/// repeats one) is refused. Feature cells are read as [`parse_rows_with`] reads them. Each label
/// must be one of the classes ([`LabelSchema::Text`], an error naming the line, the column and
/// a few of the classes otherwise) or a finite number ([`LabelSchema::Numeric`]); a missing
/// label is an error whatever `allow_missing` says. A header alone gives no rows.
///
/// Returns the `rows × width` values, the labels (for text, codes into the classes given, which
/// are returned as the levels) and the line number of each row.
pub fn parse_labelled_rows_with(
    name: &Path,
    bytes: &[u8],
    columns: &[FeatureColumn],
    label_name: &str,
    label: LabelSchema<'_>,
    allow_missing: bool,
) -> Result<(Vec<f32>, Labels, Vec<u64>)> {
    let read = RowLabel::Read(label_name, label);
    let file = schema_rows(name, bytes, columns, read, allow_missing)?;
    let body = &bytes[file.body_start..];
    let rows = census_rows(&Source::Bytes(body))?.rows;
    let mut out = Output::new(&file.plan, rows)?;
    let part = out.split(&[rows]).remove(0);
    fill(&file.plan, &Source::Bytes(body), file.body_line, part)?;
    Ok(out.into_rows())
}

/// [`parse_labelled_rows_with`] for a file, read as [`read_csv`] reads one: in parallel byte
/// ranges (on rayon's global pool) through a fixed-size buffer, so that peak memory stays near
/// the size of the matrix. An unreadable file is an I/O error naming it.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_labelled_rows_with(
    path: &Path,
    columns: &[FeatureColumn],
    label_name: &str,
    label: LabelSchema<'_>,
    allow_missing: bool,
) -> Result<(Vec<f32>, Labels, Vec<u64>)> {
    native::read_labelled(
        path,
        columns,
        label_name,
        label,
        allow_missing,
        native::RANGES_PER_THREAD,
        native::BLOCK,
    )
}
