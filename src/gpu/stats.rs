//! Training loss and accuracy coming back without stalling the GPU: a ring of small staging
//! buffers. At each progress tick the running stats are copied into the next slot and cleared
//! (one submit, queued behind the steps), the slot's `map_async` is requested, and whatever
//! earlier slots have completed is collected after a non-blocking poll. The steps of the next
//! tick are recorded and submitted while the GPU still runs those of this one.

use std::collections::VecDeque;
use std::sync::mpsc;
use web_time::Instant;

use super::backend::GpuBackend;
use super::context::GpuContext;
use super::live::DeviceBuffer;
use crate::backend::Stats;
use crate::error::{Error, Result};
use crate::ops::loss::DeviceStats;

/// Slots in the ring: how many ticks' stats can be in flight at once. Three lets the GPU run one
/// tick while the next is queued and a third is recorded; when all are in flight the oldest is
/// waited for (back-pressure), which bounds both the stats' lag and the queued work to this many
/// ticks while the GPU stays busy with the two newer ones.
pub const STATS_RING: usize = 3;

/// One staging buffer of the ring.
struct Slot {
    buffer: DeviceBuffer,
}

/// A slot whose copy has been submitted and whose map was requested, not yet collected.
pub(super) struct InFlight {
    slot: usize,
    submission: wgpu::SubmissionIndex,
    mapped: mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    /// The map's outcome once its callback has run.
    outcome: Option<std::result::Result<(), String>>,
    /// Signalled by the map callback too, for awaiting it where nothing can block.
    #[cfg(target_arch = "wasm32")]
    pub(super) ready: futures_intrusive::channel::shared::OneshotReceiver<()>,
}

impl InFlight {
    /// Whether the map callback has run (its outcome is kept for [`StatsRing::collect`]),
    /// waiting up to `wait` for it (`None`: not at all). After a wait for the submission the callback is due, but when threads share the device another thread's poll
    /// may be the one running it, a moment later.
    pub(super) fn settle(&mut self, wait: Option<std::time::Duration>) -> bool {
        if self.outcome.is_none() {
            let got = match wait {
                None => self
                    .mapped
                    .try_recv()
                    .map_err(|e| e == mpsc::TryRecvError::Empty),
                Some(t) => self
                    .mapped
                    .recv_timeout(t)
                    .map_err(|e| e == mpsc::RecvTimeoutError::Timeout),
            };
            self.outcome = match got {
                Ok(r) => Some(r.map_err(|e| e.to_string())),
                Err(true) => None,
                Err(false) => Some(Err("map callback dropped (device lost?)".into())),
            };
        }
        self.outcome.is_some()
    }
}

/// The ring: buffers allocated once, used in turn.
pub(crate) struct StatsRing {
    slots: Vec<Slot>,
    /// Copies submitted and not yet collected, oldest first (the GPU finishes them in order).
    pub(super) in_flight: VecDeque<InFlight>,
    next: usize,
    /// Collected and not yet returned.
    pub(super) arrived: Stats,
}

impl StatsRing {
    pub(crate) fn new(ctx: &GpuContext) -> Result<StatsRing> {
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let slots = (0..STATS_RING)
            .map(|i| {
                let buffer = ctx.buffer(&format!("stats ring slot {i}"), 16, usage)?;
                Ok(Slot { buffer })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(StatsRing {
            slots,
            in_flight: VecDeque::with_capacity(STATS_RING),
            next: 0,
            arrived: Stats::default(),
        })
    }

    /// Reads a slot whose map has completed, unmaps it and adds its stats to `arrived`;
    /// `wait` bounds the wait for its callback (`None`: it has run, or it is an error).
    pub(super) fn collect(
        &mut self,
        mut done: InFlight,
        wait: Option<std::time::Duration>,
    ) -> Result<()> {
        let what = "reading back training stats";
        done.settle(wait);
        match done.outcome {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::gpu(what, e)),
            None => return Err(Error::gpu(what, "map callback not run after the wait")),
        }
        let buffer = &self.slots[done.slot].buffer;
        let stats = {
            let view = buffer
                .get_mapped_range(..)
                .map_err(|e| Error::gpu(what, e))?;
            bytemuck::pod_read_unaligned::<DeviceStats>(&view[..16]).stats()
        };
        buffer.unmap();
        self.arrived.add(stats);
        Ok(())
    }
}

/// How a tick gets what has come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Collect {
    /// Whatever has completed, without waiting.
    Arrived,
    /// Everything, waiting for the device (with the timeout).
    All,
}

