//! Per-kernel throughput on both backends, at the shapes of the 784-64-64-10 network.
//!
//! `cargo bench --bench kernels` (a filter after `--` picks groups, e.g. `-- cpu_`).
//!
//! Groups and what their "elements" or bytes are:
//! - `cpu_matmul_flops`, `gpu_dispatch_matmul_flops`, `gpu_op_roundtrip_matmul_flops`: elements
//!   are floating-point operations (`2·M·N·K`), so `Gelem/s` reads as GFLOP/s. The three forms
//!   of a layer `in→out` at batch `B`: `fwd` = `X·W` (B×in · in×out) with the bias + sigmoid
//!   epilogue; `AtB` = `Xᵀ·δ` (the weight gradient, in×out); `ABt_deriv` = `δ·Wᵀ` (B×in) times
//!   `a(1-a)` (the input gradient).
//! - `*_softmax_ce_rows`: elements are samples (rows of 10 logits): softmax, loss and `(p-y)/B`.
//! - `*_column_sums_bytes`: bytes of the B×64 matrix read.
//! - `*_optimizer_bytes`: bytes read and written by one update of all 55,050 parameters
//!   (SGD: p, g, p'; momentum adds v, v'; Adam adds m, v, m', v').
//! - `*_gather_bytes`: u8 pixels read plus f32 inputs written for a batch of 784-pixel images.
//!
//! GPU: `gpu_dispatch_*` times the kernel alone (buffers and bind group made once; each
//! iteration records `DISPATCHES` dispatches into one pass, submits and waits).
//! `gpu_op_roundtrip_*` goes through `soma::gpu::GpuOps`, which allocates, uploads, dispatches
//! and reads back on every call, so it includes the transfers and is an upper bound on the
//! kernel's time. Without a GPU adapter the GPU groups are skipped with a note.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array1, Array2};
use soma::cpu::linalg::gemm;
use soma::data::Inputs;
use soma::gpu::ops::{MatmulSpec, OpTargets, Readout};
use soma::gpu::{GpuContext, GpuOps, GpuOptions, PreparedOp};
use soma::ops::matmul::{bias_activation, mul_derivative};
use soma::ops::{gather, loss, optim, reduce};
use soma::{Activation, Dataset, Normalize, Optimizer, Output, Targets};

/// The network's layers as (inputs, outputs).
const LAYERS: [(usize, usize); 3] = [(784, 64), (64, 64), (64, 10)];
const BATCHES: [usize; 2] = [64, 1024];
/// Parameters of 784-64-64-10 (weights and biases).
const PARAMS: usize = 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10;
/// Dispatches per submit in the dispatch-only GPU benches.
const DISPATCHES: usize = 8;

/// A small deterministic generator (xorshift), so the bench needs no seeding API.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn matrix(&mut self, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |_| self.f32())
    }
    fn vector(&mut self, n: usize) -> Array1<f32> {
        Array1::from_shape_fn(n, |_| self.f32())
    }
    /// In (0, 1): plausible sigmoid outputs.
    fn activations(&mut self, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |_| 0.5 + 0.49 * self.f32())
    }
}

fn flops(b: usize, i: usize, o: usize) -> Throughput {
    Throughput::Elements((2 * b * i * o) as u64)
}

fn shape_id(form: &str, b: usize, i: usize, o: usize) -> BenchmarkId {
    BenchmarkId::new(form, format!("B{b}_{i}x{o}"))
}

