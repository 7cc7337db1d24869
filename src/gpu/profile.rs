//! Per-kernel GPU time from timestamp queries, for the benchmarks.
//!
//! Profiling changes how steps are recorded (each dispatch in its own compute pass, bracketed
//! by two timestamps) and reads the timestamps back after every submit, so it is a measurement
//! mode, off by default; the totals it reports are GPU time, not wall time.

use super::context::GpuContext;
use super::live::DeviceBuffer;
use crate::error::{Error, Result};

/// Most queries one query set may hold (wgpu's `QUERY_SET_MAX_QUERIES`).
const MAX_QUERIES: u32 = 4096;

/// GPU time spent in one labelled dispatch of the step (e.g. `forward 1`), summed over calls.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    pub label: String,
    pub calls: u64,
    pub seconds: f64,
}

/// The query set and the buffers its timestamps travel through.
pub(crate) struct Profiler {
    queries: wgpu::QuerySet,
    resolve: DeviceBuffer,
    staging: DeviceBuffer,
    /// Nanoseconds per timestamp tick.
    period: f64,
    totals: Vec<KernelTime>,
}

impl Profiler {
    /// A profiler, or `None` when the device has no timestamp queries.
    pub(crate) fn new(ctx: &GpuContext) -> Result<Option<Profiler>> {
        if !ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Ok(None);
        }
        let bytes = MAX_QUERIES as u64 * 8;
        Ok(Some(Profiler {
            queries: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: MAX_QUERIES,
            }),
            resolve: ctx.buffer(
                "timestamp resolve",
                bytes,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            )?,
            staging: ctx.buffer(
                "timestamp staging",
                bytes,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )?,
            period: ctx.queue.get_timestamp_period() as f64,
            totals: Vec::new(),
        }))
    }

    /// Steps of `dispatches` dispatches that fit in one query set.
    pub(crate) fn steps_per_submit(dispatches: usize) -> usize {
        (MAX_QUERIES as usize / (2 * dispatches.max(1))).max(1)
    }

    /// The timestamp writes that bracket dispatch number `i` of the submit.
    pub(crate) fn writes(&self, i: u32) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        }
    }

    /// Records the copy of the first `dispatches` pairs of timestamps to the staging buffer.
    pub(crate) fn resolve(&self, encoder: &mut wgpu::CommandEncoder, dispatches: u32) {
        let n = 2 * dispatches;
        encoder.resolve_query_set(&self.queries, 0..n, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.staging, 0, n as u64 * 8);
    }

    /// After the submit: reads the timestamps and adds dispatch `i`'s time to the total of
    /// `labels[i % labels.len()]`.
    pub(crate) fn collect(
        &mut self,
        ctx: &GpuContext,
        labels: &[&str],
        dispatches: u32,
    ) -> Result<()> {
        let bytes = ctx.map_staging("kernel timestamps", &self.staging, dispatches as u64 * 16)?;
        let ticks: &[u64] = bytemuck::try_cast_slice(&bytes)
            .map_err(|e| Error::gpu("kernel timestamps", format!("{e:?}")))?;
        for (i, pair) in ticks.chunks_exact(2).enumerate() {
            let label = labels[i % labels.len()];
            let seconds = pair[1].saturating_sub(pair[0]) as f64 * self.period * 1e-9;
            match self.totals.iter_mut().find(|t| t.label == label) {
                Some(t) => {
                    t.calls += 1;
                    t.seconds += seconds;
                }
                None => self.totals.push(KernelTime {
                    label: label.to_string(),
                    calls: 1,
                    seconds,
                }),
            }
        }
        Ok(())
    }

    /// Totals so far, in the order the labels first ran.
    pub(crate) fn totals(&self) -> &[KernelTime] {
        &self.totals
    }

    /// Starts the totals again.
    pub(crate) fn reset(&mut self) {
        self.totals.clear();
    }
}