impl GpuBackend {
    /// Copies the running training stats into the next ring slot and clears them (one submit),
    /// then returns what has come back, as `how` says.
    pub(crate) fn stats_tick(&mut self, how: Collect) -> Result<Stats> {
        self.ctx.check("training stats")?;
        // Every slot in flight: wait for the oldest, so a slot is never mapped twice. The GPU
        // keeps running the newer ticks meanwhile; this bounds the lag to STATS_RING ticks.
        if self.ring.in_flight.len() == STATS_RING {
            let oldest = self.ring.in_flight.pop_front().expect("the ring is full");
            self.counters.waits += 1;
            self.counters.ring_waits += 1;
            let what = "the oldest training-stats slot (all ring slots in flight)";
            if let Err(e) = self.ctx.wait_for(what, Some(oldest.submission.clone())) {
                // Still in flight: it must not be mapped again.
                self.ring.in_flight.push_front(oldest);
                return Err(e);
            }
            self.ring.collect(oldest, Some(self.ctx.timeout()))?;
        }
        self.submit_stats_copy()?;
        match how {
            Collect::Arrived => {
                // Non-blocking: runs the callbacks of whatever has finished.
                self.ctx.check("training stats")?;
            }
            Collect::All => {
                self.counters.waits += 1;
                let newest = self.ring.in_flight.back().map(|f| f.submission.clone());
                self.ctx
                    .wait_for("training stats (all in flight)", newest)?;
            }
        }
        let wait = (how == Collect::All).then(|| self.ctx.timeout());
        while let Some(front) = self.ring.in_flight.front_mut() {
            if !front.settle(wait) {
                if how == Collect::All {
                    return Err(Error::gpu(
                        "training stats",
                        "map callback not run after the wait (device lost?)",
                    ));
                }
                break;
            }
            let done = self.ring.in_flight.pop_front().expect("a front");
            self.ring.collect(done, wait)?;
        }
        Ok(std::mem::take(&mut self.ring.arrived))
    }

    /// Copies the running stats into the next ring slot (which must be free), clears them and
    /// requests the slot's map: one submit, no wait.
    pub(super) fn submit_stats_copy(&mut self) -> Result<()> {
        debug_assert!(self.ring.in_flight.len() < STATS_RING);
        let started = Instant::now();
        let slot = self.ring.next;
        self.ring.next = (slot + 1) % STATS_RING;
        let staging = &self.ring.slots[slot].buffer;
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("training stats"),
            });
        encoder.copy_buffer_to_buffer(&self.stats, 0, staging, 0, 16);
        encoder.clear_buffer(&self.stats, 0, None);
        let commands = encoder.finish();
        self.counters.record_ns += started.elapsed().as_nanos() as u64;
        let started = Instant::now();
        let submission = self.ctx.queue.submit([commands]);
        self.counters.submit_ns += started.elapsed().as_nanos() as u64;
        let (tx, mapped) = mpsc::channel();
        #[cfg(target_arch = "wasm32")]
        let (ready_tx, ready) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
            #[cfg(target_arch = "wasm32")]
            let _ = ready_tx.send(());
        });
        self.ring.in_flight.push_back(InFlight {
            slot,
            submission,
            mapped,
            outcome: None,
            #[cfg(target_arch = "wasm32")]
            ready,
        });
        self.counters.readbacks += 1;
        Ok(())
    }
}
