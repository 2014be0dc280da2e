//! Type-0 PCI configuration space with writable and write-1-to-clear masks.
//!
//! The 256 bytes are plain storage; what a guest may change is decided per
//! byte by two masks, as in QEMU's PCI core (`pci_init_wmask`,
//! `pci_init_w1cmask`):
//!
//! - command: I/O, memory, bus master, SERR and INTx-disable are writable
//!   (`0x0507`);
//! - status: the error bits are write-1-to-clear (`0xf900`); the device sets
//!   the "interrupt status" and "capability list" bits itself;
//! - cache line size and interrupt line are writable;
//! - BARs: the address bits above the BAR's size are writable, so writing all
//!   ones and reading back gives `!(size - 1) | flags`;
//! - every byte from 0x40 up is writable unless a capability claims it, and a
//!   capability then opens only its own writable fields.
//!
//! A guest write of value `v` to a byte with writable mask `w` and
//! write-1-to-clear mask `c` leaves `((old & !w) | (v & w)) & !(v & c)`.

use crate::bar::{BarKind, BarRange, BarSpec};
use thiserror::Error;

/// Size of a conventional PCI configuration space.
pub const CONFIG_SPACE_SIZE: usize = 256;
/// Size of the standard header; capabilities live above it.
pub const HEADER_SIZE: usize = 0x40;
/// Number of BAR registers in a type-0 header.
pub const NUM_BARS: usize = 6;

/// Vendor ID (16 bits).
pub const VENDOR_ID: usize = 0x00;
/// Device ID (16 bits).
pub const DEVICE_ID: usize = 0x02;
/// Command register (16 bits).
pub const COMMAND: usize = 0x04;
/// Status register (16 bits).
pub const STATUS: usize = 0x06;
/// Revision ID (8 bits).
pub const REVISION_ID: usize = 0x08;
/// Programming interface, subclass, class (24 bits from 0x09).
pub const CLASS_PROG: usize = 0x09;
/// Cache line size (8 bits).
pub const CACHE_LINE_SIZE: usize = 0x0c;
/// Header type (8 bits).
pub const HEADER_TYPE: usize = 0x0e;
/// First BAR register.
pub const BAR0: usize = 0x10;
/// Subsystem vendor ID (16 bits).
pub const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
/// Subsystem ID (16 bits).
pub const SUBSYSTEM_ID: usize = 0x2e;
/// Capabilities pointer (8 bits).
pub const CAPABILITY_LIST: usize = 0x34;
/// Interrupt line (8 bits, firmware scratch).
pub const INTERRUPT_LINE: usize = 0x3c;
/// Interrupt pin (8 bits, 1 = INTA).
pub const INTERRUPT_PIN: usize = 0x3d;

/// Command: respond to I/O space accesses.
pub const COMMAND_IO: u16 = 1 << 0;
/// Command: respond to memory space accesses.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command: the device may master the bus (DMA, MSI writes).
pub const COMMAND_MASTER: u16 = 1 << 2;
/// Command: SERR# enable.
pub const COMMAND_SERR: u16 = 1 << 8;
/// Command: INTx emulation disable.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// Writable bits of the command register in QEMU's PCI core.
pub const COMMAND_WRITABLE: u16 =
    COMMAND_IO | COMMAND_MEMORY | COMMAND_MASTER | COMMAND_SERR | COMMAND_INTX_DISABLE;

/// Status: the function's INTx is asserted (before the disable bit).
pub const STATUS_INTERRUPT: u16 = 1 << 3;
/// Status: a capability list is present at 0x34.
pub const STATUS_CAP_LIST: u16 = 1 << 4;
/// Status bits that are write-1-to-clear in QEMU's PCI core.
pub const STATUS_W1C: u16 = 0xf900;

/// Errors from building a configuration space (never from guest accesses).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// BAR index {0} is not in 0..=5 (or 0..=4 for a 64-bit BAR).
    #[error("BAR index {0} is out of range for this BAR kind")]
    BarIndex(usize),
    /// BAR {0} (or its upper half) is already registered.
    #[error("BAR {0} is already in use")]
    BarInUse(usize),
    /// The BAR size is not a power of two or is below the minimum.
    #[error("BAR size {size:#x} is not a power of two of at least {min:#x}")]
    BarSize {
        /// Requested size.
        size: u64,
        /// Minimum for this kind.
        min: u64,
    },
    /// A 32-bit BAR cannot be larger than 2 GiB.
    #[error("BAR size {0:#x} does not fit a 32-bit BAR")]
    BarTooLarge(u64),
    /// No room is left above 0x40 for a capability of this length.
    #[error("no room for a capability of {0} bytes")]
    NoCapabilitySpace(usize),
    /// A capability must be at least 2 bytes (id and next pointer).
    #[error("capability length {0} is too short")]
    CapabilityTooShort(usize),
}

