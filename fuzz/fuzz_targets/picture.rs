//! Pictures for `predict`: decoded through `image` (PNG, JPEG, PGM/PPM) and brought to MNIST's
//! form by `digit::mnist_like`, by the very code `predict` runs (examples/common/picture.rs,
//! included here). Must return `Ok` or an error, within the documented pixel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../examples/common/picture.rs"]
mod picture;

fuzz_target!(|data: &[u8]| {
    if let Ok(pixels) = picture::from_bytes("fuzz-picture", data) {
        assert_eq!(pixels.len(), soma::digit::SIDE * soma::digit::SIDE);
    }
});
