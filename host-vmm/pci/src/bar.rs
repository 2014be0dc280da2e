//! Base address registers: what a device declares, and where the guest put it.

/// The kind of address space a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// 32-bit memory BAR (type bits 00).
    Memory32 {
        /// Bit 3 of the register.
        prefetchable: bool,
    },
    /// 64-bit memory BAR (type bits 10); takes this register and the next.
    Memory64 {
        /// Bit 3 of the register.
        prefetchable: bool,
    },
    /// I/O-space BAR (bit 0 set).
    Io,
}

impl BarKind {
    /// Read-only low bits of the BAR register that encode the kind.
    pub fn flag_bits(self) -> u32 {
        match self {
            BarKind::Memory32 { prefetchable } => u32::from(prefetchable) << 3,
            BarKind::Memory64 { prefetchable } => 0b100 | (u32::from(prefetchable) << 3),
            BarKind::Io => 0b1,
        }
    }

    /// Mask of the low bits that are flags rather than address.
    pub fn flag_mask(self) -> u32 {
        match self {
            BarKind::Io => 0x3,
            _ => 0xf,
        }
    }

    /// Whether this BAR decodes memory (as opposed to I/O) space.
    pub fn is_memory(self) -> bool {
        !matches!(self, BarKind::Io)
    }
}

/// What a device declares for one BAR: its kind and its size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarSpec {
    /// Address space and width.
    pub kind: BarKind,
    /// Size in bytes: a power of two, at least 16 for memory and 4 for I/O.
    pub size: u64,
}

/// A BAR as currently decoded: programmed, enabled in the command register
/// and not wrapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarRange {
    /// BAR index (0..=5).
    pub index: usize,
    /// Kind of space decoded.
    pub kind: BarKind,
    /// First guest address (memory) or port (I/O).
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl BarRange {
    /// Whether `addr` falls inside this range.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_bits_encode_the_kind() {
        assert_eq!(BarKind::Io.flag_bits(), 0x1);
        assert_eq!(BarKind::Io.flag_mask(), 0x3);
        let m32 = BarKind::Memory32 {
            prefetchable: false,
        };
        assert_eq!(m32.flag_bits(), 0x0);
        assert_eq!(m32.flag_mask(), 0xf);
        assert_eq!(BarKind::Memory32 { prefetchable: true }.flag_bits(), 0x8);
        assert_eq!(BarKind::Memory64 { prefetchable: true }.flag_bits(), 0xc);
        assert!(m32.is_memory() && !BarKind::Io.is_memory());
    }

    #[test]
    fn range_contains_is_half_open_and_overflow_free() {
        let r = BarRange {
            index: 0,
            kind: BarKind::Memory64 {
                prefetchable: false,
            },
            base: u64::MAX - 15,
            size: 16,
        };
        assert!(r.contains(u64::MAX));
        assert!(r.contains(u64::MAX - 15));
        assert!(!r.contains(u64::MAX - 16));
        assert!(!r.contains(0));
    }
}
