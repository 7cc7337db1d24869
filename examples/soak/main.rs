//! A long run that checks soma's footprint stays flat: the `mnist` defaults (784-64-64-10,
//! momentum, cosine schedule, ±1-pixel shifts) for many short epochs, each evaluated on the
//! test set and saved as a checkpoint (as `mnist --save` does), with the process's resident
//! memory and, on the GPU, the device buffers alive sampled after every epoch. Halfway it
//! stops, drops the backend (and the GPU device), loads the checkpoint into a fresh one, as
//! `mnist --load` does, and carries on; the resumed run must hold the same footprint.
//!
//! ```text
//! cargo run --release --example soak -- --backends cpu,gpu --epochs 100 --limit 6000 \
//!     --json soak.json
//! ```
//!
//! It fails (exit status 1, an `error:` line naming the series, the epochs and the growth)
//! when, after the first `--settle` epochs, a series rises above its value at that epoch by
//! more than its tolerance, or when the resumed run's footprint differs from the first's by
//! more than that:
//!
//! - **GPU buffer bytes**: soma's own count (`GpuContext::buffers_alive`), exact, so its
//!   tolerance is 0: one buffer more after the warm-up is a leak. A dropped backend must
//!   also leave no buffer alive on its device.
//! - **Rust heap bytes**: the bytes the program's Rust code holds, counted by this program's
//!   allocator (`Counting`), exact up to the run's own report (`HEAP_TOLERANCE_KIB`).
//! - **RSS** (`VmRSS`): everything, the GPU driver's memory included; the allocator keeps
//!   freed memory for reuse, so the tolerance is what that measured (`RSS_TOLERANCE_KIB`).
//!
//! Each backend runs in a process of its own (this program with `--only`), so that each
//! RSS series is its own. One line per epoch goes to stderr; the last line on stdout is the
//! JSON of every run (also written to `--json`).

mod check;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use soma::checkpoint::{self, Checkpoint};
use soma::data::{DatasetKind, locate};
use soma::gpu::{DeviceBuffer, GpuBackend, GpuContext, GpuOptions, StepPath};
use soma::model::ModelInfo;
use soma::train::{Recipe, Run};
use soma::{Backend, CpuBackend, Network, Optimizer, Params};

use check::{Sample, bytes, check_flat, check_resume};

/// The RSS tolerance by default, in KiB. Measured on the 2-vCPU dev machine (glibc malloc,
/// lavapipe; BENCHMARKS.md, "Memory over long runs on the CPU and the GPU"): after the first
/// epochs RSS moves in a few steps of up to 1.4 MiB in all (lavapipe's, with the Rust heap
/// unchanged), and resumes into fresh backends leave steps that level off at +1.6 MiB on the
/// CPU (two threads, twenty resumes) while the heap stays within 9 KiB: memory freed and kept
/// for reuse, not held. 4 MiB is some 2.5 times that. Leaks of Rust memory are caught far below
/// it by the heap count, and device buffers exactly; this bound is for the rest (the driver's
/// own memory): over 100 epochs it fails a leak of ~40 KiB per epoch. (On a software adapter a
/// resume may also add the device buffers' bytes once: see `judge`.)
const RSS_TOLERANCE_KIB: u64 = 4096;

/// The heap's live bytes may rise this much above their baseline (KiB): the run's report
/// keeps one `EpochReport` per epoch by design (`Run::report`), some tens of bytes each and a
/// vector that doubles, a few KiB over 100 epochs. Everything else soma allocates in an epoch
/// is freed by its end, so a leak of 8 bytes per training step fails a 100-epoch run.
const HEAP_TOLERANCE_KIB: u64 = 64;

/// The system allocator, counting the bytes the program's Rust code holds (soma, wgpu, the
/// soak itself; not C libraries such as the Vulkan driver, which RSS covers). Exact, unlike
/// RSS, which also moves with what the allocator keeps for reuse: one relaxed atomic add per
/// allocation and per free.
struct Counting;

static HEAP_LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments; the counting only
// reads the layouts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HEAP_LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            HEAP_LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HEAP_LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP_LIVE.fetch_add(new_size, Ordering::Relaxed);
            HEAP_LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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

