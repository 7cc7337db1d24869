//! Measures soma on the peers' benchmark: the 784-64-64-10 sigmoid network with softmax +
//! cross-entropy, plain SGD at a constant learning rate, no augmentation, inputs `x/255`, on
//! real MNIST (see `shared/peers/README.md` for the NumPy, PyTorch, JAX, Burn and candle numbers).
//!
//! ```text
//! cargo run --release --example bench -- --backends cpu --batch-sizes 64,256,1024,4096 \
//!     --json /tmp/bench-cpu.json --plot /tmp/bench.png
//! cargo run --release --example bench -- --backends gpu --limit 6000 --epochs 2 --batch-sizes 64,1024
//! ```
//!
//! Every (backend, threads, batch size) configuration runs in its own child process (this
//! binary with the hidden `--child` flag), so that each row's peak memory (`VmHWM`, read by the
//! child just before it exits) is its own. A child loads the data, trains warm-up epochs, then
//! the timed epochs (the training loop only, as the peers time it: order, batches, forward,
//! backward, update, the read-back of the loss), then times `evaluate` over the test set.
//! A configuration that fails (no GPU adapter, say) becomes a row with its error.
//!
//! Only the table (Markdown) goes to stdout, after all runs; progress goes to stderr.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use soma::data::{DatasetKind, locate};
use soma::gpu::{GpuBackend, GpuContext, GpuCounters, GpuOptions};
use soma::train::{Event, Schedule, TrainConfig, train};
use soma::{Activation, Backend, CpuBackend, Init, Network, Normalize, Optimizer, Output, Params};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Cpu,
    Gpu,
}

impl BackendArg {
    fn name(self) -> &'static str {
        match self {
            BackendArg::Cpu => "cpu",
            BackendArg::Gpu => "gpu",
        }
    }
}

/// Benchmark soma's training and inference throughput on MNIST.
#[derive(Parser, Debug, Clone)]
#[command(about)]
struct Args {
    /// Backends to measure, comma separated (default: cpu, plus gpu when a hardware adapter
    /// exists; name gpu to measure a software adapter such as lavapipe).
    #[arg(long, value_enum, value_delimiter = ',')]
    backends: Vec<BackendArg>,
    /// Batch sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024,4096",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch_sizes: Vec<u64>,
    /// Timed epochs per configuration.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Untimed warm-up epochs before them (workspaces, pipelines, caches).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// CPU threads, comma separated (one row per value); ignored by the GPU.
    #[arg(long, value_delimiter = ',', default_value = "1",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Vec<u64>,
    /// Learning rate (plain SGD, constant).
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Seed of the initialisation and of the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory holding the four MNIST IDX files (else $MNIST_DIR, ./data/mnist, or a download).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Never download missing data.
    #[arg(long)]
    offline: bool,
    /// Use only the first N training images (quick runs; the test set stays whole).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Batches per call into the backend (per GPU submit and per read-back of the loss).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    tick: u64,
    /// Timed passes of `evaluate` over the test set (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    eval_repeats: u64,
    /// GPU adapter, by a case-insensitive substring of its name.
    #[arg(long)]
    adapter: Option<String>,
    /// Write the machine and every row as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw training samples/s against batch size into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Also show the rows of an earlier `--json` file (table, plot and JSON); repeatable.
    #[arg(long = "with")]
    with: Vec<PathBuf>,
    /// Run one configuration and print one JSON line (used by the parent process).
    #[arg(long, hide = true)]
    child: bool,
}

