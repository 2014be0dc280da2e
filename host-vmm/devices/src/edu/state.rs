//! edu's register state and behaviour, free of threads and clocks.
//!
//! [`EduState`] is everything QEMU's `EduState` holds plus our counters and
//! the configuration space. Every method takes the current device time
//! (`now`, a [`Duration`] since the device's epoch) and the guest memory and
//! interrupt sink it needs, so the same code runs under the worker thread,
//! under a manual test clock and inside a fuzz target.

use super::events::{DmaOutcome, EduEvent, EduObserver};
use super::regs::*;
use super::{EduConfig, EduError, EduStats, RejectedRead};
use crate::guest_log;
use edu_pci::config::{ConfigSpace, Type0Header};
use edu_pci::{BarKind, BarSpec, InterruptSink, IntxPin, MsiCapability};
use std::sync::Arc;
use std::time::Duration;
use vm_memory::bitmap::BS;
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions, VolatileSlice};

/// The four DMA registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaRegs {
    /// Source address.
    pub src: u64,
    /// Destination address.
    pub dst: u64,
    /// Byte count.
    pub cnt: u64,
    /// Command (run, direction, interrupt bits, and whatever else was written).
    pub cmd: u64,
}

/// edu's 4 KiB DMA buffer, page-aligned like the guest pages it is copied
/// to and from: a page-to-page transfer is then an aligned copy whatever
/// address the allocator picks (unaligned, a 4 KiB copy took from 40 to
/// 300 ns depending on that address; `docs/edu-device.md`, "DMA speed").
#[repr(C, align(4096))]
struct DmaBuffer([u8; DMA_BUF_SIZE]);

impl std::fmt::Debug for DmaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DmaBuffer({} bytes)", self.0.len())
    }
}

/// What an MMIO write asks the owner of the state to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kick {
    /// Nothing new to schedule.
    None,
    /// A factorial was started.
    Factorial,
    /// A DMA transfer was started.
    Dma,
}

/// edu's complete state.
#[derive(Debug)]
pub struct EduState {
    pub(crate) config: ConfigSpace,
    msi: MsiCapability,
    addr4: u32,
    fact: u32,
    status: u32,
    irq_status: u32,
    dma: DmaRegs,
    /// When the running DMA transfer completes, if one runs.
    dma_deadline: Option<Duration>,
    buf: Box<DmaBuffer>,
    /// INTx level the device wants (QEMU's `irq_state`).
    intx_level: bool,
    /// Level last driven on the sink (`intx_level` and not disabled).
    intx_line: bool,
    dma_delay: Duration,
    dma_mask: u64,
    rejected_read: RejectedRead,
    pub(crate) stats: EduStats,
    observer: Observer,
}