/// Train many short epochs and check that memory stays flat (RSS; on the GPU, device buffers).
#[derive(Parser, Debug, Clone)]
#[command(about)]
struct Args {
    /// Backends to soak, comma separated, each in a process of its own.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu,gpu")]
    backends: Vec<BackendArg>,
    /// Epochs in all (the resume happens halfway).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Training images per epoch (the first N of MNIST's training set).
    #[arg(long, default_value_t = 6000, value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Test images evaluated after every epoch (the first N of the test set).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    test_limit: u64,
    /// Epochs of warm-up before the baseline: the sample at this epoch is what later ones are
    /// held to.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    settle: u64,
    /// Epochs after which to stop, drop the backend, load the checkpoint into a fresh one and
    /// go on, comma separated (default: half of --epochs; 0: no resume).
    #[arg(long, value_delimiter = ',')]
    resume_at: Vec<u64>,
    /// Open a new GPU device for each resumed backend, as a new process would (default: the
    /// fresh backend shares the first one's device, as the page's "Load checkpoint" does).
    #[arg(long)]
    fresh_device: bool,
    /// How far RSS may rise above its baseline, in KiB.
    #[arg(long, default_value_t = RSS_TOLERANCE_KIB)]
    rss_tolerance_kib: u64,
    /// How far the Rust heap's live bytes may rise above their baseline, in KiB.
    #[arg(long, default_value_t = HEAP_TOLERANCE_KIB)]
    heap_tolerance_kib: u64,
    /// How far the GPU buffers alive may rise above their baseline, in bytes (soma's count is
    /// exact: 0).
    #[arg(long, default_value_t = 0)]
    buffer_tolerance: u64,
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Batches per call into the backend (per GPU submit and stats read-back).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    tick: u64,
    /// CPU threads (default: all cores, as `mnist`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// GPU adapter, by a case-insensitive substring of its name.
    #[arg(long)]
    adapter: Option<String>,
    /// GPU training step (default: the backend's choice).
    #[arg(long)]
    step_path: Option<StepPath>,
    /// Directory holding the four MNIST IDX files (else $MNIST_DIR, ./data/mnist, or a download).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Never download missing data.
    #[arg(long)]
    offline: bool,
    /// Write every run's samples and verdicts here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run this one backend in this process (what the parent asks each child to do).
    #[arg(long, hide = true, value_enum)]
    only: Option<BackendArg>,
    /// Test hook: keep this many KiB of host memory more after every epoch (a planted leak,
    /// which the soak must catch).
    #[arg(long, hide = true, default_value_t = 0)]
    leak_host_kib: u64,
    /// Test hook: keep one more device buffer of this many KiB after every epoch.
    #[arg(long, hide = true, default_value_t = 0)]
    leak_device_kib: u64,
}

fn main() {
    let args = Args::parse();
    let result = match args.only {
        Some(backend) => soak(&args, backend).map(|run| {
            println!("{run}");
        }),
        None => parent(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Runs each backend in a child process, gathers their JSON, writes `--json`; fails if any
/// child did.
fn parent(args: &Args) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let mut backends = args.backends.clone();
    backends.dedup();
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for backend in backends {
        // The child gets the same command line (it ignores --json and --backends).
        let out = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .args(["--only", backend.name()])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("starting the {} soak: {e}", backend.name()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().last().map(serde_json::from_str::<Value>) {
            Some(Ok(run)) => runs.push(run),
            _ => runs.push(json!({"kind": backend.name(), "ok": false})),
        }
        if !out.status.success() {
            failures.push(backend.name());
        }
    }
    let report = json!({ "machine": cpu_model(), "runs": runs });
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{report:#}\n"))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    println!("{report}");
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the soak failed on {} (see the error above)",
            failures.join(" and ")
        ))
    }
}

/// The backend under soak, kept concrete so that the GPU's buffers can be counted.
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

    fn context(&self) -> Option<&GpuContext> {
        match self {
            Engine::Cpu(_) => None,
            Engine::Gpu(b) => Some(b.context()),
        }
    }
}

/// What one backend's soak is run with (fixed over both halves of the run).
struct Setup<'a> {
    args: &'a Args,
    kind: BackendArg,
    net: Network,
    optimizer: Optimizer,
    threads: usize,
    /// The GPU device the backends train on (a new one per backend with `--fresh-device`).
    ctx: Option<Arc<GpuContext>>,
}

