// SPDX-License-Identifier: GPL-2.0

//! One edu device: its shared state, interrupt handler and operations.
//!
//! An [`EduDev`] is created by probe and shared (reference counted) by the
//! interrupt handler, the device table that `open` looks minors up in, and
//! every open file. It outlives unbind: after [`EduDev::shutdown`] every
//! operation fails with `ENODEV`, and the last reference frees it.
//!
//! The hardware is reached only through [`EduDev::with_hw`]: one short,
//! non-sleeping access to the bound device at a time, which fails with
//! `ENODEV` once the device is unbound (the interrupt handler uses it too).
//!
//! Locking: `state` (a mutex) is the per-device lock; every operation holds
//! it while it uses the device, so operations on one device run one at a
//! time and operations on different devices in parallel. User memory is
//! never touched with it held: transfers go through a bounce buffer, so a
//! page fault that does not resolve blocks only its own caller. `events`
//! (an IRQ-safe spinlock) holds the interrupt status bits the handler has
//! seen and nobody has consumed yet; waiters sleep on `irq_wait` with
//! `state` held.
//!
//! See `docs/driver.md` for the design and `docs/ioctl-abi.md` for the ABI.

use crate::{abi, regs};
use kernel::{
    device::Bound,
    devres::DevresLt,
    dma::Coherent,
    io::{io_project, poll::read_poll_timeout, Io},
    irq::{self, IrqReturn},
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        new_condvar, new_mutex, new_spinlock_irq, Arc, CondVar, CondVarTimeoutResult, Mutex,
        MutexGuard, SpinLockIrq,
    },
    time::{msecs_to_jiffies, Delta, Jiffies},
    types::CovariantForLt,
    uaccess::{UserSliceReader, UserSliceWriter},
};

/// BAR0 of a bound device.
type Bar0<'bound> = pci::Bar<'bound, { regs::BAR0_SIZE }>;

/// What operations reach of a bound device: the device and its BAR0.
///
/// Both borrow the binding (`'bound`), so an `Hw` exists only inside
/// [`EduDev::with_hw`], while the device is bound.
pub(crate) struct Hw<'bound> {
    pdev: &'bound pci::Device<Bound>,
    bar: Bar0<'bound>,
}

/// [`Hw`] as a device-managed resource: revoked when the device is unbound.
pub(crate) type DevresHw = DevresLt<CovariantForLt!(Hw<'_>)>;

impl<'bound> Hw<'bound> {
    /// Makes the device and its mapped BAR0 a device-managed resource.
    pub(crate) fn into_devres(
        pdev: &'bound pci::Device<Bound>,
        bar: Bar0<'bound>,
    ) -> Result<DevresHw> {
        // SAFETY: `pdev` and `bar` borrow the device for `'bound`, the
        // driver's whole binding: the reference and the mapping stay valid
        // until unbind, when devres revokes and drops the `Hw` (the same
        // argument as `pci::Bar::into_devres`).
        unsafe { DevresLt::new(pdev.as_ref(), Hw { pdev, bar }) }
    }

    fn dma_running(&self) -> bool {
        self.bar.read(regs::DMA_CMD).busy()
    }

    fn computing(&self) -> bool {
        self.bar.read(regs::STATUS).computing()
    }
}

/// What the interrupt handler logs, for the lab-compatible commands only.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum LabTrace {
    /// Nothing (every other operation: no logging in the hot path).
    Off = 0,
    /// The lab's handler line only.
    Irq = 1,
    /// "receive a FACTORIAL interrupter!" before the handler line.
    Factorial = 2,
    /// "receive a DMA write interrupter!" before the handler line.
    DmaWrite = 3,
    /// "receive a DMA read interrupter!" before the handler line.
    DmaRead = 4,
}

/// The 4-byte pattern the lab's DMA commands write and read back.
const LAB_PATTERN: [u8; 4] = [0xed, 0x0d, 0xca, 0xfe];

/// Lab `FACTORIAL_CMD` operand.
const LAB_FACTORIAL_N: u32 = 10;

