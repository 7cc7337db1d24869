//! The IDX file format (LeCun's MNIST format), raw or gzip-compressed.
//!
//! Compression is detected from the content (the gzip magic `1f 8b`), never from the file name: a
//! file named `.gz` that is not gzip is read as raw IDX.
//!
//! The header is validated completely before anything is allocated for the payload: the magic
//! (two zero bytes, the data type `0x08` = u8, the rank), every dimension (nonzero, within caps) and
//! the payload length the header implies (at most [`MAX_PAYLOAD`] bytes). A raw file's size must
//! match the header exactly; a gzip file is decompressed through a reader that stops one byte past
//! what the header promises, so a lying header never makes the reader allocate or read more than
//! that, and truncated or over-long content is reported.

#[cfg(not(target_arch = "wasm32"))]
use std::fs::File;
#[cfg(not(target_arch = "wasm32"))]
use std::io::BufReader;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{Dataset, Inputs, Normalize, Targets};
use crate::error::{Error, Result};
use crate::shape::Chw;

/// The IDX magic of a u8 rank-3 tensor (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The IDX magic of a u8 rank-1 tensor (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The largest payload a header may claim, in bytes (2 GiB).
pub const MAX_PAYLOAD: u64 = 1 << 31;
/// The largest item count (images or labels) a header may claim.
pub const MAX_COUNT: u64 = 100_000_000;
/// The largest image side (rows or columns) a header may claim.
pub const MAX_SIDE: u64 = 1 << 16;

/// The IDX data type code of unsigned bytes.
const TYPE_U8: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The most bytes one byte of deflate data decodes to (258-byte matches, at best about 1032
/// of them per byte of input): a gzip file of `n` bytes holds at most `n · 1032` bytes, so a
/// header that promises more is not believed before the bytes arrive.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Images read from an IDX file: `count` images of `rows × cols` u8 pixels, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

impl Images {
    /// Pixels per image (`rows · cols`).
    pub fn features(&self) -> usize {
        self.rows * self.cols
    }
}

/// Reads an IDX images file (magic `0x00000803`: u8, rank 3), raw or gzip.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_images(path: &Path) -> Result<Images> {
    images_from(IdxFile::open(path)?)
}

/// [`read_images`] from the file's bytes (raw or gzip); `name` (a file name or URL) is what
/// errors name.
pub fn read_images_bytes(name: &str, bytes: &[u8]) -> Result<Images> {
    images_from(IdxFile::from_bytes(name, bytes))
}

fn images_from(mut file: IdxFile<'_>) -> Result<Images> {
    let dims = file.header(3, &["image count", "dimension 1", "dimension 2"])?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    file.check_count("image count", count)?;
    for (field, side) in [("dimension 1", rows), ("dimension 2", cols)] {
        if side > MAX_SIDE {
            return Err(file.format(field, format!("at most {MAX_SIDE} pixels"), side));
        }
    }
    // count ≤ 10^8 and sides ≤ 2^16, so the product fits in u64.
    let len = count * rows * cols;
    if len > MAX_PAYLOAD {
        return Err(file.format(
            "payload length",
            format!("at most {MAX_PAYLOAD} bytes"),
            format!("{len} bytes ({count} images × {rows} × {cols})"),
        ));
    }
    let pixels = file.payload(len)?;
    Ok(Images {
        count: count as usize,
        rows: rows as usize,
        cols: cols as usize,
        pixels,
    })
}

/// Reads an IDX labels file (magic `0x00000801`: u8, rank 1), raw or gzip.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    labels_from(IdxFile::open(path)?)
}

/// [`read_labels`] from the file's bytes (raw or gzip); `name` is what errors name.
pub fn read_labels_bytes(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    labels_from(IdxFile::from_bytes(name, bytes))
}

fn labels_from(mut file: IdxFile<'_>) -> Result<Vec<u8>> {
    let dims = file.header(1, &["label count"])?;
    file.check_count("label count", dims[0])?;
    file.payload(dims[0])
}

/// Reads an images file and its labels file into a dataset of `classes` classes, with pixels
/// mapped to [0, 1] ([`Normalize::UNIT`]). The counts must agree and every label be `< classes`.
#[cfg(not(target_arch = "wasm32"))]
pub fn load(images: &Path, labels: &Path, classes: usize) -> Result<Dataset> {
    check_classes(classes)?;
    dataset_from(
        read_images(images)?,
        read_labels(labels)?,
        images,
        labels,
        classes,
    )
}

