// SPDX-License-Identifier: GPL-2.0

//! One edu device: its shared state, interrupt handler and operations.
//!
//! An [`EduDev`] is created by probe and shared (reference counted) by the
//! interrupt handler, the device table that `open` looks minors up in, and
//! every open file. It outlives unbind: after [`EduDev::shutdown`] every
//! operation fails with `ENODEV`, and the last reference frees it.
//!
//! Locking: `state` (a mutex) is the per-device lock; every operation holds
//! it from start to end, so operations on one device run one at a time and
//! operations on different devices in parallel. `events` (an IRQ-safe
//! spinlock) holds the interrupt status bits the handler has seen and nobody
//! has consumed yet; waiters sleep on `irq_wait` with `state` held.
//!
//! See `docs/driver.md` for the design and `docs/ioctl-abi.md` for the ABI.

use crate::{abi, regs};
use kernel::{
    device::Bound,
    dma::Coherent,
    io::Io,
    irq::{self, IrqReturn},
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        new_condvar, new_mutex, new_spinlock_irq, Arc, CondVar, CondVarTimeoutResult, Mutex,
        MutexGuard, SpinLockIrq,
    },
    time::{delay::fsleep, msecs_to_jiffies, Delta, Jiffies},
    uaccess::{UserSliceReader, UserSliceWriter},
};

/// BAR0, device-managed: access is revoked when the device is unbound.
pub(crate) type DevresBar0 = pci::DevresBar<{ regs::BAR0_SIZE }>;

/// BAR0 as borrowed for one operation.
type Bar0<'a> = pci::Bar<'a, { regs::BAR0_SIZE }>;

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

/// Device state protected by the per-device lock.
struct State {
    /// The device is bound; cleared by [`EduDev::shutdown`].
    alive: Alive,
    /// The rest, borrowed separately from `alive`.
    ops: Ops,
}

/// Whether the device is still bound.
///
/// Only [`State`] holds one, so a `&Alive` proves that the per-device lock
/// is held; [`EduDev::hw`] relies on it.
struct Alive(bool);

/// Operation state.
struct Ops {
    /// The coherent DMA buffer (4 KiB), `None` once the device is gone.
    buf: Option<Coherent<[u8]>>,
    /// A DMA was started and not seen complete: the buffer belongs to the
    /// device until it is.
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
/// The driver keeps that byte in [`Ops::tail`]: users see the full 4 KiB.
const DMA_LIMIT: usize = regs::DMA_BUF_SIZE - 1;

/// Everything an operation needs from a bound device, borrowed under the lock.
struct Hw<'a> {
    pdev: &'a pci::Device<Bound>,
    bar: &'a Bar0<'a>,
}

impl Hw<'_> {
    fn dma_running(&self) -> bool {
        self.bar.read(regs::DMA_CMD).busy()
    }

    fn computing(&self) -> bool {
        self.bar.read(regs::STATUS).computing()
    }
}

/// One edu device, shared by the driver, the interrupt handler and open files.
#[pin_data]
pub(crate) struct EduDev {
    pdev: ARef<pci::Device>,
    bar: DevresBar0,
    /// Fixed facts about the device.
    pub(crate) id: Identity,
    /// Per-device lock, held for the whole of every operation.
    #[pin]
    state: Mutex<State>,
    /// Interrupt status bits seen by the handler and not consumed yet.
    #[pin]
    events: SpinLockIrq<u32>,
    /// Signalled by the handler whenever `events` changes, and by shutdown.
    #[pin]
    irq_wait: CondVar,
    /// Set by shutdown; waiters give up with `ENODEV`.
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
            .bar
            .try_access_with(|bar| {
                let status = bar.read(regs::IRQ_STATUS).into_raw();
                if status != 0 {
                    bar.write_reg(regs::IRQ_ACK::from_raw(status));
                }
                status
            })
            .unwrap_or(0);
        if status == 0 {
            // Not ours (INTx may be shared), or the device is going away.
            return if dev.id.irq_mode == abi::EDU_IRQ_MODE_INTX {
                IrqReturn::None
            } else {
                IrqReturn::Handled
            };
        }
        dev.trace_irq(status);
        *dev.events.lock() |= status;
        dev.irq_wait.notify_all();
        IrqReturn::Handled
    }
}

