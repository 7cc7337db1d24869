//! Recording, submitting and reading back for the GPU backend: a bound program is recorded
//! once per step record into one command encoder per submit (one compute pass per step, or
//! one per dispatch while profiling); evaluation data kept on the device between calls; and the
//! evaluation stats and other read-backs (training stats go through [`super::stats`]).

use std::sync::Arc;

use ndarray::ArrayView2;
use web_time::Instant;

use super::backend::{EVAL_CHUNK, GpuBackend, STEPS_PER_SUBMIT};
use super::live::DeviceBuffer;
use super::profile::{KernelTime, Profiler};
use super::program::{Program, Purpose};
use super::resources::{DeviceData, upload, usage_out, usage_storage};
use crate::backend::{Stats, check_data, check_predict_inputs};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::ops::StepRecord;
use crate::ops::loss::DeviceStats;
use crate::optim::OptimState;

/// What evaluation-stats read-backs are called in errors.
pub(super) const EVAL_STATS: &str = "evaluation stats";

impl GpuBackend {
    /// Records `records.len()` runs of `program` (one per step record) into one encoder,
    /// with `after` called between runs (prediction copies its outputs there), and submits.
    pub(super) fn run_program(
        &mut self,
        program: &Program,
        records: &[StepRecord],
        mut after: impl FnMut(&mut wgpu::CommandEncoder, usize),
        what: &str,
    ) -> Result<()> {
        debug_assert!(records.len() <= self.steps_per_submit());
        let started = Instant::now();
        let ctx = Arc::clone(&self.ctx);
        let mut bytes = vec![0u8; self.step_stride as usize * records.len()];
        for (i, r) in records.iter().enumerate() {
            let at = i * self.step_stride as usize;
            bytes[at..at + std::mem::size_of::<StepRecord>()]
                .copy_from_slice(bytemuck::bytes_of(r));
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        ctx.queue.write_buffer(&self.steps, 0, &bytes);
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(what) });
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        let mut dispatches = 0u64;
        let profiler = self.profiler.as_ref();
        for (s, r) in records.iter().enumerate() {
            let offset = (s as u64 * self.step_stride) as u32;
            let desc = |writes| wgpu::ComputePassDescriptor {
                label: Some(what),
                timestamp_writes: writes,
            };
            match profiler {
                // One pass per step; while profiling, one per dispatch, between timestamps.
                None => {
                    let mut pass = encoder.begin_compute_pass(&desc(None));
                    for d in &program.dispatches {
                        d.record(&mut pass, r, offset, max);
                        dispatches += 1;
                    }
                }
                Some(p) => {
                    for d in &program.dispatches {
                        let mut pass =
                            encoder.begin_compute_pass(&desc(Some(p.writes(dispatches as u32))));
                        d.record(&mut pass, r, offset, max);
                        dispatches += 1;
                    }
                }
            }
            after(&mut encoder, s);
        }
        if let Some(p) = profiler {
            p.resolve(&mut encoder, dispatches as u32);
        }
        let commands = encoder.finish();
        self.counters.record_ns += started.elapsed().as_nanos() as u64;
        let started = Instant::now();
        ctx.queue.submit([commands]);
        self.counters.submit_ns += started.elapsed().as_nanos() as u64;
        // Resolves at once on native wgpu (validation runs as commands are recorded): not a
        // wait for the device. In a browser it is awaited before the next read-back.
        ctx.end_scope(scope, what)?;
        self.counters.dispatches += dispatches;
        self.counters.submits += 1;
        if let Some(p) = self.profiler.as_mut() {
            let labels: Vec<&str> = program
                .dispatches
                .iter()
                .map(|d| d.label.as_str())
                .collect();
            self.counters.waits += 1;
            p.collect(&ctx, &labels, dispatches as u32)?;
        }
        ctx.check(what)
    }

    /// Steps recorded per submit: all that the step buffer holds, or, while profiling, all
    /// whose timestamps fit in the query set.
    pub(super) fn steps_per_submit(&self) -> usize {
        match &self.profiler {
            // The most dispatches a step or chunk records: the training step's, or an
            // evaluation chunk's (gather, forward per layer, loss), more than the fused step's.
            Some(_) => STEPS_PER_SUBMIT.min(Profiler::steps_per_submit(
                self.dispatches_per_step().max(self.net.nodes().len() + 2),
            )),
            None => STEPS_PER_SUBMIT,
        }
    }

    /// Turns per-kernel GPU timing on (timestamp queries); `false` when the device cannot
    /// time kernels. Profiling reads timestamps back after every submit: numbers from a
    /// profiled run are per-kernel GPU times, not the throughput of an unprofiled one.
    pub fn enable_profiling(&mut self) -> Result<bool> {
        if self.profiler.is_none() {
            self.profiler = Profiler::new(&self.ctx)?;
        }
        Ok(self.profiler.is_some())
    }

    /// GPU time per labelled dispatch since profiling was enabled or last reset.
    pub fn kernel_times(&self) -> Vec<KernelTime> {
        self.profiler
            .as_ref()
            .map_or_else(Vec::new, |p| p.totals().to_vec())
    }

    /// Starts the per-kernel totals again.
    pub fn reset_kernel_times(&mut self) {
        if let Some(p) = self.profiler.as_mut() {
            p.reset();
        }
    }

    /// Runs `data` forward in chunks through `purpose`'s program; returns the program's
    /// chunk count and lets `after` record copies between chunks.
    pub(super) fn forward_chunks(
        &mut self,
        data: &DeviceData,
        purpose: Purpose,
        mut after: impl FnMut(&mut wgpu::CommandEncoder, usize, u32),
    ) -> Result<()> {
        self.ensure_workspace(EVAL_CHUNK.min(data.len).max(1))?;
        let chunk = self.work.as_ref().map_or(1, |w| w.rows);
        // `0..n` serves every shorter set too, so it is uploaded only when a longer one comes.
        if self.eval_index.as_ref().is_none_or(|(_, n)| *n < data.len) {
            let index: Vec<u32> = (0..data.len as u32).collect();
            let buf = upload(&self.ctx, "evaluation index", &index, usage_storage())?;
            self.counters.data_uploads += 1;
            self.eval_index = Some((buf, data.len));
        }
        let index_buf = &self.eval_index.as_ref().expect("uploaded above").0;
        let stats = if purpose == Purpose::Evaluate {
            &self.eval_stats
        } else {
            &self.dummy
        };
        let program = self.build_program(purpose, data, index_buf, stats, chunk)?;
        let records: Vec<StepRecord> = (0..data.len)
            .step_by(chunk)
            .map(|start| StepRecord {
                rows: (data.len - start).min(chunk) as u32,
                index_offset: start as u32,
                ..Default::default()
            })
            .collect();
        let per_submit = self.steps_per_submit();
        for (g, group) in records.chunks(per_submit).enumerate() {
            let first = g * per_submit;
            self.run_program(
                &program,
                group,
                |enc, s| after(enc, first + s, group[s].rows),
                "evaluation",
            )?;
        }
        Ok(())
    }

    /// `data` on the device: the evaluation set kept from the previous call when `data` is the
    /// same dataset ([`Dataset::id`]: equal ids mean equal inputs and targets), else uploaded
    /// (replacing the kept one). The caller puts it back into `eval_data` when done.
    pub(super) fn eval_data_for(&mut self, data: &Dataset) -> Result<DeviceData> {
        match self.eval_data.take() {
            Some((id, mut kept)) if id == data.id() => {
                // The public fields may have changed since; they are applied per program build.
                kept.maps = data.gather_maps();
                kept.image = data.image;
                Ok(kept)
            }
            old => {
                drop(old);
                self.counters.data_uploads += 1;
                DeviceData::upload(&self.ctx, data, "evaluation")
            }
        }
    }

    /// Submits the evaluation of `data` (the stats are left on the device for
    /// `read_eval_stats`); `false` when `data` is empty and nothing was submitted.
    pub(super) fn queue_evaluation(&mut self, data: &Dataset) -> Result<bool> {
        self.ctx.check("evaluate")?;
        check_data(&self.net, data, "evaluation set")?;
        if data.is_empty() {
            return Ok(false);
        }
        let device_data = self.eval_data_for(data)?;
        let ctx = Arc::clone(&self.ctx);
        {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("clear evaluation stats"),
                });
            encoder.clear_buffer(&self.eval_stats, 0, None);
            ctx.queue.submit([encoder.finish()]);
        }
        let run = self.forward_chunks(&device_data, Purpose::Evaluate, |_, _, _| {});
        // Kept for the next call (the next epoch's evaluation uploads nothing).
        self.eval_data = Some((data.id(), device_data));
        run?;
        Ok(true)
    }

    /// Submits the prediction of `inputs`; returns the buffer its outputs are copied to and
    /// the row count (`None` for no rows: nothing submitted).
    pub(super) fn queue_prediction(
        &mut self,
        inputs: ArrayView2<f32>,
    ) -> Result<Option<(DeviceBuffer, usize)>> {
        self.ctx.check("predict")?;
        check_predict_inputs(&self.net, &inputs)?;
        let rows = inputs.nrows();
        let outputs = self.net.outputs();
        if rows == 0 {
            return Ok(None);
        }
        let values: Vec<f32> = inputs.iter().copied().collect();
        let data = DeviceData::inputs_only(&self.ctx, &values, rows)?;
        let out_bytes = (rows * outputs * 4) as u64;
        let out = self
            .ctx
            .buffer("prediction outputs", out_bytes, usage_out())?;
        self.ensure_workspace(EVAL_CHUNK.min(rows))?;
        let chunk = self.work.as_ref().map_or(1, |w| w.rows);
        let last = self
            .work
            .as_ref()
            .map(|w| w.acts[self.net.nodes().len()].clone())
            .ok_or_else(|| Error::gpu("predict", "no workspace"))?;
        self.forward_chunks(&data, Purpose::Predict, |enc, c, n| {
            let bytes = (n as usize * outputs * 4) as u64;
            let at = (c * chunk * outputs * 4) as u64;
            enc.copy_buffer_to_buffer(&last, 0, &out, at, bytes);
        })?;
        Ok(Some((out, rows)))
    }

    /// The evaluation totals read back (a wait: the end of an epoch).
    pub(super) fn read_eval_stats(&mut self) -> Result<Stats> {
        self.copy_eval_stats()?;
        let bytes = self.ctx.map_staging(EVAL_STATS, &self.stats_staging, 16)?;
        self.counters.readbacks += 1;
        Ok(bytemuck::pod_read_unaligned::<DeviceStats>(&bytes).stats())
    }

    /// Submits the copy of the evaluation totals into their staging buffer.
    pub(super) fn copy_eval_stats(&mut self) -> Result<()> {
        let ctx = &self.ctx;
        ctx.check(EVAL_STATS)?;
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(EVAL_STATS),
            });
        encoder.copy_buffer_to_buffer(&self.eval_stats, 0, &self.stats_staging, 0, 16);
        ctx.queue.submit([encoder.finish()]);
        self.counters.waits += 1;
        Ok(())
    }

    pub(super) fn read_f32(
        &mut self,
        what: &str,
        buf: &wgpu::Buffer,
        len: u64,
    ) -> Result<Vec<f32>> {
        self.counters.waits += 1;
        let bytes = self.ctx.read_back(what, buf, 0, len * 4)?;
        self.counters.readbacks += 1;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The optimizer state from its slots read back flat, one after another.
    pub(super) fn optim_state_from(&self, flat: &[f32]) -> Result<OptimState> {
        let n = self.layout.total;
        let slots = flat
            .chunks(n.max(1) as usize)
            .take(self.optimizer.slots())
            .map(|c| self.layout.unpack(&self.net, c))
            .collect::<Result<Vec<_>>>()?;
        Ok(OptimState {
            step: self.step,
            slots,
        })
    }
}
