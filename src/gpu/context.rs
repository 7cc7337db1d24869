//! The wgpu instance, adapter and device: chosen deliberately (hardware before software), with
//! the limits the engine needs requested explicitly, and with device loss and uncaptured errors
//! turned into [`Error::Gpu`] on the next call instead of a panic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wgpu::{AdapterInfo, Backends, DeviceType, Limits};

use super::kernels::Kernels;
use super::live::{DeviceBuffer, LiveBuffers, Tally};
use crate::error::{Error, Result};
use crate::ops::matmul::TileTarget;

/// How to choose the adapter.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Case-insensitive substring of the adapter name to pick (`--adapter NAME`); the best
    /// ranked adapter when `None`.
    pub adapter: Option<String>,
}

/// Most storage buffers any soma kernel binds in one stage (the loss kernel: five data
/// buffers, its dimensions and the step record, which are storage too; see `kernels::Slot`).
pub const STORAGE_BUFFERS_NEEDED: u32 = 7;
/// Invocations per workgroup of the largest kernel (the 64×64 matmul tile, 16×16 threads).
pub const INVOCATIONS_NEEDED: u32 = 256;
/// Workgroup memory of the largest kernel (two 64×16 f32 matmul tiles).
pub const WORKGROUP_STORAGE_NEEDED: u32 = 2 * 64 * 16 * 4;

/// How long any one wait for the device may take before it is an error, unless
/// `SOMA_GPU_TIMEOUT_S` (seconds) or [`GpuContext::set_timeout`] says otherwise. The longest
/// wait the engine makes covers a few progress ticks of queued steps or one evaluation; lavapipe,
/// the slowest adapter we know, runs a whole MNIST epoch in about 10 s, so 60 s is six epochs of
/// margin there and orders of magnitude on a real GPU, while a wedged device still surfaces
/// within a minute instead of hanging forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable that overrides [`DEFAULT_TIMEOUT`] (seconds, e.g. `600` or `0.5`).
pub const TIMEOUT_ENV: &str = "SOMA_GPU_TIMEOUT_S";

/// An open device and its queue, with what is known about the adapter behind them.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: AdapterInfo,
    /// The limits the device was created with (what every buffer is checked against).
    pub limits: Limits,
    /// Set by the device-lost and uncaptured-error callbacks; reported by [`GpuContext::check`].
    failure: Arc<Mutex<Option<String>>>,
    /// The limit on each wait, in nanoseconds (atomic: the context is shared behind an `Arc`).
    timeout_ns: AtomicU64,
    /// The pipelines built on this device so far, each the first time something asks for it:
    /// every backend and op runner on the context shares them (and a page can build a
    /// step's pipelines before its data arrives, `GpuBackend::prepare_async`).
    pub kernels: Kernels,
    /// The buffers alive on this device, counted by every [`DeviceBuffer`] it created.
    tally: Arc<Tally>,
    /// Error scopes closed but not yet awaited: in a browser they resolve only after control
    /// returns to the event loop, so each is kept here and [`GpuContext::settle_scopes`] (which
    /// every `_async` read-back runs first) awaits them, and no result read back can hide a
    /// pipeline or bind group that failed.
    #[cfg(target_arch = "wasm32")]
    pub(super) pending_scopes: std::cell::RefCell<Vec<super::web::PendingScope>>,
}

/// [`DEFAULT_TIMEOUT`], or the [`TIMEOUT_ENV`] override when it is set.
fn timeout_from_env() -> Result<Duration> {
    match std::env::var(TIMEOUT_ENV) {
        Err(_) => Ok(DEFAULT_TIMEOUT),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(Error::arg(TIMEOUT_ENV, "a positive number of seconds", v)),
        },
    }
}

/// Orders adapters: discrete > integrated > virtual > other > software (CPU).
fn rank(t: DeviceType) -> u8 {
    match t {
        DeviceType::DiscreteGpu => 4,
        DeviceType::IntegratedGpu => 3,
        DeviceType::VirtualGpu => 2,
        DeviceType::Other => 1,
        DeviceType::Cpu => 0,
    }
}

fn instance() -> wgpu::Instance {
    // Honours WGPU_BACKEND (vulkan, gl, ...) so a user can steer the choice without a rebuild.
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

async fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut all = instance.enumerate_adapters(Backends::all()).await;
    // Stable sort: among equals, wgpu's enumeration order is kept.
    all.sort_by_key(|a| std::cmp::Reverse(rank(a.get_info().device_type)));
    all
}

