//! Where a range's lines come from: a byte slice, or (native) a byte range of a file read through
//! a fixed-size buffer, never mapped, so that reading a file holds one buffer per range rather
//! than the file. Both passes read their ranges through here, line by line with their numbers.

#[cfg(not(target_arch = "wasm32"))]
use std::fs::File;
#[cfg(not(target_arch = "wasm32"))]
use std::io::{Read, Seek, SeekFrom};
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;

use super::cells::each_line;
#[cfg(not(target_arch = "wasm32"))]
use super::errors::changed;
#[cfg(not(target_arch = "wasm32"))]
use crate::error::Error;
use crate::error::Result;

/// Where a range's bytes come from.
pub(super) enum Source<'a> {
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
    pub(super) fn lines(
        &self,
        first_number: u64,
        f: impl FnMut(&[u8], u64) -> Result<()>,
    ) -> Result<u64> {
        match self {
            Source::Bytes(bytes) => each_line(bytes, first_number, f),
            #[cfg(not(target_arch = "wasm32"))]
            Source::File {
                path,
                start,
                end,
                block,
            } => file_lines(path, *start, *end, *block, first_number, f),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// [`each_line`] over the lines of `start..end` of a file, read `block` bytes at a time
/// (more when one line is longer).
fn file_lines(
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

#[cfg(not(target_arch = "wasm32"))]
/// Fills `buf` from `file`; a file shorter than when it was measured is an error.
fn read_full(file: &mut File, buf: &mut [u8], path: &Path) -> Result<()> {
    file.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            changed(path)
        } else {
            Error::io(path, "read", e)
        }
    })
}
