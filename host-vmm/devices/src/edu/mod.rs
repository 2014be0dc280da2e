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

pub mod events;
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

pub use events::{DmaOutcome, EduEvent, EduObserver};
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
///
/// The default is [`RejectedRead::Zero`]: the register-script runs recorded
/// on QEMU 7.2 show 0 for 1- and 2-byte reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RejectedRead {
    /// All ones, as edu's own handler answers sizes it does not support.
    AllOnes,
    /// Zero, as QEMU's `unassigned_mem_read` answers an access the memory
    /// core rejects (observed on QEMU 7.2).
    #[default]
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
            rejected_read: RejectedRead::Zero,
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
    /// The worker thread's set-up (see [`EduDevice::with_worker_setup`])
    /// failed; the worker did not start serving the device.
    #[error("setting up the edu worker thread: {0}")]
    WorkerSetup(#[source] WorkerSetupError),
}

/// Why a worker thread's set-up failed.
pub type WorkerSetupError = Box<dyn std::error::Error + Send + Sync>;

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
    /// Guest errors logged (out-of-range or clamped DMA, DMA or MSI with
    /// bus mastering off); the log itself is rate-limited.
    pub guest_errors: u64,
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
        Self::with_worker_setup(config, mem, irq, || Ok(()))
    }

    /// [`EduDevice::new`], with `setup` run first in the worker thread
    /// (the VMM installs the worker's seccomp filter there). This returns
    /// once `setup` has returned; if it failed, the worker ends without
    /// touching the device and so does this, with the error. Without a
    /// worker ([`EduClock::Manual`]) `setup` is not run.
    pub fn with_worker_setup(
        config: EduConfig,
        mem: M,
        irq: Arc<dyn InterruptSink>,
        setup: impl FnOnce() -> Result<(), WorkerSetupError> + Send + 'static,
    ) -> Result<Self, EduError> {
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
                let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
                let handle = std::thread::Builder::new()
                    .name("edu-worker".into())
                    .spawn(move || {
                        let ready = setup();
                        let ok = ready.is_ok();
                        // new() waits for this message.
                        let _ = ready_tx.send(ready);
                        if ok {
                            worker_loop(&s);
                        }
                    })
                    .map_err(EduError::Spawn)?;
                let ready = ready_rx
                    .recv()
                    .unwrap_or_else(|_| Err("the worker thread ended during set-up".into()));
                if let Err(e) = ready {
                    let _ = handle.join();
                    return Err(EduError::WorkerSetup(e));
                }
                Some(handle)
            }
        };
        Ok(EduDevice { shared, worker })
    }

    /// Sends the device's [`EduEvent`]s (factorial done, DMA started and
    /// done, interrupt status changes) to `observer` from now on.
    pub fn set_observer(&self, observer: Arc<dyn EduObserver>) {
        self.shared.lock().state.set_observer(observer);
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
        // Only the worker waits for work. A condition variable's notify is
        // a futex system call even with no waiter, which cost a manual-clock
        // 4 KiB DMA more than its copy (`docs/edu-device.md`, "DMA speed").
        if kick != Kick::None && self.shared.clock == EduClock::Thread {
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

#[cfg(test)]
mod tests {
    use super::regs::*;
    use super::*;
    use edu_pci::config::{BAR0, COMMAND, COMMAND_MASTER, COMMAND_MEMORY};
    use edu_pci::{PciAddress, PciBus, RecordingInterrupts};
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    fn device(cfg: EduConfig) -> (EduDevice<GuestMemoryMmap>, Arc<RecordingInterrupts>) {
        let irq = Arc::new(RecordingInterrupts::new());
        let edu = EduDevice::new(cfg, mem(), irq.clone()).unwrap();
        edu.config_write(COMMAND, &(COMMAND_MEMORY | COMMAND_MASTER).to_le_bytes());
        (edu, irq)
    }

    #[test]
    fn default_config_is_qemus() {
        let c = EduConfig::default();
        assert_eq!(c.dma_delay, Duration::from_millis(100));
        assert_eq!(c.dma_mask, 0x0fff_ffff);
        assert_eq!(c.clock, EduClock::Thread);
        assert_eq!(c.rejected_read, RejectedRead::Zero);
    }

    #[test]
    fn thread_clock_factorial_completes_on_its_own() {
        let (edu, irq) = device(EduConfig::default());
        edu.write_u32(REG_STATUS, STATUS_IRQFACT);
        edu.write_u32(REG_FACTORIAL, 10);
        assert!(edu.wait_idle(Duration::from_secs(5)));
        assert_eq!(edu.read_u32(REG_FACTORIAL), 3_628_800);
        assert_eq!(edu.read_u32(REG_STATUS), STATUS_IRQFACT);
        assert_eq!(edu.read_u32(REG_IRQ_STATUS), IRQ_FACTORIAL);
        assert!(irq.intx_level(IntxPin::A));
    }

    #[test]
    fn thread_clock_dma_honours_the_delay() {
        let (edu, irq) = device(EduConfig {
            dma_delay: Duration::from_millis(50),
            ..EduConfig::default()
        });
        edu.memory()
            .write_slice(&[1, 2, 3, 4], GuestAddress(0x100))
            .unwrap();
        let start = Instant::now();
        edu.write_u64(REG_DMA_SRC, 0x100);
        edu.write_u64(REG_DMA_DST, DMA_BUF_START);
        edu.write_u64(REG_DMA_CNT, 4);
        edu.write_u64(REG_DMA_CMD, DMA_CMD_RUN | DMA_CMD_IRQ);
        assert_eq!(edu.read_u64(REG_DMA_CMD) & DMA_CMD_RUN, DMA_CMD_RUN);
        assert!(edu.busy());
        assert!(edu.next_deadline().is_some());
        assert!(edu.wait_idle(Duration::from_secs(5)));
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(edu.read_u64(REG_DMA_CMD), DMA_CMD_IRQ);
        let mut b = [0u8; 4];
        edu.read_dma_buffer(0, &mut b);
        assert_eq!(b, [1, 2, 3, 4]);
        assert!(irq.intx_level(IntxPin::A));
        assert_eq!(edu.next_deadline(), None);
    }

    #[test]
    fn thread_clock_dma_delay_zero() {
        let (edu, _irq) = device(EduConfig {
            dma_delay: Duration::ZERO,
            ..EduConfig::default()
        });
        for _ in 0..100 {
            edu.write_u64(REG_DMA_SRC, DMA_BUF_START);
            edu.write_u64(REG_DMA_DST, 0x2000);
            edu.write_u64(REG_DMA_CNT, 4096);
            edu.write_u64(REG_DMA_CMD, DMA_CMD_RUN | DMA_CMD_TO_RAM);
            assert!(edu.wait_idle(Duration::from_secs(5)));
        }
        assert_eq!(edu.stats().dma_completed, 100);
    }

    #[test]
    fn wait_idle_times_out_without_hanging() {
        let (edu, _irq) = device(EduConfig {
            dma_delay: Duration::from_secs(3600),
            ..EduConfig::default()
        });
        edu.write_u64(REG_DMA_CMD, DMA_CMD_RUN);
        assert!(!edu.wait_idle(Duration::from_millis(20)));
        // Dropping a device with a pending transfer stops the worker.
    }

    #[test]
    fn worker_setup_runs_in_the_worker_before_it_serves() {
        let (tx, rx) = std::sync::mpsc::channel();
        let edu = EduDevice::with_worker_setup(
            EduConfig::default(),
            mem(),
            Arc::new(RecordingInterrupts::new()),
            move || {
                tx.send(std::thread::current().name().map(String::from))?;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(rx.try_recv().unwrap().as_deref(), Some("edu-worker"));
        edu.write_u32(REG_FACTORIAL, 4);
        assert!(edu.wait_idle(Duration::from_secs(5)));
        assert_eq!(edu.read_u32(REG_FACTORIAL), 24);
    }

    #[test]
    fn failing_worker_setup_fails_creation() {
        let e = EduDevice::with_worker_setup(
            EduConfig::default(),
            mem(),
            Arc::new(RecordingInterrupts::new()),
            || Err("no filter for you".into()),
        )
        .unwrap_err();
        assert!(matches!(e, EduError::WorkerSetup(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "setting up the edu worker thread: no filter for you"
        );
    }

    #[test]
    fn manual_clock_is_deterministic() {
        let (edu, irq) = device(EduConfig {
            dma_delay: Duration::from_millis(100),
            ..EduConfig::manual()
        });
        edu.write_u32(REG_FACTORIAL, 5);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            edu.read_u32(REG_STATUS) & STATUS_COMPUTING,
            1,
            "no thread runs it"
        );
        assert!(edu.busy());
        edu.advance(Duration::ZERO);
        assert_eq!(edu.read_u32(REG_FACTORIAL), 120);
        edu.write_u64(REG_DMA_CMD, DMA_CMD_RUN | DMA_CMD_IRQ);
        assert_eq!(edu.next_deadline(), Some(Duration::from_millis(100)));
        edu.advance(Duration::from_millis(60));
        assert_eq!(edu.next_deadline(), Some(Duration::from_millis(40)));
        assert!(edu.busy());
        assert!(edu.wait_idle(Duration::ZERO));
        assert_eq!(edu.read_u32(REG_IRQ_STATUS), IRQ_DMA);
        assert_eq!(edu.dma_regs().cmd, DMA_CMD_IRQ);
        let _ = irq;
    }

    #[test]
    fn on_a_pci_bus_through_cf8_and_mmio() {
        let irq = Arc::new(RecordingInterrupts::new());
        let edu = Arc::new(EduDevice::new(EduConfig::manual(), mem(), irq.clone()).unwrap());
        let mut bus = PciBus::new();
        let slot = bus.add_device(edu.clone()).unwrap();
        let cf8 = |reg: u32| {
            bus.config_io_write(
                0,
                &(0x8000_0000 | (u32::from(slot) << 11) | reg).to_le_bytes(),
            )
        };
        cf8(0);
        let mut b = [0u8; 4];
        bus.config_io_read(4, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0x11e8_1234);
        cf8(BAR0 as u32);
        bus.config_io_write(4, &[0xff; 4]);
        bus.config_io_read(4, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0xfff0_0000, "1 MiB BAR");
        bus.config_io_write(4, &0xfea0_0000u32.to_le_bytes());
        cf8(COMMAND as u32);
        bus.config_io_write(4, &(COMMAND_MEMORY | COMMAND_MASTER).to_le_bytes());
        assert!(bus.mmio_read(0xfea0_0000, &mut b));
        assert_eq!(u32::from_le_bytes(b), ID_VALUE);
        assert!(bus.mmio_write(0xfea0_0000 + REG_IRQ_RAISE, &1u32.to_le_bytes()));
        assert!(irq.intx_level(IntxPin::A));
        assert_eq!(edu.interrupt_pin(), Some(IntxPin::A));
        assert_eq!(edu.bar(0).map(|s| s.size), Some(1 << 20));
        assert_eq!(edu.bar(1), None);
        let a = PciAddress::new(0, slot, 0);
        bus.config_read(a, 0x3d, &mut b[..1]);
        assert_eq!(b[0], 1);
        edu.bar_read(1, 0, &mut b);
        assert_eq!(b, [0xff; 4]);
        edu.bar_write(1, 0, &b);
    }

    #[test]
    fn bus_device_trait_reaches_bar0() {
        let (edu, _) = device(EduConfig::manual());
        let d: &dyn BusDevice = &edu;
        d.write(REG_LIVENESS, &5u32.to_le_bytes());
        let mut b = [0u8; 4];
        d.read(REG_LIVENESS, &mut b);
        assert_eq!(u32::from_le_bytes(b), !5);
        assert!(format!("{edu:?}").contains("EduDevice"));
    }
}
