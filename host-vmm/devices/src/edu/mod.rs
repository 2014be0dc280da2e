//! QEMU's educational PCI device (`edu`, 1234:11e8), register for register.
//!
//! The register map, QEMU's observed behaviour and every deliberate
//! difference are described in `docs/edu-device.md`; [`regs`] has the
//! constants.
//!
//! # Asynchronous work and clocks
//!
//! Two things in edu happen "later": a factorial (QEMU computes it on its own
//! thread, with the status "computing" bit set meanwhile) and the completion
//! of a DMA transfer (QEMU's timer fires `dma_delay` after the command
//! write). Where that later work runs is chosen by [`EduClock`]:
//!
//! - [`EduClock::Thread`] (the default, for the VMM): the device owns one
//!   worker thread that waits on a condition variable for work and sleeps
//!   until the DMA deadline. vCPU threads and the worker share one
//!   `Mutex`-protected state; interrupts are delivered from whichever thread
//!   finishes the work. Nothing has to be polled by the VMM.
//! - [`EduClock::Manual`] (for tests, fuzzing and the register-script
//!   runner): no thread; device time only moves when the owner calls
//!   [`EduDevice::advance`]. A started factorial stays "computing" until the
//!   next `advance` (even by zero); a DMA transfer completes on the first
//!   `advance` that reaches its deadline. This makes every observation
//!   deterministic.
//!
//! Either way, [`EduDevice::wait_idle`] returns once no factorial or DMA is
//! pending (in manual mode it advances time to the last deadline itself).

pub mod regs;
pub mod state;

use edu_pci::config::ConfigError;
use edu_pci::{BarRange, BarSpec, BusDevice, InterruptSink, IntxPin, MsiError, PciDevice};
use state::{EduState, Kick};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;
use vm_memory::GuestMemory;

pub use regs::{DEFAULT_DMA_MASK, DMA_BUF_SIZE, DMA_BUF_START};
pub use state::DmaRegs;

/// Where edu's asynchronous work runs; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EduClock {
    /// A worker thread owned by the device, on real time.
    #[default]
    Thread,
    /// No thread; time advances only through [`EduDevice::advance`].
    Manual,
}

/// What a read returns when QEMU's memory core would reject it before edu
/// sees it (a size other than 4 or 8 bytes, or a misaligned access).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RejectedRead {
    /// All ones, as edu's own handler answers sizes it does not support.
    #[default]
    AllOnes,
    /// Zero, as QEMU's `unassigned_mem_read` answers an access the memory
    /// core rejects.
    Zero,
}

/// Construction parameters of an edu device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EduConfig {
    /// Delay between the DMA command write and the transfer (QEMU: 100 ms).
    pub dma_delay: Duration,
    /// Mask applied to the guest-memory side of a transfer (QEMU's
    /// `dma_mask`, default 28 bits).
    pub dma_mask: u64,
    /// Where asynchronous work runs.
    pub clock: EduClock,
    /// Value of reads that QEMU's memory core rejects.
    pub rejected_read: RejectedRead,
}

impl Default for EduConfig {
    fn default() -> Self {
        EduConfig {
            dma_delay: Duration::from_millis(100),
            dma_mask: DEFAULT_DMA_MASK,
            clock: EduClock::Thread,
            rejected_read: RejectedRead::AllOnes,
        }
    }
}

impl EduConfig {
    /// Deterministic configuration for tests: manual clock, DMA delay 0.
    pub fn manual() -> Self {
        EduConfig {
            dma_delay: Duration::ZERO,
            clock: EduClock::Manual,
            ..Self::default()
        }
    }
}

