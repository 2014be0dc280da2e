//! Routing of the guest's port and MMIO accesses to devices.
//!
//! Ports: the UART and i8042 ([`crate::legacy`]), the CMOS clock
//! ([`crate::cmos`]), the ACPI PM1 registers ([`crate::pm`]), the reset
//! control register at 0xcf9, the PCI configuration ports 0xcf8/0xcfc. MMIO: the
//! PCI BARs. Anything else reads as all ones and ignores writes, as on real
//! hardware with nothing decoding the address; those accesses are counted,
//! and logged when `--trace-devices` is on or at debug level.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edu_devices::guest_log::GuestEvents;
use vmm_sys_util::eventfd::EventFd;

use std::sync::Mutex;

use crate::cmos::{Cmos, CMOS_DATA_PORT, CMOS_INDEX_PORT};
use crate::legacy::{lock, Legacy, I8042_PORT, I8042_PORT_LEN};
use crate::pm::{self, Pm1, PmWrite};

/// PIIX-style reset control register (byte access at 0xcf9).
pub const RESET_CONTROL_PORT: u16 = 0xcf9;
/// Bit of the reset control register that resets the system.
const RESET_CONTROL_RESET: u8 = 0x04;
/// The POST diagnostic port Linux writes for I/O delays.
const POST_PORT: u16 = 0x80;

/// What a port write asks of the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PioOutcome {
    /// Handled; keep running.
    Done,
    /// The guest reset the machine.
    Reset,
    /// The guest powered the machine off (ACPI S5).
    PowerOff,
}

/// PCI configuration and BAR accesses, provided by the PCI bus.
pub trait PciAccess: Send + Sync {
    /// Port read in 0xcf8..=0xcff; `false` if not decoded.
    fn config_read(&self, port: u16, data: &mut [u8]) -> bool;
    /// Port write in 0xcf8..=0xcff; `false` if not decoded.
    fn config_write(&self, port: u16, data: &[u8]) -> bool;
    /// MMIO read; `false` if no BAR decodes `addr`.
    fn mmio_read(&self, addr: u64, data: &mut [u8]) -> bool;
    /// MMIO write; `false` if no BAR decodes `addr`.
    fn mmio_write(&self, addr: u64, data: &[u8]) -> bool;
}

/// Exit and access counters, printed when the VM ends.
#[derive(Debug)]
pub struct Stats {
    /// Port exits.
    pub pio: AtomicU64,
    /// MMIO exits.
    pub mmio: AtomicU64,
    /// Accesses nothing decoded.
    pub unhandled: GuestEvents,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            pio: AtomicU64::new(0),
            mmio: AtomicU64::new(0),
            unhandled: GuestEvents::new("access to nothing"),
        }
    }
}

/// The VM's device bus.
pub struct Bus {
    legacy: Legacy,
    cmos: Mutex<Cmos>,
    pm: Mutex<Pm1>,
    reset: EventFd,
    pci: Option<Arc<dyn PciAccess>>,
    trace: bool,
    /// Counters.
    pub stats: Stats,
}

impl Bus {
    /// A bus with the legacy devices; `reset` is the i8042's reset eventfd.
    pub fn new(legacy: Legacy, reset: EventFd, trace: bool) -> Self {
        Bus {
            legacy,
            cmos: Mutex::new(Cmos::new()),
            pm: Mutex::new(Pm1::default()),
            reset,
            pci: None,
            trace,
            stats: Stats::default(),
        }
    }

    /// Attaches the PCI bus.
    pub fn set_pci(&mut self, pci: Arc<dyn PciAccess>) {
        self.pci = Some(pci);
    }

    /// The legacy devices (for console input and flushing).
    pub fn legacy(&self) -> &Legacy {
        &self.legacy
    }

    /// Counts an access nothing decodes; logs it with `--trace-devices`
    /// (every access is then logged, by request), else at debug level
    /// through the guest log's rate limit.
    fn unhandled(&self, what: &str, addr: u64, len: usize) {
        if self.trace {
            log::info!("unhandled {what} {addr:#x} size {len}");
        }
        self.stats.unhandled.record(
            log::Level::Debug,
            format_args!("unhandled {what} {addr:#x} size {len}"),
        );
    }

