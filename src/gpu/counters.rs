//! What the GPU backend has done, counted: dispatches, submits, steps, read-backs, waits and
//! the CPU time spent recording, so that tests can assert the step loop does what the design
//! says and `bench` can report it.

/// Work done so far, for checking that the step loop does what the design says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuCounters {
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Command buffers submitted (training, evaluation, prediction; not read-backs).
    pub submits: u64,
    /// Training steps recorded.
    pub steps: u64,
    /// Read-backs (stats, parameters, state, predictions).
    pub readbacks: u64,
    /// Times the host blocked waiting for the device (each with the context's timeout):
    /// `take_stats`, evaluation, parameters, optimizer state, predictions, profiling, and the
    /// back-pressure waits counted in `ring_waits` too.
    pub waits: u64,
    /// Waits for the oldest training-stats slot because every slot of the ring was in flight:
    /// the GPU keeps running the newer ticks meanwhile (no drain). Zero while the GPU keeps up.
    pub ring_waits: u64,
    /// Host time spent recording work (writing orders and step records, encoding), in
    /// nanoseconds; not the submit calls themselves (`submit_ns`) nor waits. See
    /// [`GpuCounters::record_seconds`].
    pub record_ns: u64,
    /// Host time inside `queue.submit` calls, in nanoseconds. Usually small, but a driver may
    /// block there: lavapipe does not return from a submit until the previous one has run.
    pub submit_ns: u64,
    /// Datasets and index buffers uploaded (training set, evaluation sets, evaluation index).
    pub data_uploads: u64,
}

impl GpuCounters {
    /// [`GpuCounters::record_ns`] in seconds.
    pub fn record_seconds(&self) -> f64 {
        self.record_ns as f64 * 1e-9
    }

    /// [`GpuCounters::submit_ns`] in seconds.
    pub fn submit_seconds(&self) -> f64 {
        self.submit_ns as f64 * 1e-9
    }
}
