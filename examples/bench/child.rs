//! The child: one (backend, threads, batch size) configuration, measured in its own process
//! so that its peak memory is its own, and reported as one JSON row.

use std::time::Instant;

use serde_json::{Value, json};
use soma::data::{DatasetKind, locate};
use soma::gpu::{GpuBackend, GpuContext, GpuCounters, GpuOptions};
use soma::train::{Event, Schedule, TrainConfig, train};
use soma::{Activation, Backend, CpuBackend, Init, Network, Normalize, Optimizer, Output, Params};

use crate::flags::{Args, BackendArg};
use crate::{cpu_model, s};

/// The backend under test, kept concrete so that the GPU's counters can be read.
enum Engine {
    Cpu(Box<CpuBackend>),
    Gpu(Box<GpuBackend>),
}

impl Engine {
    fn backend(&mut self) -> &mut dyn Backend {
        match self {
            Engine::Cpu(b) => b.as_mut(),
            Engine::Gpu(b) => b.as_mut(),
        }
    }

    fn counters(&self) -> GpuCounters {
        match self {
            Engine::Cpu(_) => GpuCounters::default(),
            Engine::Gpu(b) => b.counters(),
        }
    }
}

/// Measures the one configuration `args` names (see the module docs); its JSON row.
pub fn child(args: &Args) -> Result<Value, String> {
    let (&[backend], &[batch], &[threads]) = (
        args.backends.as_slice(),
        args.batch_sizes.as_slice(),
        args.threads.as_slice(),
    ) else {
        return Err("--child runs exactly one backend, batch size and thread count".into());
    };
    let batch = batch as usize;
    let files = locate(DatasetKind::Mnist, args.data.as_deref(), !args.offline).map_err(s)?;
    let (mut train_set, mut test_set) = files.load().map_err(s)?;
    if let Some(n) = args.limit {
        train_set = train_set.head(n as usize);
    }
    train_set.normalize = Normalize::UNIT;
    test_set.normalize = Normalize::UNIT;

    let image = train_set.image.ok_or("MNIST without an image shape")?;
    let net = soma::layers::model_network(
        &args.model,
        image,
        10,
        soma::Output::SoftmaxCrossEntropy,
        || {
            Network::new(
                &[train_set.features(), 64, 64, 10],
                Activation::Sigmoid,
                Output::SoftmaxCrossEntropy,
            )
        },
    )
    .map_err(s)?;
    let params = Params::init(&net, Init::Uniform, args.seed);
    let mut device = None;
    let mut timestamps = None;
    let mut engine = match backend {
        BackendArg::Cpu => Engine::Cpu(Box::new(
            CpuBackend::new(&net, params, Optimizer::Sgd)
                .map_err(s)?
                .with_threads(threads as usize),
        )),
        BackendArg::Gpu => {
            let ctx = GpuContext::new(&GpuOptions {
                adapter: args.adapter.clone(),
            })
            .map_err(s)?;
            device = Some(ctx.describe());
            // GpuContext::new asks for timestamp queries exactly when the adapter offers them.
            timestamps = Some(
                ctx.device
                    .features()
                    .contains(wgpu::Features::TIMESTAMP_QUERY),
            );
            let mut gpu = GpuBackend::new(ctx, &net, params, Optimizer::Sgd).map_err(s)?;
            if let Some(path) = args.step_path {
                gpu.use_path(path).map_err(s)?;
            }
            Engine::Gpu(Box::new(gpu))
        }
    };

    let cfg = TrainConfig {
        epochs: args.warmup + args.epochs,
        batch_size: batch,
        lr: args.lr,
        schedule: Schedule::Constant,
        seed: args.seed,
        batches_per_tick: args.tick as usize,
        augment: 0,
    };
    let total_epochs = cfg.epochs;
    let before = engine.counters();
    let report = train(engine.backend(), &train_set, None, &cfg, 0, |event| {
        if let Event::Progress {
            epoch,
            done,
            total,
            samples_per_second,
            ..
        } = event
        {
            eprintln!("@progress {epoch} {total_epochs} {done} {total} {samples_per_second:.0}");
        }
    })
    .map_err(s)?;
    let after = engine.counters();

    let n = train_set.len();
    let timed = &report.epochs[args.warmup as usize..];
    let rates: Vec<f64> = timed.iter().map(|e| n as f64 / e.seconds).collect();
    let seconds: Vec<f64> = timed.iter().map(|e| e.seconds).collect();
    let steps_per_epoch = n.div_ceil(batch) as u64;
    let epochs_run = report.epochs.len() as u64;

    eprintln!("@phase inference");
    let test_len = test_set.len();
    let warm = engine.backend().evaluate(&test_set).map_err(s)?;
    let mut inference = Vec::new();
    for _ in 0..args.eval_repeats {
        let started = Instant::now();
        engine.backend().evaluate(&test_set).map_err(s)?;
        inference.push(test_len as f64 / started.elapsed().as_secs_f64());
    }

    let mut row = json!({
        "backend": backend.name(),
        "device": device.unwrap_or_else(|| cpu_model().unwrap_or_else(|| "cpu".into())),
        "threads": (backend == BackendArg::Cpu).then_some(threads),
        "batch": batch,
        "train_samples": n,
        "warmup_epochs": args.warmup,
        "epochs": args.epochs,
        "lr": args.lr,
        "samples_per_second": {
            "median": median(&rates),
            "min": rates.iter().copied().fold(f64::INFINITY, f64::min),
            "max": rates.iter().copied().fold(0.0, f64::max),
            "per_epoch": rates,
        },
        "epoch_seconds_median": median(&seconds),
        "inference_samples_per_second": median(&inference),
        "test_samples": test_len,
        "test_accuracy": warm.accuracy(),
        "train_loss_last_epoch": timed.last().map(|e| e.train.mean_loss()),
        "steps_per_epoch": steps_per_epoch,
    });
    if let Engine::Gpu(gpu) = &mut engine {
        // Per-kernel GPU time comes from one more, profiled epoch: timestamps change how steps
        // are recorded, so they stay out of the throughput measured above.
        if gpu.enable_profiling().map_err(s)? {
            eprintln!("@phase profile");
            let order = soma::train::epoch_order(n, args.seed, u64::MAX);
            gpu.train_batches(&order, batch, args.lr).map_err(s)?;
            gpu.take_stats().map_err(s)?;
            let times: Vec<Value> = gpu
                .kernel_times()
                .iter()
                .map(|t| json!({"kernel": t.label, "ms_per_step": 1e3 * t.seconds / steps_per_epoch as f64}))
                .collect();
            row["gpu_kernel_ms"] = json!(times);
        } else {
            row["gpu_kernel_ms"] = Value::Null;
        }
    }
    if let Engine::Gpu(gpu) = &engine {
        let per_epoch =
            |f: fn(&GpuCounters) -> u64| (f(&after) - f(&before)) as f64 / epochs_run as f64;
        let dispatches = per_epoch(|c| c.dispatches);
        row["dispatches_per_epoch"] = json!(dispatches);
        row["submits_per_epoch"] = json!(per_epoch(|c| c.submits));
        row["readbacks_per_epoch"] = json!(per_epoch(|c| c.readbacks));
        row["dispatches_per_step"] = json!(dispatches / steps_per_epoch as f64);
        row["dispatches_per_step_expected"] = json!(gpu.dispatches_per_step());
        row["step_path"] = json!(gpu.step_path().to_string());
        // CPU time encoding steps (and writing their records), and time inside queue.submit,
        // which some drivers (lavapipe) spend running the previous submit.
        row["record_ms_per_epoch"] = json!(per_epoch(|c| c.record_ns) * 1e-6);
        row["submit_ms_per_epoch"] = json!(per_epoch(|c| c.submit_ns) * 1e-6);
        row["waits_per_epoch"] = json!(per_epoch(|c| c.waits));
        row["adapter_timestamp_query"] = json!(timestamps);
    }
    // Last: the high-water mark of the whole process (data, backend, workspaces).
    row["peak_rss_mib"] = json!(peak_rss_mib());
    Ok(row)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// This process's peak resident set (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
