//! The wgpu instance, adapter and device: chosen deliberately (hardware before software), with
//! the limits the engine needs requested explicitly, and with device loss and uncaptured errors
//! turned into [`Error::Gpu`] on the next call instead of a panic.

use std::sync::{Arc, Mutex};

use wgpu::{AdapterInfo, Backends, DeviceType, Limits};

use crate::error::{Error, Result};

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

/// An open device and its queue, with what is known about the adapter behind them.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: AdapterInfo,
    /// The limits the device was created with (what every buffer is checked against).
    pub limits: Limits,
    /// Set by the device-lost and uncaptured-error callbacks; reported by [`GpuContext::check`].
    failure: Arc<Mutex<Option<String>>>,
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

fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut all = pollster::block_on(instance.enumerate_adapters(Backends::all()));
    // Stable sort: among equals, wgpu's enumeration order is kept.
    all.sort_by_key(|a| std::cmp::Reverse(rank(a.get_info().device_type)));
    all
}

fn summary(info: &AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// The best hardware (non-CPU) adapter, if any: what `--backend auto` looks for, since on a
/// software adapter the CPU backend is faster.
pub fn hardware_adapter() -> Option<AdapterInfo> {
    adapters(&instance())
        .into_iter()
        .map(|a| a.get_info())
        .find(|i| i.device_type != DeviceType::Cpu)
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

impl GpuContext {
    /// Opens the best adapter (or the one `options.adapter` names) and a device on it.
    pub fn new(options: &GpuOptions) -> Result<GpuContext> {
        let instance = instance();
        let all = adapters(&instance);
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
            match pollster::block_on(request) {
                Ok((device, queue)) => return Ok(Self::open(device, queue, info)),
                Err(e) => refusals.push(format!("{}: {e}", summary(&info))),
            }
        }
        Err(Error::NoAdapter(format!(
            "no adapter meets soma's needs: {}; {}; {remedy}",
            refusals.join("; "),
            tried()
        )))
    }

    fn open(device: wgpu::Device, queue: wgpu::Queue, info: AdapterInfo) -> GpuContext {
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
    /// empty buffers but not empty bindings).
    pub fn buffer(
        &self,
        what: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        let storage = usage.contains(wgpu::BufferUsages::STORAGE);
        let bytes = bytes.max(4).next_multiple_of(4);
        self.check_buffer_size(what, bytes, storage)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: bytes,
            usage,
            mapped_at_creation: false,
        }))
    }

    /// Waits for all submitted work; the one blocking point, used only at read-back edges.
    pub fn wait(&self, context: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu(context, e))?;
        self.check(context)
    }

    /// Copies `bytes` bytes at `offset` of `src` back to the host: a MAP_READ staging copy,
    /// `map_async` answered through a oneshot channel, and one wait.
    pub fn read_back(
        &self,
        what: &str,
        src: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(what) });
        let staging = self.buffer(
            what,
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        encoder.copy_buffer_to_buffer(src, offset, &staging, 0, bytes.next_multiple_of(4));
        self.queue.submit([encoder.finish()]);
        self.map_staging(what, &staging, bytes)
    }

    /// Maps an already-filled staging buffer and returns its first `bytes` bytes.
    pub fn map_staging(&self, what: &str, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let context = format!("reading back `{what}`");
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait(&context)?;
        match pollster::block_on(rx.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::gpu(&context, e)),
            None => return Err(Error::gpu(&context, "map callback dropped (device lost?)")),
        }
        let data = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::gpu(&context, e))?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        Ok(data)
    }
}

fn record(slot: &Mutex<Option<String>>, message: String) {
    if let Ok(mut s) = slot.lock() {
        // The first failure is the cause; later ones are usually its consequences.
        s.get_or_insert(message);
    }
}