/// Lab `SEND_INTERRUPT_CMD` status value.
const LAB_RAISE_VALUE: u32 = 0x1234_5678;

/// Interrupt status bits reserved for the device's own events.
const DEVICE_IRQ_BITS: u32 = regs::IRQ_FACTORIAL | regs::IRQ_DMA;

/// What a device reads as when it is gone (a removed or disabled PCI
/// device answers every read with all ones).
const GONE: u32 = u32::MAX;

/// Static facts about a device, fixed at probe.
pub(crate) struct Identity {
    /// Char device minor (index in the device table).
    pub(crate) minor: u32,
    /// Char device major (logged by the lab's handler line as `dev`).
    pub(crate) major: u32,
    /// Linux IRQ number in use.
    pub(crate) irq: u32,
    /// [`abi::EDU_IRQ_MODE_MSI`] or [`abi::EDU_IRQ_MODE_INTX`].
    pub(crate) irq_mode: u32,
    /// Physical start of BAR0.
    pub(crate) bar0_start: u64,
    /// Length of BAR0.
    pub(crate) bar0_len: u64,
}

/// Work the device was found doing at probe: an earlier driver gave up
/// waiting for it (`rmmod` after a timeout), and the device ignores new
/// commands of that kind until it is done.
pub(crate) struct Busy {
    /// `DMA_CMD` reads "pending".
    pub(crate) dma: bool,
    /// `STATUS` reads "computing".
    pub(crate) factorial: bool,
}

/// Device state protected by the per-device lock.
struct State {
    /// The coherent DMA buffer (4 KiB), `None` once the device is gone.
    buf: Option<Coherent<[u8]>>,
    /// A DMA was started and not seen complete: the buffer belongs to the
    /// device until it is, and the DMA registers ignore writes.
    dma_busy: bool,
    /// A factorial was started and not seen complete.
    fact_busy: bool,
    /// The last byte of the device buffer, kept here instead (see [`DMA_LIMIT`]).
    tail: u8,
}

/// Device transfers end at or before this offset of the device buffer.
///
/// QEMU up to 7.2 (Debian 12's) rejects a transfer that ends exactly at the
/// end of the buffer with a fatal `hw_error()` that kills the whole VM
/// (QEMU issue 1254, fixed in 8.0), so no transfer may touch the last byte.
/// The driver keeps that byte in [`State::tail`]: users see the full 4 KiB.
const DMA_LIMIT: usize = regs::DMA_BUF_SIZE - 1;

/// One edu device, shared by the driver, the interrupt handler and open files.
#[pin_data]
pub(crate) struct EduDev {
    /// The bound device and BAR0; revoked at unbind.
    hw: DevresHw,
    /// The device, for log lines (also after unbind).
    pdev: ARef<pci::Device>,
    /// Fixed facts about the device.
    pub(crate) id: Identity,
    /// Per-device lock, held while an operation uses the device.
    #[pin]
    state: Mutex<State>,
    /// Interrupt status bits seen by the handler and not consumed yet.
    #[pin]
    events: SpinLockIrq<u32>,
    /// Signalled by the handler whenever `events` changes, and by shutdown.
    #[pin]
    irq_wait: CondVar,
    /// Set by shutdown; waiters give up and later operations fail with `ENODEV`.
    removed: Atomic<bool>,
    /// A [`LabTrace`] value: what the handler logs.
    lab: Atomic<u32>,
    /// Wait limit for one interrupt, in jiffies.
    timeout: Jiffies,
    /// The same limit in milliseconds.
    timeout_ms: u32,
}

/// The interrupt handler of one device.
#[pin_data]
pub(crate) struct IrqHandler {
    dev: Arc<EduDev>,
}

impl IrqHandler {
    pub(crate) fn new(dev: Arc<EduDev>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self { dev }? Error)
    }
}