fn main() {
    let args = Args::parse();
    if args.child {
        // One JSON line on stdout, whatever happens.
        let row = child(&args).unwrap_or_else(|e| json!({ "error": e }));
        println!("{row}");
        return;
    }
    if let Err(e) = parent(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The child: one configuration.

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

fn child(args: &Args) -> Result<Value, String> {
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

    let net = Network::new(
        &[train_set.features(), 64, 64, 10],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
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
            timestamps = Some(adapter_has_timestamps(&ctx.info));
            Engine::Gpu(Box::new(
                GpuBackend::new(ctx, &net, params, Optimizer::Sgd).map_err(s)?,
            ))
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
        row["adapter_timestamp_query"] = json!(timestamps);
    }
    // Last: the high-water mark of the whole process (data, backend, workspaces).
    row["peak_rss_mib"] = json!(peak_rss_mib());
    Ok(row)
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
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

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// Whether the adapter soma opened can write GPU timestamps.
fn adapter_has_timestamps(info: &wgpu::AdapterInfo) -> bool {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .find(|a| {
            let i = a.get_info();
            i.name == info.name && i.backend == info.backend && i.device == info.device
        })
        .is_some_and(|a| a.features().contains(wgpu::Features::TIMESTAMP_QUERY))
}

// ---------------------------------------------------------------------------------------------
// The parent: runs every configuration in a child and reports.

#[derive(Clone, Copy, Debug)]
struct Config {
    backend: BackendArg,
    threads: Option<u64>,
    batch: u64,
}

impl Config {
    fn label(&self) -> String {
        match self.threads {
            Some(t) => format!("{} t={t} batch {}", self.backend.name(), self.batch),
            None => format!("{} batch {}", self.backend.name(), self.batch),
        }
    }
}

fn parent(args: &Args) -> Result<(), String> {
    let mut backends = args.backends.clone();
    let mut notes = Vec::new();
    if backends.is_empty() {
        backends.push(BackendArg::Cpu);
        match soma::gpu::hardware_adapter() {
            Some(_) => backends.push(BackendArg::Gpu),
            None => notes.push(
                "no hardware GPU adapter: gpu not measured (`--backends gpu` measures a \
                 software adapter too)"
                    .to_string(),
            ),
        }
    }
    backends.dedup();
    let mut configs = Vec::new();
    for &backend in &backends {
        for &batch in &args.batch_sizes {
            match backend {
                BackendArg::Cpu => configs.extend(args.threads.iter().map(|&t| Config {
                    backend,
                    threads: Some(t),
                    batch,
                })),
                BackendArg::Gpu => configs.push(Config {
                    backend,
                    threads: None,
                    batch,
                }),
            }
        }
    }
    let files = locate(DatasetKind::Mnist, args.data.as_deref(), !args.offline).map_err(s)?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;

    let bar = ProgressBar::new(configs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{pos}/{len}] {prefix}: {wide_msg} ({elapsed})")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut rows = Vec::new();
    for cfg in &configs {
        bar.set_prefix(cfg.label());
        bar.set_message("starting");
        rows.push(run_child(&exe, args, &files.dir, cfg, &bar));
        bar.inc(1);
    }
    bar.finish_and_clear();

    for path in &args.with {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let earlier: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for row in earlier["rows"].as_array().into_iter().flatten() {
            let mut row = row.clone();
            if row.get("from").is_none() {
                row["from"] = json!(path.display().to_string());
            }
            rows.push(row);
        }
    }

    let machine = machine_info(&rows);
    let settings = json!({
        "network": "784-64-64-10 sigmoid, softmax cross-entropy",
        "optimizer": "sgd",
        "lr": args.lr,
        "schedule": "constant",
        "augment": 0,
        "inputs": "x/255",
        "warmup_epochs": args.warmup,
        "epochs": args.epochs,
        "limit": args.limit,
        "tick": args.tick,
        "eval_repeats": args.eval_repeats,
        "data": files.dir.display().to_string(),
    });
    print_table(&machine, &rows, &notes);
    if let Some(path) = &args.json {
        let doc = json!({ "machine": machine, "settings": settings, "rows": rows });
        let text = serde_json::to_string_pretty(&doc).expect("JSON values serialise");
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::draw(path, &rows).map_err(|e| format!("plotting to {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `cfg` in a child process; its row, or a row holding the error.
fn run_child(exe: &Path, args: &Args, data: &Path, cfg: &Config, bar: &ProgressBar) -> Value {
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .args(["--backends", cfg.backend.name()])
        .args(["--batch-sizes", &cfg.batch.to_string()])
        .args(["--threads", &cfg.threads.unwrap_or(1).to_string()])
        .args(["--epochs", &args.epochs.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--lr", &args.lr.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--tick", &args.tick.to_string()])
        .args(["--eval-repeats", &args.eval_repeats.to_string()])
        .arg("--offline")
        .arg("--data")
        .arg(data);
    if let Some(n) = args.limit {
        cmd.args(["--limit", &n.to_string()]);
    }
    if let Some(a) = &args.adapter {
        cmd.args(["--adapter", a]);
    }
    let base = json!({
        "backend": cfg.backend.name(),
        "threads": cfg.threads,
        "batch": cfg.batch,
    });
    let with_error = |e: String| {
        let mut row = base.clone();
        row["error"] = json!(e);
        row
    };
    let mut proc = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => return with_error(format!("starting {}: {e}", exe.display())),
    };
    let stderr = proc.stderr.take().expect("piped");
    let progress = bar.clone();
    let reader = std::thread::spawn(move || {
        let mut other = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if let Some(p) = line.strip_prefix("@progress ") {
                let f: Vec<&str> = p.split(' ').collect();
                if let [epoch, epochs, done, total, sps] = f.as_slice() {
                    progress.set_message(format!(
                        "epoch {epoch}/{epochs} {done}/{total}, {} samples/s",
                        thousands(sps.parse().unwrap_or(f64::NAN))
                    ));
                }
            } else if let Some(p) = line.strip_prefix("@phase ") {
                progress.set_message(p.to_string());
            } else if !line.trim().is_empty() {
                other.push(line);
            }
        }
        other
    });
    let mut out = String::new();
    let read = proc.stdout.take().expect("piped").read_to_string(&mut out);
    let status = proc.wait();
    let other = reader.join().unwrap_or_default();
    let last = out.lines().rev().find(|l| l.trim_start().starts_with('{'));
    match (read, last.map(serde_json::from_str::<Value>)) {
        (Ok(_), Some(Ok(mut row))) => {
            if row.get("error").is_some() {
                for (k, v) in base.as_object().expect("an object") {
                    row[k] = v.clone();
                }
            }
            row
        }
        _ => {
            let tail: Vec<&str> = other
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(|s| s.as_str())
                .collect();
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            with_error(format!("child failed ({status}): {}", tail.join(" / ")))
        }
    }
}

fn machine_info(rows: &[Value]) -> Value {
    let adapters: Vec<&str> = rows
        .iter()
        .filter(|r| r["backend"] == "gpu")
        .filter_map(|r| r["device"].as_str())
        .collect();
    let mut unique: Vec<&str> = Vec::new();
    for a in adapters {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    let mem_total_mib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some((kib / 1024.0).round() as u64)
    });
    json!({
        "cpu_model": cpu_model(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "mem_total_mib": mem_total_mib,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "adapter": unique.first(),
        "adapters": unique,
    })
}

/// `1234567.8` → `1,234,568`.
fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn cell_f(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("–".into(), |x| format!("{x:.digits$}"))
}

fn print_table(machine: &Value, rows: &[Value], notes: &[String]) {
    let mut out = String::new();
    out.push_str(&format!(
        "Machine: {} ({} logical CPUs, {} MiB)",
        machine["cpu_model"].as_str().unwrap_or("unknown CPU"),
        machine["cores"],
        machine["mem_total_mib"],
    ));
    if let Some(a) = machine["adapter"].as_str() {
        out.push_str(&format!("; GPU adapter: {a}"));
    }
    out.push_str("\n\n");
    out.push_str(
        "| backend | threads | batch | train samples/s median [min-max] | s/epoch | \
         inference samples/s | test acc | peak RSS MiB | dispatches/epoch | submits/epoch | \
         dispatches/step | GPU time/kernel |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut timestamp_support = None;
    for r in rows {
        let backend = r["backend"].as_str().unwrap_or("?");
        let threads = r["threads"].as_u64().map_or("–".into(), |t| t.to_string());
        let batch = r["batch"].to_string();
        if let Some(e) = r["error"].as_str() {
            let e = e.replace('|', "\\|").replace('\n', " ");
            out.push_str(&format!(
                "| {backend} | {threads} | {batch} | error: {e} | | | | | | | | |\n"
            ));
            continue;
        }
        let sps = &r["samples_per_second"];
        let gpu = backend == "gpu";
        if gpu && timestamp_support.is_none() {
            timestamp_support = r["adapter_timestamp_query"].as_bool();
        }
        let gpu_cell = |key: &str, digits: usize| {
            if gpu {
                cell_f(&r[key], digits)
            } else {
                "–".into()
            }
        };
        out.push_str(&format!(
            "| {backend} | {threads} | {batch} | {} [{}-{}] | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            thousands(sps["median"].as_f64().unwrap_or(f64::NAN)),
            thousands(sps["min"].as_f64().unwrap_or(f64::NAN)),
            thousands(sps["max"].as_f64().unwrap_or(f64::NAN)),
            cell_f(&r["epoch_seconds_median"], 3),
            thousands(r["inference_samples_per_second"].as_f64().unwrap_or(f64::NAN)),
            cell_f(&r["test_accuracy"], 4),
            cell_f(&r["peak_rss_mib"], 0),
            gpu_cell("dispatches_per_epoch", 0),
            gpu_cell("submits_per_epoch", 0),
            gpu_cell("dispatches_per_step", 2),
            if gpu { kernel_total(r) } else { "–".into() },
        ));
    }
    out.push('\n');
    out.push_str(
        "samples/s: median over the timed epochs of train samples / epoch seconds (training loop \
         only), [min-max] over those epochs; inference: `evaluate` over the test set, median of \
         the repeats; peak RSS: VmHWM of the configuration's own process; GPU counters: \
         difference over the run / epochs run.\n",
    );
    if rows
        .iter()
        .any(|r| r["backend"] == "gpu" && r.get("error").is_none())
    {
        out.push_str(&format!(
            "GPU time/kernel: ms per step summed over the step's kernels, from timestamp queries \
             in one extra profiled epoch (the adapter {} them); per kernel below.\n",
            match timestamp_support {
                Some(true) => "supports",
                Some(false) => "does not support",
                None => "may or may not support",
            }
        ));
        kernel_table(&mut out, rows);
    }
    for n in notes {
        out.push_str(&format!("Note: {n}\n"));
    }
    print!("{out}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// The sum of a GPU row's per-kernel times, or `n/a`.
fn kernel_total(r: &Value) -> String {
    match r["gpu_kernel_ms"].as_array() {
        Some(times) => {
            let total: f64 = times.iter().filter_map(|t| t["ms_per_step"].as_f64()).sum();
            format!("{total:.3} ms/step")
        }
        None => "n/a".into(),
    }
}

/// One row per profiled GPU configuration, one column per labelled kernel (ms per step).
fn kernel_table(out: &mut String, rows: &[Value]) {
    let profiled: Vec<&Value> = rows
        .iter()
        .filter(|r| r["gpu_kernel_ms"].is_array())
        .collect();
    let Some(first) = profiled.first() else {
        return;
    };
    let labels: Vec<String> = first["gpu_kernel_ms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["kernel"].as_str().map(str::to_string))
        .collect();
    out.push_str(&format!("\n| batch | {} |\n", labels.join(" | ")));
    out.push_str(&format!("|---|{}\n", "---|".repeat(labels.len())));
    for r in profiled {
        let times = r["gpu_kernel_ms"].as_array().expect("filtered above");
        let cells: Vec<String> = labels
            .iter()
            .map(|l| {
                times
                    .iter()
                    .find(|t| t["kernel"].as_str() == Some(l))
                    .and_then(|t| t["ms_per_step"].as_f64())
                    .map_or("–".into(), |v| format!("{v:.3}"))
            })
            .collect();
        out.push_str(&format!("| {} | {} |\n", r["batch"], cells.join(" | ")));
    }
    out.push('\n');
}

// ---------------------------------------------------------------------------------------------
// The chart.

mod plot {
    //! Training samples/s against batch size, drawn with plotters on a bitmap. Plotters draws
    //! text through a TrueType font (system fonts via font-kit, or one registered with
    //! ab_glyph); to need neither fontconfig nor a font file, the labels here are drawn pixel by
    //! pixel from a built-in 5×7 bitmap font.

    use std::path::Path;

    use plotters::coord::Shift;
    use plotters::prelude::*;
    use serde_json::Value;

    type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
    type Fail = Box<dyn std::error::Error>;

    const W: u32 = 1200;
    const H: u32 = 700;
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
    ];

    struct Series {
        name: String,
        /// (log2 batch, median, min, max)
        points: Vec<(f64, f64, f64, f64)>,
    }

    fn series(rows: &[Value]) -> Vec<Series> {
        let mut out: Vec<Series> = Vec::new();
        for r in rows.iter().filter(|r| r.get("error").is_none()) {
            let (Some(batch), Some(med)) = (
                r["batch"].as_f64(),
                r["samples_per_second"]["median"].as_f64(),
            ) else {
                continue;
            };
            let sps = &r["samples_per_second"];
            let min = sps["min"].as_f64().unwrap_or(med);
            let max = sps["max"].as_f64().unwrap_or(med);
            let name = match (r["backend"].as_str(), r["threads"].as_u64()) {
                (Some("cpu"), Some(1)) => "cpu, 1 thread".to_string(),
                (Some("cpu"), Some(t)) => format!("cpu, {t} threads"),
                (Some(b), _) => {
                    let device = r["device"].as_str().unwrap_or("");
                    let short = device.split([',', '(']).next().unwrap_or("").trim();
                    if short.is_empty() {
                        b.to_string()
                    } else {
                        format!("{b}: {short}")
                    }
                }
                _ => continue,
            };
            let p = (batch.log2(), med, min, max);
            match out.iter_mut().find(|s| s.name == name) {
                Some(s) => s.points.push(p),
                None => out.push(Series {
                    name,
                    points: vec![p],
                }),
            }
        }
        for s in &mut out {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        out
    }

    /// A round step giving about `n` intervals up to `max`.
    fn nice_step(max: f64, n: f64) -> f64 {
        let raw = (max / n).max(f64::MIN_POSITIVE);
        let mag = 10f64.powf(raw.log10().floor());
        [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * mag)
    }

    fn si(v: f64) -> String {
        if v >= 1e6 {
            format!("{}M", trim(v / 1e6))
        } else if v >= 1e3 {
            format!("{}k", trim(v / 1e3))
        } else {
            trim(v)
        }
    }

    fn trim(v: f64) -> String {
        let t = format!("{v:.2}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    }

    pub fn draw(path: &Path, rows: &[Value]) -> Result<(), Fail> {
        let all = series(rows);
        if all.is_empty() {
            return Err("no successful row to plot".into());
        }
        let xs = all.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        let pad = if x_hi - x_lo < 1.0 { 1.0 } else { 0.35 };
        let medians = all.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let (y_min, y_max) = medians.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
        // A log axis when the series differ by more than 20x (a software GPU beside the CPU).
        let log = y_min > 0.0 && y_max / y_min > 20.0;
        let all: Vec<Series> = if log {
            all.into_iter()
                .map(|s| Series {
                    name: s.name,
                    points: s
                        .points
                        .iter()
                        .map(|p| (p.0, p.1.log10(), p.2.max(1.0).log10(), p.3.log10()))
                        .collect(),
                })
                .collect()
        } else {
            all
        };
        let y_top = all
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.3))
            .fold(0.0, f64::max)
            .max(1.0);
        let (y_lo, y_hi, y_ticks) = if log {
            let lo = all
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.2))
                .fold(f64::INFINITY, f64::min)
                .floor();
            let hi = y_top + 0.4;
            let ticks: Vec<f64> = (lo as i32..=hi.ceil() as i32)
                .flat_map(|e| [1.0, 2.0, 5.0].map(|m| (m * 10f64.powi(e)).log10()))
                .filter(|t| *t >= lo && *t <= hi)
                .collect();
            (lo, hi, ticks)
        } else {
            let step = nice_step(y_top, 6.0);
            let hi = (y_top / step).ceil() * step + step;
            let ticks = (0..)
                .map(|i| i as f64 * step)
                .take_while(|t| *t <= hi)
                .collect();
            (0.0, hi, ticks)
        };

        let root: Area = BitMapBackend::new(path, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right, top, bottom) = (100, 30, 60, 80);
        let mut chart = ChartBuilder::on(&root)
            .margin_left(left)
            .margin_right(right)
            .margin_top(top)
            .margin_bottom(bottom)
            .build_cartesian_2d((x_lo - pad)..(x_hi + pad), y_lo..y_hi)?;

        // Grid, ticks and their labels.
        let grid = RGBColor(225, 225, 225);
        let (first, last) = ((x_lo - pad).ceil() as i32, (x_hi + pad).floor() as i32);
        for e in first..=last {
            let x = e as f64;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, y_lo), (x, y_hi)],
                grid,
            )))?;
            let (px, py) = chart.backend_coord(&(x, y_lo));
            root.draw(&PathElement::new(vec![(px, py), (px, py + 6)], BLACK))?;
            let label = if e >= 0 {
                (1u64 << e).to_string()
            } else {
                format!("2^{e}")
            };
            text(&root, &label, (px, py + 12), 2, &BLACK, Anchor::Top, false)?;
        }
        for &y in &y_ticks {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x_lo - pad, y), (x_hi + pad, y)],
                grid,
            )))?;
            let (px, py) = chart.backend_coord(&(x_lo - pad, y));
            root.draw(&PathElement::new(vec![(px - 6, py), (px, py)], BLACK))?;
            let value = if log { 10f64.powf(y) } else { y };
            text(
                &root,
                &si(value),
                (px - 10, py),
                2,
                &BLACK,
                Anchor::Right,
                false,
            )?;
        }
        let (x0, y0) = chart.backend_coord(&(x_lo - pad, y_lo));
        let (x1, y1) = chart.backend_coord(&(x_hi + pad, y_hi));
        root.draw(&Rectangle::new([(x0, y1), (x1, y0)], BLACK.stroke_width(1)))?;

        // The series: median line and points, min-max whiskers.
        for (i, s) in all.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = color.stroke_width(2);
            chart.draw_series(LineSeries::new(s.points.iter().map(|p| (p.0, p.1)), style))?;
            chart.draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new((p.0, p.1), 4, color.filled())),
            )?;
            for p in &s.points {
                if p.3 > p.2 {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(p.0, p.2), (p.0, p.3)],
                        color.stroke_width(1),
                    )))?;
                }
            }
        }

        // Titles.
        text(
            &root,
            "soma: training throughput, 784-64-64-10 MLP on MNIST",
            ((W / 2) as i32, 18),
            3,
            &BLACK,
            Anchor::Top,
            false,
        )?;
        text(
            &root,
            "batch size (log2 scale); bars: min-max over the timed epochs",
            ((x0 + x1) / 2, y0 + 42),
            2,
            &BLACK,
            Anchor::Top,
            false,
        )?;
        text(
            &root,
            if log {
                "training samples/s (median, log scale)"
            } else {
                "training samples/s (median)"
            },
            (22, (y0 + y1) / 2),
            2,
            &BLACK,
            Anchor::Top,
            true,
        )?;

        // Legend, upper left inside the plot.
        let line_h = 22;
        let width = all.iter().map(|s| s.name.len()).max().unwrap_or(0) as i32 * 12 + 60;
        let (lx, ly) = (x0 + 14, y1 + 12);
        root.draw(&Rectangle::new(
            [(lx, ly), (lx + width, ly + line_h * all.len() as i32 + 10)],
            WHITE.filled(),
        ))?;
        root.draw(&Rectangle::new(
            [(lx, ly), (lx + width, ly + line_h * all.len() as i32 + 10)],
            BLACK.stroke_width(1),
        ))?;
        for (i, s) in all.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let cy = ly + 16 + line_h * i as i32;
            root.draw(&PathElement::new(
                vec![(lx + 10, cy), (lx + 40, cy)],
                color.stroke_width(2),
            ))?;
            root.draw(&Circle::new((lx + 25, cy), 4, color.filled()))?;
            text(
                &root,
                &s.name,
                (lx + 50, cy),
                2,
                &BLACK,
                Anchor::Left,
                false,
            )?;
        }
        root.present()?;
        Ok(())
    }

    /// Where `pos` is on the text's box (vertically centred for Left and Right).
    #[derive(Clone, Copy)]
    enum Anchor {
        Top,
        Left,
        Right,
    }

    /// Draws `s` with the 5×7 font magnified `scale` times; `vertical` turns it a quarter
    /// counter-clockwise (reading bottom to top), centred on `pos`.
    fn text(
        area: &Area,
        s: &str,
        pos: (i32, i32),
        scale: i32,
        color: &RGBColor,
        anchor: Anchor,
        vertical: bool,
    ) -> Result<(), Fail> {
        let n = s.chars().count() as i32;
        let (w, h) = (n * 6 * scale - scale, 7 * scale);
        let (dx, dy) = match anchor {
            Anchor::Top => (-w / 2, 0),
            Anchor::Left => (0, -h / 2),
            Anchor::Right => (-w, -h / 2),
        };
        for (i, c) in s.chars().enumerate() {
            let glyph = glyph(c);
            for (col, bits) in glyph.iter().enumerate() {
                for row in 0..7 {
                    if bits >> row & 1 == 0 {
                        continue;
                    }
                    for sy in 0..scale {
                        for sx in 0..scale {
                            let x = i as i32 * 6 * scale + col as i32 * scale + sx;
                            let y = row * scale + sy;
                            let (px, py) = if vertical {
                                // Rotated: x runs up the page, centred on pos.
                                (pos.0 + y - h / 2, pos.1 + w / 2 - x)
                            } else {
                                (pos.0 + dx + x, pos.1 + dy + y)
                            };
                            if px >= 0 && py >= 0 && (px as u32) < W && (py as u32) < H {
                                area.draw_pixel((px, py), color)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The columns of `c` (bit 0 at the top), `?` for characters outside printable ASCII.
    fn glyph(c: char) -> &'static [u8; 5] {
        let i = c as usize;
        if (32..127).contains(&i) {
            &FONT[i - 32]
        } else {
            &FONT[b'?' as usize - 32]
        }
    }

    /// The classic 5×7 LCD font, printable ASCII from the space to `~`, column-major.
    const FONT: [[u8; 5]; 95] = [
        [0x00, 0x00, 0x00, 0x00, 0x00], // ' '
        [0x00, 0x00, 0x5F, 0x00, 0x00], // !
        [0x00, 0x07, 0x00, 0x07, 0x00], // "
        [0x14, 0x7F, 0x14, 0x7F, 0x14], // #
        [0x24, 0x2A, 0x7F, 0x2A, 0x12], // $
        [0x23, 0x13, 0x08, 0x64, 0x62], // %
        [0x36, 0x49, 0x55, 0x22, 0x50], // &
        [0x00, 0x05, 0x03, 0x00, 0x00], // '
        [0x00, 0x1C, 0x22, 0x41, 0x00], // (
        [0x00, 0x41, 0x22, 0x1C, 0x00], // )
        [0x08, 0x2A, 0x1C, 0x2A, 0x08], // *
        [0x08, 0x08, 0x3E, 0x08, 0x08], // +
        [0x00, 0x50, 0x30, 0x00, 0x00], // ,
        [0x08, 0x08, 0x08, 0x08, 0x08], // -
        [0x00, 0x60, 0x60, 0x00, 0x00], // .
        [0x20, 0x10, 0x08, 0x04, 0x02], // /
        [0x3E, 0x51, 0x49, 0x45, 0x3E], // 0
        [0x00, 0x42, 0x7F, 0x40, 0x00], // 1
        [0x42, 0x61, 0x51, 0x49, 0x46], // 2
        [0x21, 0x41, 0x45, 0x4B, 0x31], // 3
        [0x18, 0x14, 0x12, 0x7F, 0x10], // 4
        [0x27, 0x45, 0x45, 0x45, 0x39], // 5
        [0x3C, 0x4A, 0x49, 0x49, 0x30], // 6
        [0x01, 0x71, 0x09, 0x05, 0x03], // 7
        [0x36, 0x49, 0x49, 0x49, 0x36], // 8
        [0x06, 0x49, 0x49, 0x29, 0x1E], // 9
        [0x00, 0x36, 0x36, 0x00, 0x00], // :
        [0x00, 0x56, 0x36, 0x00, 0x00], // ;
        [0x08, 0x14, 0x22, 0x41, 0x00], // <
        [0x14, 0x14, 0x14, 0x14, 0x14], // =
        [0x00, 0x41, 0x22, 0x14, 0x08], // >
        [0x02, 0x01, 0x51, 0x09, 0x06], // ?
        [0x32, 0x49, 0x79, 0x41, 0x3E], // @
        [0x7E, 0x11, 0x11, 0x11, 0x7E], // A
        [0x7F, 0x49, 0x49, 0x49, 0x36], // B
        [0x3E, 0x41, 0x41, 0x41, 0x22], // C
        [0x7F, 0x41, 0x41, 0x22, 0x1C], // D
        [0x7F, 0x49, 0x49, 0x49, 0x41], // E
        [0x7F, 0x09, 0x09, 0x09, 0x01], // F
        [0x3E, 0x41, 0x49, 0x49, 0x7A], // G
        [0x7F, 0x08, 0x08, 0x08, 0x7F], // H
        [0x00, 0x41, 0x7F, 0x41, 0x00], // I
        [0x20, 0x40, 0x41, 0x3F, 0x01], // J
        [0x7F, 0x08, 0x14, 0x22, 0x41], // K
        [0x7F, 0x40, 0x40, 0x40, 0x40], // L
        [0x7F, 0x02, 0x0C, 0x02, 0x7F], // M
        [0x7F, 0x04, 0x08, 0x10, 0x7F], // N
        [0x3E, 0x41, 0x41, 0x41, 0x3E], // O
        [0x7F, 0x09, 0x09, 0x09, 0x06], // P
        [0x3E, 0x41, 0x51, 0x21, 0x5E], // Q
        [0x7F, 0x09, 0x19, 0x29, 0x46], // R
        [0x46, 0x49, 0x49, 0x49, 0x31], // S
        [0x01, 0x01, 0x7F, 0x01, 0x01], // T
        [0x3F, 0x40, 0x40, 0x40, 0x3F], // U
        [0x1F, 0x20, 0x40, 0x20, 0x1F], // V
        [0x3F, 0x40, 0x38, 0x40, 0x3F], // W
        [0x63, 0x14, 0x08, 0x14, 0x63], // X
        [0x07, 0x08, 0x70, 0x08, 0x07], // Y
        [0x61, 0x51, 0x49, 0x45, 0x43], // Z
        [0x00, 0x7F, 0x41, 0x41, 0x00], // [
        [0x02, 0x04, 0x08, 0x10, 0x20], // backslash
        [0x00, 0x41, 0x41, 0x7F, 0x00], // ]
        [0x04, 0x02, 0x01, 0x02, 0x04], // ^
        [0x40, 0x40, 0x40, 0x40, 0x40], // _
        [0x00, 0x01, 0x02, 0x04, 0x00], // `
        [0x20, 0x54, 0x54, 0x54, 0x78], // a
        [0x7F, 0x48, 0x44, 0x44, 0x38], // b
        [0x38, 0x44, 0x44, 0x44, 0x20], // c
        [0x38, 0x44, 0x44, 0x48, 0x7F], // d
        [0x38, 0x54, 0x54, 0x54, 0x18], // e
        [0x08, 0x7E, 0x09, 0x01, 0x02], // f
        [0x0C, 0x52, 0x52, 0x52, 0x3E], // g
        [0x7F, 0x08, 0x04, 0x04, 0x78], // h
        [0x00, 0x44, 0x7D, 0x40, 0x00], // i
        [0x20, 0x40, 0x44, 0x3D, 0x00], // j
        [0x7F, 0x10, 0x28, 0x44, 0x00], // k
        [0x00, 0x41, 0x7F, 0x40, 0x00], // l
        [0x7C, 0x04, 0x18, 0x04, 0x78], // m
        [0x7C, 0x08, 0x04, 0x04, 0x78], // n
        [0x38, 0x44, 0x44, 0x44, 0x38], // o
        [0x7C, 0x14, 0x14, 0x14, 0x08], // p
        [0x08, 0x14, 0x14, 0x18, 0x7C], // q
        [0x7C, 0x08, 0x04, 0x04, 0x08], // r
        [0x48, 0x54, 0x54, 0x54, 0x20], // s
        [0x04, 0x3F, 0x44, 0x40, 0x20], // t
        [0x3C, 0x40, 0x40, 0x20, 0x7C], // u
        [0x1C, 0x20, 0x40, 0x20, 0x1C], // v
        [0x3C, 0x40, 0x30, 0x40, 0x3C], // w
        [0x44, 0x28, 0x10, 0x28, 0x44], // x
        [0x0C, 0x50, 0x50, 0x50, 0x3C], // y
        [0x44, 0x64, 0x54, 0x4C, 0x44], // z
        [0x00, 0x08, 0x36, 0x41, 0x00], // {
        [0x00, 0x00, 0x7F, 0x00, 0x00], // |
        [0x00, 0x41, 0x36, 0x08, 0x00], // }
        [0x08, 0x04, 0x08, 0x10, 0x08], // ~
    ];
}