impl Setup<'_> {
    /// A fresh backend holding `params` and `state`.
    fn engine(&mut self, params: Params, state: Option<&soma::OptimState>) -> soma::Result<Engine> {
        let mut engine = match self.kind {
            BackendArg::Cpu => Engine::Cpu(Box::new(
                CpuBackend::new(&self.net, params, self.optimizer)?.with_threads(self.threads),
            )),
            BackendArg::Gpu => {
                let ctx = match &self.ctx {
                    Some(ctx) if !self.args.fresh_device => Arc::clone(ctx),
                    _ => {
                        // The old device (if any) goes first, as it would with a new process.
                        self.ctx = None;
                        let ctx = Arc::new(GpuContext::new(&GpuOptions {
                            adapter: self.args.adapter.clone(),
                        })?);
                        self.ctx = Some(Arc::clone(&ctx));
                        ctx
                    }
                };
                let mut gpu = GpuBackend::new(ctx, &self.net, params, self.optimizer)?;
                if let Some(path) = self.args.step_path {
                    gpu.use_path(path)?;
                }
                Engine::Gpu(Box::new(gpu))
            }
        };
        if let Some(state) = state {
            engine.backend().set_optim_state(state)?;
        }
        Ok(engine)
    }
}

/// One epoch's footprint.
#[derive(Clone, Debug)]
struct Point {
    epoch: u64,
    /// Which backend instance: 0 the first, then one more after each resume.
    phase: usize,
    rss: u64,
    rss_anon: u64,
    /// The Rust heap's live bytes ([`Counting`]).
    heap: u64,
    gpu_buffers: Option<u64>,
    gpu_bytes: Option<u64>,
    /// wgpu's allocator report (Vulkan, DX12, Metal), for comparison; `None` elsewhere.
    allocator_bytes: Option<u64>,
    test_accuracy: f64,
    seconds: f64,
}

/// The process's resident set and its anonymous part, from /proc/self/status (Linux).
fn resident() -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status (the soak needs Linux): {e}"))?;
    let kib = |key: &str| -> Result<u64, String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|k| k * 1024)
            .ok_or_else(|| format!("no {key} in /proc/self/status"))
    };
    Ok((kib("VmRSS:")?, kib("RssAnon:")?))
}