/// A synthetic MNIST-shaped set of `n` images.
fn images(n: usize, rng: &mut Rng) -> Dataset {
    let pixels = (0..n * 784).map(|_| (rng.next() >> 56) as u8).collect();
    let labels = (0..n).map(|_| (rng.next() % 10) as u32).collect();
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

fn cpu_matmul(c: &mut Criterion) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut g = c.benchmark_group("cpu_matmul_flops");
    for b in BATCHES {
        // One thread always; two at the large batch, where gemm splits the work.
        let threads: &[usize] = if b >= 1024 { &[1, 2] } else { &[1] };
        for &(i, o) in &LAYERS {
            let x = rng.activations(b, i);
            let w = rng.matrix(i, o);
            let bias = rng.vector(o);
            let delta = rng.matrix(b, o);
            let mut z = Array2::<f32>::zeros((b, o));
            let mut dw = Array2::<f32>::zeros((i, o));
            let mut dx = Array2::<f32>::zeros((b, i));
            g.throughput(flops(b, i, o));
            for &t in threads {
                let sfx = if t == 1 {
                    String::new()
                } else {
                    format!("_t{t}")
                };
                g.bench_function(shape_id(&format!("fwd{sfx}"), b, i, o), |bn| {
                    bn.iter(|| {
                        gemm(1.0, x.view(), w.view(), 0.0, z.view_mut(), t);
                        bias_activation(z.view_mut(), bias.view(), Some(Activation::Sigmoid));
                        black_box(&z);
                    })
                });
                g.bench_function(shape_id(&format!("AtB{sfx}"), b, i, o), |bn| {
                    bn.iter(|| {
                        gemm(1.0, x.t(), delta.view(), 0.0, dw.view_mut(), t);
                        black_box(&dw);
                    })
                });
                g.bench_function(shape_id(&format!("ABt_deriv{sfx}"), b, i, o), |bn| {
                    bn.iter(|| {
                        gemm(1.0, delta.view(), w.t(), 0.0, dx.view_mut(), t);
                        mul_derivative(dx.view_mut(), x.view(), Activation::Sigmoid);
                        black_box(&dx);
                    })
                });
            }
        }
    }
    g.finish();
}

