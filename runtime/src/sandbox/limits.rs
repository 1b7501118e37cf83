//! Per-job limits: a memory cap through a `ResourceLimiter` that remembers when it
//! refused, and the epoch callback that enforces the deadline and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use wasmtime::{ResourceLimiter, UpdateDeadline};

/// Why the host stopped a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Interrupt {
    /// The job ran past its timeout.
    #[error("job exceeded its time limit")]
    Timeout,
    /// The job was cancelled.
    #[error("job was cancelled")]
    Cancelled,
}

/// Memory and table caps of one store.
#[derive(Debug)]
pub struct JobLimiter {
    memory_bytes: usize,
    table_elements: usize,
    /// Set when a grow was refused, so the trap can be reported as a memory limit.
    pub refused: Option<String>,
}

impl JobLimiter {
    /// A limiter capping linear memory at `memory_bytes`.
    pub fn new(memory_bytes: usize) -> Self {
        Self { memory_bytes, table_elements: 1_000_000, refused: None }
    }
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            let message = format!(
                "memory limit exceeded: wanted {} MiB, limit is {} MiB",
                desired >> 20,
                self.memory_bytes >> 20
            );
            self.refused = Some(message.clone());
            // An error (not `Ok(false)`) traps at the grow, so the guest cannot limp on.
            return Err(wasmtime::Error::msg(message));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }
}

/// The epoch callback state: checked at every tick while a guest runs.
#[derive(Debug, Clone)]
pub struct Deadline {
    /// When the job must be done.
    pub at: Instant,
    /// Set by a cancel request.
    pub cancelled: Arc<AtomicBool>,
}

impl Deadline {
    /// What to do at an epoch tick: trap with an `Interrupt`, or yield to tokio and continue.
    pub fn check(&self) -> wasmtime::Result<UpdateDeadline> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(wasmtime::Error::new(Interrupt::Cancelled));
        }
        if Instant::now() >= self.at {
            return Err(wasmtime::Error::new(Interrupt::Timeout));
        }
        // Yielding lets other jobs and the HTTP server run on the same threads.
        Ok(UpdateDeadline::Yield(1))
    }
}