/// [`load`] from the two files' bytes (each raw or gzip, e.g. as fetched by a web page);
/// `images_name` and `labels_name` (file names or URLs) are what errors name.
pub fn load_bytes(
    images_name: &str,
    images: &[u8],
    labels_name: &str,
    labels: &[u8],
    classes: usize,
) -> Result<Dataset> {
    check_classes(classes)?;
    let imgs = read_images_bytes(images_name, images)?;
    let lbls = read_labels_bytes(labels_name, labels)?;
    dataset_from(
        imgs,
        lbls,
        Path::new(images_name),
        Path::new(labels_name),
        classes,
    )
}

fn check_classes(classes: usize) -> Result<()> {
    if classes == 0 || classes > 256 {
        return Err(Error::arg(
            "classes",
            "1 to 256 (labels are bytes)",
            classes,
        ));
    }
    Ok(())
}

/// The dataset of `imgs` labelled by `lbls` (read from `images` and `labels`, which errors name).
fn dataset_from(
    imgs: Images,
    lbls: Vec<u8>,
    images: &Path,
    labels: &Path,
    classes: usize,
) -> Result<Dataset> {
    if lbls.len() != imgs.count {
        return Err(Error::Format {
            path: labels.to_path_buf(),
            field: "label count",
            expected: format!(
                "{} labels, one per image of {}",
                imgs.count,
                images.display()
            ),
            found: format!("{} labels", lbls.len()),
        });
    }
    if let Some((i, &l)) = lbls
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= classes)
    {
        return Err(Error::Format {
            path: labels.to_path_buf(),
            field: "label",
            expected: format!("labels below {classes}"),
            found: format!("{l} at index {i}"),
        });
    }
    let (features, shape) = (imgs.features(), Chw::new(1, imgs.rows, imgs.cols));
    let mut data = Dataset::new(
        features,
        Inputs::U8(imgs.pixels),
        Targets::Labels {
            labels: lbls.into_iter().map(u32::from).collect(),
            classes,
        },
        Normalize::UNIT,
    )?;
    data.image = Some(shape);
    Ok(data)
}

/// An open IDX file (or its bytes), positioned after what has been read so far.
struct IdxFile<'a> {
    path: PathBuf,
    reader: Box<dyn Read + 'a>,
    /// Bytes left in a raw file (`None` when gzip: the decompressed size is unknown).
    raw_left: Option<u64>,
    gzip: bool,
    /// The file's size in bytes (compressed, for gzip).
    size: u64,
}

