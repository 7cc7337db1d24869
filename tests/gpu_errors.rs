//! GPU failures come back as `soma::Error`, never as panics: an invalid shader names the kernel
//! and carries naga's message, an oversized buffer names the buffer and the limit, and a lost
//! device fails every later call. Needs a GPU adapter (lavapipe will do): without one the tests
//! print "SKIPPED: no GPU adapter" and pass, or fail under `SOMA_STRICT=1`.

mod common;

use soma::gpu::kernels::{Slot, build_kernel};
use soma::gpu::{GpuBackend, GpuContext, GpuOptions, compile_wgsl};
use soma::{
    Activation, Backend, Dataset, Error, Init, Inputs, Network, Normalize, Optimizer, Output,
    Params, Targets,
};

/// A fresh context per test: one of them destroys its device.
fn context() -> Option<GpuContext> {
    match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            eprintln!("{e}");
            common::skip("no GPU adapter");
            None
        }
    }
}

fn net() -> Network {
    Network::new(
        &[784, 16, 10],
        Activation::Relu,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap()
}

fn small_data(len: usize) -> Dataset {
    Dataset::new(
        784,
        Inputs::U8(vec![7; len * 784]),
        Targets::Labels {
            labels: (0..len).map(|i| (i % 10) as u32).collect(),
            classes: 10,
        },
        Normalize::UNIT,
    )
    .unwrap()
}

fn gpu_message(e: Error) -> (String, String) {
    match e {
        Error::Gpu { context, message } => (context, message),
        other => panic!("expected Error::Gpu, got {other:?}"),
    }
}

#[test]
fn invalid_shader_is_an_error_naming_the_kernel() {
    let Some(ctx) = context() else { return };
    // A syntax error.
    let (context, message) =
        gpu_message(compile_wgsl(&ctx, "broken_syntax", "@compute fn main( {").unwrap_err());
    assert!(context.contains("broken_syntax"), "{context}");
    assert!(!message.is_empty());
    // A type error, through the same path the engine's kernels are built by.
    let src = "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n\
               @compute @workgroup_size(1) fn main() { x[0] = 1u; }";
    let err = build_kernel(&ctx, "broken_types", src, &[Slot::Write], &[]).unwrap_err();
    let (context, message) = gpu_message(err);
    assert!(context.contains("broken_types"), "{context}");
    eprintln!("naga says: {message}");
    // The device is still usable afterwards.
    let ok = "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n\
              @compute @workgroup_size(1) fn main() { x[0] = 1.0; }";
    build_kernel(&ctx, "fine", ok, &[Slot::Write], &[]).unwrap();
    ctx.check("after a bad shader").unwrap();
}

#[test]
fn batch_beyond_the_binding_limit_names_buffer_and_limit() {
    let Some(ctx) = context() else { return };
    let limit = ctx.limits.max_storage_buffer_binding_size;
    let net = net();
    let mut g = GpuBackend::new(
        ctx,
        &net,
        Params::init(&net, Init::Uniform, 1),
        Optimizer::Sgd,
    )
    .unwrap();
    g.set_train_data(&small_data(10)).unwrap();
    // Enough rows that one batch of 784 f32 inputs exceeds the limit.
    let rows = (limit / (784 * 4) + 1) as usize;
    let order: Vec<u32> = (0..rows as u32).map(|i| i % 10).collect();
    let (context, message) = gpu_message(g.train_batches(&order, rows, 0.1).unwrap_err());
    assert!(context.contains("activations 0"), "{context}");
    assert!(
        message.contains("max_storage_buffer_binding_size"),
        "{message}"
    );
    // Nothing was half-built: a normal batch still trains.
    g.train_batches(&[0, 1, 2, 3], 2, 0.1).unwrap();
    assert_eq!(g.take_stats().unwrap().samples, 4);
}

#[test]
fn dataset_beyond_the_binding_limit_names_buffer_and_limit() {
    let Some(ctx) = context() else { return };
    let limit = ctx.limits.max_storage_buffer_binding_size;
    // f32 inputs of one more row than fits (lavapipe: 128 MiB, i.e. ~43k MNIST rows).
    let features = 784;
    let len = (limit / (features as u64 * 4) + 1) as usize;
    if len * features > 64 << 20 {
        common::skip("binding limit too large to exceed with a test-sized dataset");
        return;
    }
    let data = Dataset::new(
        features,
        Inputs::F32(vec![0.5; len * features]),
        Targets::Labels {
            labels: vec![0; len],
            classes: 10,
        },
        Normalize::IDENTITY,
    )
    .unwrap();
    let net = net();
    let mut g = GpuBackend::new(
        ctx,
        &net,
        Params::init(&net, Init::Uniform, 1),
        Optimizer::Sgd,
    )
    .unwrap();
    let (context, message) = gpu_message(g.set_train_data(&data).unwrap_err());
    assert!(context.contains("training inputs"), "{context}");
    assert!(
        message.contains("max_storage_buffer_binding_size"),
        "{message}"
    );
    assert!(message.contains(&limit.to_string()), "{message}");
}

#[test]
fn lost_device_fails_every_later_call() {
    let Some(ctx) = context() else { return };
    let net = net();
    let mut g = GpuBackend::new(
        ctx,
        &net,
        Params::init(&net, Init::Uniform, 1),
        Optimizer::Sgd,
    )
    .unwrap();
    let data = small_data(64);
    g.set_train_data(&data).unwrap();
    g.train_batches(&(0..64).collect::<Vec<u32>>(), 16, 0.1)
        .unwrap();
    g.take_stats().unwrap();

    g.context().device.destroy();

    let order: Vec<u32> = (0..64).collect();
    let results = [
        g.train_batches(&order, 16, 0.1).err(),
        g.take_stats().err(),
        g.evaluate(&data).err(),
        g.params().err(),
        g.optim_state().err(),
    ];
    for (i, r) in results.into_iter().enumerate() {
        let e = r.unwrap_or_else(|| panic!("call {i} after destroy succeeded"));
        let (context, message) = gpu_message(e);
        eprintln!("call {i}: {context}: {message}");
    }
}
