//! edu's register state and behaviour, free of threads and clocks.
//!
//! [`EduState`] is everything QEMU's `EduState` holds plus our counters and
//! the configuration space. Every method takes the current device time
//! (`now`, a [`Duration`] since the device's epoch) and the guest memory and
//! interrupt sink it needs, so the same code runs under the worker thread,
//! under a manual test clock and inside a fuzz target.

use super::regs::*;
use super::{EduConfig, EduError, EduStats, RejectedRead};
use edu_pci::config::{ConfigSpace, Type0Header};
use edu_pci::{BarKind, BarSpec, InterruptSink, IntxPin, MsiCapability};
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

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
    buf: Box<[u8; DMA_BUF_SIZE]>,
    /// INTx level the device wants (QEMU's `irq_state`).
    intx_level: bool,
    /// Level last driven on the sink (`intx_level` and not disabled).
    intx_line: bool,
    dma_delay: Duration,
    dma_mask: u64,
    rejected_read: RejectedRead,
    pub(crate) stats: EduStats,
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
            buf: Box::new([0; DMA_BUF_SIZE]),
            intx_level: false,
            intx_line: false,
            dma_delay: cfg.dma_delay,
            dma_mask: cfg.dma_mask,
            rejected_read: cfg.rejected_read,
            stats: EduStats::default(),
        })
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
        let Some(src) = self.buf.get(offset..) else {
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
        if self.dma_deadline.is_some_and(|d| d <= now) {
            self.dma_deadline = None;
            self.finish_dma(mem, irq);
        }
    }

    fn finish_factorial(&mut self, irq: &dyn InterruptSink) {
        self.fact = factorial(self.fact);
        self.status &= !STATUS_COMPUTING;
        self.stats.factorials += 1;
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

    fn finish_dma<M: GuestMemory + ?Sized>(&mut self, mem: &M, irq: &dyn InterruptSink) {
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
            log::warn!(
                target: "edu::guest_error",
                "edu: clamping DMA address {ram_raw:#018x} to {ram:#018x} (mask {:#x})",
                self.dma_mask
            );
        }
        let range = Self::buffer_range(buf_addr, d.cnt);
        let perm = if to_ram {
            Permissions::Write
        } else {
            Permissions::Read
        };
        let ram_ok = range.as_ref().is_some_and(|r| {
            r.is_empty()
                || (ram.checked_add(d.cnt).is_some()
                    && mem.check_range(GuestAddress(ram), r.len(), perm))
        });
        match range {
            Some(r) if ram_ok => {
                if !self.config.bus_master_enabled() {
                    // QEMU: with bus mastering off the device's DMA address
                    // space is empty: reads give zeros, writes vanish.
                    self.stats.dma_blocked += 1;
                    log::warn!(
                        target: "edu::guest_error",
                        "edu: DMA with bus mastering disabled (src {:#x} dst {:#x} cnt {:#x})",
                        d.src,
                        d.dst,
                        d.cnt
                    );
                    if !to_ram {
                        self.buf[r].fill(0);
                    }
                } else {
                    let res = if to_ram {
                        mem.write_slice(&self.buf[r], GuestAddress(ram))
                    } else {
                        mem.read_slice(&mut self.buf[r], GuestAddress(ram))
                    };
                    if let Err(e) = res {
                        self.stats.dma_errors += 1;
                        log::error!("edu: DMA to guest memory at {ram:#x} failed: {e}");
                    }
                }
            }
            _ => {
                self.stats.dma_out_of_range += 1;
                log::warn!(
                    target: "edu::guest_error",
                    "edu: DMA out of range, nothing copied: {} src {:#018x} dst {:#018x} cnt {:#x} \
                     (buffer {DMA_BUF_START:#x}-{:#x}, guest address after mask {ram:#x})",
                    if to_ram { "buffer->RAM" } else { "RAM->buffer" },
                    d.src,
                    d.dst,
                    d.cnt,
                    DMA_BUF_START + DMA_BUF_SIZE as u64 - 1
                );
            }
        }
        self.dma.cmd &= !DMA_CMD_RUN;
        self.stats.dma_completed += 1;
        if self.dma.cmd & DMA_CMD_IRQ != 0 {
            self.raise_irq(IRQ_DMA, irq);
        }
    }

    fn msi_enabled(&self) -> bool {
        self.msi.enabled(&self.config)
    }

    /// QEMU's `edu_raise_irq`: OR `val` into the status; if the status is
    /// non-zero, send an MSI (when enabled) or drive INTx high.
    pub fn raise_irq(&mut self, val: u32, irq: &dyn InterruptSink) {
        self.irq_status |= val;
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
        self.irq_status &= !val;
        if self.irq_status == 0 && !self.msi_enabled() {
            self.set_intx(false, irq);
        }
    }

    fn send_msi(&mut self, irq: &dyn InterruptSink) {
        if !self.config.bus_master_enabled() {
            // QEMU writes the message through the device's bus-master
            // address space, which is empty while bus mastering is off.
            self.stats.msi_blocked += 1;
            log::warn!(target: "edu::guest_error", "edu: MSI dropped, bus mastering disabled");
            return;
        }
        let msg = self.msi.message(&self.config);
        self.stats.msi_sent += 1;
        if let Err(e) = irq.send_msi(msg) {
            self.stats.interrupt_errors += 1;
            log::error!("edu: sending MSI {msg:?} failed: {e}");
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
            log::error!("edu: driving INTA to {line} failed: {e}");
        }
    }

    /// Guest configuration write, with the INTx-disable side effect.
    pub fn config_write(&mut self, offset: usize, data: &[u8], irq: &dyn InterruptSink) {
        self.config.write(offset, data);
        self.update_intx_line(irq);
    }
}