impl<'a> IdxFile<'a> {
    #[cfg(not(target_arch = "wasm32"))]
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, "opening IDX file", e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(path, "reading file size", e))?
            .len();
        Self::from_reader(path, BufReader::with_capacity(1 << 16, file), size)
    }

    fn from_bytes(name: &str, bytes: &'a [u8]) -> Self {
        // Reading a slice cannot fail, so neither can the two-byte sniff.
        Self::from_reader(Path::new(name), bytes, bytes.len() as u64)
            .expect("reading from a byte slice does not fail")
    }

    /// `reader` holds `size` bytes, raw or gzip (told apart by the gzip magic).
    fn from_reader(path: &Path, mut buffered: impl Read + 'a, size: u64) -> Result<Self> {
        let mut magic = [0u8; 2];
        let got = read_full(&mut buffered, &mut magic)
            .map_err(|e| Error::io(path, "reading IDX header", e))?;
        let head = std::io::Cursor::new(magic[..got].to_vec());
        let gzip = got == 2 && magic == GZIP_MAGIC;
        let (reader, raw_left): (Box<dyn Read>, _) = if gzip {
            (Box::new(GzDecoder::new(head.chain(buffered))), None)
        } else {
            (Box::new(head.chain(buffered)), Some(size))
        };
        Ok(IdxFile {
            path: path.to_path_buf(),
            reader,
            raw_left,
            gzip,
            size,
        })
    }

    fn format(
        &self,
        field: &'static str,
        expected: impl Into<String>,
        found: impl ToString,
    ) -> Error {
        Error::Format {
            path: self.path.clone(),
            field,
            expected: expected.into(),
            found: found.to_string(),
        }
    }

    /// Turns a read error into a crate error: a gzip stream that does not decode is a format error.
    fn read_error(&self, e: std::io::Error, action: &'static str) -> Error {
        let corrupt = matches!(
            e.kind(),
            ErrorKind::InvalidData | ErrorKind::InvalidInput | ErrorKind::UnexpectedEof
        );
        if self.gzip && corrupt {
            self.format(
                "gzip stream",
                "a valid gzip stream",
                format!("a corrupt or truncated one ({e})"),
            )
        } else {
            Error::io(&self.path, action, e)
        }
    }

    /// Reads up to `buf.len()` bytes, returning how many there were.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = read_full(&mut self.reader, buf)
            .map_err(|e| self.read_error(e, "reading IDX header"))?;
        if let Some(left) = &mut self.raw_left {
            *left -= n as u64;
        }
        Ok(n)
    }

    /// Reads and checks the magic and the `rank` dimensions; `fields` names each dimension.
    fn header(&mut self, rank: u8, fields: &[&'static str]) -> Result<Vec<u64>> {
        let expected_magic = 0x0800 | rank as u32;
        let what = if rank == 3 { "images" } else { "labels" };
        let mut magic = [0u8; 4];
        let n = self.read_some(&mut magic)?;
        if n == 0 {
            let found = if self.gzip {
                "an empty file (after gunzip)"
            } else {
                "an empty file"
            };
            return Err(self.format(
                "magic",
                format!("an IDX {what} file (magic 0x{expected_magic:08x})"),
                found,
            ));
        }
        if n < 4 {
            return Err(self.format(
                "magic",
                format!("4 bytes (0x{expected_magic:08x})"),
                format!("a file of only {n} bytes"),
            ));
        }
        if magic[0] != 0 || magic[1] != 0 {
            return Err(self.format(
                "magic",
                format!(
                    "0x{expected_magic:08x} (IDX {what}: two zero bytes, type 0x08, rank {rank})"
                ),
                format!("0x{:08x}", u32::from_be_bytes(magic)),
            ));
        }
        if magic[2] != TYPE_U8 {
            return Err(self.format(
                "data type",
                "0x08 (unsigned byte)",
                format!("0x{:02x} ({})", magic[2], type_name(magic[2])),
            ));
        }
        if magic[3] != rank {
            return Err(self.format(
                "rank",
                format!("{rank} (IDX {what})"),
                format!("{} (magic 0x{:08x})", magic[3], u32::from_be_bytes(magic)),
            ));
        }
        let mut dims = Vec::with_capacity(rank as usize);
        for &field in fields {
            let mut b = [0u8; 4];
            let n = self.read_some(&mut b)?;
            if n < 4 {
                return Err(self.format(
                    field,
                    format!("a {}-byte header (rank {rank})", 4 + 4 * rank as usize),
                    "the file ends inside the header",
                ));
            }
            let d = u32::from_be_bytes(b) as u64;
            if d == 0 {
                return Err(self.format(field, "a nonzero size", 0));
            }
            dims.push(d);
        }
        Ok(dims)
    }

    fn check_count(&self, field: &'static str, count: u64) -> Result<()> {
        if count > MAX_COUNT {
            return Err(self.format(field, format!("at most {MAX_COUNT}"), count));
        }
        Ok(())
    }

    /// Reads exactly `len` payload bytes and checks that nothing follows them.
    fn payload(mut self, len: u64) -> Result<Vec<u8>> {
        if let Some(left) = self.raw_left
            && left != len
        {
            let what = if left < len {
                "truncated"
            } else {
                "trailing bytes"
            };
            return Err(self.format(
                "payload length",
                format!("{len} bytes after the header"),
                format!("{left} bytes ({what})"),
            ));
        }
        // Capped by MAX_PAYLOAD, and for gzip by what the compressed bytes can decode to: a
        // 30-byte gzip file whose header claims 100 million labels must not reserve 100 MB
        // (the fuzzer's first finding). Past this, the vector grows as the bytes arrive.
        let reserve = if self.gzip {
            len.min(self.size.saturating_mul(MAX_DEFLATE_RATIO))
        } else {
            len
        };
        let mut data = Vec::with_capacity(reserve as usize);
        let mut limited = (&mut self.reader).take(len + 1);
        if let Err(e) = limited.read_to_end(&mut data) {
            return Err(self.read_error(e, "reading IDX payload"));
        }
        let got = data.len() as u64;
        if got != len {
            let found = if got > len {
                format!("more than {len} bytes (trailing bytes after the payload)")
            } else {
                format!("{got} bytes (truncated)")
            };
            let after = if self.gzip { " (after gunzip)" } else { "" };
            return Err(self.format(
                "payload length",
                format!("{len} bytes after the header{after}"),
                found,
            ));
        }
        Ok(data)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The IDX name of a data type code.
fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0b => "i16",
        0x0c => "i32",
        0x0d => "f32",
        0x0e => "f64",
        _ => "unknown type",
    }
}
