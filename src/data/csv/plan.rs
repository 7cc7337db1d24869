//! The plan: what each source column becomes. It merges pass 1's findings over all ranges and
//! decides every column's encoding (numeric, one-hot over sorted levels, the label, or skipped),
//! refusing feature columns with too many levels. Level codes follow sorted order so that the
//! result does not depend on how the file was split. It also maps the columns of a file read
//! against a trained table's schema onto it, by its header: prediction rows
//! ([`parse_rows_with`](super::parse_rows_with)) and labelled test rows
//! ([`parse_labelled_rows_with`](super::parse_labelled_rows_with)) share that mapping.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::cells::{cell_names, lossy};
use super::census::{Census, level_cap};
use super::detect::{Detected, bom_len, detect_delimiter, first_line};
use super::errors::{column_ref, empty_file, listed, needs_header, quote};
use super::{CsvOptions, Encoding, FeatureColumn, LabelSchema};

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

    /// The levels in code order: the order [`Levels::new`] was given them in.
    pub(super) fn by_code(&self) -> Vec<String> {
        let mut sorted: Vec<(&Vec<u8>, &u32)> = self.codes.iter().collect();
        sorted.sort_unstable_by_key(|&(_, &code)| code);
        sorted.into_iter().map(|(l, _)| lossy(l)).collect()
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

/// What a file read against a trained schema does with the label column.
#[derive(Clone, Copy)]
pub(super) enum RowLabel<'a> {
    /// Prediction rows: the column of this name, when the header has it, is read past.
    Skip(Option<&'a str>),
    /// Test rows: the header must name this column, whose cells are read as the schema says.
    Read(&'a str, LabelSchema<'a>),
}

impl RowLabel<'_> {
    fn name(&self) -> Option<&str> {
        match *self {
            RowLabel::Skip(name) => name,
            RowLabel::Read(name, _) => Some(name),
        }
    }

    /// The label column's slot. Text classes must be distinct: a code is an index into them,
    /// and a repeated class would give two codes one name.
    fn slot(&self, path: &Path) -> Result<Slot> {
        Ok(match *self {
            RowLabel::Skip(_) => Slot::Skip,
            RowLabel::Read(_, LabelSchema::Numeric) => Slot::LabelNumber,
            RowLabel::Read(_, LabelSchema::Text(classes)) => {
                let levels = Levels::new(classes);
                if levels.codes.len() != classes.len() {
                    let mut seen = HashSet::new();
                    let repeated = classes.iter().find(|c| !seen.insert(*c));
                    return Err(Error::format(
                        path,
                        "label",
                        "distinct training classes to read the test labels against",
                        format!("`{}` more than once", repeated.map_or("", |c| c.as_str())),
                    ));
                }
                Slot::LabelText(levels)
            }
        })
    }
}

/// The rows of a file read against a trained schema: how to read them, and where they start.
pub(super) struct SchemaRows {
    pub(super) plan: Plan,
    /// Byte offset of the first line after the header (or of the first line).
    pub(super) body_start: usize,
    /// Line number of the line at `body_start`.
    pub(super) body_line: u64,
}

/// Maps a file's columns onto a schema (`columns`, as in [`super::Table::columns`]) from
/// `bytes`, the file's start in whole lines: its delimiter, and its header when the first line
/// names every feature column. Without a header, rows hold the feature columns in the schema's
/// order; labelled rows ([`RowLabel::Read`]) need a header that names the label column as well.
pub(super) fn schema_rows(
    name: &Path,
    bytes: &[u8],
    columns: &[FeatureColumn],
    label: RowLabel,
    allow_missing: bool,
) -> Result<SchemaRows> {
    let start = bom_len(bytes);
    // A model with one feature predicts from files of one column, which have no delimiter to
    // detect; a labelled file has two columns or more.
    let delimiter = match detect_delimiter(name, &bytes[start..]) {
        Err(_) if columns.len() == 1 && matches!(label, RowLabel::Skip(_)) => b',',
        found => found?,
    };
    let first = first_line(bytes, start).ok_or_else(|| empty_file(name))?;
    let names = cell_names(first.text, delimiter).unwrap_or_default();
    if let RowLabel::Read(label_name, _) = label {
        let expected: Vec<&str> = std::iter::once(label_name)
            .chain(columns.iter().map(|c| c.name.as_str()))
            .collect();
        let absent: Vec<&str> = expected
            .iter()
            .filter(|&&e| !names.iter().any(|n| n == e))
            .copied()
            .collect();
        if !absent.is_empty() {
            return Err(needs_header(name, &expected, &absent, first.number));
        }
    }
    let header = columns.iter().all(|c| names.contains(&c.name));
    let (slots, width) = schema_slots(name, columns, &names, header, label, first.number)?;
    let (body_start, body_line) = if header {
        (first.end, first.number + 1)
    } else {
        (start, 1)
    };
    let names = if header {
        names
    } else {
        columns.iter().map(|c| c.name.clone()).collect()
    };
    let plan = Plan {
        path: name.to_path_buf(),
        delimiter,
        names,
        slots,
        width,
        allow_missing,
    };
    Ok(SchemaRows {
        plan,
        body_start,
        body_line,
    })
}

/// The slots of a file's columns (`names`, from its first line, line `line`) against a schema.
/// With a header, a column that is neither a feature nor the label, or that repeats one, is
/// refused.
fn schema_slots(
    path: &Path,
    columns: &[FeatureColumn],
    names: &[String],
    header: bool,
    label: RowLabel,
    line: u64,
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
    let unknown = |col: usize, name: &str| {
        let known: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let and_label = label
            .name()
            .map_or(String::new(), |l| format!(" and the label `{l}`"));
        Error::format(
            path,
            "column",
            format!(
                "the training columns {}{and_label}, each once",
                listed(&known)
            ),
            format!("column `{name}` ({}) on line {line}", col + 1),
        )
    };
    let mut label_slot = match label.name() {
        Some(_) => Some(label.slot(path)?),
        None => None,
    };
    let mut slots = Vec::with_capacity(names.len());
    let mut used = vec![false; columns.len()];
    for (col, name) in names.iter().enumerate() {
        match columns.iter().position(|c| &c.name == name) {
            Some(i) if !used[i] => {
                used[i] = true;
                slots.push(slot(i));
            }
            _ if label.name() == Some(name.as_str()) => {
                slots.push(label_slot.take().ok_or_else(|| unknown(col, name))?);
            }
            _ => return Err(unknown(col, name)),
        }
    }
    Ok((slots, width))
}