/// The fixed identification fields of a type-0 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Type0Header {
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Revision ID.
    pub revision_id: u8,
    /// Class code: class << 16 | subclass << 8 | programming interface.
    pub class_code: u32,
    /// Subsystem vendor ID.
    pub subsystem_vendor_id: u16,
    /// Subsystem ID.
    pub subsystem_id: u16,
    /// Interrupt pin register value: 0 = none, 1 = INTA .. 4 = INTD.
    pub interrupt_pin: u8,
}

/// A type-0 configuration space: register bytes plus the two write masks.
///
/// # Invariants
/// The three arrays are [`CONFIG_SPACE_SIZE`] bytes; every accessor checks
/// offsets against that size, so no guest offset indexes out of bounds.
#[derive(Clone, Debug)]
pub struct ConfigSpace {
    regs: [u8; CONFIG_SPACE_SIZE],
    wmask: [u8; CONFIG_SPACE_SIZE],
    w1cmask: [u8; CONFIG_SPACE_SIZE],
    bars: [Option<BarSpec>; NUM_BARS],
    /// First free byte for the next capability (4-byte aligned).
    next_cap: usize,
}

impl ConfigSpace {
    /// A configuration space with `header`'s identification, the command,
    /// status and scratch masks of QEMU's PCI core, no BARs and no
    /// capabilities.
    pub fn new(header: &Type0Header) -> Self {
        let mut cs = ConfigSpace {
            regs: [0; CONFIG_SPACE_SIZE],
            wmask: [0; CONFIG_SPACE_SIZE],
            w1cmask: [0; CONFIG_SPACE_SIZE],
            bars: [None; NUM_BARS],
            next_cap: HEADER_SIZE,
        };
        cs.set_u16(VENDOR_ID, header.vendor_id);
        cs.set_u16(DEVICE_ID, header.device_id);
        cs.set_u8(REVISION_ID, header.revision_id);
        let class = header.class_code.to_le_bytes();
        cs.regs[CLASS_PROG..CLASS_PROG + 3].copy_from_slice(&class[..3]);
        cs.set_u16(SUBSYSTEM_VENDOR_ID, header.subsystem_vendor_id);
        cs.set_u16(SUBSYSTEM_ID, header.subsystem_id);
        cs.set_u8(INTERRUPT_PIN, header.interrupt_pin);

        cs.set_wmask_u16(COMMAND, COMMAND_WRITABLE);
        cs.wmask[CACHE_LINE_SIZE] = 0xff;
        cs.wmask[INTERRUPT_LINE] = 0xff;
        cs.wmask[HEADER_SIZE..].fill(0xff);
        cs.w1cmask[STATUS..STATUS + 2].copy_from_slice(&STATUS_W1C.to_le_bytes());
        cs
    }

