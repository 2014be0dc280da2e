//! The root PCI bus: slots, configuration mechanism #1 and MMIO dispatch.
//!
//! # Configuration mechanism #1 (ports 0xCF8..=0xCFF)
//!
//! 0xCF8 is CONFIG_ADDRESS: bit 31 enable, bits 23:16 bus, 15:11 device,
//! 10:8 function, 7:0 register. Behaviour follows QEMU's `pci_host.c`:
//!
//! - only a 4-byte write at 0xCF8 latches the address; narrower writes or
//!   writes at 0xCF9..=0xCFB are ignored;
//! - any read at 0xCF8..=0xCFB returns the latched value (truncated to the
//!   access size);
//! - 0xCFC..=0xCFF is CONFIG_DATA: a 1-, 2- or 4-byte access at 0xCFC + n
//!   reaches register `(latch & 0xff) | n` of the selected function;
//! - with the enable bit clear, data reads return all ones and data writes
//!   are dropped;
//! - an absent bus (anything but 0), device or function reads all ones and
//!   ignores writes;
//! - an access that would run past the end of the 256-byte space is cut
//!   short; the missing bytes read as zero (QEMU's `MIN(len, limit - addr)`).
//!
//! Our deliberate choice where QEMU relies on its memory core: a data access
//! that crosses 0xCFF (for example 4 bytes at 0xCFE) reads all ones and is
//! not written.
//!
//! # MMIO
//!
//! [`PciBus::mmio_read`] and [`PciBus::mmio_write`] find the memory BAR that
//! decodes an address (memory decoding on, BAR programmed, not being sized)
//! and forward the access. The map is rebuilt after a configuration write
//! made through the bus that touches the Command register or a BAR (nothing
//! else changes what decodes where), so the guest's BAR programming takes
//! effect at once. The rebuild reads every BAR and installs the new map
//! under the map's write lock: two vCPUs programming BARs at the same time
//! cannot install a map older than the last write.

use crate::bar::BarRange;
use crate::config::{BAR0, COMMAND, NUM_BARS};
use crate::device::{BusDevice, PciDevice};
use crate::host_bridge::HostBridge;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use thiserror::Error;

/// Port of CONFIG_ADDRESS.
pub const CONFIG_ADDRESS_PORT: u16 = 0xcf8;
/// Port of CONFIG_DATA.
pub const CONFIG_DATA_PORT: u16 = 0xcfc;
/// Number of ports from 0xCF8 that [`PciConfigIo`] answers.
pub const CONFIG_IO_LEN: u64 = 8;
/// Device slots on the bus.
pub const NUM_SLOTS: usize = 32;
/// Enable bit of CONFIG_ADDRESS.
pub const CONFIG_ENABLE: u32 = 1 << 31;
/// Configuration registers that decide what a function decodes: the
/// Command register (memory and I/O enable) and the six BARs.
const DECODE_REGISTERS: [Range<usize>; 2] = [COMMAND..COMMAND + 2, BAR0..BAR0 + 4 * NUM_BARS];

/// Errors from building the bus (never from guest accesses).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PciBusError {
    /// All 31 device slots after the host bridge are taken.
    #[error("no free PCI slot")]
    NoFreeSlot,
    /// The slot number is not 1..=31.
    #[error("slot {0} is not a valid device slot")]
    InvalidSlot(u8),
    /// The slot already holds a device.
    #[error("slot {0} is already taken")]
    SlotTaken(u8),
}

/// Bus/device/function of a PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PciAddress {
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

impl PciAddress {
    /// Address from bus, device and function (device and function are
    /// masked to 5 and 3 bits).
    pub fn new(bus: u8, device: u8, function: u8) -> Self {
        PciAddress {
            bus,
            device: device & 0x1f,
            function: function & 0x7,
        }
    }

    /// Address and register offset encoded in a CONFIG_ADDRESS value.
    pub fn from_config_address(v: u32) -> (Self, usize) {
        let addr = PciAddress::new((v >> 16) as u8, (v >> 11) as u8, (v >> 8) as u8);
        (addr, (v & 0xff) as usize)
    }
}

impl std::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

#[derive(Clone)]
struct Mapping {
    range: BarRange,
    slot: usize,
    device: Arc<dyn PciDevice>,
}

/// Bus 0 with a host bridge at 00:00.0 and single-function devices in
/// further slots.
pub struct PciBus {
    slots: Vec<Option<Arc<dyn PciDevice>>>,
    config_address: AtomicU32,
    mmio: RwLock<Vec<Mapping>>,
}