    /// A guest port read.
    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        self.stats.pio.fetch_add(1, Ordering::Relaxed);
        let handled = self.legacy.pio_read(port, data)
            || (matches!(port, CMOS_INDEX_PORT | CMOS_DATA_PORT) && {
                let v = lock(&self.cmos).read(port);
                data.fill(0);
                if let Some(b) = data.first_mut() {
                    *b = v;
                }
                true
            })
            || (pm::decodes(port) && lock(&self.pm).read(port, data))
            || (port == RESET_CONTROL_PORT && data.len() == 1 && {
                data[0] = 0;
                true
            })
            || self.pci.as_ref().is_some_and(|p| p.config_read(port, data));
        if !handled {
            data.fill(0xff);
            if port != POST_PORT {
                self.unhandled("port read", port.into(), data.len());
            }
        }
        if self.trace {
            log::info!("pio read  {port:#06x} -> {data:02x?}");
        }
    }

    /// A guest port write.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> PioOutcome {
        self.stats.pio.fetch_add(1, Ordering::Relaxed);
        if self.trace {
            log::info!("pio write {port:#06x} <- {data:02x?}");
        }
        if port == RESET_CONTROL_PORT && data.len() == 1 {
            return if data[0] & RESET_CONTROL_RESET != 0 {
                PioOutcome::Reset
            } else {
                PioOutcome::Done
            };
        }
        if matches!(port, CMOS_INDEX_PORT | CMOS_DATA_PORT) {
            if let Some(&v) = data.first() {
                lock(&self.cmos).write(port, v);
            }
            return PioOutcome::Done;
        }
        if pm::decodes(port) {
            return match lock(&self.pm).write(port, data) {
                PmWrite::PowerOff => PioOutcome::PowerOff,
                PmWrite::Done | PmWrite::NotOurs => PioOutcome::Done,
            };
        }
        if self.legacy.pio_write(port, data) {
            // The i8042 signals a reset through its eventfd.
            if (I8042_PORT..I8042_PORT + I8042_PORT_LEN).contains(&port)
                && self.reset.read().is_ok()
            {
                return PioOutcome::Reset;
            }
            return PioOutcome::Done;
        }
        if self
            .pci
            .as_ref()
            .is_some_and(|p| p.config_write(port, data))
        {
            return PioOutcome::Done;
        }
        if port != POST_PORT {
            self.unhandled("port write", port.into(), data.len());
        }
        PioOutcome::Done
    }

    /// A guest MMIO read.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        self.stats.mmio.fetch_add(1, Ordering::Relaxed);
        if !self.pci.as_ref().is_some_and(|p| p.mmio_read(addr, data)) {
            data.fill(0xff);
            self.unhandled("mmio read", addr, data.len());
        }
        if self.trace {
            log::info!("mmio read  {addr:#x} -> {data:02x?}");
        }
    }

    /// A guest MMIO write.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        self.stats.mmio.fetch_add(1, Ordering::Relaxed);
        if self.trace {
            log::info!("mmio write {addr:#x} <- {data:02x?}");
        }
        if !self.pci.as_ref().is_some_and(|p| p.mmio_write(addr, data)) {
            self.unhandled("mmio write", addr, data.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::EventFdTrigger;

    fn bus() -> Bus {
        let reset = EventFdTrigger::new().unwrap();
        let r = reset.try_clone().unwrap();
        let l = Legacy::new(
            EventFdTrigger::new().unwrap(),
            reset,
            Box::new(std::io::sink()),
        );
        Bus::new(l, r, false)
    }

    #[test]
    fn unknown_ports_and_mmio_read_all_ones_and_count() {
        let b = bus();
        let mut d = [0u8; 4];
        b.pio_read(0x1234, &mut d);
        assert_eq!(d, [0xff; 4]);
        let mut m = [0u8; 8];
        b.mmio_read(0xd000_0000, &mut m);
        assert_eq!(m, [0xff; 8]);
        b.mmio_write(0xd000_0000, &[1, 2, 3, 4]);
        assert_eq!(b.stats.unhandled.count(), 3);
        assert_eq!(b.stats.pio.load(Ordering::Relaxed), 1);
        assert_eq!(b.stats.mmio.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn keyboard_controller_and_cf9_reset() {
        let b = bus();
        assert_eq!(b.pio_write(0x64, &[0x01]), PioOutcome::Done);
        assert_eq!(b.pio_write(0x64, &[0xfe]), PioOutcome::Reset);
        assert_eq!(b.pio_write(RESET_CONTROL_PORT, &[0x02]), PioOutcome::Done);
        assert_eq!(b.pio_write(RESET_CONTROL_PORT, &[0x06]), PioOutcome::Reset);
    }

    #[test]
    fn cmos_answers_on_0x70_0x71() {
        let b = bus();
        assert_eq!(b.pio_write(0x70, &[0x0d]), PioOutcome::Done);
        let mut d = [0u8];
        b.pio_read(0x71, &mut d);
        assert_eq!(d[0], 0x80, "status D: time valid");
        assert_eq!(b.stats.unhandled.count(), 0);
    }

    #[test]
    fn acpi_s5_powers_off() {
        let b = bus();
        let mut d = [0u8; 2];
        b.pio_read(crate::acpi::PM1A_CNT_BLK, &mut d);
        assert_eq!(d, [1, 0], "SCI_EN: in ACPI mode");
        let s5 = u16::from(crate::acpi::S5_SLP_TYP) << 10;
        let port = crate::acpi::PM1A_CNT_BLK;
        assert_eq!(b.pio_write(port, &s5.to_le_bytes()), PioOutcome::Done);
        let s5_en = (s5 | 1 << 13).to_le_bytes();
        assert_eq!(b.pio_write(port, &s5_en), PioOutcome::PowerOff);
        assert_eq!(b.stats.unhandled.count(), 0);
    }

    #[test]
    fn post_port_is_silent() {
        let b = bus();
        assert_eq!(b.pio_write(POST_PORT, &[0]), PioOutcome::Done);
        assert_eq!(b.stats.unhandled.count(), 0);
    }
}
