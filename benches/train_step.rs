//! Training steps per second on each backend: one `train_batches` call over 16 batches of the
//! 784-64-64-10 sigmoid / softmax-CE network with plain SGD, followed by `take_stats` (the
//! read-back the training loop does once per tick, which on the GPU waits for the steps).
//! Elements are samples (16 × batch), so criterion's `elem/s` is training samples/s.
//!
//! `cargo bench --bench train_step` (`-- cpu` or `-- gpu` to pick one). The data is synthetic
//! MNIST-shaped u8 images (no files needed). Without a GPU adapter the GPU group is skipped
//! with a note.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use soma::gpu::{GpuBackend, GpuContext, GpuOptions};
use soma::{
    Activation, Backend, CpuBackend, Dataset, Init, Inputs, Network, Normalize, Optimizer, Output,
    Params, Targets,
};

const BATCHES: [usize; 3] = [64, 256, 1024];
/// Batches per `train_batches` call.
const STEPS: usize = 16;
const LR: f32 = 0.1;

/// Enough distinct images for the largest call (16 × 1024).
fn dataset() -> Dataset {
    let n = STEPS * 1024;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // MNIST-like: mostly dark pixels, some bright ones.
    let pixels = (0..n * 784)
        .map(|_| {
            let r = next();
            if r % 5 == 0 { (r >> 56) as u8 } else { 0 }
        })
        .collect();
    let labels = (0..n).map(|_| (next() % 10) as u32).collect();
    Dataset::new(
        784,
        Inputs::U8(pixels),
        Targets::Labels {
            labels,
            classes: 10,
        },
        Normalize::UNIT,
    )
    .expect("a valid synthetic dataset")
}

fn network() -> Network {
    Network::new(
        &[784, 64, 64, 10],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .expect("a valid network")
}

/// A fixed shuffled order over the first `16 × batch` samples.
fn order(batch: usize) -> Vec<u32> {
    let n = (STEPS * batch) as u32;
    // A multiplicative permutation of 0..n (n is a power of two, 2654435761 is odd).
    (0..n).map(|i| i.wrapping_mul(2_654_435_761) % n).collect()
}

fn bench_backend(
    c: &mut Criterion,
    group: &str,
    samples: usize,
    variants: Vec<(String, Box<dyn Backend>)>,
    data: &Dataset,
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(samples);
    for (name, mut backend) in variants {
        if let Err(e) = backend.set_train_data(data) {
            eprintln!("train_step bench: {name}: {e}; skipped");
            continue;
        }
        for batch in BATCHES {
            let order = order(batch);
            g.throughput(Throughput::Elements(order.len() as u64));
            g.bench_function(BenchmarkId::new(&name, format!("B{batch}")), |b| {
                b.iter(|| {
                    backend
                        .train_batches(&order, batch, LR)
                        .expect("training steps");
                    black_box(backend.take_stats().expect("stats"))
                })
            });
        }
    }
    g.finish();
}

fn cpu(c: &mut Criterion) {
    let net = network();
    let data = dataset();
    let variants = [1, 2]
        .into_iter()
        .map(|t| {
            let params = Params::init(&net, Init::Uniform, 0);
            let backend = CpuBackend::new(&net, params, Optimizer::Sgd)
                .expect("a CPU backend")
                .with_threads(t);
            (format!("cpu_t{t}"), Box::new(backend) as Box<dyn Backend>)
        })
        .collect();
    bench_backend(c, "train_16_batches_cpu", 20, variants, &data);
}

fn gpu(c: &mut Criterion) {
    let net = network();
    let ctx = match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("train_step bench: no usable GPU adapter, skipping the GPU group ({e})");
            return;
        }
    };
    eprintln!("train_step bench: GPU adapter {}", ctx.describe());
    let params = Params::init(&net, Init::Uniform, 0);
    let backend = match GpuBackend::new(ctx, &net, params, Optimizer::Sgd) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("train_step bench: creating the GPU backend failed, skipping ({e})");
            return;
        }
    };
    let data = dataset();
    let variants = vec![("gpu".to_string(), Box::new(backend) as Box<dyn Backend>)];
    bench_backend(c, "train_16_batches_gpu", 10, variants, &data);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = cpu, gpu
}
criterion_main!(benches);
