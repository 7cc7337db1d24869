//! Decodes a picture file (PNG, JPEG or PGM/PPM, through the `image` crate) and brings it to
//! MNIST's form with `soma::digit::mnist_like`: what `predict` does with each picture it is
//! given. A file of its own, included with `#[path]`, because the library does not depend on
//! `image` (the `digit` functions take pixels, so a browser canvas can use them too); the
//! `picture` fuzz target (fuzz/) and the regression tests include this same file, so what is
//! fuzzed is exactly what `predict` runs.
//!
//! A picture is untrusted input: a few kilobytes of PNG or JPEG can claim a picture of
//! billions of pixels. The size is checked from the header, before any pixel is decoded.

// Each includer uses part: `predict` reads files, the fuzz target and the tests bytes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Cursor, Seek};
use std::path::Path;

use image::{ImageDecoder, ImageReader, Limits};

/// The most pixels a picture may have: 2^24 (16.7 megapixels, more than a 12-megapixel phone
/// photo). Decoding one, converting it to RGBA and bringing it to MNIST's form then needs
/// about 20 bytes per pixel (340 MB at most), and no single buffer is over 8 bytes per pixel.
pub const MAX_PIXELS: u64 = 1 << 24;

/// The longest side a picture may have: a 16384 × 1024 strip is as many pixels as a
/// 4096 × 4096 square, so both pass, but no 1-pixel-high picture a million wide does.
pub const MAX_SIDE: u32 = 16_384;

/// Pixels a picture may have whatever its size in bytes: 2^20 (a 1024 × 1024 picture), which
/// decodes in milliseconds.
pub const FREE_PIXELS: u64 = 1 << 20;

/// Past [`FREE_PIXELS`], the pixels each byte of the file must pay for. Real pictures hold a
/// few pixels a byte (a 12-megapixel JPEG photo ~4, a scanned page as PNG ~100, even a blank
/// 4096 × 4096 PNG ~1000). An 821-byte JPEG the fuzzer made claimed 7168 × 284 pixels
/// (2,500 a byte), all of which the decoder then fills in: ~0.2 s of decoding and resampling
/// per 821 bytes, a way to make predict run for seconds on a small input.
pub const PIXELS_PER_BYTE: u64 = 1024;

/// The 28 × 28 MNIST-style pixels of the picture file at `path`.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: cannot open: {e}"))?;
    let bytes = file
        .metadata()
        .map_err(|e| format!("{name}: cannot read: {e}"))?
        .len();
    decode(&name, bytes, BufReader::new(file))
}

/// The 28 × 28 MNIST-style pixels of the picture file whose bytes are `bytes`; `name` is what
/// errors name.
pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    decode(name, bytes.len() as u64, Cursor::new(bytes))
}

/// Decodes a picture of `bytes` bytes from `reader`, a decoder's panic contained.
fn decode(name: &str, bytes: u64, reader: impl BufRead + Seek) -> Result<Vec<u8>, String> {
    contain_panics(name, || decode_unguarded(name, bytes, reader))
}

/// Runs `f`, a panic inside it turned into an error naming the file. The JPEG decoder `image`
/// uses (zune-jpeg 0.5.15, the newest release) panics on some malformed files: the `picture`
/// fuzz target found an index out of bounds in its AVX2 IDCT, one of a class of panics known
/// upstream. While `f` runs, the panic hook is a silent one (the error says what happened),
/// then the previous hook is put back; `predict` decodes on one thread.
fn contain_panics<T>(name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(format!(
            "{name}: a malformed picture: its decoder failed on it ({why})"
        ))
    })
}

fn decode_unguarded(
    name: &str,
    bytes: u64,
    reader: impl BufRead + Seek,
) -> Result<Vec<u8>, String> {
    let mut reader = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    // The decoders' own guard as well: no decoder allocates more than a picture of
    // MAX_PIXELS needs (16-bit RGBA, 8 bytes per pixel), whatever its header claims.
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let not_picture = |e: image::ImageError| {
        format!("{name}: not a picture this reads (PNG, JPEG or PGM/PPM): {e}")
    };
    let decoder = reader.into_decoder().map_err(not_picture)?;
    // Checked from the header, before any pixel is decoded.
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_PIXELS {
        return Err(format!(
            "{name}: a picture of {w}×{h} pixels; predict reads at most {MAX_PIXELS} pixels \
             (e.g. 4096×4096), a digit needs far fewer"
        ));
    }
    let budget = FREE_PIXELS.max(bytes.saturating_mul(PIXELS_PER_BYTE));
    if pixels > budget {
        return Err(format!(
            "{name}: a picture of {w}×{h} pixels in only {bytes} bytes; predict reads at most \
             {PIXELS_PER_BYTE} pixels per byte of file past the first {FREE_PIXELS} pixels (a \
             real picture this large takes far more bytes)"
        ));
    }
    let picture = image::DynamicImage::from_decoder(decoder)
        .map_err(not_picture)?
        .to_rgba8();
    let (w, h) = picture.dimensions();
    let grey = soma::digit::grey_from_rgba(picture.as_raw()).map_err(|e| format!("{name}: {e}"))?;
    soma::digit::mnist_like(&grey, w as usize, h as usize).map_err(|e| format!("{name}: {e}"))
}