impl std::fmt::Debug for PciBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used: Vec<usize> = (0..NUM_SLOTS)
            .filter(|&s| self.slots.get(s).is_some_and(Option::is_some))
            .collect();
        f.debug_struct("PciBus")
            .field("slots", &used)
            .field(
                "config_address",
                &self.config_address.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl Default for PciBus {
    fn default() -> Self {
        Self::new()
    }
}

impl PciBus {
    /// A bus holding only the host bridge at slot 0.
    pub fn new() -> Self {
        let mut slots: Vec<Option<Arc<dyn PciDevice>>> = vec![None; NUM_SLOTS];
        slots[0] = Some(Arc::new(HostBridge::new()));
        PciBus {
            slots,
            config_address: AtomicU32::new(0),
            mmio: RwLock::new(Vec::new()),
        }
    }

    /// Puts `device` in the lowest free slot and returns the slot number.
    pub fn add_device(&mut self, device: Arc<dyn PciDevice>) -> Result<u8, PciBusError> {
        let slot = (1..NUM_SLOTS)
            .find(|&s| self.slots[s].is_none())
            .ok_or(PciBusError::NoFreeSlot)?;
        self.slots[slot] = Some(device);
        self.refresh_mappings();
        // `slot` < 32.
        Ok(slot as u8)
    }

    /// Puts `device` in `slot` (1..=31).
    pub fn add_device_at(
        &mut self,
        slot: u8,
        device: Arc<dyn PciDevice>,
    ) -> Result<(), PciBusError> {
        let s = usize::from(slot);
        if s == 0 || s >= NUM_SLOTS {
            return Err(PciBusError::InvalidSlot(slot));
        }
        if self.slots[s].is_some() {
            return Err(PciBusError::SlotTaken(slot));
        }
        self.slots[s] = Some(device);
        self.refresh_mappings();
        Ok(())
    }

    /// The function at `addr`, if present (only function 0 of bus 0 exists).
    pub fn device(&self, addr: PciAddress) -> Option<&Arc<dyn PciDevice>> {
        if addr.bus != 0 || addr.function != 0 {
            return None;
        }
        self.slots.get(usize::from(addr.device))?.as_ref()
    }

    /// Slots that hold a device, host bridge included.
    pub fn occupied_slots(&self) -> Vec<u8> {
        (0..NUM_SLOTS as u8)
            .filter(|&s| self.slots[usize::from(s)].is_some())
            .collect()
    }

    /// Reads configuration space of the function at `addr`; absent
    /// functions read all ones. Bytes past 0xff read as zero.
    pub fn config_read(&self, addr: PciAddress, offset: usize, data: &mut [u8]) {
        let Some(dev) = self.device(addr) else {
            data.fill(0xff);
            return;
        };
        data.fill(0);
        let n = data.len().min(256usize.saturating_sub(offset));
        if n > 0 {
            dev.config_read(offset, &mut data[..n]);
        }
    }

    /// Writes configuration space of the function at `addr`; writes to
    /// absent functions and bytes past 0xff are dropped. A write that
    /// touches the Command register or a BAR rebuilds the MMIO map.
    pub fn config_write(&self, addr: PciAddress, offset: usize, data: &[u8]) {
        let Some(dev) = self.device(addr) else {
            return;
        };
        let n = data.len().min(256usize.saturating_sub(offset));
        if n > 0 {
            dev.config_write(offset, &data[..n]);
            if Self::changes_decoding(offset..offset + n) {
                self.refresh_mappings();
            }
        }
    }

    /// Whether a write to `bytes` of configuration space can change what
    /// the function decodes.
    fn changes_decoding(bytes: Range<usize>) -> bool {
        DECODE_REGISTERS
            .iter()
            .any(|r| bytes.start < r.end && r.start < bytes.end)
    }

    /// Rebuilds the MMIO map from every device's decoded memory BARs.
    ///
    /// The map's write lock is held from reading the first BAR to
    /// installing the result, so rebuilds run one after the other and the
    /// last one reads the last write. The lock order is the map's lock,
    /// then a device's own lock, as on the MMIO path.
    pub fn refresh_mappings(&self) {
        let mut installed = self.mmio.write().unwrap_or_else(PoisonError::into_inner);
        let mut map = Vec::new();
        for (slot, dev) in self.slots.iter().enumerate() {
            let Some(dev) = dev else { continue };
            for index in 0..NUM_BARS {
                if let Some(range) = dev.bar_range(index) {
                    if range.kind.is_memory() {
                        map.push(Mapping {
                            range,
                            slot,
                            device: Arc::clone(dev),
                        });
                    }
                }
            }
        }
        map.sort_by_key(|m| (m.range.base, m.slot));
        *installed = map;
    }

    /// Runs `f` on the device, BAR index and offset that decode `addr`.
    ///
    /// `f` runs under the map's read lock (no reference count traffic on
    /// the hot path). That cannot deadlock: every path takes the map's
    /// lock before a device's lock (here, and in
    /// [`refresh_mappings`](Self::refresh_mappings) which reads the BARs
    /// under the write lock), [`config_write`](Self::config_write) has
    /// released the device's lock before it rebuilds, and devices never
    /// call back into the bus.
    fn with_target<R>(
        &self,
        addr: u64,
        f: impl FnOnce(&dyn PciDevice, usize, u64) -> R,
    ) -> Option<R> {
        let map = self.mmio.read().unwrap_or_else(PoisonError::into_inner);
        let m = Self::find(&map, addr)?;
        Some(f(m.device.as_ref(), m.range.index, addr - m.range.base))
    }

    /// Mappings are sorted by (base, slot); of those starting at or below
    /// `addr`, the last one that contains it wins (overlapping BARs are a
    /// guest error; the highest slot among equal bases wins).
    fn find(map: &[Mapping], addr: u64) -> Option<&Mapping> {
        let idx = map.partition_point(|m| m.range.base <= addr);
        map[..idx].iter().rev().find(|m| m.range.contains(addr))
    }

    /// The slot, BAR index and offset that decode `addr`, if any.
    pub fn mmio_target(&self, addr: u64) -> Option<(u8, usize, u64)> {
        let map = self.mmio.read().unwrap_or_else(PoisonError::into_inner);
        // `slot` < 32.
        Self::find(&map, addr).map(|m| (m.slot as u8, m.range.index, addr - m.range.base))
    }

    /// Forwards a guest MMIO read to the BAR that decodes `addr`. Returns
    /// false (and fills `data` with all ones) if none does.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) -> bool {
        let hit = self
            .with_target(addr, |dev, bar, offset| dev.bar_read(bar, offset, data))
            .is_some();
        if !hit {
            data.fill(0xff);
        }
        hit
    }

    /// Forwards a guest MMIO write to the BAR that decodes `addr`. Returns
    /// false if none does.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) -> bool {
        self.with_target(addr, |dev, bar, offset| dev.bar_write(bar, offset, data))
            .is_some()
    }

    /// The latched CONFIG_ADDRESS value.
    pub fn config_address(&self) -> u32 {
        self.config_address.load(Ordering::SeqCst)
    }

    /// Guest read at port `0xCF8 + offset` (`offset` < 8).
    pub fn config_io_read(&self, offset: u64, data: &mut [u8]) {
        match offset {
            0..=3 => {
                let v = self.config_address().to_le_bytes();
                for (i, b) in data.iter_mut().enumerate() {
                    *b = v.get(i).copied().unwrap_or(0xff);
                }
            }
            4..=7 => {
                let n = offset - 4;
                let latch = self.config_address();
                if latch & CONFIG_ENABLE == 0 || !Self::data_access_ok(n, data.len()) {
                    data.fill(0xff);
                    return;
                }
                let (addr, reg) = PciAddress::from_config_address(latch | n as u32);
                self.config_read(addr, reg, data);
            }
            _ => data.fill(0xff),
        }
    }

    /// Guest write at port `0xCF8 + offset` (`offset` < 8).
    pub fn config_io_write(&self, offset: u64, data: &[u8]) {
        match offset {
            0 if data.len() == 4 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(data);
                self.config_address
                    .store(u32::from_le_bytes(b), Ordering::SeqCst);
            }
            4..=7 => {
                let n = offset - 4;
                let latch = self.config_address();
                if latch & CONFIG_ENABLE == 0 || !Self::data_access_ok(n, data.len()) {
                    return;
                }
                let (addr, reg) = PciAddress::from_config_address(latch | n as u32);
                self.config_write(addr, reg, data);
            }
            _ => {}
        }
    }

    fn data_access_ok(n: u64, len: usize) -> bool {
        matches!(len, 1 | 2 | 4) && n + len as u64 <= 4
    }
}

