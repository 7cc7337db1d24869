//! Inputs the fuzz targets (fuzz/, see SECURITY.md) found to crash, hang or over-allocate a
//! reader of untrusted bytes, kept as ordinary tests with their bytes inline: each reader must
//! return a clear error, and allocate no more than the input justifies.
//!
//! This binary counts allocations (a wrapper around the system allocator) so that a test can
//! assert the largest single allocation its reader made, on its own thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use soma::data::idx;

#[path = "../examples/common/picture.rs"]
mod picture;

/// The system allocator, recording per thread the largest single allocation.
struct Counting;

thread_local! {
    // `const` and without a destructor: usable from inside the allocator.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A gzip IDX file whose header promises far more than its compressed bytes can hold made the
/// reader reserve the whole promised payload up front (the `idx` target's first finding, an
/// out-of-memory at `-malloc_limit_mb=512`: 128 bytes reserving up to 2 GiB). Now the
/// reservation is bounded by what the compressed bytes can decode to, and the truncation is
/// reported as such.
#[test]
fn gzip_idx_promising_more_than_it_holds_allocates_by_its_size() {
    let cases = [
        // The fuzzer's input, as found: a corrupt deflate stream after a lying header.
        (
            "fuzzer-oom-80da5c41",
            hex(
                "1f8b08000000000002036360e060666050176060609481e261024276ce9f6ea3825deede3f20f878
                 0ca5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a4a5a5a5a5
                 a5a5a5a5a5a5a50a569920cb35176d2a409a5d6e4531b5d5a7fffef5606801000000000000
                 1c000000047df32f0b97dd",
            ),
        ),
        // Made by hand: a valid gzip stream of a labels header claiming 100 million labels.
        (
            "labels-claiming-1e8",
            hex("1f8b08000000000002036360e06064fdfa90010010f7a57708000000"),
        ),
        // An images header claiming 100 million 1×20 images (2·10^9 bytes, just under the cap).
        (
            "images-claiming-2e9-bytes",
            hex("1f8b08000000000002036360e06066fdfa9001081881580400111e85fd10000000"),
        ),
    ];
    for (name, bytes) in &cases {
        let bound = bytes.len() * 1032 + 64 * 1024;
        let (images, largest) = largest_allocation(|| idx::read_images_bytes(name, bytes));
        let err = images.expect_err("a lying header is an error").to_string();
        assert!(err.contains(name), "{err}");
        assert!(
            largest <= bound,
            "{name}: images allocated {largest} B (bound {bound})"
        );
        let (labels, largest) = largest_allocation(|| idx::read_labels_bytes(name, bytes));
        let err = labels.expect_err("a lying header is an error").to_string();
        assert!(err.contains(name), "{err}");
        assert!(
            largest <= bound,
            "{name}: labels allocated {largest} B (bound {bound})"
        );
    }
    // The hand-made labels file: the error names the field and the truncation.
    let err = idx::read_labels_bytes("l.gz", &cases[1].1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("payload length") && err.contains("truncated"),
        "{err}"
    );
}

/// The readers still read the real MNIST shape exactly, after the reservation change: a gzip
/// file whose payload is larger than 1032 × its compressed size cannot exist, and one within
/// it reads in full.
#[test]
fn gzip_idx_within_the_bound_reads_in_full() {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let mut raw = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28];
    raw.extend((0..2 * 784).map(|i| (i % 251) as u8));
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&raw).unwrap();
    let bytes = gz.finish().unwrap();
    let images = idx::read_images_bytes("two.gz", &bytes).expect("a valid file");
    assert_eq!((images.count, images.rows, images.cols), (2, 28, 28));
    assert_eq!(images.pixels, raw[16..]);
}

/// A picture whose header claims more pixels than `predict` reads is refused from the header,
/// before a pixel is decoded.
#[test]
fn picture_claiming_too_many_pixels_is_refused_before_decoding() {
    // A PGM header of 65536×65536 grey pixels with no pixels after it.
    let (out, largest) =
        largest_allocation(|| picture::from_bytes("huge.pgm", b"P5\n65536 65536\n255\n"));
    let err = out.expect_err("too large").to_string();
    assert!(err.contains("huge.pgm"), "{err}");
    assert!(largest < 1 << 20, "allocated {largest} B");
}
