//! Error messages: building the [`Error`]s that name a file, a line and a column, and quoting
//! cell text for them (lossy UTF-8, cut short so that a huge cell cannot flood a message).
//! Kept apart so that every message about a row reads the same whichever pass or reader found
//! the fault.

use std::path::Path;

use crate::error::Error;

use super::cells::{Cell, Fault};

/// Cell text quoted in an error message is cut to this many characters.
const QUOTE_CHARS: usize = 40;
/// Names listed in a message before the rest are only counted.
const LISTED: usize = 6;

pub(super) fn empty_file(path: &Path) -> Error {
    Error::format(path, "file", "a header or data rows", "an empty file")
}

pub(super) fn changed(path: &Path) -> Error {
    Error::format(
        path,
        "file",
        "the same contents on both passes over it",
        "a file that changed while it was read",
    )
}

/// `column `name`, N` with N 1-based.
pub(super) fn column_ref(names: &[String], col: usize) -> String {
    match names.get(col) {
        Some(name) => format!("column `{name}`, {}", col + 1),
        None => format!("column {}", col + 1),
    }
}

/// Cell text for a message: lossy UTF-8, cut to [`QUOTE_CHARS`] characters.
pub(super) fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().nth(QUOTE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Names for a message, quoted: all of them, or the first [`LISTED`] and how many there are,
/// so that a message about thousands of columns or classes stays readable.
pub(super) fn listed<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(LISTED)
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    if names.len() > LISTED {
        format!("{}, … ({} in all)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}

/// The error for a test file whose first line (line `number`) does not name every column in
/// `expected` (the label, then the features); `absent` are those it lacks. Labelled rows need a
/// header: without one, neither the label column nor the order of the others is known.
pub(super) fn needs_header(path: &Path, expected: &[&str], absent: &[&str], number: u64) -> Error {
    Error::format(
        path,
        "header",
        format!(
            "a header naming the label and every feature column ({}); a test file needs a \
             header naming its columns",
            listed(expected)
        ),
        format!("line {number}, which does not name {}", listed(absent)),
    )
}

/// The error for a fault on line `number`, whose text is `line`.
pub(super) fn fault_error(
    path: &Path,
    names: &[String],
    number: u64,
    line: &[u8],
    fault: Fault,
) -> Error {
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
        Fault::UnknownClass { col, cell, known } => (
            "label",
            format!(
                "one of the classes in training ({}): {known}",
                column_ref(names, col)
            ),
            cell_text(cell),
        ),
    };
    Error::format(path, field, expected, found)
}