/// The configuration ports 0xCF8..=0xCFF as a [`BusDevice`] (offsets
/// relative to 0xCF8), for a VMM's port-I/O bus.
#[derive(Clone, Debug)]
pub struct PciConfigIo {
    bus: Arc<PciBus>,
}

impl PciConfigIo {
    /// Port device for `bus`.
    pub fn new(bus: Arc<PciBus>) -> Self {
        PciConfigIo { bus }
    }

    /// The bus behind the ports.
    pub fn bus(&self) -> &Arc<PciBus> {
        &self.bus
    }
}

impl BusDevice for PciConfigIo {
    fn read(&self, offset: u64, data: &mut [u8]) {
        self.bus.config_io_read(offset, data);
    }

    fn write(&self, offset: u64, data: &[u8]) {
        self.bus.config_io_write(offset, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bar::{BarKind, BarSpec};
    use crate::config::{ConfigSpace, Type0Header, BAR0, COMMAND, COMMAND_MEMORY};
    use crate::interrupt::IntxPin;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{mpsc, Mutex};
    use std::time::Duration;

    /// A device with a 4 KiB memory BAR whose registers echo the last write.
    /// It counts the bus's BAR lookups, and a test can hold one lookup open
    /// (see [`Echo::hold_next_lookup`]).
    struct Echo {
        config: Mutex<ConfigSpace>,
        last: Mutex<(usize, u64, Vec<u8>)>,
        lookups: AtomicUsize,
        hold: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    }

    impl Echo {
        fn new() -> Arc<Self> {
            let mut c = ConfigSpace::new(&Type0Header {
                vendor_id: 0xabcd,
                device_id: 0x0001,
                revision_id: 1,
                class_code: 0xff0000,
                subsystem_vendor_id: 0,
                subsystem_id: 0,
                interrupt_pin: 1,
            });
            c.add_bar(
                0,
                BarSpec {
                    kind: BarKind::Memory32 {
                        prefetchable: false,
                    },
                    size: 4096,
                },
            )
            .unwrap();
            Arc::new(Echo {
                config: Mutex::new(c),
                last: Mutex::new((0, 0, Vec::new())),
                lookups: AtomicUsize::new(0),
                hold: Mutex::new(None),
            })
        }

        /// The next `bar_range` call reads the BAR, says so on the first
        /// channel returned, then waits (at most `HOLD`) for a message on
        /// the second, with its answer in hand.
        fn hold_next_lookup(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
            let (entered_tx, entered_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel();
            *self.hold.lock().unwrap() = Some((entered_tx, release_rx));
            (entered_rx, release_tx)
        }
    }

    /// How long a held BAR lookup waits to be released.
    const HOLD: Duration = Duration::from_millis(300);

    impl PciDevice for Echo {
        fn config_read(&self, offset: usize, data: &mut [u8]) {
            self.config.lock().unwrap().read(offset, data)
        }
        fn config_write(&self, offset: usize, data: &[u8]) {
            self.config.lock().unwrap().write(offset, data)
        }
        fn bar(&self, index: usize) -> Option<BarSpec> {
            self.config.lock().unwrap().bar(index)
        }
        fn bar_range(&self, index: usize) -> Option<BarRange> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let range = self.config.lock().unwrap().bar_range(index);
            let hold = self.hold.lock().unwrap().take();
            if let Some((entered, release)) = hold {
                entered.send(()).unwrap();
                let _ = release.recv_timeout(HOLD);
            }
            range
        }
        fn bar_read(&self, _index: usize, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn bar_write(&self, index: usize, offset: u64, data: &[u8]) {
            *self.last.lock().unwrap() = (index, offset, data.to_vec());
        }
        fn interrupt_pin(&self) -> Option<IntxPin> {
            Some(IntxPin::A)
        }
    }

    fn cf8(bus: &PciBus, v: u32) {
        bus.config_io_write(0, &v.to_le_bytes());
    }

    fn cfc_read(bus: &PciBus, port: u64, len: usize) -> u32 {
        let mut b = [0u8; 4];
        bus.config_io_read(port, &mut b[..len]);
        u32::from_le_bytes(b)
    }

    fn addr(dev: u8, func: u8, reg: u8) -> u32 {
        CONFIG_ENABLE | (u32::from(dev) << 11) | (u32::from(func) << 8) | u32::from(reg)
    }

    #[test]
    fn host_bridge_at_00_00_0() {
        let bus = PciBus::new();
        cf8(&bus, addr(0, 0, 0));
        assert_eq!(cfc_read(&bus, 4, 4), 0x0008_1b36);
        cf8(&bus, addr(0, 0, 8));
        assert_eq!(cfc_read(&bus, 4, 4) >> 8, 0x060000);
    }

    #[test]
    fn absent_device_function_and_bus_read_all_ones() {
        let mut bus = PciBus::new();
        bus.add_device(Echo::new()).unwrap();
        cf8(&bus, addr(2, 0, 0));
        assert_eq!(cfc_read(&bus, 4, 4), 0xffff_ffff, "absent device");
        cf8(&bus, addr(1, 1, 0));
        assert_eq!(cfc_read(&bus, 4, 4), 0xffff_ffff, "absent function");
        cf8(&bus, addr(1, 0, 0) | (1 << 16));
        assert_eq!(cfc_read(&bus, 4, 4), 0xffff_ffff, "absent bus");
        cf8(&bus, addr(1, 0, 0));
        assert_eq!(cfc_read(&bus, 4, 4), 0x0001_abcd);
        // Writes to absent functions do nothing and do not panic.
        cf8(&bus, addr(31, 7, 0xfc));
        bus.config_io_write(4, &[0xff; 4]);
    }

    #[test]
    fn disabled_enable_bit_reads_all_ones_and_drops_writes() {
        let mut bus = PciBus::new();
        bus.add_device(Echo::new()).unwrap();
        cf8(&bus, addr(1, 0, 0x3c) & !CONFIG_ENABLE);
        assert_eq!(cfc_read(&bus, 4, 4), 0xffff_ffff);
        bus.config_io_write(4, &[0x0b]);
        cf8(&bus, addr(1, 0, 0x3c));
        assert_eq!(
            cfc_read(&bus, 4, 1),
            0,
            "write with enable clear was dropped"
        );
    }

    #[test]
    fn one_two_four_byte_data_accesses() {
        let mut bus = PciBus::new();
        bus.add_device(Echo::new()).unwrap();
        cf8(&bus, addr(1, 0, 0));
        assert_eq!(cfc_read(&bus, 4, 1), 0xcd);
        assert_eq!(cfc_read(&bus, 5, 1), 0xab);
        assert_eq!(cfc_read(&bus, 6, 1), 0x01);
        assert_eq!(cfc_read(&bus, 7, 1), 0x00);
        assert_eq!(cfc_read(&bus, 4, 2), 0xabcd);
        assert_eq!(cfc_read(&bus, 6, 2), 0x0001);
        assert_eq!(cfc_read(&bus, 4, 4), 0x0001_abcd);
        // Crossing 0xCFF or odd sizes: all ones.
        assert_eq!(cfc_read(&bus, 6, 4), 0xffff_ffff);
        assert_eq!(cfc_read(&bus, 7, 2), 0xffff);
        assert_eq!(cfc_read(&bus, 4, 3), 0x00ff_ffff);
        // Byte writes at 0xCFD reach register + 1.
        cf8(&bus, addr(1, 0, 0x3c));
        bus.config_io_write(4, &[0x0b]);
        bus.config_io_write(5, &[0x07]);
        assert_eq!(cfc_read(&bus, 4, 2), 0x010b, "pin is read-only");
        bus.config_io_write(6, &[1, 2, 3, 4]);
        assert_eq!(cfc_read(&bus, 4, 4), 0x0000_010b);
    }

    #[test]
    fn config_address_latch_semantics() {
        let bus = PciBus::new();
        cf8(&bus, 0x8000_1234);
        assert_eq!(cfc_read(&bus, 0, 4), 0x8000_1234);
        assert_eq!(cfc_read(&bus, 0, 2), 0x1234);
        bus.config_io_write(0, &[0x00, 0x00]);
        bus.config_io_write(1, &[0; 4]);
        assert_eq!(
            bus.config_address(),
            0x8000_1234,
            "only 4-byte writes at 0xCF8 latch"
        );
        let mut b = [0u8; 2];
        bus.config_io_read(8, &mut b);
        assert_eq!(b, [0xff; 2]);
        bus.config_io_write(9, &[0; 2]);
    }

    #[test]
    fn low_address_bits_are_ored_like_qemu() {
        let bus = PciBus::new();
        cf8(&bus, addr(0, 0, 0) | 2);
        assert_eq!(cfc_read(&bus, 4, 2), 0x0008, "register 2 is the device id");
    }

    #[test]
    fn access_past_end_of_space_is_cut_short() {
        let mut bus = PciBus::new();
        bus.add_device(Echo::new()).unwrap();
        bus.config_write(PciAddress::new(0, 1, 0), 0xfe, &[1, 2, 3, 4]);
        cf8(&bus, addr(1, 0, 0xff));
        assert_eq!(cfc_read(&bus, 4, 4), 0x0000_0002);
    }

    #[test]
    fn bar_sizing_through_ports_and_mmio_dispatch() {
        let mut bus = PciBus::new();
        let echo = Echo::new();
        let slot = bus.add_device(echo.clone()).unwrap();
        assert_eq!(slot, 1);
        cf8(&bus, addr(1, 0, 0x10));
        bus.config_io_write(4, &[0xff; 4]);
        assert_eq!(cfc_read(&bus, 4, 4), 0xffff_f000);
        bus.config_io_write(4, &0xe000_0000u32.to_le_bytes());
        let mut b = [0u8; 4];
        assert!(
            !bus.mmio_read(0xe000_0010, &mut b),
            "memory decoding is off"
        );
        assert_eq!(b, [0xff; 4]);
        cf8(&bus, addr(1, 0, COMMAND as u8));
        bus.config_io_write(4, &COMMAND_MEMORY.to_le_bytes());
        assert!(bus.mmio_read(0xe000_0010, &mut b));
        assert_eq!(b, [0x10; 4]);
        assert!(bus.mmio_write(0xe000_0ffc, &[9]));
        assert_eq!(*echo.last.lock().unwrap(), (0, 0xffc, vec![9]));
        assert!(!bus.mmio_read(0xe000_1000, &mut b));
        assert!(!bus.mmio_write(0xdfff_ffff, &[1]));
        assert_eq!(bus.mmio_target(0xe000_0004), Some((1, 0, 4)));
    }

    #[test]
    fn slots_fill_in_order_and_errors() {
        let mut bus = PciBus::new();
        for want in 1..NUM_SLOTS as u8 {
            assert_eq!(bus.add_device(Echo::new()).unwrap(), want);
        }
        assert_eq!(bus.add_device(Echo::new()), Err(PciBusError::NoFreeSlot));
        let mut bus = PciBus::new();
        assert_eq!(
            bus.add_device_at(0, Echo::new()),
            Err(PciBusError::InvalidSlot(0))
        );
        assert_eq!(
            bus.add_device_at(32, Echo::new()),
            Err(PciBusError::InvalidSlot(32))
        );
        bus.add_device_at(5, Echo::new()).unwrap();
        assert_eq!(
            bus.add_device_at(5, Echo::new()),
            Err(PciBusError::SlotTaken(5))
        );
        assert_eq!(bus.occupied_slots(), vec![0, 5]);
        assert_eq!(PciAddress::new(0, 5, 0).to_string(), "00:05.0");
    }

    #[test]
    fn port_device_adapter() {
        let bus = Arc::new(PciBus::new());
        let io = PciConfigIo::new(bus.clone());
        io.write(0, &addr(0, 0, 0).to_le_bytes());
        let mut b = [0u8; 4];
        io.read(4, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0x0008_1b36);
        assert!(Arc::ptr_eq(io.bus(), &bus));
    }

    #[test]
    fn overlapping_bars_resolve_to_one_device() {
        let mut bus = PciBus::new();
        let a = Echo::new();
        let b = Echo::new();
        bus.add_device(a).unwrap();
        bus.add_device(b.clone()).unwrap();
        for (slot, base) in [(1u8, 0xe000_0000u32), (2, 0xe000_0000)] {
            let addr = PciAddress::new(0, slot, 0);
            bus.config_write(addr, 0x10, &base.to_le_bytes());
            bus.config_write(addr, COMMAND, &COMMAND_MEMORY.to_le_bytes());
        }
        assert!(bus.mmio_write(0xe000_0008, &[1]));
        let hits = usize::from(b.last.lock().unwrap().2 == vec![1]);
        assert_eq!(
            hits + usize::from(bus.mmio_target(0xe000_0008).is_some()),
            2
        );
    }

    #[test]
    fn concurrent_mmio_and_bar_moves_do_not_deadlock() {
        let mut bus = PciBus::new();
        bus.add_device(Echo::new()).unwrap();
        let bus = Arc::new(bus);
        let addr = PciAddress::new(0, 1, 0);
        bus.config_write(addr, COMMAND, &COMMAND_MEMORY.to_le_bytes());
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    let mut b = [0u8; 4];
                    for i in 0..20_000u64 {
                        bus.mmio_read(0xe000_0000 + (i % 0x2000), &mut b);
                    }
                })
            })
            .collect();
        for i in 0..2_000u32 {
            let base = if i % 2 == 0 {
                0xe000_0000u32
            } else {
                0xe000_1000
            };
            bus.config_write(addr, 0x10, &base.to_le_bytes());
        }
        for r in readers {
            r.join().unwrap();
        }
    }

    /// Two vCPUs program the same BAR one after the other: whatever the
    /// interleaving of their map rebuilds, the map ends up decoding the BAR
    /// where the last write put it. The first rebuild is held open after it
    /// read the BAR; a rebuild that reads and installs outside the map's
    /// write lock lets the second one finish first, and then installs the
    /// stale map over it.
    #[test]
    fn concurrent_bar_writes_leave_the_last_ones_map() {
        let mut bus = PciBus::new();
        let echo = Echo::new();
        bus.add_device(echo.clone()).unwrap();
        let bus = Arc::new(bus);
        let dev = PciAddress::new(0, 1, 0);
        bus.config_write(dev, COMMAND, &COMMAND_MEMORY.to_le_bytes());
        let (first, last) = (0xe010_0000u32, 0xe020_0000u32);

        let (entered, release) = echo.hold_next_lookup();
        let vcpu0 = {
            let bus = bus.clone();
            std::thread::spawn(move || bus.config_write(dev, BAR0, &first.to_le_bytes()))
        };
        entered.recv().unwrap();
        // vCPU 0's rebuild has read `first` and is held; vCPU 1 moves the
        // BAR again (in its own thread: with the fix it waits for vCPU 0).
        let vcpu1 = {
            let bus = bus.clone();
            std::thread::spawn(move || bus.config_write(dev, BAR0, &last.to_le_bytes()))
        };
        std::thread::sleep(HOLD / 3);
        let _ = release.send(());
        vcpu0.join().unwrap();
        vcpu1.join().unwrap();

        let mut b = [0u8; 4];
        bus.config_read(dev, BAR0, &mut b);
        assert_eq!(
            u32::from_le_bytes(b),
            last,
            "the device holds the last write"
        );
        assert_eq!(
            bus.mmio_target(u64::from(last)),
            Some((1, 0, 0)),
            "the map decodes the BAR where the last write put it"
        );
        assert_eq!(
            bus.mmio_target(u64::from(first)),
            None,
            "stale mapping left"
        );
    }

    /// Only a write that touches the Command register or a BAR can change
    /// what decodes where, so only those rebuild the map.
    #[test]
    fn only_command_and_bar_writes_rebuild_the_map() {
        let mut bus = PciBus::new();
        let echo = Echo::new();
        bus.add_device(echo.clone()).unwrap();
        let dev = PciAddress::new(0, 1, 0);
        let lookups = || echo.lookups.load(Ordering::SeqCst);
        let before = lookups();
        for (offset, len) in [
            (0x3c, 1),
            (0x0c, 4),
            (0x06, 2),
            (0x28, 4),
            (0x40, 4),
            (0x00, 4),
        ] {
            bus.config_write(dev, offset, &vec![0; len]);
            assert_eq!(
                lookups(),
                before,
                "write of {len} at {offset:#x} rebuilt the map"
            );
        }
        for (offset, len) in [
            (0x04, 2),
            (0x05, 1),
            (0x02, 4),
            (0x10, 4),
            (0x24, 4),
            (0x0f, 2),
        ] {
            let n = lookups();
            bus.config_write(dev, offset, &vec![0; len]);
            assert!(
                lookups() > n,
                "write of {len} at {offset:#x} did not rebuild the map"
            );
        }
        // A rebuild still follows the guest: BAR0 programmed, decoding on.
        bus.config_write(dev, BAR0, &0xe000_0000u32.to_le_bytes());
        bus.config_write(dev, COMMAND, &COMMAND_MEMORY.to_le_bytes());
        assert_eq!(bus.mmio_target(0xe000_0004), Some((1, 0, 4)));
    }
}