/// Runs the soak of one backend in this process; its JSON, or the failure.
fn soak(args: &Args, kind: BackendArg) -> Result<Value, String> {
    let s = |e: soma::Error| e.to_string();
    let started = Instant::now();
    let files = locate(DatasetKind::Mnist, args.data.as_deref(), !args.offline).map_err(s)?;
    // Only the first images are kept (as `mnist --limit` keeps them), the rest let go.
    let (mut train, mut test) = {
        let (train, test) = files.load().map_err(s)?;
        (
            train.head(args.limit as usize),
            test.head(args.test_limit as usize),
        )
    };
    let recipe = Recipe {
        epochs: args.epochs,
        batch_size: args.batch_size as usize,
        seed: args.seed,
        batches_per_tick: args.tick as usize,
        ..Recipe::default()
    };
    let normalize = recipe.normalize(&train);
    train.normalize = normalize;
    test.normalize = normalize;
    let net = recipe.network(train.features(), 10).map_err(s)?;
    let mut setup = Setup {
        args,
        kind,
        net: net.clone(),
        optimizer: recipe.optimizer,
        threads: args.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |t| t as usize,
        ),
        ctx: None,
    };
    let cfg = recipe.train_config();
    let mut resumes = if args.resume_at.is_empty() {
        vec![args.epochs / 2]
    } else {
        args.resume_at.clone()
    };
    resumes.retain(|&e| e > 0 && e < args.epochs);
    resumes.sort_unstable();
    resumes.dedup();
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let ckpt_path = dir.path().join("soak.safetensors");
    let model = ModelInfo::for_dataset(DatasetKind::Mnist, normalize);

    // Reserved up front, so that the soak's own records do not grow the heap it measures.
    let mut points = Vec::with_capacity(args.epochs as usize);
    let mut leaks = Leaks::default();
    let mut engine = setup
        .engine(Params::init(&net, recipe.init, recipe.seed), None)
        .map_err(s)?;
    let name = engine.backend().details();
    eprintln!(
        "soak {}: {name}; {} epochs of {} images (test {}), batch {}, settle {}, resume at {}",
        kind.name(),
        args.epochs,
        train.len(),
        test.len(),
        args.batch_size,
        args.settle,
        if resumes.is_empty() {
            "never".to_string()
        } else {
            format!("{resumes:?}")
        },
    );
    let mut epochs_done = 0;
    // Epochs done when each backend was dropped, and the GPU buffers still alive then.
    let mut released: Vec<(u64, soma::gpu::LiveBuffers)> = Vec::new();
    for phase in 0..=resumes.len() {
        let stop = resumes.get(phase).copied().unwrap_or(args.epochs);
        if phase > 0 {
            // As `mnist --load` does: everything from the file, nothing kept from the backend
            // that saved it. Once that backend is gone, none of its buffers may be left.
            drop(engine);
            if let Some(ctx) = &setup.ctx {
                let left = ctx.buffers_alive();
                eprintln!(
                    "soak {}: the dropped backend left {} GPU buffers ({})",
                    kind.name(),
                    left.buffers,
                    bytes(left.bytes)
                );
                released.push((epochs_done, left));
            }
            let ckpt = checkpoint::load_into(&ckpt_path, &net).map_err(s)?;
            epochs_done = ckpt.epoch;
            eprintln!(
                "soak {}: resuming from the checkpoint of epoch {epochs_done} in a fresh backend",
                kind.name()
            );
            engine = setup.engine(ckpt.params, Some(&ckpt.state)).map_err(s)?;
        }
        let mut run = Run::new(engine.backend(), &train, &cfg, epochs_done).map_err(s)?;
        let backend = engine.backend();
        backend.set_train_data(&train).map_err(s)?;
        backend.take_stats().map_err(s)?;
        while run.epochs_done() < stop {
            let tick = run.next_tick().expect("epochs are left");
            let backend = engine.backend();
            backend
                .train_batches(run.samples(&tick), cfg.batch_size, tick.lr)
                .map_err(s)?;
            let stats = if tick.last {
                backend.take_stats()
            } else {
                backend.poll_stats()
            };
            run.record(&tick, stats.map_err(s)?).map_err(s)?;
            if !tick.last {
                continue;
            }
            let tested = backend.evaluate(&test).map_err(s)?;
            let epoch = run.finish_epoch(Some(tested));
            // What `mnist --save` does after every epoch: the read-backs and the file.
            let ckpt = Checkpoint {
                network: net.clone(),
                params: backend.params().map_err(s)?,
                optimizer: setup.optimizer,
                state: backend.optim_state().map_err(s)?,
                epoch: epoch.epoch,
                model: Some(model.clone()),
            };
            checkpoint::save(&ckpt_path, &ckpt).map_err(s)?;
            drop(ckpt);
            leaks.plant(args, engine.context()).map_err(s)?;
            let (rss, rss_anon) = resident()?;
            let live = engine.context().map(|c| c.buffers_alive());
            let point = Point {
                epoch: epoch.epoch,
                phase,
                rss,
                rss_anon,
                heap: HEAP_LIVE.load(Ordering::Relaxed) as u64,
                gpu_buffers: live.map(|l| l.buffers),
                gpu_bytes: live.map(|l| l.bytes),
                allocator_bytes: engine
                    .context()
                    .and_then(|c| c.device.generate_allocator_report())
                    .map(|r| r.total_allocated_bytes),
                test_accuracy: tested.accuracy(),
                seconds: epoch.seconds,
            };
            eprintln!("{}", line(kind, args, &point, points.first()));
            points.push(point);
        }
        epochs_done = run.epochs_done();
    }
    drop(leaks);

    let software = engine.context().is_some_and(|c| c.is_software());
    let mut verdict = judge(args, &resumes, &points, software);
    for (epoch, left) in &released {
        let ok = left.buffers == 0 && left.bytes == 0;
        verdict.checks.push(json!({
            "series": "GPU buffers left by the dropped backend", "after_epoch": epoch,
            "buffers": left.buffers, "bytes": left.bytes, "ok": ok,
        }));
        if !ok {
            verdict.failures.push(format!(
                "the backend dropped after epoch {epoch} left {} GPU buffers ({}) alive",
                left.buffers,
                bytes(left.bytes)
            ));
        }
    }
    let run = json!({
        "kind": kind.name(),
        "backend": name,
        "epochs": args.epochs,
        "train_samples": train.len(),
        "test_samples": test.len(),
        "batch_size": args.batch_size,
        "settle": args.settle,
        "resume_at": resumes,
        "tolerance": {
            "rss_bytes": args.rss_tolerance_kib * 1024,
            "heap_bytes": args.heap_tolerance_kib * 1024,
            "gpu_buffer_bytes": (kind == BackendArg::Gpu).then_some(args.buffer_tolerance),
        },
        "seconds": started.elapsed().as_secs_f64(),
        "samples": points.iter().map(|p| json!({
            "epoch": p.epoch,
            "phase": p.phase,
            "rss_bytes": p.rss,
            "rss_anon_bytes": p.rss_anon,
            "heap_bytes": p.heap,
            "gpu_buffers": p.gpu_buffers,
            "gpu_buffer_bytes": p.gpu_bytes,
            "gpu_allocator_bytes": p.allocator_bytes,
            "test_accuracy": p.test_accuracy,
            "seconds": p.seconds,
        })).collect::<Vec<_>>(),
        "checks": verdict.checks,
        "failures": verdict.failures,
        "ok": verdict.failures.is_empty(),
    });
    match verdict.failures.first() {
        None => {
            eprintln!(
                "soak {}: flat ({})",
                kind.name(),
                verdict.summary.join("; ")
            );
            Ok(run)
        }
        Some(first) => {
            // The JSON still goes out (the parent writes it), then the failure.
            println!("{run}");
            let more = verdict.failures.len() - 1;
            Err(if more == 0 {
                format!("soak {}: {first}", kind.name())
            } else {
                format!(
                    "soak {}: {first} (and {more} more: see the JSON)",
                    kind.name()
                )
            })
        }
    }
}

