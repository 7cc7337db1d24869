//! NumPy files: `npy::read_npy_bytes` and `npy::read_npz_bytes` on the same input (corpus/npy
//! holds both kinds). Each must return `Ok` or an `Error`, and what it returns must be
//! consistent: as many values as the shape says, a dtype as the header wrote it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use soma::data::npy::{self, Array, Values};

/// What every array read must satisfy, whatever the input.
fn check(array: &Array) {
    let count = array
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d));
    assert_eq!(count, Some(array.len()), "shape {:?}", array.shape);
    assert_eq!(array.len(), array.values.len());
    assert_eq!(array.is_empty(), array.len() == 0);
    if array.dtype == "|b1" {
        match &array.values {
            Values::U8(v) => assert!(v.iter().all(|&b| b <= 1), "bools must be 0 or 1"),
            other => panic!("|b1 read as {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = npy::read_npy_bytes(Path::new("fuzz.npy"), data) {
        check(&array);
    }
    if let Ok(members) = npy::read_npz_bytes(Path::new("fuzz.npz"), data) {
        let mut names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate member names");
        members.iter().for_each(|(_, array)| check(array));
    }
});
