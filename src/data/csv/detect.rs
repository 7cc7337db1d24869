//! Detection: what the start of a file says about all of it — the delimiter, whether the first
//! line is a header, the column names, which columns are numeric, and which is the label. It
//! reads only a prefix (the first [`SAMPLE_ROWS`] rows, the first few lines for the delimiter),
//! so its decisions are the ones later passes must hold every row to: a
//! column judged numeric here makes text found in it later an error, not a change of kind.

use std::path::Path;

use crate::error::{Error, Result};

use super::cells::{
    Line, Lines, cell_names, is_missing, is_number_or_missing, parse_number, split_owned,
};
use super::errors::{empty_file, fault_error};
use super::{CsvOptions, LabelColumn, SAMPLE_ROWS};

/// Non-blank lines sampled to detect the delimiter.
const DELIMITER_LINES: usize = 20;
/// Candidate delimiters, in order of preference.
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];
/// Names that make a column the default label (compared without case).
const LABEL_NAMES: [&str; 4] = ["label", "target", "class", "y"];

/// What the start of a file says about all of it.
pub(super) struct Detected {
    pub(super) delimiter: u8,
    pub(super) header: bool,
    /// Every source column's name.
    pub(super) names: Vec<String>,
    /// Whether each source column is numeric (by the sample).
    pub(super) numeric: Vec<bool>,
    /// The label column's index.
    pub(super) label: usize,
    /// Byte offset of the first line after the header (or of the first line).
    pub(super) body_start: usize,
    /// Line number of the line at `body_start`.
    pub(super) body_line: u64,
}

/// Detects the format from `prefix`, the start of the file; `whole` says that it is the whole
/// file (otherwise its last, unterminated line is not used).
pub(super) fn detect(
    name: &Path,
    prefix: &[u8],
    whole: bool,
    opts: &CsvOptions,
) -> Result<Detected> {
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
pub(super) fn bom_len(bytes: &[u8]) -> usize {
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
pub(super) fn detect_delimiter(name: &Path, text: &[u8]) -> Result<u8> {
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
pub(super) fn first_line(bytes: &[u8], from: usize) -> Option<Line<'_>> {
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
