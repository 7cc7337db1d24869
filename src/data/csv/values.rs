//! Pass 2: parsing each range's rows straight into its own disjoint share of the matrix and
//! label storage, which are allocated once, checked for size overflow, from pass 1's counts.
//! Ranges never share rows, so they can be filled in parallel without a second copy of the
//! matrix; cells are parsed from the line's bytes into their slot without becoming strings.

use std::path::Path;

use crate::error::{Error, Result};

use super::cells::{Cell, Fault, count_fields, is_missing, next_cell, parse_number, short_uint};
use super::detect::Detected;
use super::errors::{changed, fault_error, listed};
use super::plan::{LabelValue, Plan, Slot};
use super::source::Source;
use super::{Encoding, FeatureColumn, Labels, Table};

/// The matrix and label storage, allocated once.
pub(super) struct Output {
    width: usize,
    values: Vec<f32>,
    labels: Labels,
    lines: Vec<u64>,
}

/// One range's disjoint share of [`Output`].
pub(super) struct Part<'a> {
    pub(super) values: &'a mut [f32],
    pub(super) labels: LabelSlice<'a>,
    pub(super) lines: &'a mut [u64],
}

pub(super) enum LabelSlice<'a> {
    None,
    Number(&'a mut [f64]),
    Code(&'a mut [u32]),
}

/// A zeroed `rows × width` matrix, or an error when its size overflows or cannot be had.
pub(super) fn alloc(name: &Path, rows: usize, width: usize) -> Result<Vec<f32>> {
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
    pub(super) fn new(plan: &Plan, rows: usize) -> Result<Self> {
        let text = plan.slots.iter().find_map(|s| match s {
            Slot::LabelText(levels) => Some(levels),
            _ => None,
        });
        let labels = match text {
            Some(levels) => Labels::Text {
                codes: vec![0; rows],
                levels: levels.by_code(),
            },
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
    pub(super) fn split(&mut self, rows: &[usize]) -> Vec<Part<'_>> {
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

    /// The matrix, the labels and the line number of each row.
    pub(super) fn into_rows(self) -> (Vec<f32>, Labels, Vec<u64>) {
        (self.values, self.labels, self.lines)
    }

    pub(super) fn into_table(self, det: &Detected, plan: Plan, missing: usize) -> Table {
        let columns = plan
            .slots
            .iter()
            .zip(&plan.names)
            .filter_map(|(slot, name)| {
                let encoding = match slot {
                    Slot::Number { .. } => Encoding::Numeric,
                    Slot::OneHot { levels, .. } => Encoding::OneHot {
                        levels: levels.by_code(),
                    },
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
pub(super) fn fill(
    plan: &Plan,
    source: &Source,
    first_number: u64,
    mut part: Part,
) -> Result<usize> {
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
            let code = levels.codes.get(text).ok_or_else(|| Fault::UnknownClass {
                col,
                cell,
                known: listed(&levels.by_code()),
            })?;
            *label = LabelValue::Code(*code);
        }
    }
    Ok(usize::from(absent && !matches!(slot, Slot::Skip)))
}
