//! CSV and TSV tables: `csv::parse_csv`, with options picked by the input's first byte (label
//! by default, by index or by name; missing cells allowed or not; two or twenty one-hot levels;
//! a `.tsv` or `.csv` name), the whole input being the file. Must return `Ok` with a consistent
//! table, or an `Error`. A table read with a unique-named header is read again as prediction
//! rows by `csv::parse_rows_with`, which must give the same matrix, and as a test file by
//! `csv::parse_labelled_rows_with`, which must give the same matrix and labels.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use soma::data::csv::{self, CsvOptions, LabelColumn, LabelSchema, Labels, Table};

fuzz_target!(|data: &[u8]| {
    let pick = data.first().copied().unwrap_or(0);
    let label = match pick % 4 {
        0 => None,
        1 => Some(LabelColumn::Index(usize::from((pick >> 4) & 3))),
        2 => Some(LabelColumn::Name("label".into())),
        _ => Some(LabelColumn::Name("b".into())),
    };
    let opts = CsvOptions {
        label,
        allow_missing: pick & 0x04 != 0,
        max_levels: if pick & 0x08 != 0 { 2 } else { 20 },
        threads: 1,
    };
    // No ASCII byte, nor a byte-order mark's first byte, has both 0x80 and 0x10: the seeds,
    // text files, stay `.csv`.
    let name = Path::new(if pick & 0x90 == 0x90 {
        "fuzz.tsv"
    } else {
        "fuzz.csv"
    });
    if let Ok(table) = csv::parse_csv(name, data, &opts) {
        check(&table, opts.allow_missing);
        let mut names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        names.push(&table.label_name);
        names.sort_unstable();
        names.dedup();
        let unique = names.len() == table.columns.len() + 1;
        let read = csv::parse_rows_with(
            name,
            data,
            &table.columns,
            Some(&table.label_name),
            opts.allow_missing,
        );
        if table.header && unique {
            let (values, lines) = read.expect("the table's own rows read as prediction rows");
            assert_eq!(lines, table.lines);
            assert!(same_bits(&values, &table.values));
            // And as a test file against its own schema: the same rows, labels and classes.
            let schema = match &table.labels {
                Labels::Text { levels, .. } => LabelSchema::Text(levels),
                Labels::Numeric(_) => LabelSchema::Numeric,
            };
            let (values, labels, lines) = csv::parse_labelled_rows_with(
                name,
                data,
                &table.columns,
                &table.label_name,
                schema,
                opts.allow_missing,
            )
            .expect("the table's own rows read as a test file");
            assert_eq!(lines, table.lines);
            assert!(same_bits(&values, &table.values));
            match (&labels, &table.labels) {
                (Labels::Numeric(a), Labels::Numeric(b)) => {
                    assert!(a.iter().map(|v| v.to_bits()).eq(b.iter().map(|v| v.to_bits())))
                }
                (a, b) => assert_eq!(a, b),
            }
        }
    }
});

/// Whether two f32 slices hold the same bits (NaN where missing included).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.iter().map(|v| v.to_bits()).eq(b.iter().map(|v| v.to_bits()))
}

/// The invariants of a table read without error.
fn check(table: &Table, allow_missing: bool) {
    let rows = table.rows();
    assert!(rows > 0);
    assert_eq!(table.values.len(), rows * table.width);
    assert_eq!(table.labels.len(), rows);
    assert_eq!(
        table.width,
        table.columns.iter().map(|c| c.width()).sum::<usize>()
    );
    assert_eq!(table.feature_names().len(), table.width);
    assert!(table.lines.windows(2).all(|w| w[0] < w[1]));
    assert!(
        table
            .values
            .iter()
            .all(|v| v.is_finite() || (allow_missing && v.is_nan()))
    );
    assert!(table.missing == 0 || allow_missing);
    match &table.labels {
        Labels::Text { codes, levels } => {
            assert!(codes.iter().all(|&c| (c as usize) < levels.len()));
            assert!(levels.windows(2).all(|w| w[0] < w[1]));
        }
        Labels::Numeric(values) => assert!(values.iter().all(|v| v.is_finite())),
    }
}
