//! edu's BAR0 register map and bit fields (see `docs/edu-device.md`).

/// Size of BAR0 (32-bit, non-prefetchable memory).
pub const BAR0_SIZE: u64 = 1 << 20;

/// Identification, read-only: `0xRRrr00ed` (major 1, minor 0).
pub const REG_ID: u64 = 0x00;
/// Liveness check: reads back the bitwise inverse of the last write.
pub const REG_LIVENESS: u64 = 0x04;
/// Factorial: a write starts a computation, a read gives the operand while
/// computing and the result (mod 2^32) afterwards.
pub const REG_FACTORIAL: u64 = 0x08;
/// Status: bit 0 computing (read-only), bit 7 raise an interrupt when a
/// factorial finishes.
pub const REG_STATUS: u64 = 0x20;
/// Interrupt status: the reasons for the pending interrupt, read-only.
pub const REG_IRQ_STATUS: u64 = 0x24;
/// Interrupt raise: ORs the written value into the interrupt status.
pub const REG_IRQ_RAISE: u64 = 0x60;
/// Interrupt acknowledge: clears the written bits of the interrupt status.
pub const REG_IRQ_ACK: u64 = 0x64;
/// DMA source address (64 bits).
pub const REG_DMA_SRC: u64 = 0x80;
/// DMA destination address (64 bits).
pub const REG_DMA_DST: u64 = 0x88;
/// DMA byte count (64 bits).
pub const REG_DMA_CNT: u64 = 0x90;
/// DMA command (64 bits).
pub const REG_DMA_CMD: u64 = 0x98;

/// Offsets from here up accept 4- and 8-byte accesses; below, only 4.
pub const WIDE_REGS_START: u64 = 0x80;

/// Value of [`REG_ID`].
pub const ID_VALUE: u32 = 0x0100_00ed;

/// Status: a factorial is being computed.
pub const STATUS_COMPUTING: u32 = 0x01;
/// Status: raise [`IRQ_FACTORIAL`] when a factorial finishes.
pub const STATUS_IRQFACT: u32 = 0x80;

/// Interrupt status bit set when a factorial finishes (with IRQFACT).
pub const IRQ_FACTORIAL: u32 = 0x0000_0001;
/// Interrupt status bit set when a DMA transfer finishes (with the command's
/// IRQ bit).
pub const IRQ_DMA: u32 = 0x0000_0100;

/// DMA command: start (reads back set while the transfer runs).
pub const DMA_CMD_RUN: u64 = 0x1;
/// DMA command: direction; clear = guest RAM to the device buffer, set =
/// device buffer to guest RAM.
pub const DMA_CMD_TO_RAM: u64 = 0x2;
/// DMA command: raise [`IRQ_DMA`] when the transfer finishes.
pub const DMA_CMD_IRQ: u64 = 0x4;

/// Device-side address of the 4 KiB DMA buffer.
pub const DMA_BUF_START: u64 = 0x40000;
/// Size of the DMA buffer.
pub const DMA_BUF_SIZE: usize = 4096;

/// Default DMA address mask: 28 bits, as QEMU's `dma_mask` property.
pub const DEFAULT_DMA_MASK: u64 = (1 << 28) - 1;

/// PCI vendor ID (QEMU).
pub const VENDOR_ID: u16 = 0x1234;
/// PCI device ID.
pub const DEVICE_ID: u16 = 0x11e8;
/// PCI revision.
pub const REVISION_ID: u8 = 0x10;
/// PCI class code: "unclassified device" 0xff, subclass 0, interface 0.
pub const CLASS_CODE: u32 = 0x00_ff_00;
/// Subsystem vendor ID (Red Hat, QEMU's default).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x1af4;
/// Subsystem ID (QEMU's default).
pub const SUBSYSTEM_ID: u16 = 0x1100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dma_registers_are_eight_byte_aligned_and_wide() {
        for r in [REG_DMA_SRC, REG_DMA_DST, REG_DMA_CNT, REG_DMA_CMD] {
            assert_eq!(r % 8, 0);
            assert!(r >= WIDE_REGS_START);
        }
        for r in [
            REG_ID,
            REG_LIVENESS,
            REG_FACTORIAL,
            REG_STATUS,
            REG_IRQ_STATUS,
        ] {
            assert!(r < WIDE_REGS_START);
        }
    }

    #[test]
    fn buffer_lies_inside_bar0() {
        assert!(DMA_BUF_START + DMA_BUF_SIZE as u64 <= BAR0_SIZE);
        assert_eq!(ID_VALUE & 0xff, 0xed);
    }
}
