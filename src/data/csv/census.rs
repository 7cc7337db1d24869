//! Pass 1: counting the rows of a byte range and collecting the levels of its text columns,
//! so that the matrix can be allocated once at its final size before pass 2 fills it. A range
//! comes from a [`Source`]. Feature levels are capped per column to bound memory on identifier-like columns; label
//! levels are not.

use std::collections::HashSet;

use crate::error::Result;

use super::CsvOptions;
use super::cells::{Cell, is_missing, next_cell};
use super::detect::Detected;
use super::source::Source;

/// What pass 1 found in a range.
pub(super) struct Census {
    /// Non-blank lines (rows, if they parse).
    pub(super) rows: usize,
    /// Line ends seen.
    pub(super) newlines: u64,
    /// The distinct cells of each text column (`None` for numeric ones); empty from
    /// [`census_rows`], which counts only.
    pub(super) levels: Vec<Option<HashSet<Vec<u8>>>>,
    /// The first text cell that is not UTF-8: its line (counted from 0 in the range) and text.
    pub(super) bad_utf8: Option<(u64, usize, Vec<u8>)>,
}

/// Counts rows and line ends only (no levels): for files read against a known schema.
pub(super) fn census_rows(source: &Source) -> Result<Census> {
    let mut rows = 0;
    let newlines = source.lines(0, |_, _| {
        rows += 1;
        Ok(())
    })?;
    Ok(Census {
        rows,
        newlines,
        levels: Vec::new(),
        bad_utf8: None,
    })
}

/// How many distinct values pass 1 keeps per text feature column: enough to say how many a
/// column has when it has a few too many, and a bound on the memory an identifier column takes.
pub(super) fn level_cap(opts: &CsvOptions) -> usize {
    opts.max_levels.saturating_add(1).max(1000)
}

/// Pass 1 over a range: rows, and the levels of text columns from the lines that split into
/// the right number of cells (the others are reported by pass 2). A feature column keeps at
/// most `cap` levels; the label keeps all of its.
pub(super) fn census(source: &Source, det: &Detected, cap: usize) -> Result<Census> {
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
