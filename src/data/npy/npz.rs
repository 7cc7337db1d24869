//! `.npz` archives: a zip of `.npy` members, stored or deflated. Every member's declared size is
//! checked before anything is decompressed (their sum within [`MAX_NPZ_BYTES`], a deflated
//! member no larger than [`DEFLATE_MAX_RATIO`] times its compressed bytes), and each member is
//! then read through a reader bounded to its declared size + 1, so a member that lies about its
//! size is an error, not an allocation. Duplicate member or array names are refused.

use std::collections::HashSet;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use super::elements::read_npy;
use super::source::{Origin, Source};
use super::{Array, DEFLATE_MAX_RATIO, MAX_NPZ_BYTES};
use crate::error::{Error, Result};

/// Reads every member of an `.npz` archive, after checking all their declared sizes.
pub(super) fn read_npz<R: Read + Seek>(name: &Path, reader: R) -> Result<Vec<(String, Array)>> {
    let archive_src = Source::new(name.into(), Origin::File);
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| zip_error(&archive_src, e))?;
    if archive.has_duplicate_names() {
        return Err(archive_src.format(
            "npz member",
            "distinct member names",
            "a member name used twice",
        ));
    }
    let sizes = declared_sizes(name, &mut archive)?;
    let mut arrays = Vec::with_capacity(sizes.len());
    let mut seen = HashSet::new();
    for (index, (member, size)) in sizes.into_iter().enumerate() {
        let src = member_source(name, &member);
        let key = member.strip_suffix(".npy").unwrap_or(&member).to_string();
        if !seen.insert(key.clone()) {
            return Err(src.format(
                "npz member",
                "distinct array names",
                format!("a second array named {key:?}"),
            ));
        }
        let file = archive.by_index(index).map_err(|e| zip_error(&src, e))?;
        let array = read_npy(&src, &mut file.take(size.saturating_add(1)), size)?;
        arrays.push((key, array));
    }
    Ok(arrays)
}

/// Every member's name and declared size, checked against the limits before any member is
/// decompressed.
fn declared_sizes<R: Read + Seek>(
    name: &Path,
    archive: &mut zip::ZipArchive<R>,
) -> Result<Vec<(String, u64)>> {
    let mut sizes = Vec::with_capacity(archive.len());
    let mut total = 0u64;
    for index in 0..archive.len() {
        let file = archive
            .by_index_raw(index)
            .map_err(|e| zip_error(&Source::new(name.into(), Origin::File), e))?;
        let member = String::from_utf8_lossy(file.name_raw()).into_owned();
        let src = member_source(name, &member);
        let (size, packed) = (file.size(), file.compressed_size());
        match file.compression() {
            zip::CompressionMethod::Stored if size != packed => {
                return Err(src.format(
                    "npz member",
                    "a stored member's size equal to its stored bytes",
                    format!("{size} bytes declared, {packed} stored"),
                ));
            }
            zip::CompressionMethod::Stored => {}
            zip::CompressionMethod::Deflated if size > packed.saturating_mul(DEFLATE_MAX_RATIO) => {
                return Err(src.format(
                    "npz member",
                    format!(
                        "at most {DEFLATE_MAX_RATIO}× its {packed} compressed bytes \
                         (deflate's limit)"
                    ),
                    format!("a declared size of {size} bytes"),
                ));
            }
            zip::CompressionMethod::Deflated => {}
            other => {
                return Err(src.format(
                    "npz member",
                    "stored or deflated data (what np.savez and np.savez_compressed write)",
                    format!("compression {other:?}"),
                ));
            }
        }
        total = total.saturating_add(size);
        if total > MAX_NPZ_BYTES {
            return Err(Source::new(name.into(), Origin::File).too_large(
                "the members of the archive",
                total,
                MAX_NPZ_BYTES,
            ));
        }
        sizes.push((member, size));
    }
    Ok(sizes)
}

fn member_source(name: &Path, member: &str) -> Source<'static> {
    let path = PathBuf::from(format!("{}: member {member}", name.display()));
    Source::new(path.into(), Origin::Member)
}

fn zip_error(src: &Source, e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(e) if e.kind() != io::ErrorKind::UnexpectedEof => {
            Error::io(src.path.to_path_buf(), "read npz file", e)
        }
        e => src.format("npz archive", "a zip archive of .npy files", e.to_string()),
    }
}