/// The optional [`EduObserver`], printable for `Debug`.
#[derive(Clone, Default)]
struct Observer(Option<Arc<dyn EduObserver>>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// Computes `n!` mod 2^32 as QEMU's edu thread does (`ret *= val--` on a
/// `uint32_t`), stopping early once the product is 0 since it stays 0: at
/// most 64 multiplications for any `n`.
pub fn factorial(n: u32) -> u32 {
    let mut ret: u32 = 1;
    let mut v = n;
    while v > 0 && ret != 0 {
        ret = ret.wrapping_mul(v);
        v -= 1;
    }
    ret
}

impl EduState {
    /// Fresh state, as QEMU's edu after realize.
    pub fn new(cfg: &EduConfig) -> Result<Self, EduError> {
        let mut config = ConfigSpace::new(&Type0Header {
            vendor_id: VENDOR_ID,
            device_id: DEVICE_ID,
            revision_id: REVISION_ID,
            class_code: CLASS_CODE,
            subsystem_vendor_id: SUBSYSTEM_VENDOR_ID,
            subsystem_id: SUBSYSTEM_ID,
            interrupt_pin: IntxPin::A.register_value(),
        });
        let msi = MsiCapability::add(&mut config, true)?;
        config.add_bar(
            0,
            BarSpec {
                kind: BarKind::Memory32 {
                    prefetchable: false,
                },
                size: BAR0_SIZE,
            },
        )?;
        Ok(EduState {
            config,
            msi,
            addr4: 0,
            fact: 0,
            status: 0,
            irq_status: 0,
            dma: DmaRegs::default(),
            dma_deadline: None,
            buf: Box::new(DmaBuffer([0; DMA_BUF_SIZE])),
            intx_level: false,
            intx_line: false,
            dma_delay: cfg.dma_delay,
            dma_mask: cfg.dma_mask,
            rejected_read: cfg.rejected_read,
            stats: EduStats::default(),
            observer: Observer::default(),
        })
    }

    /// Sends every later [`EduEvent`] to `observer`.
    pub fn set_observer(&mut self, observer: Arc<dyn EduObserver>) {
        self.observer = Observer(Some(observer));
    }

    /// Sends the event `e` builds to the observer, if there is one; without
    /// one the event is not even built (a DMA command's copy of the four
    /// registers was a measurable part of a 4 KiB transfer).
    fn emit(&self, e: impl FnOnce() -> EduEvent) {
        if let Some(o) = &self.observer.0 {
            o.event(e());
        }
    }

    /// Whether a factorial is being computed.
    pub fn computing(&self) -> bool {
        self.status & STATUS_COMPUTING != 0
    }

    /// When the running DMA transfer completes, if one runs.
    pub fn dma_deadline(&self) -> Option<Duration> {
        self.dma_deadline
    }

    /// Whether no factorial and no DMA transfer is pending.
    pub fn idle(&self) -> bool {
        !self.computing() && self.dma_deadline.is_none()
    }

    /// The DMA registers.
    pub fn dma_regs(&self) -> DmaRegs {
        self.dma
    }

    /// The interrupt status register.
    pub fn irq_status(&self) -> u32 {
        self.irq_status
    }

    /// Copies the DMA buffer from `offset` into `out` (bytes past the end
    /// are left untouched). Returns the number of bytes copied.
    pub fn read_buffer(&self, offset: usize, out: &mut [u8]) -> usize {
        let Some(src) = self.buf.0.get(offset..) else {
            return 0;
        };
        let n = src.len().min(out.len());
        out[..n].copy_from_slice(&src[..n]);
        n
    }

    /// Whether QEMU's memory core lets an access of `size` bytes at
    /// `offset` through to edu: 4 or 8 bytes, naturally aligned.
    fn core_accepts(offset: u64, size: usize) -> bool {
        matches!(size, 4 | 8) && offset % size as u64 == 0
    }

    /// Whether edu's own size rules accept it: 4 bytes below 0x80, 4 or 8
    /// from 0x80.
    fn device_accepts(offset: u64, size: usize) -> bool {
        size == 4 || (size == 8 && offset >= WIDE_REGS_START)
    }

    /// Guest read of `data.len()` bytes at `offset` in BAR0.
    pub fn mmio_read(&mut self, offset: u64, data: &mut [u8]) {
        let size = data.len();
        if !Self::core_accepts(offset, size) {
            self.stats.rejected_accesses += 1;
            let fill = match self.rejected_read {
                RejectedRead::AllOnes => 0xff,
                RejectedRead::Zero => 0,
            };
            data.fill(fill);
            return;
        }
        if !Self::device_accepts(offset, size) {
            self.stats.rejected_accesses += 1;
            data.fill(0xff);
            return;
        }
        let val: u64 = match offset {
            REG_ID => u64::from(ID_VALUE),
            REG_LIVENESS => u64::from(self.addr4),
            REG_FACTORIAL => u64::from(self.fact),
            REG_STATUS => u64::from(self.status),
            REG_IRQ_STATUS => u64::from(self.irq_status),
            REG_DMA_SRC => self.dma.src,
            REG_DMA_DST => self.dma.dst,
            REG_DMA_CNT => self.dma.cnt,
            REG_DMA_CMD => self.dma.cmd,
            _ => u64::MAX,
        };
        data.copy_from_slice(&val.to_le_bytes()[..size]);
    }

    /// Guest write of `data` at `offset` in BAR0. Returns what the caller
    /// must schedule.
    pub fn mmio_write(
        &mut self,
        offset: u64,
        data: &[u8],
        now: Duration,
        irq: &dyn InterruptSink,
    ) -> Kick {
        let size = data.len();
        if !Self::core_accepts(offset, size) || !Self::device_accepts(offset, size) {
            self.stats.rejected_accesses += 1;
            return Kick::None;
        }
        let mut bytes = [0u8; 8];
        bytes[..size].copy_from_slice(data);
        let val = u64::from_le_bytes(bytes);
        match offset {
            REG_LIVENESS => self.addr4 = !(val as u32),
            REG_FACTORIAL => {
                if self.computing() {
                    self.stats.ignored_busy_writes += 1;
                    return Kick::None;
                }
                self.fact = val as u32;
                self.status |= STATUS_COMPUTING;
                return Kick::Factorial;
            }
            REG_STATUS => {
                if val & u64::from(STATUS_IRQFACT) != 0 {
                    self.status |= STATUS_IRQFACT;
                } else {
                    self.status &= !STATUS_IRQFACT;
                }
            }
            REG_IRQ_RAISE => self.raise_irq(val as u32, irq),
            REG_IRQ_ACK => self.lower_irq(val as u32, irq),
            REG_DMA_SRC | REG_DMA_DST | REG_DMA_CNT => {
                if self.dma.cmd & DMA_CMD_RUN != 0 {
                    self.stats.ignored_busy_writes += 1;
                    return Kick::None;
                }
                match offset {
                    REG_DMA_SRC => self.dma.src = val,
                    REG_DMA_DST => self.dma.dst = val,
                    _ => self.dma.cnt = val,
                }
            }
            REG_DMA_CMD => {
                if val & DMA_CMD_RUN == 0 {
                    return Kick::None;
                }
                if self.dma.cmd & DMA_CMD_RUN != 0 {
                    self.stats.ignored_busy_writes += 1;
                    return Kick::None;
                }
                self.dma.cmd = val;
                self.dma_deadline = Some(now.saturating_add(self.dma_delay));
                self.emit(|| EduEvent::DmaStarted {
                    regs: self.dma,
                    delay: self.dma_delay,
                });
                return Kick::Dma;
            }
            _ => {}
        }
        Kick::None
    }

    /// Runs the work that is due at `now`: a pending factorial (always due)
    /// and the DMA transfer if its deadline has passed.
    pub fn process<M: GuestMemory + ?Sized>(
        &mut self,
        now: Duration,
        mem: &M,
        irq: &dyn InterruptSink,
    ) {
        if self.computing() {
            self.finish_factorial(irq);
        }
        if let Some(deadline) = self.dma_deadline.filter(|d| *d <= now) {
            self.dma_deadline = None;
            // The command came `dma_delay` before the deadline.
            let waited = now.saturating_sub(deadline.saturating_sub(self.dma_delay));
            self.finish_dma(mem, irq, waited);
        }
    }

    fn finish_factorial(&mut self, irq: &dyn InterruptSink) {
        let n = self.fact;
        self.fact = factorial(n);
        self.status &= !STATUS_COMPUTING;
        self.stats.factorials += 1;
        self.emit(|| EduEvent::FactorialDone {
            n,
            result: self.fact,
        });
        if self.status & STATUS_IRQFACT != 0 {
            self.raise_irq(IRQ_FACTORIAL, irq);
        }
    }

    /// The buffer-side range of a transfer, if it lies inside the buffer.
    fn buffer_range(addr: u64, cnt: u64) -> Option<std::ops::Range<usize>> {
        let start = addr.checked_sub(DMA_BUF_START)?;
        let end = start.checked_add(cnt)?;
        if end > DMA_BUF_SIZE as u64 {
            return None;
        }
        // Both fit in usize: they are at most 4096.
        Some(start as usize..end as usize)
    }

    /// The `len` bytes of guest memory at `addr` as one slice, if they lie
    /// in one region and are accessible with `perm`; `None` otherwise
    /// (several regions, a hole, an empty range, or an overflowing end).
    fn one_slice<M: GuestMemory + ?Sized>(
        mem: &M,
        addr: u64,
        len: usize,
        perm: Permissions,
    ) -> Option<VolatileSlice<'_, BS<'_, M::Bitmap>>> {
        let first = mem
            .get_slices(GuestAddress(addr), len, perm)
            .ok()?
            .next()?
            .ok()?;
        (first.len() == len).then_some(first)
    }

    fn finish_dma<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        irq: &dyn InterruptSink,
        waited: Duration,
    ) {
        let d = self.dma;
        let to_ram = d.cmd & DMA_CMD_TO_RAM != 0;
        let (buf_addr, ram_raw) = if to_ram {
            (d.src, d.dst)
        } else {
            (d.dst, d.src)
        };
        let ram = ram_raw & self.dma_mask;
        if ram != ram_raw {
            self.stats.dma_clamped += 1;
            let mask = self.dma_mask;
            self.guest_error(format_args!(
                "edu: clamping DMA address {ram_raw:#018x} to {ram:#018x} (mask {mask:#x})"
            ));
        }
        let range = Self::buffer_range(buf_addr, d.cnt);
        let perm = if to_ram {
            Permissions::Write
        } else {
            Permissions::Read
        };
        // One lookup finds a transfer that lies in one region (a guest page
        // always does); only one over several regions or a hole needs the
        // full range check and the region-by-region copy.
        let slice = range
            .as_ref()
            .and_then(|r| Self::one_slice(mem, ram, r.len(), perm));
        let ram_ok = range.as_ref().is_some_and(|r| {
            r.is_empty()
                || slice.is_some()
                || (ram.checked_add(d.cnt).is_some()
                    && mem.check_range(GuestAddress(ram), r.len(), perm))
        });
        let outcome = match range {
            Some(r) if ram_ok => {
                if !self.config.bus_master_enabled() {
                    // QEMU: with bus mastering off the device's DMA address
                    // space is empty: reads give zeros, writes vanish.
                    self.stats.dma_blocked += 1;
                    self.guest_error(format_args!(
                        "edu: DMA with bus mastering disabled (src {:#x} dst {:#x} cnt {:#x})",
                        d.src, d.dst, d.cnt
                    ));
                    if !to_ram {
                        self.buf.0[r].fill(0);
                    }
                    DmaOutcome::Blocked
                } else {
                    let res = match (&slice, to_ram) {
                        (Some(s), true) => {
                            s.copy_from(&self.buf.0[r]);
                            Ok(())
                        }
                        (Some(s), false) => {
                            s.copy_to(&mut self.buf.0[r]);
                            Ok(())
                        }
                        (None, true) => mem.write_slice(&self.buf.0[r], GuestAddress(ram)),
                        (None, false) => mem.read_slice(&mut self.buf.0[r], GuestAddress(ram)),
                    };
                    match res {
                        Ok(()) => DmaOutcome::Copied,
                        Err(e) => {
                            self.stats.dma_errors += 1;
                            guest_log::log(
                                self.stats.dma_errors,
                                log::Level::Error,
                                "DMA error",
                                format_args!("edu: DMA to guest memory at {ram:#x} failed: {e}"),
                            );
                            DmaOutcome::Failed
                        }
                    }
                }
            }
            _ => {
                self.stats.dma_out_of_range += 1;
                self.guest_error(format_args!(
                    "edu: DMA out of range, nothing copied: {} src {:#018x} dst {:#018x} cnt {:#x} \
                     (buffer {DMA_BUF_START:#x}-{:#x}, guest address after mask {ram:#x})",
                    if to_ram { "buffer->RAM" } else { "RAM->buffer" },
                    d.src,
                    d.dst,
                    d.cnt,
                    DMA_BUF_START + DMA_BUF_SIZE as u64 - 1
                ));
                DmaOutcome::OutOfRange
            }
        };
        self.dma.cmd &= !DMA_CMD_RUN;
        self.stats.dma_completed += 1;
        self.emit(|| EduEvent::DmaDone {
            regs: d,
            ram,
            outcome,
            waited,
        });
        if self.dma.cmd & DMA_CMD_IRQ != 0 {
            self.raise_irq(IRQ_DMA, irq);
        }
    }

    /// Counts a guest error and logs it through the guest log's rate
    /// limit ([`guest_log`]); the count is exact.
    fn guest_error(&mut self, msg: std::fmt::Arguments<'_>) {
        self.stats.guest_errors += 1;
        guest_log::log(
            self.stats.guest_errors,
            log::Level::Warn,
            "guest error",
            msg,
        );
    }

    fn msi_enabled(&self) -> bool {
        self.msi.enabled(&self.config)
    }

    /// QEMU's `edu_raise_irq`: OR `val` into the status; if the status is
    /// non-zero, send an MSI (when enabled) or drive INTx high.
    pub fn raise_irq(&mut self, val: u32, irq: &dyn InterruptSink) {
        self.set_irq_status(self.irq_status | val);
        if self.irq_status == 0 {
            return;
        }
        if self.msi_enabled() {
            self.send_msi(irq);
        } else {
            self.set_intx(true, irq);
        }
    }

    /// QEMU's `edu_lower_irq`: clear `val` from the status; drive INTx low
    /// when it reaches zero and MSI is off.
    pub fn lower_irq(&mut self, val: u32, irq: &dyn InterruptSink) {
        self.set_irq_status(self.irq_status & !val);
        if self.irq_status == 0 && !self.msi_enabled() {
            self.set_intx(false, irq);
        }
    }

    fn set_irq_status(&mut self, new: u32) {
        let old = self.irq_status;
        self.irq_status = new;
        if old != new {
            self.emit(|| EduEvent::IrqStatus { old, new });
        }
    }

    fn send_msi(&mut self, irq: &dyn InterruptSink) {
        if !self.config.bus_master_enabled() {
            // QEMU writes the message through the device's bus-master
            // address space, which is empty while bus mastering is off.
            self.stats.msi_blocked += 1;
            self.guest_error(format_args!("edu: MSI dropped, bus mastering disabled"));
            return;
        }
        let msg = self.msi.message(&self.config);
        self.stats.msi_sent += 1;
        if let Err(e) = irq.send_msi(msg) {
            self.stats.interrupt_errors += 1;
            guest_log::log(
                self.stats.interrupt_errors,
                log::Level::Error,
                "interrupt error",
                format_args!(
                    "edu: MSI address {:#x} data {:#x} not delivered: {e}",
                    msg.address, msg.data
                ),
            );
        }
    }

    fn set_intx(&mut self, level: bool, irq: &dyn InterruptSink) {
        self.intx_level = level;
        self.config.set_interrupt_status(level);
        self.update_intx_line(irq);
    }

    /// Drives the INTx line to `intx_level` unless the command register
    /// disables INTx; call after every configuration write.
    pub fn update_intx_line(&mut self, irq: &dyn InterruptSink) {
        let line = self.intx_level && !self.config.intx_disabled();
        if line == self.intx_line {
            return;
        }
        self.intx_line = line;
        let res = if line {
            self.stats.intx_asserts += 1;
            irq.assert_intx(IntxPin::A)
        } else {
            irq.deassert_intx(IntxPin::A)
        };
        if let Err(e) = res {
            self.stats.interrupt_errors += 1;
            guest_log::log(
                self.stats.interrupt_errors,
                log::Level::Error,
                "interrupt error",
                format_args!("edu: driving INTA to {line} failed: {e}"),
            );
        }
    }

    /// Guest configuration write, with the side effects of QEMU's
    /// `pci_default_write_config`: the INTx-disable bit masks or unmasks
    /// the line, and a write touching the MSI capability while MSI is
    /// enabled clamps its vector count and deasserts INTx
    /// (`msi_write_config`).
    pub fn config_write(&mut self, offset: usize, data: &[u8], irq: &dyn InterruptSink) {
        self.config.write(offset, data);
        if self
            .msi
            .after_config_write(&mut self.config, offset, data.len())
        {
            // QEMU's pci_device_deassert_intx: the device's INTx level and
            // the status bit drop; the interrupt status register stays.
            self.intx_level = false;
            self.config.set_interrupt_status(false);
        }
        self.update_intx_line(irq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edu_pci::config::{
        COMMAND, COMMAND_INTX_DISABLE, COMMAND_MASTER, COMMAND_MEMORY, STATUS, STATUS_INTERRUPT,
    };
    use edu_pci::{InterruptEvent, MsiMessage, RecordingInterrupts};
    use vm_memory::GuestMemoryMmap;

    const MEM_SIZE: usize = 1 << 20;
    const T0: Duration = Duration::ZERO;

    struct Rig {
        s: EduState,
        mem: GuestMemoryMmap,
        irq: RecordingInterrupts,
        now: Duration,
    }

    impl Rig {
        fn with(cfg: EduConfig) -> Self {
            let mut r = Rig {
                s: EduState::new(&cfg).unwrap(),
                mem: GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap(),
                irq: RecordingInterrupts::new(),
                now: T0,
            };
            r.cfg_w16(COMMAND, COMMAND_MEMORY | COMMAND_MASTER);
            r
        }
        fn new() -> Self {
            Self::with(EduConfig::manual())
        }
        fn r32(&mut self, off: u64) -> u32 {
            let mut b = [0u8; 4];
            self.s.mmio_read(off, &mut b);
            u32::from_le_bytes(b)
        }
        fn r64(&mut self, off: u64) -> u64 {
            let mut b = [0u8; 8];
            self.s.mmio_read(off, &mut b);
            u64::from_le_bytes(b)
        }
        fn w32(&mut self, off: u64, v: u32) -> Kick {
            self.s
                .mmio_write(off, &v.to_le_bytes(), self.now, &self.irq)
        }
        fn w64(&mut self, off: u64, v: u64) -> Kick {
            self.s
                .mmio_write(off, &v.to_le_bytes(), self.now, &self.irq)
        }
        fn step(&mut self, by: Duration) {
            self.now += by;
            self.s.process(self.now, &self.mem, &self.irq);
        }
        fn cfg_w16(&mut self, off: usize, v: u16) {
            self.s.config_write(off, &v.to_le_bytes(), &self.irq);
        }
        fn cfg_r16(&self, off: usize) -> u16 {
            self.s.config.read_u16(off)
        }
        fn enable_msi(&mut self, addr: u32, data: u16) {
            self.s.config_write(0x44, &addr.to_le_bytes(), &self.irq);
            self.s.config_write(0x4c, &data.to_le_bytes(), &self.irq);
            self.cfg_w16(0x42, 1);
        }
        fn dma(&mut self, src: u64, dst: u64, cnt: u64, cmd: u64) {
            self.w64(REG_DMA_SRC, src);
            self.w64(REG_DMA_DST, dst);
            self.w64(REG_DMA_CNT, cnt);
            assert_eq!(self.w64(REG_DMA_CMD, cmd | DMA_CMD_RUN), Kick::Dma);
            self.step(Duration::ZERO);
        }
        fn buf(&self) -> Vec<u8> {
            let mut v = vec![0u8; DMA_BUF_SIZE];
            self.s.read_buffer(0, &mut v);
            v
        }
    }

    /// An observer that keeps what it is told.
    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<EduEvent>>);

    impl EduObserver for Seen {
        fn event(&self, e: EduEvent) {
            self.0.lock().unwrap().push(e);
        }
    }

    #[test]
    fn observer_sees_factorial_dma_and_status_changes() {
        let mut r = Rig::with(EduConfig {
            dma_delay: Duration::from_millis(100),
            ..EduConfig::manual()
        });
        let seen = Arc::new(Seen::default());
        r.s.set_observer(seen.clone());
        r.w32(REG_STATUS, STATUS_IRQFACT);
        r.w32(REG_FACTORIAL, 10);
        r.step(Duration::ZERO);
        r.w32(REG_IRQ_ACK, IRQ_FACTORIAL);
        r.w64(REG_DMA_SRC, 0x1000);
        r.w64(REG_DMA_DST, DMA_BUF_START);
        r.w64(REG_DMA_CNT, 4);
        r.w64(REG_DMA_CMD, DMA_CMD_RUN | DMA_CMD_IRQ);
        r.step(Duration::from_millis(60));
        r.step(Duration::from_millis(50));
        // A raise of bits already set changes nothing: no event.
        r.w32(REG_IRQ_RAISE, IRQ_DMA);
        let regs = DmaRegs {
            src: 0x1000,
            dst: DMA_BUF_START,
            cnt: 4,
            cmd: DMA_CMD_RUN | DMA_CMD_IRQ,
        };
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                EduEvent::FactorialDone {
                    n: 10,
                    result: 3_628_800
                },
                EduEvent::IrqStatus { old: 0, new: 1 },
                EduEvent::IrqStatus { old: 1, new: 0 },
                EduEvent::DmaStarted {
                    regs,
                    delay: Duration::from_millis(100)
                },
                EduEvent::DmaDone {
                    regs,
                    ram: 0x1000,
                    outcome: DmaOutcome::Copied,
                    waited: Duration::from_millis(110),
                },
                EduEvent::IrqStatus {
                    old: 0,
                    new: IRQ_DMA
                },
            ]
        );
        // Out of range and with bus mastering off, it says so.
        r.dma(DMA_BUF_START, 0x2000, 8192, DMA_CMD_TO_RAM);
        r.step(Duration::from_millis(100));
        r.cfg_w16(COMMAND, COMMAND_MEMORY);
        r.dma(0x1000, DMA_BUF_START, 4, 0);
        r.step(Duration::from_millis(100));
        let outcomes: Vec<DmaOutcome> = seen
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                EduEvent::DmaDone { outcome, .. } => Some(*outcome),
                _ => None,
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                DmaOutcome::Copied,
                DmaOutcome::OutOfRange,
                DmaOutcome::Blocked
            ]
        );
    }

    #[test]
    fn config_space_matches_the_lab_report() {
        // The 64 bytes the lab guest read, after firmware and the driver
        // programmed BAR0, command and interrupt line.
        let lab: [u8; 64] = [
            0x34, 0x12, 0xe8, 0x11, 0x03, 0x01, 0x10, 0x00, 0x10, 0x00, 0xff, 0x00, 0x00, 0x00,
            0x00, 0x00, //
            0x00, 0x00, 0xa0, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf4, 0x1a,
            0x00, 0x11, //
            0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x01,
            0x00, 0x00,
        ];
        let mut r = Rig::new();
        r.s.config_write(0x10, &0xfea0_0000u32.to_le_bytes(), &r.irq);
        r.cfg_w16(COMMAND, 0x0103);
        r.s.config_write(0x3c, &[0x0b], &r.irq);
        let mut got = [0u8; 64];
        r.s.config.read(0, &mut got);
        assert_eq!(got, lab);
        // MSI capability at 0x40: id 5, end of list, 64-bit, disabled.
        assert_eq!(r.s.config.read_u32(0x40), 0x0080_0005);
    }

    #[test]
    fn bar0_sizes_as_one_mib_32_bit_memory() {
        let mut r = Rig::new();
        r.s.config_write(0x10, &[0xff; 4], &r.irq);
        assert_eq!(r.s.config.read_u32(0x10), 0xfff0_0000);
    }

    #[test]
    fn identification_and_liveness() {
        let mut r = Rig::new();
        assert_eq!(r.r32(REG_ID), 0x0100_00ed);
        r.w32(REG_ID, 0);
        assert_eq!(r.r32(REG_ID), 0x0100_00ed, "read-only");
        assert_eq!(r.r32(REG_LIVENESS), 0);
        r.w32(REG_LIVENESS, 0x1234_5678);
        assert_eq!(r.r32(REG_LIVENESS), !0x1234_5678);
    }

    #[test]
    fn factorial_busy_bit_and_result() {
        let mut r = Rig::new();
        assert_eq!(r.w32(REG_FACTORIAL, 10), Kick::Factorial);
        assert_eq!(r.r32(REG_STATUS) & STATUS_COMPUTING, STATUS_COMPUTING);
        assert_eq!(r.r32(REG_FACTORIAL), 10, "operand visible while computing");
        r.step(Duration::ZERO);
        assert_eq!(r.r32(REG_STATUS), 0);
        assert_eq!(r.r32(REG_FACTORIAL), 0x0037_5f00);
        assert_eq!(r.s.stats.factorials, 1);
    }

    #[test]
    fn factorial_writes_ignored_during_computation() {
        let mut r = Rig::new();
        r.w32(REG_FACTORIAL, 5);
        assert_eq!(r.w32(REG_FACTORIAL, 12), Kick::None);
        r.step(Duration::ZERO);
        assert_eq!(r.r32(REG_FACTORIAL), 120);
        assert_eq!(r.s.stats.ignored_busy_writes, 1);
    }

    #[test]
    fn factorial_edge_values() {
        assert_eq!(factorial(0), 1);
        assert_eq!(factorial(1), 1);
        assert_eq!(factorial(12), 479_001_600);
        assert_eq!(factorial(13), 1_932_053_504, "wraps mod 2^32");
        assert_eq!(factorial(34), 0);
        assert_eq!(factorial(u32::MAX), 0);
        let slow = |n: u32| (1..=n).fold(1u32, |a, v| a.wrapping_mul(v));
        for n in 0..200 {
            assert_eq!(factorial(n), slow(n), "n = {n}");
        }
    }

    #[test]
    fn status_irqfact_is_the_only_writable_bit() {
        let mut r = Rig::new();
        r.w32(REG_STATUS, 0xffff_ffff);
        assert_eq!(r.r32(REG_STATUS), STATUS_IRQFACT);
        r.w32(REG_STATUS, 0x7f);
        assert_eq!(r.r32(REG_STATUS), 0);
        // The status register stays writable while computing.
        r.w32(REG_FACTORIAL, 3);
        r.w32(REG_STATUS, STATUS_IRQFACT);
        assert_eq!(r.r32(REG_STATUS), STATUS_IRQFACT | STATUS_COMPUTING);
    }

    #[test]
    fn factorial_with_irqfact_raises_intx() {
        let mut r = Rig::new();
        r.w32(REG_STATUS, STATUS_IRQFACT);
        r.w32(REG_FACTORIAL, 4);
        r.step(Duration::ZERO);
        assert_eq!(r.r32(REG_IRQ_STATUS), IRQ_FACTORIAL);
        assert!(r.irq.intx_level(IntxPin::A));
        r.w32(REG_IRQ_ACK, IRQ_FACTORIAL);
        assert!(!r.irq.intx_level(IntxPin::A));
    }

    #[test]
    fn intx_level_follows_irq_status() {
        let mut r = Rig::new();
        r.w32(REG_IRQ_RAISE, 0x1234_5678);
        assert_eq!(r.r32(REG_IRQ_STATUS), 0x1234_5678);
        assert!(r.irq.intx_level(IntxPin::A));
        assert_ne!(r.cfg_r16(STATUS) & STATUS_INTERRUPT, 0, "status shows INTx");
        r.w32(REG_IRQ_RAISE, 0x1);
        assert_eq!(r.irq.intx_assert_count(), 1, "a level is asserted once");
        r.w32(REG_IRQ_ACK, 0x1234_0000);
        assert!(r.irq.intx_level(IntxPin::A), "still pending bits");
        r.w32(REG_IRQ_ACK, 0xffff_ffff);
        assert_eq!(r.r32(REG_IRQ_STATUS), 0);
        assert!(!r.irq.intx_level(IntxPin::A));
        assert_eq!(r.cfg_r16(STATUS) & STATUS_INTERRUPT, 0);
        r.w32(REG_IRQ_RAISE, 0);
        assert!(
            !r.irq.intx_level(IntxPin::A),
            "raising nothing asserts nothing"
        );
    }

    #[test]
    fn intx_disable_bit_masks_the_line() {
        let mut r = Rig::new();
        r.cfg_w16(
            COMMAND,
            COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE,
        );
        r.w32(REG_IRQ_RAISE, 1);
        assert!(!r.irq.intx_level(IntxPin::A));
        assert_ne!(
            r.cfg_r16(STATUS) & STATUS_INTERRUPT,
            0,
            "status still shows it"
        );
        r.cfg_w16(COMMAND, COMMAND_MEMORY | COMMAND_MASTER);
        assert!(
            r.irq.intx_level(IntxPin::A),
            "re-enabling drives the pending level"
        );
        r.cfg_w16(
            COMMAND,
            COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE,
        );
        assert!(!r.irq.intx_level(IntxPin::A));
    }

    #[test]
    fn msi_sent_per_raise_and_not_on_ack() {
        let mut r = Rig::new();
        r.enable_msi(0xfee0_0000, 0x41);
        r.w32(REG_IRQ_RAISE, 1);
        r.w32(REG_IRQ_RAISE, 2);
        r.w32(REG_IRQ_RAISE, 0);
        let m = MsiMessage {
            address: 0xfee0_0000,
            data: 0x41,
        };
        assert_eq!(
            r.irq.msis(),
            vec![m, m, m],
            "one MSI per raise while status != 0"
        );
        r.w32(REG_IRQ_ACK, 3);
        assert_eq!(r.irq.msi_count(), 3);
        r.w32(REG_IRQ_RAISE, 0);
        assert_eq!(r.irq.msi_count(), 3, "no MSI when status is 0");
        assert!(!r.irq.intx_level(IntxPin::A));
        assert_eq!(r.s.stats.msi_sent, 3);
    }

    #[test]
    fn msi_needs_bus_master() {
        let mut r = Rig::new();
        r.enable_msi(0xfee0_0000, 0x41);
        r.cfg_w16(COMMAND, COMMAND_MEMORY);
        r.w32(REG_IRQ_RAISE, 1);
        assert_eq!(r.irq.msi_count(), 0);
        assert_eq!(r.s.stats.msi_blocked, 1);
    }

    #[test]
    fn enabling_msi_deasserts_intx_like_qemu() {
        let mut r = Rig::new();
        r.w32(REG_IRQ_RAISE, 1);
        assert!(r.irq.intx_level(IntxPin::A));
        r.enable_msi(0xfee0_0000, 0x41);
        assert!(
            !r.irq.intx_level(IntxPin::A),
            "msi_write_config deasserts INTx"
        );
        assert_eq!(r.cfg_r16(STATUS) & STATUS_INTERRUPT, 0);
        assert_eq!(r.r32(REG_IRQ_STATUS), 1, "the device's status is kept");
        r.w32(REG_IRQ_ACK, 1);
        assert_eq!(r.irq.msi_count(), 0, "an ack sends nothing");
        // Back to INTx: the line stays low until the next raise.
        r.w32(REG_IRQ_RAISE, 2);
        assert_eq!(r.irq.msi_count(), 1);
        r.cfg_w16(0x42, 0);
        assert!(!r.irq.intx_level(IntxPin::A));
        r.w32(REG_IRQ_RAISE, 0);
        assert!(
            r.irq.intx_level(IntxPin::A),
            "raise with status != 0 asserts"
        );
    }

    #[test]
    fn access_size_rules() {
        let mut r = Rig::with(EduConfig {
            rejected_read: RejectedRead::AllOnes,
            ..EduConfig::manual()
        });
        let mut b1 = [0u8; 1];
        let mut b2 = [0u8; 2];
        r.s.mmio_read(REG_ID, &mut b1);
        assert_eq!(b1, [0xff]);
        r.s.mmio_read(REG_ID, &mut b2);
        assert_eq!(b2, [0xff; 2]);
        assert_eq!(r.r64(REG_ID), u64::MAX, "8 bytes below 0x80");
        assert_eq!(r.r32(0x02), u32::MAX, "misaligned");
        assert_eq!(r.r32(0x0c), u32::MAX, "no register");
        assert_eq!(r.r32(0x60), u32::MAX, "raise is write-only");
        assert_eq!(r.r32(0x84), u32::MAX, "upper half of a DMA register");
        assert_eq!(r.r64(0x84), u64::MAX, "misaligned 8 bytes");
        let mut b3 = [0u8; 3];
        r.s.mmio_read(0x80, &mut b3);
        assert_eq!(b3, [0xff; 3]);
        let mut b16 = [0u8; 16];
        r.s.mmio_read(0x80, &mut b16);
        assert_eq!(b16, [0xff; 16]);
        r.s.mmio_read(u64::MAX - 3, &mut [0u8; 4]);
        // Rejected writes change nothing.
        r.s.mmio_write(REG_LIVENESS, &[1], T0, &r.irq);
        r.s.mmio_write(REG_LIVENESS, &[1, 2], T0, &r.irq);
        r.s.mmio_write(REG_LIVENESS, &1u64.to_le_bytes(), T0, &r.irq);
        r.s.mmio_write(u64::MAX, &[0; 4], T0, &r.irq);
        assert_eq!(r.r32(REG_LIVENESS), 0);
        assert!(r.s.stats.rejected_accesses >= 10);
    }

    #[test]
    fn rejected_reads_are_zero_by_default_as_recorded_from_qemu() {
        let mut r = Rig::new();
        let mut b1 = [0xaau8; 1];
        r.s.mmio_read(REG_ID, &mut b1);
        assert_eq!(b1, [0]);
        let mut b2 = [0xaau8; 2];
        r.s.mmio_read(REG_ID, &mut b2);
        assert_eq!(b2, [0; 2]);
        assert_eq!(r.r32(0x01), 0, "misaligned");
        assert_eq!(
            r.r64(REG_ID),
            u64::MAX,
            "edu's own rejection stays all ones"
        );
        assert_eq!(r.r32(0x0c), u32::MAX);
    }

    #[test]
    fn dma_registers_four_and_eight_bytes() {
        let mut r = Rig::new();
        r.w64(REG_DMA_SRC, 0x1122_3344_5566_7788);
        assert_eq!(r.r64(REG_DMA_SRC), 0x1122_3344_5566_7788);
        assert_eq!(r.r32(REG_DMA_SRC), 0x5566_7788);
        r.w32(REG_DMA_SRC, 0xaabb_ccdd);
        assert_eq!(
            r.r64(REG_DMA_SRC),
            0xaabb_ccdd,
            "a 4-byte write replaces all 64 bits"
        );
        r.w32(0x84, 0x1);
        assert_eq!(r.r64(REG_DMA_SRC), 0xaabb_ccdd, "0x84 is not a register");
        r.w64(REG_DMA_CMD, 0x6);
        assert_eq!(r.r64(REG_DMA_CMD), 0, "command without RUN is ignored");
    }

    #[test]
    fn dma_ram_to_buffer_and_back() {
        let mut r = Rig::new();
        let pattern: Vec<u8> = (0..DMA_BUF_SIZE).map(|i| (i * 7 + 3) as u8).collect();
        r.mem.write_slice(&pattern, GuestAddress(0x1000)).unwrap();
        r.dma(0x1000, DMA_BUF_START, DMA_BUF_SIZE as u64, 0);
        assert_eq!(r.buf(), pattern);
        r.dma(DMA_BUF_START, 0x8000, DMA_BUF_SIZE as u64, DMA_CMD_TO_RAM);
        let mut back = vec![0u8; DMA_BUF_SIZE];
        r.mem.read_slice(&mut back, GuestAddress(0x8000)).unwrap();
        assert_eq!(back, pattern);
        assert_eq!(r.s.stats.dma_completed, 2);
        assert_eq!(r.r64(REG_DMA_CMD) & DMA_CMD_RUN, 0);
    }

    #[test]
    fn dma_one_byte_at_each_buffer_edge() {
        let mut r = Rig::new();
        r.mem
            .write_slice(&[0xa5, 0x5a], GuestAddress(0x2000))
            .unwrap();
        r.dma(0x2000, DMA_BUF_START, 1, 0);
        r.dma(0x2001, DMA_BUF_START + 4095, 1, 0);
        let b = r.buf();
        assert_eq!((b[0], b[4095]), (0xa5, 0x5a));
        r.dma(DMA_BUF_START + 4095, 0x3000, 1, DMA_CMD_TO_RAM);
        r.dma(DMA_BUF_START, 0x3001, 1, DMA_CMD_TO_RAM);
        let mut out = [0u8; 2];
        r.mem.read_slice(&mut out, GuestAddress(0x3000)).unwrap();
        assert_eq!(out, [0x5a, 0xa5]);
        assert_eq!(r.s.stats.dma_out_of_range, 0);
    }

    #[test]
    fn dma_zero_bytes_is_a_completed_no_op() {
        let mut r = Rig::new();
        r.dma(u64::MAX, DMA_BUF_START + 4096, 0, DMA_CMD_IRQ);
        assert_eq!(r.s.stats.dma_out_of_range, 0);
        assert_eq!(r.r32(REG_IRQ_STATUS), IRQ_DMA);
    }

    #[test]
    fn dma_out_of_range_copies_nothing_and_completes() {
        let cases: [(u64, u64, u64, u64); 8] = [
            // (src, dst, cnt, cmd)
            (0x1000, DMA_BUF_START - 1, 1, 0),
            (0x1000, DMA_BUF_START + 4096, 1, 0),
            (0x1000, DMA_BUF_START + 1, 4096, 0),
            (0x1000, DMA_BUF_START, 4097, 0),
            (0x1000, DMA_BUF_START, u64::MAX, 0),
            (u64::MAX, DMA_BUF_START + 1, u64::MAX, DMA_CMD_TO_RAM),
            // Guest side outside the 1 MiB of RAM (after the 28-bit mask).
            (MEM_SIZE as u64 - 1, DMA_BUF_START, 2, 0),
            (DMA_BUF_START, 0x0fff_f000, 16, DMA_CMD_TO_RAM),
        ];
        for (i, &(src, dst, cnt, cmd)) in cases.iter().enumerate() {
            let mut r = Rig::new();
            r.mem
                .write_slice(&[0x77; 16], GuestAddress(0x1000))
                .unwrap();
            let before = r.buf();
            r.dma(src, dst, cnt, cmd | DMA_CMD_IRQ);
            assert_eq!(r.buf(), before, "case {i}: buffer untouched");
            assert_eq!(r.s.stats.dma_out_of_range, 1, "case {i}: counted");
            assert_eq!(
                r.r64(REG_DMA_CMD) & DMA_CMD_RUN,
                0,
                "case {i}: run bit cleared"
            );
            assert_eq!(
                r.r32(REG_IRQ_STATUS),
                IRQ_DMA,
                "case {i}: completion raised"
            );
        }
    }

    #[test]
    fn dma_out_of_range_to_ram_writes_nothing() {
        let mut r = Rig::new();
        r.dma(DMA_BUF_START + 4000, 0x100, 200, DMA_CMD_TO_RAM);
        let mut out = [0xffu8; 200];
        r.mem.read_slice(&mut out, GuestAddress(0x100)).unwrap();
        assert_eq!(out, [0u8; 200]);
        r.dma(DMA_BUF_START, MEM_SIZE as u64 - 8, 16, DMA_CMD_TO_RAM);
        let mut tail = [0xffu8; 8];
        r.mem
            .read_slice(&mut tail, GuestAddress(MEM_SIZE as u64 - 8))
            .unwrap();
        assert_eq!(
            tail, [0u8; 8],
            "a straddling transfer writes no partial bytes"
        );
        assert_eq!(r.s.stats.dma_out_of_range, 2);
    }

    #[test]
    fn dma_across_guest_memory_regions_and_holes() {
        let mut r = Rig::new();
        // Two adjacent regions after a hole: 0-0xfff, hole, 0x2000-0x3fff.
        r.mem = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x1000),
            (GuestAddress(0x2000), 0x1000),
            (GuestAddress(0x3000), 0x1000),
        ])
        .unwrap();
        let pattern: Vec<u8> = (0..0x200).map(|i| (i * 5 + 1) as u8).collect();
        r.mem.write_slice(&pattern, GuestAddress(0x2f00)).unwrap();
        r.dma(0x2f00, DMA_BUF_START, 0x200, 0);
        assert_eq!(&r.buf()[..0x200], &pattern[..], "read across two regions");
        r.dma(DMA_BUF_START, 0x3e00, 0x200, DMA_CMD_TO_RAM);
        let mut back = vec![0u8; 0x200];
        r.mem.read_slice(&mut back, GuestAddress(0x3e00)).unwrap();
        assert_eq!(back, pattern);
        assert_eq!(r.s.stats.dma_out_of_range, 0);
        // Over the hole: nothing read, nothing written, even the part of
        // the range that is memory.
        // (RAM 0xf00-0xfff holds a pattern the buffer does not, so a
        // partial copy either way would show.)
        r.mem
            .write_slice(&[0xaa; 0x100], GuestAddress(0xf00))
            .unwrap();
        let before = r.buf();
        r.dma(0xf00, DMA_BUF_START + 0x800, 0x200, 0);
        assert_eq!(r.buf(), before, "buffer untouched");
        r.dma(DMA_BUF_START, 0xf00, 0x200, DMA_CMD_TO_RAM);
        let mut low = [0u8; 0x100];
        r.mem.read_slice(&mut low, GuestAddress(0xf00)).unwrap();
        assert_eq!(low, [0xaa; 0x100], "no partial write before the hole");
        // Past the last region.
        r.dma(DMA_BUF_START, 0x3f00, 0x200, DMA_CMD_TO_RAM);
        assert_eq!(r.s.stats.dma_out_of_range, 3);
    }

    #[test]
    fn dma_of_a_whole_region_and_one_byte_over_its_end() {
        let mut r = Rig::new();
        r.mem = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x1000),
            (GuestAddress(0x2000), 0x1000),
        ])
        .unwrap();
        let pattern: Vec<u8> = (0..DMA_BUF_SIZE).map(|i| (i * 3 + 7) as u8).collect();
        r.mem.write_slice(&pattern, GuestAddress(0x2000)).unwrap();
        r.dma(0x2000, DMA_BUF_START, 0x1000, 0);
        assert_eq!(r.buf(), pattern, "exactly one region, read");
        r.dma(DMA_BUF_START, 0, 0x1000, DMA_CMD_TO_RAM);
        let mut back = vec![0u8; DMA_BUF_SIZE];
        r.mem.read_slice(&mut back, GuestAddress(0)).unwrap();
        assert_eq!(back, pattern, "exactly one region, written");
        assert_eq!(r.s.stats.dma_out_of_range, 0);
        // One byte past the region's end is the hole: nothing moves.
        r.mem.write_slice(&[0; 8], GuestAddress(0x2000)).unwrap();
        r.dma(0x2001, DMA_BUF_START, 0x1000, 0);
        assert_eq!(r.buf(), pattern, "buffer untouched");
        r.dma(DMA_BUF_START, 0x2001, 0x1000, DMA_CMD_TO_RAM);
        let mut head = [0xffu8; 8];
        r.mem.read_slice(&mut head, GuestAddress(0x2000)).unwrap();
        assert_eq!(head, [0; 8], "no partial write");
        assert_eq!(r.s.stats.dma_out_of_range, 2);
    }

    #[test]
    fn dma_mask_clamps_the_guest_address() {
        let mut r = Rig::new();
        r.mem.write_slice(&[0x42], GuestAddress(0x1234)).unwrap();
        r.dma(0xf000_1234, DMA_BUF_START, 1, 0);
        assert_eq!(r.buf()[0], 0x42);
        assert_eq!(r.s.stats.dma_clamped, 1);
        let mut r = Rig::with(EduConfig {
            dma_mask: 0xfff,
            ..EduConfig::manual()
        });
        r.mem.write_slice(&[0x43], GuestAddress(0x234)).unwrap();
        r.dma(0x1234, DMA_BUF_START, 1, 0);
        assert_eq!(r.buf()[0], 0x43);
    }

    #[test]
    fn dma_registers_ignored_while_running_and_delay_honoured() {
        let mut r = Rig::with(EduConfig {
            dma_delay: Duration::from_millis(100),
            ..EduConfig::manual()
        });
        r.mem.write_slice(&[9; 8], GuestAddress(0x1000)).unwrap();
        r.w64(REG_DMA_SRC, 0x1000);
        r.w64(REG_DMA_DST, DMA_BUF_START);
        r.w64(REG_DMA_CNT, 8);
        assert_eq!(r.w64(REG_DMA_CMD, DMA_CMD_RUN | DMA_CMD_IRQ), Kick::Dma);
        r.w64(REG_DMA_SRC, 0x2000);
        r.w64(REG_DMA_DST, DMA_BUF_START + 8);
        r.w64(REG_DMA_CNT, 1);
        assert_eq!(r.w64(REG_DMA_CMD, DMA_CMD_RUN | DMA_CMD_TO_RAM), Kick::None);
        assert_eq!(
            r.s.dma_regs(),
            DmaRegs {
                src: 0x1000,
                dst: DMA_BUF_START,
                cnt: 8,
                cmd: DMA_CMD_RUN | DMA_CMD_IRQ
            }
        );
        assert_eq!(r.s.stats.ignored_busy_writes, 4);
        r.step(Duration::from_millis(99));
        assert_eq!(
            r.r64(REG_DMA_CMD),
            DMA_CMD_RUN | DMA_CMD_IRQ,
            "still running"
        );
        assert_eq!(r.r32(REG_IRQ_STATUS), 0);
        r.step(Duration::from_millis(1));
        assert_eq!(r.r64(REG_DMA_CMD), DMA_CMD_IRQ);
        assert_eq!(&r.buf()[..8], &[9; 8]);
        assert_eq!(r.r32(REG_IRQ_STATUS), IRQ_DMA);
        assert!(r.irq.intx_level(IntxPin::A));
    }

    #[test]
    fn dma_irq_via_msi() {
        let mut r = Rig::new();
        r.enable_msi(0xfee0_0000, 0x30);
        r.dma(0, DMA_BUF_START, 4, DMA_CMD_IRQ);
        assert_eq!(
            r.irq.events(),
            vec![InterruptEvent::Msi(MsiMessage {
                address: 0xfee0_0000,
                data: 0x30
            })]
        );
    }

    #[test]
    fn dma_without_bus_master_reads_zeros_and_writes_nothing() {
        let mut r = Rig::new();
        r.mem.write_slice(&[0x11; 4], GuestAddress(0x1000)).unwrap();
        r.dma(0x1000, DMA_BUF_START, 4, 0);
        r.cfg_w16(COMMAND, COMMAND_MEMORY);
        r.mem.write_slice(&[0x22; 4], GuestAddress(0x1000)).unwrap();
        r.dma(DMA_BUF_START, 0x1000, 4, DMA_CMD_TO_RAM);
        let mut out = [0u8; 4];
        r.mem.read_slice(&mut out, GuestAddress(0x1000)).unwrap();
        assert_eq!(out, [0x22; 4], "write to RAM dropped");
        r.dma(0x1000, DMA_BUF_START, 4, 0);
        assert_eq!(&r.buf()[..4], &[0; 4], "read from RAM gave zeros");
        assert_eq!(r.s.stats.dma_blocked, 2);
        assert_eq!(r.s.stats.dma_completed, 3);
    }

    #[test]
    fn dma_buffer_is_page_aligned() {
        let r = Rig::new();
        assert_eq!(r.s.buf.0.as_ptr() as usize % DMA_BUF_SIZE, 0);
    }

    #[test]
    fn read_buffer_bounds() {
        let r = Rig::new();
        let mut out = [1u8; 8];
        assert_eq!(r.s.read_buffer(4092, &mut out), 4);
        assert_eq!(r.s.read_buffer(4096, &mut out), 0);
        assert_eq!(r.s.read_buffer(usize::MAX, &mut out), 0);
    }
}
