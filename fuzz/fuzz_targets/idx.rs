//! IDX files, raw or gzip: `idx::read_images_bytes`, `idx::read_labels_bytes` and, for an input
//! holding an images file and a labels file joined by [`SPLIT`], `idx::load_bytes` (what the
//! page runs on the four MNIST files it fetches). Each must return `Ok` or an `Error`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soma::data::idx;

/// Separates the images file from the labels file in a pair input (corpus/idx/pair-*); the
/// dictionary `idx.dict` holds it so that mutations keep or make it.
const SPLIT: &[u8] = b"--labels--";

fuzz_target!(|data: &[u8]| {
    let _ = idx::read_images_bytes("fuzz-images", data);
    let _ = idx::read_labels_bytes("fuzz-labels", data);
    if let Some(at) = data.windows(SPLIT.len()).position(|w| w == SPLIT) {
        let (images, labels) = (&data[..at], &data[at + SPLIT.len()..]);
        // The labels file's last byte picks the class count too (1 to 256), so that the
        // label range check is reached with every bound, not only MNIST's 10.
        let classes = labels.last().map_or(10, |&b| b as usize + 1);
        let _ = idx::load_bytes("fuzz-images", images, "fuzz-labels", labels, classes);
        let _ = idx::load_bytes("fuzz-images", images, "fuzz-labels", labels, 10);
    }
});