/// The per-epoch line: RSS (and its change since the first epoch), the GPU's buffers, the
/// test accuracy and the epoch's training time.
fn line(kind: BackendArg, args: &Args, p: &Point, first: Option<&Point>) -> String {
    let delta = |now: u64, then: Option<u64>| match then {
        Some(t) if now >= t => format!(" (+{})", bytes(now - t)),
        Some(t) => format!(" (-{})", bytes(t - now)),
        None => String::new(),
    };
    let mut text = format!(
        "{} epoch {:>4}/{}  rss {}{}  heap {}{}",
        kind.name(),
        p.epoch,
        args.epochs,
        bytes(p.rss),
        delta(p.rss, first.map(|f| f.rss)),
        bytes(p.heap),
        delta(p.heap, first.map(|f| f.heap)),
    );
    if let (Some(n), Some(b)) = (p.gpu_buffers, p.gpu_bytes) {
        text += &format!(
            "  gpu buffers {n}, {}{}",
            bytes(b),
            delta(b, first.and_then(|f| f.gpu_bytes))
        );
        if let Some(a) = p.allocator_bytes {
            text += &format!(" (allocator {})", bytes(a));
        }
    }
    text + &format!(
        "  test {:.2}%  {:.2} s{}",
        100.0 * p.test_accuracy,
        p.seconds,
        if p.phase > 0 { "  (resumed)" } else { "" }
    )
}

/// The checks' results (for the JSON), their failures, and a one-line summary.
struct Verdict {
    checks: Vec<Value>,
    failures: Vec<String>,
    summary: Vec<String>,
}