impl EduDev {
    /// Creates the shared state of a device that probe has set up.
    pub(crate) fn new(
        pdev: ARef<pci::Device>,
        bar: DevresBar0,
        buf: Coherent<[u8]>,
        id: Identity,
        timeout_ms: u32,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            pdev,
            bar,
            id,
            state <- new_mutex!(State {
                alive: Alive(true),
                ops: Ops {
                    buf: Some(buf),
                    dma_busy: false,
                    fact_busy: false,
                    tail: 0,
                },
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

    /// Borrows the bound device and BAR0 for an operation.
    ///
    /// `alive` must be this device's own [`State::alive`], borrowed from
    /// the guard of `self.state` (every caller in this file does so).
    /// Fails with `ENODEV` once the device was unbound.
    fn hw<'a>(&'a self, alive: &'a Alive) -> Result<Hw<'a>> {
        if !alive.0 {
            return Err(ENODEV);
        }
        let pdev: &pci::Device = &self.pdev;
        // SAFETY: `pci::Device<Ctx>` is a transparent wrapper of `struct
        // pci_dev` whatever the (zero-sized) context marker, so only the
        // marker changes. The device is bound for all of `'a`: `alive` can
        // only be borrowed from the per-device lock's guard and is set, and
        // unbind clears it under that lock before the driver core unbinds
        // the device.
        let pdev = unsafe { &*core::ptr::from_ref(pdev).cast::<pci::Device<Bound>>() };
        let bar = self.bar.access(pdev.as_ref())?;
        Ok(Hw { pdev, bar })
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

    /// Waits for the DMA an earlier, interrupted or timed out operation left
    /// running; only then may the buffer or the DMA registers be used.
    fn dma_settle(&self, hw: &Hw<'_>, ops: &mut Ops) -> Result {
        while ops.dma_busy {
            if !hw.dma_running() {
                ops.dma_busy = false;
                break;
            }
            self.wait_irq(regs::IRQ_DMA)?;
        }
        Ok(())
    }

    /// Same as [`Self::dma_settle`] for the factorial unit.
    fn fact_settle(&self, hw: &Hw<'_>, ops: &mut Ops) -> Result {
        while ops.fact_busy {
            if !hw.computing() {
                ops.fact_busy = false;
                break;
            }
            self.wait_irq(regs::IRQ_FACTORIAL)?;
        }
        Ok(())
    }

    /// Runs one DMA of `len` bytes between the coherent buffer at `offset`
    /// and the device buffer at `offset`, and waits for its interrupt.
    ///
    /// On error the transfer may still be running: `dma_busy` stays set and
    /// nothing touches the buffer until [`Self::dma_settle`] saw it finish.
    fn dma_run(
        &self,
        hw: &Hw<'_>,
        ops: &mut Ops,
        to_ram: bool,
        offset: usize,
        len: usize,
    ) -> Result {
        self.dma_settle(hw, ops)?;
        let buf = ops.buf.as_ref().ok_or(ENODEV)?;
        // The 28-bit DMA mask keeps bus addresses below 4 GiB.
        let ram = u32::try_from(buf.dma_address() + offset as u64).map_err(|_| EINVAL)?;
        let dev = regs::DMA_BUF_ADDR + offset as u32;
        let (src, dst) = if to_ram { (dev, ram) } else { (ram, dev) };

        self.clear_events(regs::IRQ_DMA);
        hw.bar.write_reg(regs::DMA_SRC::from_raw(src));
        hw.bar.write_reg(regs::DMA_DST::from_raw(dst));
        hw.bar.write_reg(regs::DMA_CNT::from_raw(len as u32));
        ops.dma_busy = true;
        hw.bar.write_reg(regs::DMA_CMD::run(to_ram));
        loop {
            self.wait_irq(regs::IRQ_DMA)?;
            // A late interrupt of an earlier transfer may wake us: only the
            // device saying "done" ends this one.
            if !hw.dma_running() {
                ops.dma_busy = false;
                return Ok(());
            }
        }
    }

    /// Computes `n!` on the device and waits for its interrupt.
    fn factorial_locked(&self, hw: &Hw<'_>, ops: &mut Ops, n: u32) -> Result<u32> {
        self.fact_settle(hw, ops)?;
        self.clear_events(regs::IRQ_FACTORIAL);
        hw.bar.write_reg(regs::STATUS::irq_enabled());
        ops.fact_busy = true;
        hw.bar.write_reg(regs::FACTORIAL::from_raw(n));
        loop {
            self.wait_irq(regs::IRQ_FACTORIAL)?;
            if !hw.computing() {
                ops.fact_busy = false;
                return Ok(hw.bar.read(regs::FACTORIAL).into_raw());
            }
        }
    }

    /// Raises `value` in the interrupt status and waits until the handler
    /// has seen all of it; returns the bits of `value` it saw.
    fn raise_locked(&self, hw: &Hw<'_>, value: u32) -> Result<u32> {
        self.clear_events(value);
        hw.bar.write_reg(regs::IRQ_RAISE::from_raw(value));
        let mut seen = 0;
        while seen & value != value {
            seen |= self.wait_irq(value & !seen)? & value;
        }
        Ok(seen)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// `EDU_IOC_INFO`.
    pub(crate) fn info(&self) -> Result<abi::EduInfo> {
        let state = self.lock();
        let hw = self.hw(&state.alive)?;
        Ok(abi::EduInfo {
            id: hw.bar.read(regs::ID).into_raw(),
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
        let mut guard = self.lock();
        let State { alive, ops } = &mut *guard;
        let hw = self.hw(alive)?;
        self.factorial_locked(&hw, ops, n)
    }

    /// `EDU_IOC_LIVENESS`: what the liveness register reads after writing `v`.
    pub(crate) fn liveness(&self, v: u32) -> Result<u32> {
        let state = self.lock();
        let hw = self.hw(&state.alive)?;
        hw.bar.write_reg(regs::LIVENESS::from_raw(v));
        Ok(hw.bar.read(regs::LIVENESS).into_raw())
    }

    /// `EDU_IOC_RAISE_IRQ`.
    pub(crate) fn raise(&self, value: u32) -> Result<u32> {
        if value == 0 || value & DEVICE_IRQ_BITS != 0 {
            return Err(EINVAL);
        }
        let state = self.lock();
        let hw = self.hw(&state.alive)?;
        self.raise_locked(&hw, value)
    }

    /// Copies `len` bytes from user memory to the device buffer at `offset`
    /// by DMA (`EDU_IOC_DMA_TO_DEVICE`, `write`).
    pub(crate) fn dma_to_device(
        &self,
        data: &mut UserSliceReader,
        offset: usize,
        len: usize,
    ) -> Result {
        check_range(offset, len)?;
        let mut guard = self.lock();
        let State { alive, ops } = &mut *guard;
        let hw = self.hw(alive)?;
        self.dma_settle(&hw, ops)?;
        let buf = ops.buf.as_ref().ok_or(ENODEV)?;
        // SAFETY: no DMA uses the buffer (settled above, and new ones are
        // only started under the lock we hold), and no CPU access races:
        // every access happens under that lock. The range was checked.
        let window = unsafe { &mut buf.as_mut()[offset..offset + len] };
        data.read_slice(window)?;
        if offset + len > DMA_LIMIT {
            // SAFETY: as above.
            ops.tail = unsafe { buf.as_ref()[DMA_LIMIT] };
        }
        let dma_len = (offset + len).min(DMA_LIMIT).saturating_sub(offset);
        if dma_len > 0 {
            self.dma_run(&hw, ops, false, offset, dma_len)?;
        }
        Ok(())
    }

    /// Copies `len` bytes from the device buffer at `offset` to user memory
    /// by DMA (`EDU_IOC_DMA_FROM_DEVICE`, `read`).
    pub(crate) fn dma_from_device(
        &self,
        out: &mut UserSliceWriter,
        offset: usize,
        len: usize,
    ) -> Result {
        check_range(offset, len)?;
        let mut guard = self.lock();
        let State { alive, ops } = &mut *guard;
        let hw = self.hw(alive)?;
        let dma_len = (offset + len).min(DMA_LIMIT).saturating_sub(offset);
        if dma_len > 0 {
            self.dma_run(&hw, ops, true, offset, dma_len)?;
        } else {
            self.dma_settle(&hw, ops)?;
        }
        let buf = ops.buf.as_ref().ok_or(ENODEV)?;
        if offset + len > DMA_LIMIT {
            // SAFETY: no DMA uses the buffer (the transfer is complete or
            // settled) and every CPU access happens under the lock we hold.
            unsafe { buf.as_mut()[DMA_LIMIT] = ops.tail };
        }
        out.write_dma(buf, offset, len)
    }

    /// Lab `PRINT_EDUINFO_CMD`: logs BAR0's length, config space bytes
    /// 0x00-0x3f, the IRQ and the 32-bit registers 0x00-0x94.
    pub(crate) fn lab_print_info(&self) -> Result {
        let state = self.lock();
        let hw = self.hw(&state.alive)?;
        let pdev = hw.pdev;
        dev_info!(pdev, "length {:x}\n", self.id.bar0_len);
        let config = pdev.config_space();
        for off in 0..0x40usize {
            let val = config.try_read8(off)?;
            dev_info!(pdev, "config {:x} {:x}\n", off, val);
        }
        dev_info!(pdev, "dev->irq {:x}\n", self.id.irq);
        for off in (0..=regs::LAB_DUMP_END).step_by(4) {
            let val = hw.bar.try_read32(off)?;
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
        let state = self.lock();
        let hw = self.hw(&state.alive)?;
        self.traced(LabTrace::Irq, || self.raise_locked(&hw, LAB_RAISE_VALUE))?;
        Ok(())
    }

    /// Lab `FACTORIAL_CMD`: computes 10! with the interrupt.
    pub(crate) fn lab_factorial(&self) -> Result {
        let mut guard = self.lock();
        let State { alive, ops } = &mut *guard;
        let hw = self.hw(alive)?;
        let result = self.traced(LabTrace::Factorial, || {
            self.factorial_locked(&hw, ops, LAB_FACTORIAL_N)
        })?;
        dev_info!(hw.pdev, "computing result {:x}\n", result);
        Ok(())
    }

    /// Lab `DMA_WRITE_CMD`: DMAs the 4-byte pattern from RAM to the device.
    pub(crate) fn lab_dma_write(&self) -> Result {
        let mut guard = self.lock();
        let State { alive, ops } = &mut *guard;
        let hw = self.hw(alive)?;
        self.dma_settle(&hw, ops)?;
        let buf = ops.buf.as_ref().ok_or(ENODEV)?;
        // SAFETY: no DMA uses the buffer (settled above) and every CPU access
        // happens under the lock we hold.
        unsafe { buf.as_mut()[..LAB_PATTERN.len()].copy_from_slice(&LAB_PATTERN) };
        self.traced(LabTrace::DmaWrite, || {
            self.dma_run(&hw, ops, false, 0, LAB_PATTERN.len())
        })
    }

    /// Lab `DMA_READ_CMD`: DMAs the pattern back to RAM and checks it.
    pub(crate) fn lab_dma_read(&self) -> Result {
        let mut guard = self.lock();
        let State { alive, ops } = &mut *guard;
        let hw = self.hw(alive)?;
        self.dma_settle(&hw, ops)?;
        let buf = ops.buf.as_ref().ok_or(ENODEV)?;
        // SAFETY: as in `lab_dma_write`.
        unsafe { buf.as_mut()[..LAB_PATTERN.len()].fill(0) };
        self.traced(LabTrace::DmaRead, || {
            self.dma_run(&hw, ops, true, 0, LAB_PATTERN.len())
        })?;
        let buf = ops.buf.as_ref().ok_or(ENODEV)?;
        // SAFETY: the transfer is complete (dma_run returned Ok) and every CPU
        // access happens under the lock we hold.
        let got = unsafe { &buf.as_ref()[..LAB_PATTERN.len()] };
        if got != LAB_PATTERN {
            dev_err!(
                hw.pdev,
                "DMA read back {:x?}, expected {:x?}\n",
                got,
                LAB_PATTERN
            );
            return Err(EIO);
        }
        Ok(())
    }

    /// Quiesces the device for unbind: wakes and fails waiters, waits for a
    /// running DMA or factorial, masks the device's interrupt sources and
    /// frees the DMA buffer. Later operations fail with `ENODEV`.
    pub(crate) fn shutdown(&self) {
        self.removed.store(true, Relaxed);
        {
            // Waiters check `removed` under `events`: take it so none misses
            // the wake-up between its check and its sleep.
            let _events = self.events.lock();
            self.irq_wait.notify_all();
        }
        let mut guard = self.lock();
        let State { alive, ops } = &mut *guard;
        let dma_done = {
            let Ok(hw) = self.hw(alive) else {
                return;
            };
            // Bounded wait for work the device still does. Waiters were
            // failed above, so nobody consumes interrupts any more: poll.
            let mut left = self.timeout_ms;
            while (ops.dma_busy && hw.dma_running()) || (ops.fact_busy && hw.computing()) {
                if left == 0 {
                    break;
                }
                fsleep(Delta::from_millis(10));
                left = left.saturating_sub(10);
            }
            hw.bar.write_reg(regs::STATUS::zeroed());
            hw.bar.write_reg(regs::IRQ_ACK::from_raw(u32::MAX));
            !hw.dma_running()
        };
        alive.0 = false;
        if let Some(buf) = ops.buf.take() {
            if dma_done {
                drop(buf);
            } else {
                // The device still writes into it: never give it back.
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