/// Errors from creating an edu device.
#[derive(Debug, Error)]
pub enum EduError {
    /// Building the configuration space failed.
    #[error("edu configuration space: {0}")]
    Config(#[from] ConfigError),
    /// Adding the MSI capability failed.
    #[error("edu MSI capability: {0}")]
    Msi(#[from] MsiError),
    /// The worker thread could not be started.
    #[error("cannot start the edu worker thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Counters of what the device did, including guest errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EduStats {
    /// Factorials computed.
    pub factorials: u64,
    /// DMA transfers completed (in range or not).
    pub dma_completed: u64,
    /// Transfers outside the buffer or guest memory: nothing copied.
    pub dma_out_of_range: u64,
    /// Transfers whose guest address was cut by the DMA mask.
    pub dma_clamped: u64,
    /// Transfers run with bus mastering disabled.
    pub dma_blocked: u64,
    /// Guest-memory accesses that failed after the range check passed.
    pub dma_errors: u64,
    /// MSIs sent.
    pub msi_sent: u64,
    /// MSIs dropped because bus mastering was disabled.
    pub msi_blocked: u64,
    /// INTx assertions driven on the sink.
    pub intx_asserts: u64,
    /// Interrupt-sink calls that failed.
    pub interrupt_errors: u64,
    /// MMIO accesses of an unsupported size or alignment.
    pub rejected_accesses: u64,
    /// Writes ignored because a factorial or DMA was running.
    pub ignored_busy_writes: u64,
}

struct Inner {
    state: EduState,
    /// Device time for [`EduClock::Manual`].
    manual_now: Duration,
    stopping: bool,
}

struct Shared<M> {
    inner: Mutex<Inner>,
    /// Signalled when work is started or the device stops.
    work: Condvar,
    /// Signalled when work finishes.
    idle: Condvar,
    mem: M,
    irq: Arc<dyn InterruptSink>,
    clock: EduClock,
    epoch: Instant,
}

impl<M> Shared<M> {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self, inner: &Inner) -> Duration {
        match self.clock {
            EduClock::Thread => self.epoch.elapsed(),
            EduClock::Manual => inner.manual_now,
        }
    }
}

/// QEMU's edu as a PCI function with one 1 MiB memory BAR.
///
/// Generic over the guest memory type used for DMA (for example
/// `vm_memory::GuestMemoryMmap`).
pub struct EduDevice<M: GuestMemory + Send + Sync + 'static> {
    shared: Arc<Shared<M>>,
    worker: Option<JoinHandle<()>>,
}

impl<M: GuestMemory + Send + Sync + 'static> std::fmt::Debug for EduDevice<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EduDevice")
            .field("clock", &self.shared.clock)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<M: GuestMemory + Send + Sync + 'static> EduDevice<M> {
    /// Creates an edu device that does DMA into `mem` and delivers
    /// interrupts to `irq`. With [`EduClock::Thread`] this starts the
    /// worker thread.
    pub fn new(config: EduConfig, mem: M, irq: Arc<dyn InterruptSink>) -> Result<Self, EduError> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                state: EduState::new(&config)?,
                manual_now: Duration::ZERO,
                stopping: false,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
            mem,
            irq,
            clock: config.clock,
            epoch: Instant::now(),
        });
        let worker = match config.clock {
            EduClock::Manual => None,
            EduClock::Thread => {
                let s = Arc::clone(&shared);
                let handle = std::thread::Builder::new()
                    .name("edu-worker".into())
                    .spawn(move || worker_loop(&s))
                    .map_err(EduError::Spawn)?;
                Some(handle)
            }
        };
        Ok(EduDevice { shared, worker })
    }

    /// Guest read of `data.len()` bytes at `offset` in BAR0.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        self.shared.lock().state.mmio_read(offset, data);
    }

    /// Guest write of `data` at `offset` in BAR0.
    pub fn write(&self, offset: u64, data: &[u8]) {
        let mut inner = self.shared.lock();
        let now = self.shared.now(&inner);
        let kick = inner
            .state
            .mmio_write(offset, data, now, self.shared.irq.as_ref());
        drop(inner);
        if kick != Kick::None {
            self.shared.work.notify_all();
        }
    }

    /// Reads a 32-bit register (all ones where edu answers all ones).
    pub fn read_u32(&self, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Reads a 64-bit register.
    pub fn read_u64(&self, offset: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(offset, &mut b);
        u64::from_le_bytes(b)
    }

    /// Writes a 32-bit register.
    pub fn write_u32(&self, offset: u64, v: u32) {
        self.write(offset, &v.to_le_bytes());
    }

    /// Writes a 64-bit register.
    pub fn write_u64(&self, offset: u64, v: u64) {
        self.write(offset, &v.to_le_bytes());
    }

    /// Manual clock: moves device time forward by `by`, finishing a pending
    /// factorial and a DMA transfer whose deadline is reached. Thread clock:
    /// sleeps for `by`.
    pub fn advance(&self, by: Duration) {
        match self.shared.clock {
            EduClock::Thread => std::thread::sleep(by),
            EduClock::Manual => {
                let mut inner = self.shared.lock();
                inner.manual_now = inner.manual_now.saturating_add(by);
                let now = inner.manual_now;
                inner
                    .state
                    .process(now, &self.shared.mem, self.shared.irq.as_ref());
            }
        }
    }

    /// Time until the pending DMA transfer completes, if one runs.
    pub fn next_deadline(&self) -> Option<Duration> {
        let inner = self.shared.lock();
        let now = self.shared.now(&inner);
        inner.state.dma_deadline().map(|d| d.saturating_sub(now))
    }

    /// Whether a factorial or DMA transfer is pending.
    pub fn busy(&self) -> bool {
        !self.shared.lock().state.idle()
    }

    /// Waits until no factorial or DMA transfer is pending, at most
    /// `timeout` (thread clock). With the manual clock, advances device time
    /// to the pending deadline and returns at once. Returns whether the
    /// device is idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        match self.shared.clock {
            EduClock::Manual => {
                let mut inner = self.shared.lock();
                let now = inner.manual_now;
                let until = inner.state.dma_deadline().map_or(now, |d| d.max(now));
                inner.manual_now = until;
                inner
                    .state
                    .process(until, &self.shared.mem, self.shared.irq.as_ref());
                inner.state.idle()
            }
            EduClock::Thread => {
                let inner = self.shared.lock();
                let (inner, _) = self
                    .shared
                    .idle
                    .wait_timeout_while(inner, timeout, |i| !i.state.idle())
                    .unwrap_or_else(PoisonError::into_inner);
                inner.state.idle()
            }
        }
    }

    /// A copy of the counters.
    pub fn stats(&self) -> EduStats {
        self.shared.lock().state.stats
    }

    /// The DMA registers.
    pub fn dma_regs(&self) -> DmaRegs {
        self.shared.lock().state.dma_regs()
    }

    /// Copies the DMA buffer from `offset` into `out`; returns the number of
    /// bytes copied (the buffer is 4 KiB).
    pub fn read_dma_buffer(&self, offset: usize, out: &mut [u8]) -> usize {
        self.shared.lock().state.read_buffer(offset, out)
    }

    /// Reads `data.len()` bytes of configuration space at `offset`.
    pub fn config_read(&self, offset: usize, data: &mut [u8]) {
        self.shared.lock().state.config.read(offset, data);
    }

    /// Writes configuration space at `offset` through the writable masks.
    pub fn config_write(&self, offset: usize, data: &[u8]) {
        self.shared
            .lock()
            .state
            .config_write(offset, data, self.shared.irq.as_ref());
    }

    /// The guest memory the device does DMA into.
    pub fn memory(&self) -> &M {
        &self.shared.mem
    }
}

