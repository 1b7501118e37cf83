//! The process's single wasmtime `Engine`: async, epoch interruption, the pooling
//! allocator and copy-on-write memory images. One ticker thread advances the epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; a guest is checked (timeout, cancel) this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest linear memory any pipeline may configure (matches `memory_mb` ≤ 4096).
const MAX_MEMORY_BYTES: usize = 4 << 30;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Use the pooling instance allocator.
    pub pooling: bool,
    /// Linear memories the pool holds (each reserves address space, not RAM).
    pub pool_memories: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self { pooling: true, pool_memories: 256 }
    }
}

/// Builds the engine. Every knob is here so the policy is visible in one place.
pub fn build_engine(settings: &EngineSettings) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines and cancellation: the store's epoch callback decides at each tick.
    config.epoch_interruption(true);
    // Instantiation maps the module's data segments copy-on-write instead of copying.
    config.memory_init_cow(true);
    // Deep recursion traps as a stack overflow instead of taking the host down.
    config.max_wasm_stack(1 << 20);
    if settings.pooling {
        let mut pool = PoolingAllocationConfig::new();
        let slots = settings.pool_memories;
        pool.total_memories(slots)
            .total_tables(slots * 2)
            .total_core_instances(slots * 2)
            .total_component_instances(slots)
            .total_stacks(slots)
            // Python and JS components hold many core instances and big tables.
            .max_core_instances_per_component(64)
            .max_memories_per_component(16)
            .max_tables_per_component(32)
            .table_elements(200_000)
            .max_core_instance_size(4 << 20)
            .max_memory_size(MAX_MEMORY_BYTES)
            // Reset small guests' memory with memset instead of madvise: a decommit per job
            // costs TLB shootdowns on every core. (Decommits are not batched: a batch would
            // keep a large guest's memory resident after its job ends.)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10)
            // Linux 6.7+: reset only the pages a guest touched.
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).map_err(anyhow::Error::from).context("creating the wasmtime engine")
}

/// Advances the engine's epoch every `EPOCH_TICK` until dropped.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts the ticker thread for `engine`.
    pub fn start(engine: Engine) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .context("starting the epoch ticker")?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