fn cpu_other(c: &mut Criterion) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    {
        let mut g = c.benchmark_group("cpu_softmax_ce_rows");
        for b in BATCHES {
            let logits = rng.matrix(b, 10);
            let mut y = Array2::<f32>::zeros((b, 10));
            for r in 0..b {
                y[[r, (rng.next() % 10) as usize]] = 1.0;
            }
            let mut p = logits.clone();
            let mut delta = Array2::<f32>::zeros((b, 10));
            g.throughput(Throughput::Elements(b as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("B{b}")), |bn| {
                bn.iter(|| {
                    p.assign(&logits);
                    let out = Output::SoftmaxCrossEntropy;
                    let s = loss::output_delta(out, p.view_mut(), y.view(), delta.view_mut(), b);
                    black_box((s, &delta));
                })
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("cpu_column_sums_bytes");
        for b in BATCHES {
            let m = rng.matrix(b, 64);
            let mut out = Array1::<f32>::zeros(64);
            g.throughput(Throughput::Bytes((b * 64 * 4) as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("B{b}x64")), |bn| {
                bn.iter(|| {
                    reduce::column_sums(m.view(), out.view_mut());
                    black_box(&out);
                })
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("cpu_optimizer_bytes");
        let grad = rng.vector(PARAMS);
        for (name, opt) in optimizers() {
            let mut p = rng.vector(PARAMS);
            let mut slots: Vec<Array1<f32>> =
                (0..opt.slots()).map(|_| Array1::zeros(PARAMS)).collect();
            g.throughput(Throughput::Bytes(optimizer_bytes(&opt)));
            g.bench_function(BenchmarkId::from_parameter(name), |bn| {
                let mut t = 0;
                bn.iter(|| {
                    t += 1;
                    let mut views: Vec<_> = slots.iter_mut().map(|s| s.view_mut()).collect();
                    optim::update(&opt, 1e-3, t, p.view_mut(), grad.view(), &mut views);
                    black_box(&p);
                })
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("cpu_gather_bytes");
        let data = images(4096, &mut rng);
        for b in BATCHES {
            let order: Vec<u32> = (0..b).map(|_| (rng.next() % 4096) as u32).collect();
            let mut x = Array2::<f32>::zeros((b, 784));
            g.throughput(Throughput::Bytes((b * 784 * 5) as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("B{b}")), |bn| {
                bn.iter(|| {
                    gather::gather_inputs(&data, &order, x.view_mut());
                    black_box(&x);
                })
            });
        }
        g.finish();
    }
}

fn optimizers() -> [(&'static str, Optimizer); 3] {
    [
        ("sgd", Optimizer::Sgd),
        ("momentum", Optimizer::momentum()),
        ("adam", Optimizer::adam()),
    ]
}

/// Bytes one update moves: p and g read, p written, and each slot read and written.
fn optimizer_bytes(opt: &Optimizer) -> u64 {
    ((3 + 2 * opt.slots()) * PARAMS * 4) as u64
}

/// The device, or `None` with a note on stderr.
fn open_gpu() -> Option<Arc<GpuContext>> {
    match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => {
            eprintln!("kernels bench: GPU adapter {}", ctx.describe());
            Some(Arc::new(ctx))
        }
        Err(e) => {
            eprintln!("kernels bench: no usable GPU adapter, skipping the GPU groups ({e})");
            None
        }
    }
}

fn gpu_groups(c: &mut Criterion) {
    let Some(ctx) = open_gpu() else { return };
    let ops = match GpuOps::new(Arc::clone(&ctx)) {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("kernels bench: building the GPU op runner failed, skipping ({e})");
            return;
        }
    };
    gpu_dispatch_matmul(c, &ops);
    gpu_roundtrip(c, &ops);
}

fn short(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// The three matmul forms of layer `i→o` at batch `b`, prepared once through the library's op
/// runner (`GpuOps::matmul`'s own, kept to dispatch many times).
fn prepare_forms<'a>(
    ops: &'a GpuOps,
    rng: &mut Rng,
    b: usize,
    i: usize,
    o: usize,
) -> soma::Result<[(&'static str, PreparedOp<'a>); 3]> {
    let x = rng.activations(b, i);
    let w = rng.matrix(i, o);
    let bias = rng.vector(o);
    let delta = rng.matrix(b, o);
    let fwd = ops.matmul(
        x.view(),
        w.view(),
        MatmulSpec {
            bias: Some(bias.view()),
            act: Some(Activation::Sigmoid),
            ..Default::default()
        },
    )?;
    let atb = ops.matmul(
        x.view(),
        delta.view(),
        MatmulSpec {
            trans_a: true,
            ..Default::default()
        },
    )?;
    let abt = ops.matmul_derivative(
        delta.view(),
        w.view(),
        true,
        x.view(),
        Activation::Sigmoid,
        None,
    )?;
    Ok([
        ("fwd", fwd.into_prepared()),
        ("AtB", atb.into_prepared()),
        ("ABt_deriv", abt.into_prepared()),
    ])
}

fn gpu_dispatch_matmul(c: &mut Criterion, ops: &GpuOps) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut g = c.benchmark_group("gpu_dispatch_matmul_flops");
    short(&mut g);
    for b in BATCHES {
        for &(i, o) in &LAYERS {
            let forms = match prepare_forms(ops, &mut rng, b, i, o) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("kernels bench: {e}; skipping gpu_dispatch_matmul_flops");
                    return;
                }
            };
            g.throughput(Throughput::Elements(
                2 * (b * i * o) as u64 * DISPATCHES as u64,
            ));
            for (form, op) in &forms {
                g.bench_function(shape_id(form, b, i, o), |bn| {
                    bn.iter(|| op.dispatch(DISPATCHES).expect("the bench kernel runs"))
                });
            }
        }
    }
    g.finish();
}

fn gpu_roundtrip(c: &mut Criterion, ops: &GpuOps) {
    let mut rng = Rng(0xBF58_476D_1CE4_E5B9);
    {
        let mut g = c.benchmark_group("gpu_op_roundtrip_matmul_flops");
        short(&mut g);
        for b in BATCHES {
            for &(i, o) in &LAYERS {
                let x = rng.activations(b, i);
                let w = rng.matrix(i, o);
                let bias = rng.vector(o);
                let delta = rng.matrix(b, o);
                g.throughput(flops(b, i, o));
                g.bench_function(shape_id("fwd", b, i, o), |bn| {
                    let spec = MatmulSpec {
                        bias: Some(bias.view()),
                        act: Some(Activation::Sigmoid),
                        ..Default::default()
                    };
                    bn.iter(|| {
                        black_box(
                            ops.matmul(x.view(), w.view(), spec)
                                .and_then(Readout::run)
                                .expect("matmul"),
                        )
                    })
                });
                g.bench_function(shape_id("AtB", b, i, o), |bn| {
                    let spec = MatmulSpec {
                        trans_a: true,
                        ..Default::default()
                    };
                    bn.iter(|| {
                        black_box(
                            ops.matmul(x.view(), delta.view(), spec)
                                .and_then(Readout::run)
                                .expect("matmul"),
                        )
                    })
                });
                g.bench_function(shape_id("ABt_deriv", b, i, o), |bn| {
                    bn.iter(|| {
                        black_box(
                            ops.matmul_derivative(
                                delta.view(),
                                w.view(),
                                true,
                                x.view(),
                                Activation::Sigmoid,
                                None,
                            )
                            .and_then(Readout::run)
                            .expect("matmul"),
                        )
                    })
                });
            }
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("gpu_op_roundtrip_softmax_ce_rows");
        short(&mut g);
        for b in BATCHES {
            let z = rng.matrix(b, 10);
            let labels: Vec<u32> = (0..b).map(|_| (rng.next() % 10) as u32).collect();
            g.throughput(Throughput::Elements(b as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("B{b}")), |bn| {
                bn.iter(|| {
                    black_box(
                        ops.loss(
                            Output::SoftmaxCrossEntropy,
                            z.view(),
                            OpTargets::Labels(&labels),
                        )
                        .and_then(Readout::run)
                        .expect("loss"),
                    )
                })
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("gpu_op_roundtrip_column_sums_bytes");
        short(&mut g);
        for b in BATCHES {
            let m = rng.matrix(b, 64);
            g.throughput(Throughput::Bytes((b * 64 * 4) as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("B{b}x64")), |bn| {
                bn.iter(|| {
                    black_box(
                        ops.column_sums(m.view())
                            .and_then(Readout::run)
                            .expect("column sums"),
                    )
                })
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("gpu_op_roundtrip_optimizer_bytes");
        short(&mut g);
        let p = rng.vector(PARAMS);
        let grad = rng.vector(PARAMS);
        for (name, opt) in optimizers() {
            let slots: Vec<Array1<f32>> = (0..opt.slots()).map(|_| rng.vector(PARAMS)).collect();
            let views: Vec<_> = slots.iter().map(|s| s.view()).collect();
            g.throughput(Throughput::Bytes(optimizer_bytes(&opt)));
            g.bench_function(BenchmarkId::from_parameter(name), |bn| {
                bn.iter(|| {
                    black_box(
                        ops.optimizer_step(&opt, 1e-3, 1, p.view(), grad.view(), &views)
                            .and_then(Readout::run)
                            .expect("optimizer step"),
                    )
                })
            });
        }
        g.finish();
    }
    {
        // GpuOps::gather uploads the whole dataset on every call: a small one keeps that
        // upload (1 MiB) from dominating.
        let mut g = c.benchmark_group("gpu_op_roundtrip_gather_bytes");
        short(&mut g);
        let data = images(1024, &mut rng);
        for b in BATCHES {
            let order: Vec<u32> = (0..b).map(|_| (rng.next() % 1024) as u32).collect();
            g.throughput(Throughput::Bytes((b * 784 * 5) as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("B{b}")), |bn| {
                bn.iter(|| {
                    black_box(
                        ops.gather(data.inputs(), 784, &order, Normalize::UNIT)
                            .and_then(Readout::run)
                            .expect("gather"),
                    )
                })
            });
        }
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = cpu_benches;
    config = config();
    targets = cpu_matmul, cpu_other
}
criterion_group! {
    name = gpu_benches;
    config = config();
    targets = gpu_groups
}
criterion_main!(cpu_benches, gpu_benches);