fn summary(info: &AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// The best hardware (non-CPU) adapter, if any: what `--backend auto` looks for, since on a
/// software adapter the CPU backend is faster. Always `None` in a browser, where adapters can
/// only be awaited ([`GpuContext::new_async`]).
#[cfg(target_arch = "wasm32")]
pub fn hardware_adapter() -> Option<AdapterInfo> {
    None
}

/// The best hardware (non-CPU) adapter, if any: what `--backend auto` looks for, since on a
/// software adapter the CPU backend is faster.
#[cfg(not(target_arch = "wasm32"))]
pub fn hardware_adapter() -> Option<AdapterInfo> {
    all_adapters()
        .into_iter()
        .find(|i| i.device_type != DeviceType::Cpu)
}

/// Every adapter wgpu finds (within `WGPU_BACKEND`), in the order [`GpuContext::new`] tries
/// them: hardware first. For diagnostics (the `adapter` example): when the adapter picked is
/// not the one expected, this shows what else was there. Native only.
#[cfg(not(target_arch = "wasm32"))]
pub fn all_adapters() -> Vec<AdapterInfo> {
    pollster::block_on(adapters(&instance()))
        .into_iter()
        .map(|a| a.get_info())
        .collect()
}

/// Limits the engine needs from `available`: fixed minimums for the kernels, and the adapter's
/// own maximum for buffer sizes (a bigger binding lets a bigger dataset stay resident).
fn needed_limits(available: &Limits) -> std::result::Result<Limits, String> {
    let mut l = Limits::downlevel_defaults();
    let checks: [(&str, u64, u64); 4] = [
        (
            "max_storage_buffers_per_shader_stage",
            STORAGE_BUFFERS_NEEDED as u64,
            available.max_storage_buffers_per_shader_stage as u64,
        ),
        (
            "max_compute_invocations_per_workgroup",
            INVOCATIONS_NEEDED as u64,
            available.max_compute_invocations_per_workgroup as u64,
        ),
        (
            "max_compute_workgroup_size_x",
            INVOCATIONS_NEEDED as u64,
            available.max_compute_workgroup_size_x as u64,
        ),
        (
            "max_compute_workgroup_storage_size",
            WORKGROUP_STORAGE_NEEDED as u64,
            available.max_compute_workgroup_storage_size as u64,
        ),
    ];
    for (name, need, have) in checks {
        if have < need {
            return Err(format!("{name}: needed {need}, available {have}"));
        }
    }
    l.max_storage_buffers_per_shader_stage = STORAGE_BUFFERS_NEEDED;
    l.max_compute_invocations_per_workgroup = INVOCATIONS_NEEDED;
    l.max_compute_workgroup_size_x = INVOCATIONS_NEEDED;
    l.max_compute_workgroup_size_y = l.max_compute_workgroup_size_y.min(INVOCATIONS_NEEDED);
    l.max_compute_workgroup_storage_size = WORKGROUP_STORAGE_NEEDED
        .max(l.max_compute_workgroup_storage_size)
        .min(available.max_compute_workgroup_storage_size);
    l.max_storage_buffer_binding_size = available.max_storage_buffer_binding_size;
    l.max_buffer_size = available.max_buffer_size;
    l.max_compute_workgroups_per_dimension = available.max_compute_workgroups_per_dimension;
    // Alignments are minimums the adapter dictates; asking for a looser one is refused.
    l.min_storage_buffer_offset_alignment = available.min_storage_buffer_offset_alignment;
    l.min_uniform_buffer_offset_alignment = available.min_uniform_buffer_offset_alignment;
    Ok(l)
}

/// What a blocking call says on wasm32, where nothing can wait: `what` failed, use `instead`.
#[cfg(target_arch = "wasm32")]
pub(super) fn no_blocking(what: &str, instead: &str) -> Error {
    Error::gpu(
        what,
        format!(
            "a browser cannot block to wait for the GPU; on wasm32 use the async \
             counterpart, {instead}"
        ),
    )
}

/// Natively `Ok`. On wasm32 an [`Error::Gpu`] saying that `call` would block, which a browser
/// cannot, and naming `instead`, its async counterpart: checked before any work is queued.
#[cfg_attr(not(target_arch = "wasm32"), allow(unused_variables))]
pub(super) fn blocking_allowed(call: &str, instead: &str) -> Result<()> {
    #[cfg(target_arch = "wasm32")]
    return Err(no_blocking(call, instead));
    #[cfg(not(target_arch = "wasm32"))]
    Ok(())
}

impl GpuContext {
    /// Opens the best adapter (or the one `options.adapter` names) and a device on it.
    /// On wasm32 an error: use [`GpuContext::new_async`] there.
    pub fn new(options: &GpuOptions) -> Result<GpuContext> {
        #[cfg(not(target_arch = "wasm32"))]
        return pollster::block_on(Self::open_async(options));
        #[cfg(target_arch = "wasm32")]
        {
            let _ = options;
            Err(no_blocking("opening the GPU", "GpuContext::new_async"))
        }
    }

    /// [`GpuContext::new`]'s work, with the adapter and device requests awaited (natively
    /// `new` blocks on it; in a browser `new_async` awaits it).
    pub(super) async fn open_async(options: &GpuOptions) -> Result<GpuContext> {
        let timeout = timeout_from_env()?;
        let instance = instance();
        let all = adapters(&instance).await;
        let seen: Vec<String> = all.iter().map(|a| summary(&a.get_info())).collect();
        let backends = wgpu::Backends::all().with_env();
        let tried = || {
            format!(
                "backends tried: {backends:?}; adapters seen: {}",
                if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.join(", ")
                }
            )
        };
        let remedy = "install a GPU driver (on headless Linux, `apt-get install \
                      mesa-vulkan-drivers libvulkan1` gives the lavapipe software adapter), \
                      or run with --backend cpu";

        let candidates: Vec<wgpu::Adapter> = match &options.adapter {
            Some(want) => {
                let want = want.to_lowercase();
                all.into_iter()
                    .filter(|a| a.get_info().name.to_lowercase().contains(&want))
                    .collect()
            }
            None => all,
        };
        if candidates.is_empty() {
            return Err(Error::NoAdapter(match &options.adapter {
                Some(want) => format!("no adapter name contains {want:?}; {}", tried()),
                None => format!("{}; {remedy}", tried()),
            }));
        }

        let mut refusals = Vec::new();
        for adapter in candidates {
            let info = adapter.get_info();
            let needed = match needed_limits(&adapter.limits()) {
                Ok(l) => l,
                Err(why) => {
                    refusals.push(format!("{}: limit {why}", summary(&info)));
                    continue;
                }
            };
            // Timestamp queries are optional: they only serve kernel profiling.
            let required_features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
            let request = adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("soma"),
                required_limits: needed,
                required_features,
                ..Default::default()
            });
            match request.await {
                Ok((device, queue)) => return Ok(Self::open(device, queue, info, timeout)),
                Err(e) => refusals.push(format!("{}: {e}", summary(&info))),
            }
        }
        Err(Error::NoAdapter(format!(
            "no adapter meets soma's needs: {}; {}; {remedy}",
            refusals.join("; "),
            tried()
        )))
    }

    fn open(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: AdapterInfo,
        timeout: Duration,
    ) -> GpuContext {
        let failure = Arc::new(Mutex::new(None::<String>));
        let on_error = Arc::clone(&failure);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            record(&on_error, format!("uncaptured error: {e}"));
        }));
        let on_lost = Arc::clone(&failure);
        device.set_device_lost_callback(move |reason, message| {
            let message = if message.is_empty() {
                "no further detail from the driver".to_string()
            } else {
                message
            };
            record(&on_lost, format!("device lost ({reason:?}): {message}"));
        });
        let limits = device.limits();
        GpuContext {
            device,
            queue,
            info,
            limits,
            failure,
            timeout_ns: AtomicU64::new(timeout.as_nanos().min(u64::MAX as u128) as u64),
            kernels: Kernels::new(),
            tally: Arc::default(),
            #[cfg(target_arch = "wasm32")]
            pending_scopes: Default::default(),
        }
    }

    /// The limit on each wait for the device.
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_ns.load(Ordering::Relaxed))
    }

    /// Changes the limit on each wait (for every backend sharing this context).
    pub fn set_timeout(&self, timeout: Duration) {
        let ns = timeout.as_nanos().min(u64::MAX as u128) as u64;
        self.timeout_ns.store(ns, Ordering::Relaxed);
    }

    /// Whether the adapter is a CPU implementation (lavapipe, SwiftShader): kernels are then
    /// chosen for it ([`GpuContext::tile_target`]), and `auto` prefers the CPU backend.
    pub fn is_software(&self) -> bool {
        self.info.device_type == DeviceType::Cpu
    }

    /// The adapter as `ops::matmul::choose_tile` sees it.
    pub fn tile_target(&self) -> TileTarget {
        if self.is_software() {
            TileTarget::Software {
                lanes: self.info.subgroup_min_size,
            }
        } else {
            TileTarget::Gpu
        }
    }

    /// "name, backend, device type, driver (driver_info)", for printing at start.
    pub fn describe(&self) -> String {
        let i = &self.info;
        format!(
            "{}, {:?}, {:?}, {} ({})",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        )
    }

    /// The first device loss or uncaptured error seen so far, as an [`Error::Gpu`] naming
    /// `context` (what was being attempted when it was noticed).
    pub fn check(&self, context: &str) -> Result<()> {
        // A non-blocking poll: wgpu delivers device loss from its maintenance, so without it a
        // destroyed device could go unnoticed until the next blocking wait.
        if let Err(e) = self.device.poll(wgpu::PollType::Poll) {
            record(&self.failure, format!("device poll failed: {e}"));
        }
        match self.failure.lock() {
            Ok(f) => match f.as_ref() {
                Some(msg) => Err(Error::gpu(context, msg)),
                None => Ok(()),
            },
            Err(_) => Err(Error::gpu(context, "GPU error state poisoned by a panic")),
        }
    }

    /// Checks that a buffer of `bytes` named `what` fits the device (and, when it is bound as a
    /// storage buffer, the binding limit), so that an oversized request is an error naming the
    /// buffer and the limit, not a validation panic.
    pub fn check_buffer_size(&self, what: &str, bytes: u64, storage: bool) -> Result<()> {
        let (limit, name) = if storage {
            (
                self.limits
                    .max_storage_buffer_binding_size
                    .min(self.limits.max_buffer_size),
                "max_storage_buffer_binding_size",
            )
        } else {
            (self.limits.max_buffer_size, "max_buffer_size")
        };
        if bytes > limit {
            return Err(Error::gpu(
                format!("buffer `{what}`"),
                format!(
                    "needs {bytes} bytes, over the device's {name} of {limit} bytes on {}",
                    self.info.name
                ),
            ));
        }
        Ok(())
    }

    /// Creates a buffer after checking its size (zero-sized requests get 4 bytes: wgpu allows
    /// empty buffers but not empty bindings), counted in [`GpuContext::buffers_alive`] until
    /// it is dropped.
    pub fn buffer(
        &self,
        what: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<DeviceBuffer> {
        let storage = usage.contains(wgpu::BufferUsages::STORAGE);
        let bytes = bytes.max(4).next_multiple_of(4);
        self.check_buffer_size(what, bytes, storage)?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: bytes,
            usage,
            mapped_at_creation: false,
        });
        Ok(DeviceBuffer::counted(buffer, &self.tally))
    }

    /// The buffers soma holds on this device now, and their bytes (see [`super::live`]): what
    /// a long run checks for growth.
    pub fn buffers_alive(&self) -> LiveBuffers {
        self.tally.now()
    }

    /// Waits, for at most [`GpuContext::timeout`], until `submission` (all work submitted so far
    /// when `None`) has finished and its callbacks have run. `what` names what is waited for; a
    /// timeout is an [`Error::Gpu`] naming it and the limit, never an endless hang.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait_for(&self, what: &str, submission: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let timeout = self.timeout();
        let poll = wgpu::PollType::Wait {
            submission_index: submission,
            timeout: Some(timeout),
        };
        match self.device.poll(poll) {
            Ok(_) => {}
            Err(wgpu::PollError::Timeout) => {
                return Err(Error::gpu(
                    what,
                    format!(
                        "the device did not finish within the {timeout:?} timeout (wedged or \
                         overloaded device?); set {TIMEOUT_ENV} to wait longer"
                    ),
                ));
            }
            Err(e) => return Err(Error::gpu(what, e)),
        }
        self.check(what)
    }

    /// On wasm32 an error naming `what`: a browser cannot block (see the `_async` read-backs).
    #[cfg(target_arch = "wasm32")]
    pub fn wait_for(&self, what: &str, _submission: Option<wgpu::SubmissionIndex>) -> Result<()> {
        Err(no_blocking(
            what,
            "the `_async` method of the call that waited",
        ))
    }

    /// Waits for all submitted work (see [`GpuContext::wait_for`]).
    pub fn wait(&self, what: &str) -> Result<()> {
        self.wait_for(what, None)
    }
}

fn record(slot: &Mutex<Option<String>>, message: String) {
    if let Ok(mut s) = slot.lock() {
        // The first failure is the cause; later ones are usually its consequences.
        s.get_or_insert(message);
    }
}
