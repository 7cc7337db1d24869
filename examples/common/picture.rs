//! A picture file brought to MNIST's form: decoded by `soma::data::picture` (sizes checked from
//! the header before any pixel is decoded, a decoder's panic contained as an error naming the
//! file), then `soma::digit::mnist_like`. What `predict` does with each picture it is given
//! for a digit model; the `picture` fuzz target and the regression tests include this same
//! file, so what is fuzzed is exactly what `predict` runs.

// Each includer uses part: `predict` reads files, the fuzz target and the tests bytes.
#![allow(dead_code)]

use std::path::Path;

use soma::data::picture::{self, Rgba};

/// The 28 × 28 MNIST-style pixels of the picture file at `path`.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    mnist_like(&path.display().to_string(), picture::read_rgba(path)?)
}

/// The 28 × 28 MNIST-style pixels of the picture file whose bytes are `bytes`; `name` is what
/// errors name.
pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    mnist_like(name, picture::decode_rgba(name, bytes)?)
}

fn mnist_like(name: &str, rgba: Rgba) -> Result<Vec<u8>, String> {
    let grey = soma::digit::grey_from_rgba(&rgba.pixels).map_err(|e| format!("{name}: {e}"))?;
    soma::digit::mnist_like(&grey, rgba.width as usize, rgba.height as usize)
        .map_err(|e| format!("{name}: {e}"))
}
