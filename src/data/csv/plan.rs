//! The plan: what each source column becomes. It merges pass 1's findings over all ranges and
//! decides every column's encoding (numeric, one-hot over sorted levels, the label, or skipped),
//! refusing feature columns with too many levels. Level codes follow sorted order so that the
//! result does not depend on how the file was split. It also maps a prediction file's columns
//! onto a trained table's schema for [`parse_rows_with`](super::parse_rows_with).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::cells::lossy;
use super::census::{Census, level_cap};
use super::detect::Detected;
use super::errors::{column_ref, empty_file, quote};
use super::{CsvOptions, Encoding, FeatureColumn};

/// Text levels: cell bytes to code. Codes follow the sorted order of the levels.
pub(super) struct Levels {
    pub(super) codes: HashMap<Vec<u8>, u32>,
}

impl Levels {
    pub(super) fn new(sorted: &[String]) -> Self {
        let codes = sorted
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_bytes().to_vec(), i as u32))
            .collect();
        Levels { codes }
    }
}

/// What one source column becomes.
pub(super) enum Slot {
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
pub(super) struct Plan {
    pub(super) path: PathBuf,
    pub(super) delimiter: u8,
    /// Every source column's name.
    pub(super) names: Vec<String>,
    pub(super) slots: Vec<Slot>,
    pub(super) width: usize,
    pub(super) allow_missing: bool,
}

/// The label of a row.
pub(super) enum LabelValue {
    None,
    Number(f64),
    Code(u32),
}

/// Merges pass 1's findings and decides every column's encoding.
pub(super) fn plan_table(
    name: &Path,
    det: &Detected,
    counts: &[Census],
    opts: &CsvOptions,
) -> Result<Plan> {
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
pub(super) fn predict_slots(
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