    /// Guest read of `data.len()` bytes at `offset`; bytes past the end of
    /// the space read as 0xff.
    pub fn read(&self, offset: usize, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = offset
                .checked_add(i)
                .and_then(|o| self.regs.get(o))
                .copied()
                .unwrap_or(0xff);
        }
    }

    /// Guest write of `data` at `offset` through the masks; bytes past the
    /// end are dropped.
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        for (i, &val) in data.iter().enumerate() {
            let Some(o) = offset.checked_add(i) else {
                return;
            };
            if o >= CONFIG_SPACE_SIZE {
                return;
            }
            let w = self.wmask[o];
            let c = self.w1cmask[o];
            self.regs[o] = ((self.regs[o] & !w) | (val & w)) & !(val & c);
        }
    }

    /// Little-endian read of up to 4 bytes at `offset` (all ones past the end).
    pub fn read_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Little-endian 16-bit read (all ones past the end).
    pub fn read_u16(&self, offset: usize) -> u16 {
        let mut b = [0u8; 2];
        self.read(offset, &mut b);
        u16::from_le_bytes(b)
    }

    /// 8-bit read (0xff past the end).
    pub fn read_u8(&self, offset: usize) -> u8 {
        self.regs.get(offset).copied().unwrap_or(0xff)
    }

    /// Device-side store that ignores the masks; out-of-range bytes are dropped.
    pub fn set_bytes(&mut self, offset: usize, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            if let Some(r) = offset.checked_add(i).and_then(|o| self.regs.get_mut(o)) {
                *r = b;
            }
        }
    }

    /// Device-side 8-bit store.
    pub fn set_u8(&mut self, offset: usize, v: u8) {
        self.set_bytes(offset, &[v]);
    }

    /// Device-side 16-bit store.
    pub fn set_u16(&mut self, offset: usize, v: u16) {
        self.set_bytes(offset, &v.to_le_bytes());
    }

    /// Device-side 32-bit store.
    pub fn set_u32(&mut self, offset: usize, v: u32) {
        self.set_bytes(offset, &v.to_le_bytes());
    }

    /// Sets the writable mask of the bytes at `offset`.
    pub fn set_wmask(&mut self, offset: usize, mask: &[u8]) {
        for (i, &m) in mask.iter().enumerate() {
            if let Some(w) = offset.checked_add(i).and_then(|o| self.wmask.get_mut(o)) {
                *w = m;
            }
        }
    }

    /// Sets a 16-bit writable mask.
    pub fn set_wmask_u16(&mut self, offset: usize, mask: u16) {
        self.set_wmask(offset, &mask.to_le_bytes());
    }

    /// Sets a 32-bit writable mask.
    pub fn set_wmask_u32(&mut self, offset: usize, mask: u32) {
        self.set_wmask(offset, &mask.to_le_bytes());
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.read_u16(COMMAND)
    }

    /// The status register.
    pub fn status(&self) -> u16 {
        self.read_u16(STATUS)
    }

    /// Sets or clears the status register's "interrupt status" bit, which
    /// mirrors the function's INTx level before the disable bit.
    pub fn set_interrupt_status(&mut self, asserted: bool) {
        let mut s = self.status();
        if asserted {
            s |= STATUS_INTERRUPT;
        } else {
            s &= !STATUS_INTERRUPT;
        }
        self.set_u16(STATUS, s);
    }

    /// Whether memory-space decoding is on.
    pub fn memory_enabled(&self) -> bool {
        self.command() & COMMAND_MEMORY != 0
    }

    /// Whether the device may master the bus (DMA and MSI writes).
    pub fn bus_master_enabled(&self) -> bool {
        self.command() & COMMAND_MASTER != 0
    }

    /// Whether the INTx-disable bit is set.
    pub fn intx_disabled(&self) -> bool {
        self.command() & COMMAND_INTX_DISABLE != 0
    }

    /// Declares BAR `index` with `spec`: sets its read-only type bits and
    /// makes the address bits above its size writable.
    pub fn add_bar(&mut self, index: usize, spec: BarSpec) -> Result<(), ConfigError> {
        let is64 = matches!(spec.kind, BarKind::Memory64 { .. });
        let last = if is64 { index + 1 } else { index };
        if last >= NUM_BARS {
            return Err(ConfigError::BarIndex(index));
        }
        if self.bars[index].is_some() || (is64 && self.bars[last].is_some()) {
            return Err(ConfigError::BarInUse(index));
        }
        if index > 0 {
            if let Some(BarSpec {
                kind: BarKind::Memory64 { .. },
                ..
            }) = self.bars[index - 1]
            {
                return Err(ConfigError::BarInUse(index));
            }
        }
        let min = if spec.kind.is_memory() { 16 } else { 4 };
        if !spec.size.is_power_of_two() || spec.size < min {
            return Err(ConfigError::BarSize {
                size: spec.size,
                min,
            });
        }
        if !is64 && spec.size > 1 << 31 {
            return Err(ConfigError::BarTooLarge(spec.size));
        }
        let reg = BAR0 + 4 * index;
        let addr_mask = !(spec.size - 1);
        self.set_u32(reg, spec.kind.flag_bits());
        self.set_wmask_u32(reg, (addr_mask as u32) & !spec.kind.flag_mask());
        if is64 {
            self.set_u32(reg + 4, 0);
            self.set_wmask_u32(reg + 4, (addr_mask >> 32) as u32);
        }
        self.bars[index] = Some(spec);
        Ok(())
    }

    /// The BAR declared at `index`, if any.
    pub fn bar(&self, index: usize) -> Option<BarSpec> {
        self.bars.get(index).copied().flatten()
    }

    /// The address the guest programmed into BAR `index` (flags removed),
    /// whether or not decoding is enabled.
    pub fn bar_address(&self, index: usize) -> Option<u64> {
        let spec = self.bar(index)?;
        let reg = BAR0 + 4 * index;
        let low = u64::from(self.read_u32(reg) & !spec.kind.flag_mask());
        let addr = match spec.kind {
            BarKind::Memory64 { .. } => low | (u64::from(self.read_u32(reg + 4)) << 32),
            _ => low,
        };
        Some(addr & !(spec.size - 1))
    }

    /// BAR `index` as decoded now, with QEMU's rules (`pci_bar_address`):
    /// the command register enables its space, the range does not wrap, a
    /// 32-bit range ends below 4 GiB - 1 (so a BAR left at all ones while
    /// being sized decodes nothing) and an I/O BAR is not at 0.
    pub fn bar_range(&self, index: usize) -> Option<BarRange> {
        let spec = self.bar(index)?;
        let base = self.bar_address(index)?;
        let enabled = if spec.kind.is_memory() {
            self.command() & COMMAND_MEMORY != 0
        } else {
            self.command() & COMMAND_IO != 0
        };
        if !enabled {
            return None;
        }
        let last = base.checked_add(spec.size - 1)?;
        let is64 = matches!(spec.kind, BarKind::Memory64 { .. });
        if last <= base || (!is64 && last >= u64::from(u32::MAX)) {
            return None;
        }
        if spec.kind == BarKind::Io && base == 0 {
            return None;
        }
        Some(BarRange {
            index,
            kind: spec.kind,
            base,
            size: spec.size,
        })
    }

    /// Allocates `len` bytes above 0x40 for a capability with ID `id`,
    /// links it at the head of the list (as QEMU's `pci_add_capability`
    /// does), sets the status bit, and makes its bytes read-only. Returns the
    /// capability's offset.
    pub fn add_capability(&mut self, id: u8, len: usize) -> Result<usize, ConfigError> {
        if len < 2 {
            return Err(ConfigError::CapabilityTooShort(len));
        }
        let offset = self.next_cap;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= CONFIG_SPACE_SIZE)
            .ok_or(ConfigError::NoCapabilitySpace(len))?;
        let head = self.regs[CAPABILITY_LIST];
        self.regs[offset] = id;
        self.regs[offset + 1] = head;
        // `offset` < 256 because `end` <= 256 and `len` >= 2.
        self.regs[CAPABILITY_LIST] = offset as u8;
        self.wmask[offset..end].fill(0);
        let s = self.status() | STATUS_CAP_LIST;
        self.set_u16(STATUS, s);
        self.next_cap = (end + 3) & !3;
        Ok(offset)
    }

    /// Raw bytes of the space (for dumps and tests).
    pub fn as_bytes(&self) -> &[u8; CONFIG_SPACE_SIZE] {
        &self.regs
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The header of QEMU's edu, for tests of the configuration space.
    pub(crate) fn header() -> Type0Header {
        Type0Header {
            vendor_id: 0x1234,
            device_id: 0x11e8,
            revision_id: 0x10,
            class_code: 0x00ff00,
            subsystem_vendor_id: 0x1af4,
            subsystem_id: 0x1100,
            interrupt_pin: 1,
        }
    }

    fn mem32(size: u64) -> BarSpec {
        BarSpec {
            kind: BarKind::Memory32 {
                prefetchable: false,
            },
            size,
        }
    }

    #[test]
    fn identification_fields_are_little_endian() {
        let cs = ConfigSpace::new(&header());
        assert_eq!(cs.read_u32(0x00), 0x11e8_1234);
        assert_eq!(cs.read_u32(0x08), 0x00ff_0010);
        assert_eq!(cs.read_u32(0x2c), 0x1100_1af4);
        assert_eq!(cs.read_u8(INTERRUPT_PIN), 1);
    }

    #[test]
    fn identification_fields_are_read_only() {
        let mut cs = ConfigSpace::new(&header());
        cs.write(0, &[0xff; 4]);
        cs.write(8, &[0xff; 4]);
        cs.write(0x2c, &[0xff; 4]);
        cs.write(INTERRUPT_PIN, &[7]);
        assert_eq!(cs.read_u32(0x00), 0x11e8_1234);
        assert_eq!(cs.read_u32(0x08), 0x00ff_0010);
        assert_eq!(cs.read_u32(0x2c), 0x1100_1af4);
        assert_eq!(cs.read_u8(INTERRUPT_PIN), 1);
    }

    #[test]
    fn command_register_keeps_only_writable_bits() {
        let mut cs = ConfigSpace::new(&header());
        cs.write(COMMAND, &[0xff, 0xff]);
        assert_eq!(cs.command(), COMMAND_WRITABLE);
        assert!(cs.memory_enabled() && cs.bus_master_enabled() && cs.intx_disabled());
    }

    #[test]
    fn status_error_bits_are_write_one_to_clear() {
        let mut cs = ConfigSpace::new(&header());
        cs.set_u16(STATUS, 0x8000 | STATUS_CAP_LIST);
        cs.write(STATUS, &0x8000u16.to_le_bytes());
        assert_eq!(cs.status(), STATUS_CAP_LIST);
        cs.write(STATUS, &0xffffu16.to_le_bytes());
        assert_eq!(cs.status(), STATUS_CAP_LIST, "read-only bits survive");
    }

    #[test]
    fn bar_sizing_by_writing_all_ones() {
        let mut cs = ConfigSpace::new(&header());
        cs.add_bar(0, mem32(1 << 20)).unwrap();
        cs.write(BAR0, &[0xff; 4]);
        assert_eq!(cs.read_u32(BAR0), 0xfff0_0000);
        cs.write(BAR0, &0xfea0_0000u32.to_le_bytes());
        assert_eq!(cs.read_u32(BAR0), 0xfea0_0000);
        assert_eq!(cs.bar_address(0), Some(0xfea0_0000));
    }

    #[test]
    fn unused_bars_read_zero_and_ignore_writes() {
        let mut cs = ConfigSpace::new(&header());
        cs.add_bar(0, mem32(1 << 20)).unwrap();
        for i in 1..NUM_BARS {
            cs.write(BAR0 + 4 * i, &[0xff; 4]);
            assert_eq!(cs.read_u32(BAR0 + 4 * i), 0);
        }
    }

    #[test]
    fn io_and_prefetchable_64_bit_bars_size_correctly() {
        let mut cs = ConfigSpace::new(&header());
        cs.add_bar(
            0,
            BarSpec {
                kind: BarKind::Io,
                size: 32,
            },
        )
        .unwrap();
        cs.add_bar(
            2,
            BarSpec {
                kind: BarKind::Memory64 { prefetchable: true },
                size: 1 << 33,
            },
        )
        .unwrap();
        cs.write(BAR0, &[0xff; 4]);
        cs.write(BAR0 + 8, &[0xff; 4]);
        cs.write(BAR0 + 12, &[0xff; 4]);
        assert_eq!(cs.read_u32(BAR0), 0xffff_ffe1);
        assert_eq!(cs.read_u32(BAR0 + 8), 0x0000_000c);
        assert_eq!(cs.read_u32(BAR0 + 12), 0xffff_fffe);
    }

    #[test]
    fn bar_registration_errors() {
        let mut cs = ConfigSpace::new(&header());
        assert_eq!(cs.add_bar(6, mem32(16)), Err(ConfigError::BarIndex(6)));
        assert!(matches!(
            cs.add_bar(0, mem32(24)),
            Err(ConfigError::BarSize { .. })
        ));
        assert!(matches!(
            cs.add_bar(0, mem32(8)),
            Err(ConfigError::BarSize { .. })
        ));
        assert_eq!(
            cs.add_bar(0, mem32(1 << 32)),
            Err(ConfigError::BarTooLarge(1 << 32))
        );
        let m64 = BarSpec {
            kind: BarKind::Memory64 {
                prefetchable: false,
            },
            size: 16,
        };
        assert_eq!(cs.add_bar(5, m64), Err(ConfigError::BarIndex(5)));
        cs.add_bar(0, m64).unwrap();
        assert_eq!(cs.add_bar(1, mem32(16)), Err(ConfigError::BarInUse(1)));
        assert_eq!(cs.add_bar(0, mem32(16)), Err(ConfigError::BarInUse(0)));
    }

    #[test]
    fn bar_range_follows_command_and_qemu_rules() {
        let mut cs = ConfigSpace::new(&header());
        cs.add_bar(0, mem32(1 << 20)).unwrap();
        cs.write(BAR0, &0xfea0_0000u32.to_le_bytes());
        assert_eq!(cs.bar_range(0), None, "memory decoding off");
        cs.write(COMMAND, &COMMAND_MEMORY.to_le_bytes());
        let r = cs.bar_range(0).unwrap();
        assert_eq!((r.base, r.size), (0xfea0_0000, 1 << 20));
        assert!(r.contains(0xfea0_0000) && r.contains(0xfeaf_ffff) && !r.contains(0xfeb0_0000));
        cs.write(BAR0, &[0xff; 4]);
        assert_eq!(cs.bar_range(0), None, "a BAR being sized decodes nothing");
        cs.write(BAR0, &[0; 4]);
        assert_eq!(cs.bar_range(0).map(|r| r.base), Some(0));
        assert_eq!(cs.bar_range(1), None);
    }

    #[test]
    fn capability_list_links_at_head_and_sets_status() {
        let mut cs = ConfigSpace::new(&header());
        assert_eq!(cs.status() & STATUS_CAP_LIST, 0);
        let a = cs.add_capability(0x05, 14).unwrap();
        assert_eq!(a, 0x40);
        assert_eq!(cs.read_u8(CAPABILITY_LIST), 0x40);
        assert_eq!(cs.read_u16(0x40), 0x0005);
        assert_ne!(cs.status() & STATUS_CAP_LIST, 0);
        let b = cs.add_capability(0x09, 4).unwrap();
        assert_eq!(b, 0x50);
        assert_eq!(cs.read_u8(CAPABILITY_LIST), 0x50);
        assert_eq!(cs.read_u8(0x51), 0x40);
        // Capability bytes are read-only; the padding after one is not.
        cs.write(0x40, &[0xff; 14]);
        assert_eq!(cs.read_u16(0x40), 0x0005);
        cs.write(0x4e, &[0xab]);
        assert_eq!(cs.read_u8(0x4e), 0xab);
    }

    #[test]
    fn capability_space_errors() {
        let mut cs = ConfigSpace::new(&header());
        assert_eq!(
            cs.add_capability(1, 1),
            Err(ConfigError::CapabilityTooShort(1))
        );
        assert_eq!(
            cs.add_capability(1, 200),
            Err(ConfigError::NoCapabilitySpace(200))
        );
        assert_eq!(cs.add_capability(1, 192).unwrap(), 0x40);
        assert_eq!(
            cs.add_capability(1, 4),
            Err(ConfigError::NoCapabilitySpace(4))
        );
    }

    #[test]
    fn device_specific_space_is_writable_like_qemu() {
        let mut cs = ConfigSpace::new(&header());
        cs.write(0x80, &0x1234_5678u32.to_le_bytes());
        assert_eq!(cs.read_u32(0x80), 0x1234_5678);
        cs.write(INTERRUPT_LINE, &[0x0b]);
        assert_eq!(cs.read_u8(INTERRUPT_LINE), 0x0b);
        cs.write(0x0d, &[0xff]);
        assert_eq!(cs.read_u8(0x0d), 0, "latency timer is read-only");
    }

    #[test]
    fn accesses_past_the_end_are_harmless() {
        let mut cs = ConfigSpace::new(&header());
        let mut b = [0u8; 4];
        cs.read(0xfe, &mut b);
        assert_eq!(b, [0, 0, 0xff, 0xff]);
        cs.read(usize::MAX, &mut b);
        assert_eq!(b, [0xff; 4]);
        cs.write(0xfe, &[1, 2, 3, 4]);
        assert_eq!(cs.read_u16(0xfe), 0x0201);
        cs.write(usize::MAX - 1, &[1, 2, 3, 4]);
        cs.set_bytes(usize::MAX, &[1, 2]);
        assert_eq!(cs.read_u8(1000), 0xff);
    }

    #[test]
    fn interrupt_status_bit() {
        let mut cs = ConfigSpace::new(&header());
        cs.set_interrupt_status(true);
        assert_eq!(cs.status() & STATUS_INTERRUPT, STATUS_INTERRUPT);
        cs.write(STATUS, &[0xff, 0xff]);
        assert_eq!(
            cs.status() & STATUS_INTERRUPT,
            STATUS_INTERRUPT,
            "not guest-writable"
        );
        cs.set_interrupt_status(false);
        assert_eq!(cs.status() & STATUS_INTERRUPT, 0);
    }
}