/// Holds each series flat after `--settle` epochs, and each resumed backend's footprint to
/// the first one's. `host_device_memory`: the GPU is a software adapter, whose device memory is
/// this process's memory (see the RSS allowance below).
fn judge(args: &Args, resumes: &[u64], points: &[Point], host_device_memory: bool) -> Verdict {
    let mut v = Verdict {
        checks: Vec::new(),
        failures: Vec::new(),
        summary: Vec::new(),
    };
    // Each series: its name, samples, tolerance, and what a resume may add to that once.
    // The exact counts first: their failures name a leak most precisely.
    let mut series: Vec<(&str, Vec<Sample>, u64, u64)> = Vec::new();
    let gpu_bytes = points
        .iter()
        .map(|p| p.gpu_bytes)
        .collect::<Option<Vec<u64>>>();
    if let Some(gpu_bytes) = &gpu_bytes {
        let samples = points
            .iter()
            .map(|p| p.epoch)
            .zip(gpu_bytes.iter().copied());
        series.push((
            "GPU buffer bytes",
            samples.collect(),
            args.buffer_tolerance,
            0,
        ));
    }
    series.push((
        "Rust heap bytes",
        points.iter().map(|p| (p.epoch, p.heap)).collect(),
        args.heap_tolerance_kib * 1024,
        0,
    ));
    // On a software adapter (lavapipe) device memory is host memory, suballocated from blocks
    // that wgpu's allocator keeps after the buffers in them go. A fresh backend's buffers may
    // land on pages of a block the first backend never touched, which then count in RSS: up to
    // the buffers' size, once (measured: +3.5 MiB for 10.8 MiB of buffers, the same allocated
    // bytes in the allocator's report). Resumed RSS may exceed the first run's by that too.
    let placement = match (&gpu_bytes, host_device_memory) {
        (Some(b), true) => b.iter().copied().max().unwrap_or(0),
        _ => 0,
    };
    series.push((
        "RSS",
        points.iter().map(|p| (p.epoch, p.rss)).collect(),
        args.rss_tolerance_kib * 1024,
        placement,
    ));
    // The epochs each backend instance ran: (after, up to] its start and its stop.
    let starts: Vec<u64> = std::iter::once(0).chain(resumes.iter().copied()).collect();
    for (name, samples, tol, allowance) in &series {
        let part = |p: usize| -> Vec<Sample> {
            let (from, to) = (starts[p], starts.get(p + 1).copied().unwrap_or(u64::MAX));
            samples
                .iter()
                .copied()
                .filter(|&(e, _)| e > from && e <= to)
                .collect()
        };
        let flat = match check_flat(name, &part(0), args.settle, *tol) {
            None => {
                v.failures.push(format!(
                    "{name}: the run is too short to judge (no epoch at or after --settle {})",
                    args.settle
                ));
                continue;
            }
            Some(Err(g)) => {
                v.checks
                    .push(json!({"series": name, "part": 0, "ok": false, "growth": g.to_string()}));
                v.failures.push(g.to_string());
                continue;
            }
            Some(Ok(flat)) => flat,
        };
        v.checks.push(json!({
            "series": name, "part": 0, "ok": true,
            "baseline_epoch": flat.baseline_epoch, "baseline": flat.baseline,
            "max_rise": flat.max_rise, "max_rise_epoch": flat.max_rise_epoch, "tolerance": tol,
        }));
        v.summary.push(format!(
            "{name} rose at most {} above epoch {}",
            bytes(flat.max_rise),
            flat.baseline_epoch
        ));
        let before = (flat.baseline_epoch, flat.baseline);
        // Each resumed backend settles on its own (`--settle` epochs after its start); then its
        // footprint must be the first one's, and stay flat after that.
        for (p, &start) in starts.iter().enumerate().skip(1) {
            let after = part(p);
            let Some(&settled) = after.iter().find(|&&(e, _)| e >= start + args.settle) else {
                v.failures.push(format!(
                    "{name}: the run resumed after epoch {} is too short to judge (fewer than \
                     --settle {} epochs)",
                    start, args.settle
                ));
                continue;
            };
            let resumed = match check_resume(name, before, settled, tol + allowance) {
                Ok(diff) => {
                    v.summary.push(format!(
                        "{name} resumed after epoch {} within {} of before{}",
                        start,
                        bytes(diff),
                        if *allowance > 0 {
                            format!(
                                " (allowed {} + {} placed anew)",
                                bytes(*tol),
                                bytes(*allowance)
                            )
                        } else {
                            String::new()
                        }
                    ));
                    true
                }
                Err(m) => {
                    v.failures.push(m.to_string());
                    false
                }
            };
            match check_flat(name, &after, settled.0, *tol) {
                Some(Ok(flat)) => v.checks.push(json!({
                    "series": name, "part": p, "ok": resumed, "resumed_after": start,
                    "first_baseline": before, "baseline_epoch": flat.baseline_epoch,
                    "baseline": flat.baseline, "max_rise": flat.max_rise,
                    "max_rise_epoch": flat.max_rise_epoch, "tolerance": tol,
                    "resume_allowance": allowance,
                })),
                Some(Err(g)) => {
                    v.checks.push(
                        json!({"series": name, "part": p, "ok": false, "growth": g.to_string()}),
                    );
                    v.failures
                        .push(format!("after the resume at epoch {}, {g}", start));
                }
                None => {}
            }
        }
    }
    v
}

/// The planted leaks of the test hooks (`--leak-host-kib`, `--leak-device-kib`).
#[derive(Default)]
struct Leaks {
    host: Vec<Vec<u8>>,
    device: Vec<DeviceBuffer>,
}

impl Leaks {
    fn plant(&mut self, args: &Args, ctx: Option<&GpuContext>) -> soma::Result<()> {
        if args.leak_host_kib > 0 {
            // Written, so that the pages are resident (an untouched allocation is not).
            self.host
                .push(vec![1u8; (args.leak_host_kib * 1024) as usize]);
        }
        if let (Some(ctx), true) = (ctx, args.leak_device_kib > 0) {
            self.device.push(ctx.buffer(
                "planted leak",
                args.leak_device_kib * 1024,
                wgpu::BufferUsages::STORAGE,
            )?);
        }
        Ok(())
    }
}

/// The CPU's model name from /proc/cpuinfo (Linux only).
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}
