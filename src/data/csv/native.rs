//! Files, in parallel (native only): the readers of [`read_csv`](super::read_csv) and
//! [`read_labelled_rows_with`](super::read_labelled_rows_with). The file is cut into byte ranges
//! that start and end at line ends, and read twice in parallel through a fixed-size buffer
//! rather than mapped, so peak memory stays near the size of the matrix: pass 1 counts rows
//! (and levels, for a table), then pass 2 fills each range's disjoint rows. A file that changes
//! between passes is an error rather than a wrong table.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rayon::prelude::*;

use super::census::{Census, census, census_rows, level_cap};
use super::detect::detect;
use super::plan::{Plan, RowLabel, plan_table, schema_rows};
use super::source::Source;
use super::values::{Output, fill};
use super::{CsvOptions, FeatureColumn, LabelSchema, Labels, Table};
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
        let sources = sources(
            path,
            det.body_start as u64,
            len,
            threads,
            ranges_per_thread,
            block,
        )?;
        let cap = level_cap(opts);
        let counts = in_order(sources.par_iter().map(|s| census(s, &det, cap)).collect())?;
        let plan = plan_table(path, &det, &counts, opts)?;
        let mut out = Output::new(&plan, counts.iter().map(|c| c.rows).sum())?;
        let missing = fill_ranges(&plan, &mut out, &sources, &counts, det.body_line)?;
        Ok(out.into_table(&det, plan, missing))
    })
}

/// [`super::read_labelled_rows_with`] with its range count and block size exposed for tests.
/// Only the file's start is read for its header; rows are counted, not censused, since the
/// schema is known.
pub(super) fn read_labelled(
    path: &Path,
    columns: &[FeatureColumn],
    label_name: &str,
    label: LabelSchema,
    allow_missing: bool,
    ranges_per_thread: usize,
    block: usize,
) -> Result<(Vec<f32>, Labels, Vec<u64>)> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, "read metadata of", e))?
        .len();
    let (prefix, whole) = read_prefix(path, len)?;
    // Whole lines only: the last line of a prefix may be cut.
    let lines = if whole {
        &prefix[..]
    } else {
        memchr::memrchr(b'\n', &prefix).map_or(&prefix[..0], |i| &prefix[..=i])
    };
    let read = RowLabel::Read(label_name, label);
    let file = schema_rows(path, lines, columns, read, allow_missing)?;
    drop(prefix);
    in_pool(0, |threads| {
        let start = file.body_start as u64;
        let sources = sources(path, start, len, threads, ranges_per_thread, block)?;
        let counts = in_order(sources.par_iter().map(census_rows).collect())?;
        let mut out = Output::new(&file.plan, counts.iter().map(|c| c.rows).sum())?;
        fill_ranges(&file.plan, &mut out, &sources, &counts, file.body_line)?;
        Ok(out.into_rows())
    })
}

/// The ranges of `start..len` that `threads × ranges_per_thread` tasks read, `block` bytes at
/// a time.
fn sources(
    path: &Path,
    start: u64,
    len: u64,
    threads: usize,
    ranges_per_thread: usize,
    block: usize,
) -> Result<Vec<Source<'_>>> {
    // Tests force small blocks to get many ranges from a small file.
    let min_range = if block < BLOCK { 1 } else { MIN_RANGE };
    let bounds = ranges(path, start, len, threads * ranges_per_thread, min_range)?;
    Ok(bounds
        .windows(2)
        .map(|w| Source::File {
            path,
            start: w[0],
            end: w[1],
            block,
        })
        .collect())
}

/// Pass 2 over every range in parallel, each into its own rows of `out`, which pass 1's
/// `counts` sized; the ranges start at line `body_line`. Returns the missing cells filled.
fn fill_ranges(
    plan: &Plan,
    out: &mut Output,
    sources: &[Source],
    counts: &[Census],
    body_line: u64,
) -> Result<usize> {
    let rows: Vec<usize> = counts.iter().map(|c| c.rows).collect();
    let firsts = first_lines(body_line, counts);
    let filled = out
        .split(&rows)
        .into_par_iter()
        .zip(sources.par_iter().zip(firsts))
        .map(|(part, (source, first))| fill(plan, source, first, part))
        .collect();
    Ok(in_order(filled)?.into_iter().sum())
}

/// The ranges' results, or the error of the first range (in file order) that failed.
fn in_order<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    results.into_iter().collect()
}

/// The first line number of each range, the first range starting at line `body_line`.
fn first_lines(body_line: u64, counts: &[Census]) -> Vec<u64> {
    let mut line = body_line;
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
