//! Inputs the fuzz targets (fuzz/, see SECURITY.md) found to crash, hang or over-allocate a
//! reader of untrusted bytes, kept as ordinary tests with their bytes inline: each reader must
//! return a clear error, and allocate no more than the input justifies.
//!
//! This binary counts allocations (a wrapper around the system allocator) so that a test can
//! assert the largest single allocation its reader made, on its own thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use soma::checkpoint::{self, Checkpoint};
use soma::data::{DatasetKind, idx};
use soma::{
    Activation, Backend, CpuBackend, Dataset, Init, Inputs, ModelInfo, Network, Normalize,
    OptimState, Optimizer, Output, Params, Targets,
};

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

/// An 821-byte JPEG the `picture` fuzz target found (a libFuzzer timeout on a loaded machine):
/// its header claims 7168×284 grey pixels, which the decoder fills in from almost no data. It is
/// refused from the header, before decoding: more pixels than its bytes pay for.
#[test]
fn picture_claiming_more_pixels_than_its_bytes_pay_for_is_refused() {
    let jpeg = include_bytes!("data/fuzz/picture-7168x284-in-821-bytes.jpg");
    assert_eq!(jpeg.len(), 821);
    let (out, largest) = largest_allocation(|| picture::from_bytes("tiny.jpg", jpeg));
    let err = out.expect_err("refused").to_string();
    assert!(
        err.contains("tiny.jpg") && err.contains("7168×284") && err.contains("821 bytes"),
        "{err}"
    );
    assert!(largest < 1 << 20, "allocated {largest} B");
}

/// A 2,070-byte JPEG the `picture` fuzz target found in its long run: zune-jpeg 0.5.15 (the
/// JPEG decoder under `image`) panics on it with an index out of bounds in its AVX2 IDCT. The
/// panic is contained and comes back as an error naming the file. (On a CPU without AVX2 the
/// decoder takes its scalar path; whatever that makes of these bytes, it must not panic.)
#[test]
fn a_picture_whose_decoder_panics_is_an_error_naming_it() {
    let jpeg = include_bytes!("data/fuzz/picture-zune-jpeg-avx2-idct-panic.jpg");
    let out = picture::from_bytes("crash.jpg", jpeg);
    // Panics outside a decode still unwind as before (the decoders' hook passes them on).
    assert!(std::panic::catch_unwind(|| panic!("after")).is_err());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        let err = out.as_ref().expect_err("the decoder panics on it");
        assert!(
            err.contains("crash.jpg") && err.contains("decoder failed"),
            "{err}"
        );
    }
    if let Err(e) = out {
        assert!(e.contains("crash.jpg"), "{e}");
    }
}

/// The bytes of a small Adam checkpoint (784-4-10, as the page trains) with its metadata and
/// tensors edited: `edit` gets the metadata and the tensors as (name, shape, f32 values).
fn edited_checkpoint(
    edit: impl FnOnce(&mut HashMap<String, String>, &mut Vec<(String, Vec<usize>, Vec<f32>)>),
) -> Vec<u8> {
    let net = Network::new(
        &[784, 4, 10],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .expect("a valid network");
    let optimizer = Optimizer::adam();
    let params = Params::init(&net, Init::Uniform, 1);
    let state = OptimState::new(&optimizer, &params);
    let ckpt = Checkpoint {
        network: net,
        params,
        optimizer,
        state,
        epoch: 1,
        model: Some(ModelInfo::for_dataset(DatasetKind::Mnist, Normalize::UNIT)),
    };
    let bytes = ckpt.to_bytes().expect("a valid checkpoint");
    let (_, header) = SafeTensors::read_metadata(&bytes).expect("safetensors");
    let mut meta = header.metadata().clone().expect("metadata");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut tensors: Vec<_> = st
        .iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name.to_string(), view.shape().to_vec(), values)
        })
        .collect();
    edit(&mut meta, &mut tensors);
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<_> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape, _), bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("a valid view");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, Some(meta)).expect("serializes")
}

/// A checkpoint whose `sizes` claims a million layers in 3 MB of text, with a thousand tensors
/// named for the last of them, made the reader list every tensor name the claim implies
/// (6 million strings, a 200 MB list for Adam) and compare each tensor in the file against that
/// list (quadratic: minutes). Now each name is checked by reading it, and the first missing
/// tensor ends the read; and a list longer than `net::MAX_LAYERS` is refused once its sizes are
/// read, before a network is built: the largest allocation is the layer sizes themselves,
/// bounded by the text that names them.
#[test]
fn checkpoint_claiming_a_million_layers_costs_what_its_bytes_do() {
    const LAYERS: usize = 1_000_000;
    let bytes = edited_checkpoint(|meta, tensors| {
        // The file's own two layers (784-4-10), then 999,998 more of 10.
        meta.insert("sizes".into(), format!("784,4{}", ",10".repeat(LAYERS - 1)));
        // Names the million-layer network expects, so none is refused as unexpected and the
        // name check itself meets each of them.
        for l in LAYERS - 1000..LAYERS {
            tensors.push((format!("optim.1.layer{l}.b"), vec![10], vec![0.0; 10]));
        }
    });
    let started = std::time::Instant::now();
    let (out, largest) = largest_allocation(|| Checkpoint::from_bytes("layers.st", &bytes));
    let seconds = started.elapsed().as_secs_f64();
    let err = out.expect_err("too many layers").to_string();
    assert!(
        err.contains("layers.st") && err.contains("layer list") && err.contains("100000"),
        "{err}"
    );
    // A layer size is a usize (8 bytes) per at least 2 bytes of text; Vec's growth may double
    // that once.
    assert!(
        largest <= 8 * bytes.len(),
        "allocated {largest} B in one piece for a file of {} B",
        bytes.len()
    );
    assert!(seconds < 5.0, "took {seconds:.1} s");
}

