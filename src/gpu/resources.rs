//! Device memory: buffer usages, uploads, the packed parameter records, a dataset on the device
//! and the activation workspace. Used by the training backend and the single-op runner alike.

use bytemuck::Pod;

use super::context::GpuContext;
use super::live::DeviceBuffer;
use super::program::DataShape;
use crate::data::{Dataset, Inputs, MAX_CHANNEL_MAPS, Normalize, Targets};
use crate::error::Result;
use crate::net::Network;
use crate::ops::gather::{InputKind, pack_inputs};
use crate::ops::loss::TargetKind;
use crate::shape::Chw;

/// Read by kernels, written by the host.
pub(crate) fn usage_storage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST
}

/// Written by kernels and read back (or copied) too.
pub(crate) fn usage_out() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC
}

/// A buffer holding `data` (checked against the device's limits first).
pub(crate) fn upload<T: Pod>(
    ctx: &GpuContext,
    what: &str,
    data: &[T],
    usage: wgpu::BufferUsages,
) -> Result<DeviceBuffer> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let buf = ctx.buffer(what, bytes.len() as u64, usage)?;
    if bytes.len().is_multiple_of(4) {
        ctx.queue.write_buffer(&buf, 0, bytes);
    } else {
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().next_multiple_of(4), 0);
        ctx.queue.write_buffer(&buf, 0, &padded);
    }
    Ok(buf)
}

/// Parameter records packed at the device's storage offset alignment, uploaded as one buffer.
pub struct Records {
    align: u64,
    pub bytes: Vec<u8>,
}

impl Records {
    pub fn new(ctx: &GpuContext) -> Records {
        Records {
            align: ctx.limits.min_storage_buffer_offset_alignment.max(16) as u64,
            bytes: Vec::new(),
        }
    }

    /// Appends `record` and returns its byte offset and size.
    pub fn push<T: Pod>(&mut self, record: &T) -> (u64, u64) {
        self.push_bytes(bytemuck::bytes_of(record))
    }

    /// Appends a record's bytes and returns their offset and size.
    pub fn push_bytes(&mut self, record: &[u8]) -> (u64, u64) {
        let offset = (self.bytes.len() as u64).next_multiple_of(self.align);
        self.bytes.resize(offset as usize, 0);
        self.bytes.extend_from_slice(record);
        (offset, record.len() as u64)
    }

    /// Uploads the records into a new (read-only storage) buffer.
    pub fn upload(&self, ctx: &GpuContext, what: &str) -> Result<DeviceBuffer> {
        upload(ctx, what, &self.bytes, usage_storage())
    }
}

/// A binding of `size` bytes at `offset` of `buffer`.
pub fn range(buffer: &wgpu::Buffer, offset: u64, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset,
        size: wgpu::BufferSize::new(size),
    })
}

/// A dataset on the device.
pub(crate) struct DeviceData {
    pub inputs: DeviceBuffer,
    pub targets: DeviceBuffer,
    pub len: usize,
    pub input_kind: InputKind,
    pub target_kind: TargetKind,
    /// Each channel's input map ([`Dataset::gather_maps`]).
    pub maps: [Normalize; MAX_CHANNEL_MAPS],
    /// The shape of image samples, for shifted and per-channel gathers.
    pub image: Option<Chw>,
}

impl DeviceData {
    /// What a program's plan reads of this dataset.
    pub(crate) fn shape(&self) -> DataShape {
        DataShape {
            input_kind: self.input_kind,
            target_kind: self.target_kind,
            maps: self.maps,
            image: self.image,
        }
    }

    /// Uploads `data` (`what` names it in errors): inputs packed for the gather kernel, targets
    /// as labels or f32 bits.
    pub(crate) fn upload(ctx: &GpuContext, data: &Dataset, what: &str) -> Result<DeviceData> {
        // Checked before packing, so an oversized dataset fails before a host-side copy.
        let input_bytes = match data.inputs() {
            Inputs::U8(v) => v.len() as u64,
            Inputs::F32(v) => v.len() as u64 * 4,
        };
        ctx.check_buffer_size(&format!("{what} inputs"), input_bytes, true)?;
        let (input_kind, words) = pack_inputs(data.inputs());
        let inputs = upload(ctx, &format!("{what} inputs"), &words, usage_storage())?;
        let (target_kind, twords): (TargetKind, Vec<u32>) = match data.targets() {
            Targets::Labels { labels, .. } => (TargetKind::Labels, labels.clone()),
            Targets::Values { values, .. } => (
                TargetKind::Values,
                values.iter().map(|v| v.to_bits()).collect(),
            ),
        };
        let targets = upload(ctx, &format!("{what} targets"), &twords, usage_storage())?;
        Ok(DeviceData {
            inputs,
            targets,
            len: data.len(),
            input_kind,
            target_kind,
            maps: data.gather_maps(),
            image: data.image,
        })
    }

    /// Rows of f32 inputs with no targets (prediction).
    pub(crate) fn inputs_only(ctx: &GpuContext, values: &[f32], rows: usize) -> Result<DeviceData> {
        let bits: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        Ok(DeviceData {
            inputs: upload(ctx, "prediction inputs", &bits, usage_storage())?,
            targets: ctx.buffer("prediction targets", 4, usage_storage())?,
            len: rows,
            input_kind: InputKind::F32,
            target_kind: TargetKind::None,
            maps: [Normalize::IDENTITY; MAX_CHANNEL_MAPS],
            image: None,
        })
    }
}

/// Activations and deltas for batches of up to `rows` samples, layers counted over the
/// network's nodes.
pub(crate) struct Workspace {
    pub rows: usize,
    /// `acts[0]` is the gathered input, `acts[j + 1]` the output of layer `j`.
    pub acts: Vec<DeviceBuffer>,
    /// `deltas[j]`: gradient of the loss w.r.t. layer `j`'s output before its activation
    /// (the gradient at the input is never formed).
    pub deltas: Vec<DeviceBuffer>,
    /// What each layer keeps from its forward pass for its backward pass (a pool's u32
    /// arg-maxes, batch norm's statistics); `None` for a layer that keeps nothing.
    pub keep: Vec<Option<DeviceBuffer>>,
}

impl Workspace {
    /// Buffers for `rows` rows of every layer of `net`.
    pub(crate) fn new(ctx: &GpuContext, net: &Network, rows: usize) -> Result<Workspace> {
        let buffer = |what: String, n: usize| {
            let what = format!("{what} ({rows} rows x {n} values)");
            ctx.buffer(&what, (rows * n * 4).max(4) as u64, usage_out())
        };
        let nodes = net.nodes();
        let widths =
            std::iter::once(net.inputs()).chain(nodes.iter().map(|n| n.op().output().len()));
        let acts = widths
            .clone()
            .enumerate()
            .map(|(j, n)| buffer(format!("activations {j}"), n))
            .collect::<Result<Vec<_>>>()?;
        let deltas = widths
            .skip(1)
            .enumerate()
            .map(|(j, n)| buffer(format!("deltas {j}"), n))
            .collect::<Result<Vec<_>>>()?;
        // Per row (a pool's arg-maxes) and per batch (batch norm's statistics).
        let keep = nodes
            .iter()
            .enumerate()
            .map(|(j, node)| {
                let n = rows * node.op().keep_per_row() + node.op().batch_state();
                let what = format!("kept by layer {} ({n} values)", j + 1);
                match n {
                    0 => Ok(None),
                    n => ctx.buffer(&what, n as u64 * 4, usage_out()).map(Some),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Workspace {
            rows,
            acts,
            deltas,
            keep,
        })
    }
}