fn worker_loop<M: GuestMemory + Send + Sync>(shared: &Shared<M>) {
    let mut inner = shared.lock();
    loop {
        if inner.stopping {
            return;
        }
        let now = shared.now(&inner);
        inner.state.process(now, &shared.mem, shared.irq.as_ref());
        if inner.state.idle() {
            shared.idle.notify_all();
        }
        // `process` always finishes a pending factorial, so only the DMA
        // deadline can remain.
        inner = match inner.state.dma_deadline() {
            Some(deadline) => {
                let wait = deadline.saturating_sub(shared.now(&inner));
                shared
                    .work
                    .wait_timeout(inner, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => shared
                .work
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

impl<M: GuestMemory + Send + Sync + 'static> Drop for EduDevice<M> {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.work.notify_all();
        if let Some(h) = self.worker.take() {
            if h.join().is_err() {
                log::error!("edu worker thread panicked");
            }
        }
    }
}

impl<M: GuestMemory + Send + Sync + 'static> BusDevice for EduDevice<M> {
    fn read(&self, offset: u64, data: &mut [u8]) {
        EduDevice::read(self, offset, data);
    }

    fn write(&self, offset: u64, data: &[u8]) {
        EduDevice::write(self, offset, data);
    }
}

impl<M: GuestMemory + Send + Sync + 'static> PciDevice for EduDevice<M> {
    fn config_read(&self, offset: usize, data: &mut [u8]) {
        EduDevice::config_read(self, offset, data);
    }

    fn config_write(&self, offset: usize, data: &[u8]) {
        EduDevice::config_write(self, offset, data);
    }

    fn bar(&self, index: usize) -> Option<BarSpec> {
        self.shared.lock().state.config.bar(index)
    }

    fn bar_range(&self, index: usize) -> Option<BarRange> {
        self.shared.lock().state.config.bar_range(index)
    }

    fn bar_read(&self, index: usize, offset: u64, data: &mut [u8]) {
        if index == 0 {
            self.read(offset, data);
        } else {
            data.fill(0xff);
        }
    }

    fn bar_write(&self, index: usize, offset: u64, data: &[u8]) {
        if index == 0 {
            self.write(offset, data);
        }
    }

    fn interrupt_pin(&self) -> Option<IntxPin> {
        Some(IntxPin::A)
    }
}