/// A checkpoint's tensor names are read exactly as they are written: an index with a leading
/// zero or a sign, or past the network's layers or the optimizer's slots, is a stray tensor.
#[test]
fn checkpoint_tensor_names_must_be_written_exactly() {
    for stray in [
        "layer01.w",
        "layer+1.w",
        "layer2.w",
        "layer0.x",
        "optim.01.layer0.w",
        "optim.2.layer0.w",
        "optim..layer0.w",
        "layer18446744073709551616.b",
    ] {
        let bytes = edited_checkpoint(|_, tensors| {
            tensors.push((stray.into(), vec![1], vec![0.0]));
        });
        let err = Checkpoint::from_bytes("stray.st", &bytes)
            .expect_err("a stray tensor")
            .to_string();
        assert!(
            err.contains(&format!("unexpected tensor `{stray}`")),
            "{stray}: {err}"
        );
    }
    let unedited = edited_checkpoint(|_, _| {});
    Checkpoint::from_bytes("unedited.st", &unedited).expect("the unedited file loads");
}

/// A checkpoint claiming `u64::MAX` optimizer steps loaded, and resuming training from it
/// overflowed the step counter on the first step (a panic where overflow is checked, a step
/// count of 0 and Adam dividing by a zero bias correction where it is not). The reader now
/// refuses counts past `MAX_STEP` (2^53), naming the key; training resumes from `MAX_STEP`
/// itself.
#[test]
fn checkpoint_step_counts_past_2_to_the_53_are_refused() {
    let with_step = |step: &str| {
        let step = step.to_string();
        edited_checkpoint(move |meta, _| {
            meta.insert("step".into(), step);
        })
    };
    for step in [u64::MAX, checkpoint::MAX_STEP + 1] {
        let err = Checkpoint::from_bytes("steps.st", &with_step(&step.to_string()))
            .expect_err("too many steps")
            .to_string();
        assert!(
            err.contains("steps.st") && err.contains("`step`") && err.contains(&step.to_string()),
            "{err}"
        );
    }

    let ckpt = Checkpoint::from_bytes("max.st", &with_step(&checkpoint::MAX_STEP.to_string()))
        .expect("MAX_STEP is a valid step count");
    assert_eq!(ckpt.state.step, checkpoint::MAX_STEP);
    let mut backend =
        CpuBackend::new(&ckpt.network, ckpt.params.clone(), ckpt.optimizer).expect("a backend");
    backend
        .set_optim_state(&ckpt.state)
        .expect("the state fits");
    let data = Dataset::new(
        784,
        Inputs::U8(vec![200; 784]),
        Targets::Labels {
            labels: vec![3],
            classes: 10,
        },
        Normalize::UNIT,
    )
    .expect("a dataset");
    backend.set_train_data(&data).expect("training data");
    backend.train_batches(&[0], 1, 0.01).expect("one step");
    let state = backend.optim_state().expect("the state");
    assert_eq!(state.step, checkpoint::MAX_STEP + 1);
    let params = backend.params().expect("the parameters");
    assert!(
        params
            .layers
            .iter()
            .all(|l| l.w.iter().chain(&l.b).all(|x| x.is_finite())),
        "a step from MAX_STEP keeps the parameters finite"
    );

    // And a checkpoint past the bound is refused at save, so every saved file loads back.
    let mut over = ckpt;
    over.state.step = checkpoint::MAX_STEP + 1;
    let err = over.to_bytes().expect_err("refused").to_string();
    assert!(err.contains("step count"), "{err}");
}

/// The `layers` target's first finding: a dense layer of 18,446,744,073,709,551,612 units (a
/// size the layer string, or a checkpoint's `sizes`, may name) built, and the summary's
/// parameter column overflowed (a panic with overflow checks, a wrong count without). A
/// network's parameter count is now computed without overflow when it is built and bounded by
/// `net::MAX_PARAMETERS`, and the FLOP count saturates.
#[test]
fn layer_sizes_whose_parameters_overflow_are_refused() {
    let input = soma::shape::Chw::new(1, 109, 45);
    let err = soma::layers::from_string(
        input,
        "dense64,relu,dense0018446744073709551612",
        Output::SoftmaxCrossEntropy,
    )
    .expect_err("too many parameters")
    .to_string();
    assert!(
        err.contains("parameters") && err.contains(&soma::net::MAX_PARAMETERS.to_string()),
        "{err}"
    );
    // The same through the dense constructor a checkpoint's `sizes` goes through.
    let err = Network::new(
        &[784, 1 << 40, 1 << 40],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .expect_err("2^80 weights")
    .to_string();
    assert!(err.contains("more than 2^64"), "{err}");
    // The largest allowed network still builds (the memory check refuses it later, by size).
    let huge = Network::new(
        &[1 << 26, 1 << 26, 2],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .expect("2^52 + 2^27 parameters are allowed");
    assert_eq!(
        huge.parameter_count() as u64,
        (1 << 52) + (1 << 26) + 2 * (1 << 26) + 2
    );
    assert!(huge.train_flops_per_sample() > 0);
}