impl irq::Handler for IrqHandler {
    fn handle(&self) -> IrqReturn {
        let dev = &*self.dev;
        // Read the status and acknowledge exactly the bits read: bits raised
        // after the read stay pending and interrupt again.
        let status = dev
            .with_hw(|hw| {
                let status = hw.bar.read(regs::IRQ_STATUS).into_raw();
                if status != 0 && status != GONE {
                    hw.bar.write_reg(regs::IRQ_ACK::from_raw(status));
                }
                status
            })
            .unwrap_or(0);
        match status {
            // Not ours: the device is gone, and its all-ones "status" means
            // nothing. Saying so lets the kernel stop a stuck line.
            GONE => return IrqReturn::None,
            // Nothing pending: INTx may be shared, or the device is being
            // unbound; a second MSI for status already handled is ours.
            0 if dev.id.irq_mode == abi::EDU_IRQ_MODE_INTX => return IrqReturn::None,
            0 => return IrqReturn::Handled,
            _ => {}
        }
        dev.trace_irq(status);
        *dev.events.lock() |= status;
        dev.irq_wait.notify_all();
        IrqReturn::Handled
    }
}

impl EduDev {
    /// Creates the shared state of a device that probe has set up and
    /// found doing `busy`.
    pub(crate) fn new(
        hw: DevresHw,
        pdev: ARef<pci::Device>,
        buf: Coherent<[u8]>,
        busy: Busy,
        id: Identity,
        timeout_ms: u32,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            hw,
            pdev,
            id,
            state <- new_mutex!(State {
                buf: Some(buf),
                dma_busy: busy.dma,
                fact_busy: busy.factorial,
                tail: 0,
            }),
            events <- new_spinlock_irq!(0),
            irq_wait <- new_condvar!(),
            removed: Atomic::new(false),
            lab: Atomic::new(LabTrace::Off as u32),
            timeout: msecs_to_jiffies(timeout_ms),
            timeout_ms,
        }? Error)
    }

    /// The PCI device, for log lines.
    pub(crate) fn pdev(&self) -> &pci::Device {
        &self.pdev
    }

    /// Runs `f` on the bound device; `ENODEV` once it is unbound.
    ///
    /// `f` runs in an RCU read-side critical section (the revocable
    /// resource's), so it must not sleep: it does a few register accesses.
    fn with_hw<R>(&self, f: impl for<'a> FnOnce(&Hw<'a>) -> R) -> Result<R> {
        self.hw.try_access_with(f).ok_or(ENODEV)
    }

    /// Takes the per-device lock for an operation; `ENODEV` after shutdown.
    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        let guard = self.state.lock();
        if self.removed.load(Relaxed) {
            return Err(ENODEV);
        }
        Ok(guard)
    }

    /// Logs what the lab's interrupt handler logged, if a lab command runs.
    fn trace_irq(&self, status: u32) {
        let trace = self.lab.load(Relaxed);
        if trace == LabTrace::Off as u32 {
            return;
        }
        if status & regs::IRQ_FACTORIAL != 0 && trace == LabTrace::Factorial as u32 {
            dev_info!(self.pdev, "receive a FACTORIAL interrupter!\n");
        }
        if status & regs::IRQ_DMA != 0 {
            if trace == LabTrace::DmaWrite as u32 {
                dev_info!(self.pdev, "receive a DMA write interrupter!\n");
            } else if trace == LabTrace::DmaRead as u32 {
                dev_info!(self.pdev, "receive a DMA read interrupter!\n");
            }
        }
        dev_info!(
            self.pdev,
            "irq_handler irq = {} dev = {} irq_status = {:x}\n",
            self.id.irq,
            self.id.major,
            status
        );
    }

    /// Forgets `bits` seen earlier, before starting an operation that raises them.
    fn clear_events(&self, bits: u32) {
        *self.events.lock() &= !bits;
    }

    /// Sleeps until the handler has seen one of `bits`; returns the bits
    /// seen and consumes `bits`.
    ///
    /// Fails with `ETIMEDOUT` after the timeout, `ERESTARTSYS` on a signal
    /// and `ENODEV` when the device is being removed.
    fn wait_irq(&self, bits: u32) -> Result<u32> {
        let mut left = self.timeout;
        let mut events = self.events.lock();
        loop {
            if *events & bits != 0 {
                let seen = *events;
                *events &= !bits;
                return Ok(seen);
            }
            if self.removed.load(Relaxed) {
                return Err(ENODEV);
            }
            if left == 0 {
                return Err(ETIMEDOUT);
            }
            match self.irq_wait.wait_interruptible_timeout(&mut events, left) {
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                CondVarTimeoutResult::Timeout => left = 0,
                CondVarTimeoutResult::Signal { .. } => {
                    // A completion that raced with the signal still counts.
                    if *events & bits != 0 {
                        continue;
                    }
                    return Err(ERESTARTSYS);
                }
            }
        }
    }

    /// Waits until a unit an earlier operation (or driver) left running is
    /// idle (`running` reads false); only then may its registers, and for
    /// DMA the buffer, be used. `busy` is the unit's "in flight" flag and
    /// `bit` its completion bit. Returns whether the unit was in flight: the
    /// abandoned operation's interrupt may then still arrive, late, and the
    /// next operation must check the hardware after waking.
    fn settle(
        &self,
        busy: &mut bool,
        bit: u32,
        running: impl for<'a> Fn(&Hw<'a>) -> bool,
    ) -> Result<bool> {
        let abandoned = *busy;
        while *busy {
            if !self.with_hw(&running)? {
                *busy = false;
                break;
            }
            self.wait_irq(bit)?;
        }
        Ok(abandoned)
    }

    /// [`Self::settle`] for the DMA engine and the buffer.
    fn dma_settle(&self, st: &mut State) -> Result<bool> {
        self.settle(&mut st.dma_busy, regs::IRQ_DMA, |hw| hw.dma_running())
    }

    /// [`Self::settle`] for the factorial unit.
    fn fact_settle(&self, st: &mut State) -> Result<bool> {
        self.settle(&mut st.fact_busy, regs::IRQ_FACTORIAL, |hw| hw.computing())
    }

    /// Runs one DMA of `len` bytes between the coherent buffer at `offset`
    /// and the device buffer at `offset`, and waits for its interrupt.
    ///
    /// The caller has settled the engine ([`Self::dma_settle`]) before it
    /// touched the buffer; `late_irq` is what that returned: only a transfer
    /// nobody saw finish can still have its interrupt on the way
    /// (docs/driver.md, "Device accesses per operation").
    ///
    /// On error the transfer may still be running: `dma_busy` stays set and
    /// nothing touches the buffer until [`Self::dma_settle`] saw it finish.
    fn dma_run(
        &self,
        st: &mut State,
        late_irq: bool,
        to_ram: bool,
        offset: usize,
        len: usize,
    ) -> Result {
        let buf = st.buf.as_ref().ok_or(ENODEV)?;
        // The 28-bit DMA mask keeps bus addresses below 4 GiB.
        let ram = u32::try_from(io_project!(buf, [try: offset..offset + len]).dma_address())?;
        let dev = regs::DMA_BUF_ADDR + u32::try_from(offset)?;
        let count = u32::try_from(len)?;
        let (src, dst) = if to_ram { (dev, ram) } else { (ram, dev) };

        self.clear_events(regs::IRQ_DMA);
        self.with_hw(|hw| {
            hw.bar.write_reg(regs::DMA_SRC::from_raw(src));
            hw.bar.write_reg(regs::DMA_DST::from_raw(dst));
            hw.bar.write_reg(regs::DMA_CNT::from_raw(count));
            hw.bar.write_reg(regs::DMA_CMD::run(to_ram));
        })?;
        st.dma_busy = true;
        loop {
            self.wait_irq(regs::IRQ_DMA)?;
            // A late interrupt of the earlier transfer may wake us: then
            // only the device saying "done" ends this one.
            if !late_irq || !self.with_hw(|hw| hw.dma_running())? {
                st.dma_busy = false;
                return Ok(());
            }
        }
    }

    /// Computes `n!` on the device and waits for its interrupt.
    fn factorial_locked(&self, st: &mut State, n: u32) -> Result<u32> {
        // As in `dma_run`: a late interrupt can only come from a factorial
        // nobody saw finish.
        let late_irq = self.fact_settle(st)?;
        self.clear_events(regs::IRQ_FACTORIAL);
        self.with_hw(|hw| hw.bar.write_reg(regs::FACTORIAL::from_raw(n)))?;
        st.fact_busy = true;
        loop {
            self.wait_irq(regs::IRQ_FACTORIAL)?;
            let done = self.with_hw(|hw| {
                (!late_irq || !hw.computing()).then(|| hw.bar.read(regs::FACTORIAL).into_raw())
            })?;
            if let Some(result) = done {
                st.fact_busy = false;
                return Ok(result);
            }
        }
    }

    /// Raises `value` in the interrupt status and waits until the handler
    /// has seen all of it; returns the bits of `value` it saw.
    fn raise_locked(&self, value: u32) -> Result<u32> {
        self.clear_events(value);
        self.with_hw(|hw| hw.bar.write_reg(regs::IRQ_RAISE::from_raw(value)))?;
        let mut seen = 0;
        while seen & value != value {
            seen |= self.wait_irq(value & !seen)? & value;
        }
        Ok(seen)
    }

    /// `EDU_IOC_INFO`.
    pub(crate) fn info(&self) -> Result<abi::EduInfo> {
        let _state = self.lock()?;
        Ok(abi::EduInfo {
            id: self.with_hw(|hw| hw.bar.read(regs::ID).into_raw())?,
            irq: self.id.irq,
            irq_mode: self.id.irq_mode,
            minor: self.id.minor,
            bar0_start: self.id.bar0_start,
            bar0_len: self.id.bar0_len,
            dma_mask: (1u64 << regs::DMA_ADDR_BITS) - 1,
        })
    }

    /// `EDU_IOC_FACTORIAL`: `n!` mod 2^32 as the device computes it.
    pub(crate) fn factorial(&self, n: u32) -> Result<u32> {
        let mut st = self.lock()?;
        self.factorial_locked(&mut st, n)
    }

    /// `EDU_IOC_LIVENESS`: what the liveness register reads after writing `v`.
    pub(crate) fn liveness(&self, v: u32) -> Result<u32> {
        let _state = self.lock()?;
        self.with_hw(|hw| {
            hw.bar.write_reg(regs::LIVENESS::from_raw(v));
            hw.bar.read(regs::LIVENESS).into_raw()
        })
    }

    /// `EDU_IOC_RAISE_IRQ`.
    pub(crate) fn raise(&self, value: u32) -> Result<u32> {
        if value == 0 || value & DEVICE_IRQ_BITS != 0 {
            return Err(EINVAL);
        }
        let _state = self.lock()?;
        self.raise_locked(value)
    }

    /// Copies `len` bytes from user memory to the device buffer at `offset`
    /// by DMA (`EDU_IOC_DMA_TO_DEVICE`, `write`).
    ///
    /// The user memory is read into a bounce buffer before the lock is
    /// taken: a page fault that never resolves blocks only this caller.
    pub(crate) fn dma_to_device(
        &self,
        data: &mut UserSliceReader,
        offset: usize,
        len: usize,
    ) -> Result {
        check_range(offset, len)?;
        let mut bounce = KVec::from_elem(0u8, len, GFP_KERNEL)?;
        data.read_slice(&mut bounce)?;
        let (to_dma, tail) = split_at_limit(&bounce, offset)?;

        let mut st = self.lock()?;
        let late_irq = self.dma_settle(&mut st)?;
        let buf = st.buf.as_ref().ok_or(ENODEV)?;
        io_project!(buf, [try: offset..offset + to_dma.len()]).copy_from_slice(to_dma);
        if let Some(&byte) = tail.first() {
            st.tail = byte;
        }
        if !to_dma.is_empty() {
            self.dma_run(&mut st, late_irq, false, offset, to_dma.len())?;
        }
        Ok(())
    }

    /// Copies `len` bytes from the device buffer at `offset` to user memory
    /// by DMA (`EDU_IOC_DMA_FROM_DEVICE`, `read`).
    ///
    /// The bytes reach user memory from a bounce buffer after the lock is
    /// released (see [`Self::dma_to_device`]).
    pub(crate) fn dma_from_device(
        &self,
        out: &mut UserSliceWriter,
        offset: usize,
        len: usize,
    ) -> Result {
        check_range(offset, len)?;
        let mut bounce = KVec::from_elem(0u8, len, GFP_KERNEL)?;
        {
            let (from_dma, tail) = split_at_limit_mut(&mut bounce, offset)?;
            let mut st = self.lock()?;
            let late_irq = self.dma_settle(&mut st)?;
            if !from_dma.is_empty() {
                self.dma_run(&mut st, late_irq, true, offset, from_dma.len())?;
            }
            let buf = st.buf.as_ref().ok_or(ENODEV)?;
            io_project!(buf, [try: offset..offset + from_dma.len()]).copy_to_slice(from_dma);
            if let Some(byte) = tail.first_mut() {
                *byte = st.tail;
            }
        }
        out.write_slice(&bounce)
    }

    /// Lab `PRINT_EDUINFO_CMD`: logs BAR0's length, config space bytes
    /// 0x00-0x3f, the IRQ and the 32-bit registers 0x00-0x94.
    pub(crate) fn lab_print_info(&self) -> Result {
        let _state = self.lock()?;
        let pdev = &self.pdev;
        dev_info!(pdev, "length {:x}\n", self.id.bar0_len);
        for off in 0..0x40usize {
            let val = self.with_hw(|hw| hw.pdev.config_space().try_read8(off))??;
            dev_info!(pdev, "config {:x} {:x}\n", off, val);
        }
        dev_info!(pdev, "dev->irq {:x}\n", self.id.irq);
        for off in (0..=regs::LAB_DUMP_END).step_by(4) {
            let val = self.with_hw(|hw| hw.bar.try_read32(off))??;
            dev_info!(pdev, "io {:x} {:x}\n", off, val);
        }
        Ok(())
    }

    /// Runs `f` with the handler logging `trace`.
    fn traced<R>(&self, trace: LabTrace, f: impl FnOnce() -> Result<R>) -> Result<R> {
        self.lab.store(trace as u32, Relaxed);
        let ret = f();
        self.lab.store(LabTrace::Off as u32, Relaxed);
        ret
    }

    /// Lab `SEND_INTERRUPT_CMD`: raises 0x12345678.
    pub(crate) fn lab_send_interrupt(&self) -> Result {
        let _state = self.lock()?;
        self.traced(LabTrace::Irq, || self.raise_locked(LAB_RAISE_VALUE))?;
        Ok(())
    }

    /// Lab `FACTORIAL_CMD`: computes 10! with the interrupt.
    pub(crate) fn lab_factorial(&self) -> Result {
        let mut st = self.lock()?;
        let result = self.traced(LabTrace::Factorial, || {
            self.factorial_locked(&mut st, LAB_FACTORIAL_N)
        })?;
        dev_info!(self.pdev, "computing result {:x}\n", result);
        Ok(())
    }

    /// Lab `DMA_WRITE_CMD`: DMAs the 4-byte pattern from RAM to the device.
    pub(crate) fn lab_dma_write(&self) -> Result {
        let mut st = self.lock()?;
        let late_irq = self.dma_settle(&mut st)?;
        let buf = st.buf.as_ref().ok_or(ENODEV)?;
        io_project!(buf, [try: 0..LAB_PATTERN.len()]).copy_from_slice(&LAB_PATTERN);
        self.traced(LabTrace::DmaWrite, || {
            self.dma_run(&mut st, late_irq, false, 0, LAB_PATTERN.len())
        })
    }

    /// Lab `DMA_READ_CMD`: DMAs the pattern back to RAM and checks it.
    pub(crate) fn lab_dma_read(&self) -> Result {
        let mut st = self.lock()?;
        let late_irq = self.dma_settle(&mut st)?;
        let buf = st.buf.as_ref().ok_or(ENODEV)?;
        io_project!(buf, [try: 0..LAB_PATTERN.len()]).copy_from_slice(&[0; LAB_PATTERN.len()]);
        self.traced(LabTrace::DmaRead, || {
            self.dma_run(&mut st, late_irq, true, 0, LAB_PATTERN.len())
        })?;
        let buf = st.buf.as_ref().ok_or(ENODEV)?;
        let mut got = [0u8; LAB_PATTERN.len()];
        io_project!(buf, [try: 0..LAB_PATTERN.len()]).copy_to_slice(&mut got);
        if got != LAB_PATTERN {
            dev_err!(
                self.pdev,
                "DMA read back {:x?}, expected {:x?}\n",
                got,
                LAB_PATTERN
            );
            return Err(EIO);
        }
        Ok(())
    }

    /// Quiesces the device for unbind: wakes and fails waiters, waits
    /// (bounded by `timeout_ms`) for a running DMA or factorial, masks the
    /// device's interrupt sources and frees the DMA buffer. Later
    /// operations fail with `ENODEV`.
    pub(crate) fn shutdown(&self) {
        self.removed.store(true, Relaxed);
        {
            // Waiters check `removed` under `events`: take it so none misses
            // the wake-up between its check and its sleep.
            let _events = self.events.lock();
            self.irq_wait.notify_all();
        }
        // Waits for the operation in progress, which returns promptly now.
        let mut st = self.state.lock();
        // Work the device still does, whoever started it. Waiters were
        // failed above, so nobody consumes interrupts any more: poll.
        let idle = read_poll_timeout(
            || self.with_hw(|hw| !hw.dma_running() && !hw.computing()),
            |&idle| idle,
            Delta::from_millis(10),
            Delta::from_millis(i64::from(self.timeout_ms)),
        );
        let dma_stopped = self
            .with_hw(|hw| {
                hw.bar.write_reg(regs::STATUS::zeroed());
                hw.bar.write_reg(regs::IRQ_ACK::from_raw(u32::MAX));
                !hw.dma_running()
            })
            .unwrap_or(false);
        if idle.is_err() {
            dev_warn!(
                self.pdev,
                "still busy after {} ms at unbind\n",
                self.timeout_ms
            );
        }
        if let Some(buf) = st.buf.take() {
            if dma_stopped {
                drop(buf);
            } else {
                // The device may still write into it: never give it back.
                dev_err!(self.pdev, "DMA did not stop; leaking its buffer\n");
                core::mem::forget(buf);
            }
        }
    }
}

/// Checks a transfer of `len` bytes at `offset` of the device buffer.
fn check_range(offset: usize, len: usize) -> Result {
    if len == 0 || offset.checked_add(len).ok_or(EINVAL)? > regs::DMA_BUF_SIZE {
        return Err(EINVAL);
    }
    Ok(())
}

/// Splits the bytes of a transfer at `offset` into the part the device
/// moves and the part at or past [`DMA_LIMIT`] (at most the last byte).
fn split_at_limit(bytes: &[u8], offset: usize) -> Result<(&[u8], &[u8])> {
    bytes
        .split_at_checked(dma_len(bytes.len(), offset))
        .ok_or(EINVAL)
}

/// [`split_at_limit`] for a buffer being filled.
fn split_at_limit_mut(bytes: &mut [u8], offset: usize) -> Result<(&mut [u8], &mut [u8])> {
    let at = dma_len(bytes.len(), offset);
    bytes.split_at_mut_checked(at).ok_or(EINVAL)
}

/// How many of `len` bytes at `offset` the device moves: those before
/// [`DMA_LIMIT`].
fn dma_len(len: usize, offset: usize) -> usize {
    DMA_LIMIT.saturating_sub(offset).min(len)
}
