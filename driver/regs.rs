// SPDX-License-Identifier: GPL-2.0

//! Register map of QEMU's `edu` device (BAR0, 1 MiB of MMIO).
//!
//! Offsets and bits follow QEMU's `hw/misc/edu.c`; `docs/driver.md` has the
//! register map in prose. Below 0x80 the device only answers 4-byte
//! accesses; the DMA registers at 0x80 and up also take 8-byte ones. Other
//! offsets read as all ones. The driver accesses the DMA registers with 4
//! bytes too: a 4-byte write sets the whole register (upper half zero), and
//! with the 28-bit DMA mask every address fits.

use kernel::{io::register, prelude::*};

register! {
    /// Identification: `0xRRrr00ed`, major version `RR`, minor `rr`.
    pub(crate) ID(u32) @ 0x00 {
        /// Major version (1 on QEMU).
        31:24 major;
        /// Minor version (0 on QEMU).
        23:16 minor;
        /// Always 0xed.
        7:0 magic;
    }

    /// Liveness check: reads back the bitwise NOT of the last value written.
    pub(crate) LIVENESS(u32) @ 0x04 {
        /// Written value, or its complement when read.
        31:0 value;
    }

    /// Factorial: write n to start computing n!; read n! mod 2^32 when done.
    /// Writes are ignored while a computation runs.
    pub(crate) FACTORIAL(u32) @ 0x08 {
        /// Operand (write) or result (read).
        31:0 value;
    }

    /// Status register.
    pub(crate) STATUS(u32) @ 0x20 {
        /// Raise interrupt [`IRQ_FACTORIAL`] when a factorial completes (read/write).
        7:7 irq_on_factorial => bool;
        /// A factorial computation is running (read-only).
        0:0 computing => bool;
    }

    /// Interrupt status: the device's interrupt is asserted while non-zero.
    pub(crate) IRQ_STATUS(u32) @ 0x24 {
        /// Pending interrupt bits.
        31:0 value;
    }

    /// Interrupt raise: the written bits are ORed into the interrupt status.
    pub(crate) IRQ_RAISE(u32) @ 0x60 {
        /// Bits to raise.
        31:0 value;
    }

    /// Interrupt acknowledge: the written bits are cleared from the interrupt status.
    pub(crate) IRQ_ACK(u32) @ 0x64 {
        /// Bits to clear.
        31:0 value;
    }

    /// DMA source address (bus address, or [`DMA_BUF_ADDR`] + offset).
    pub(crate) DMA_SRC(u32) @ 0x80 {
        /// Address; the device masks RAM addresses to 28 bits.
        31:0 addr;
    }

    /// DMA destination address (bus address, or [`DMA_BUF_ADDR`] + offset).
    pub(crate) DMA_DST(u32) @ 0x88 {
        /// Address; the device masks RAM addresses to 28 bits.
        31:0 addr;
    }

    /// DMA transfer length in bytes.
    pub(crate) DMA_CNT(u32) @ 0x90 {
        /// Byte count; at most [`DMA_BUF_SIZE`].
        31:0 count;
    }

    /// DMA command. Writing with `start` set starts a transfer about 100 ms
    /// later; writes to the DMA registers are ignored while one is pending.
    pub(crate) DMA_CMD(u32) @ 0x98 {
        /// Raise interrupt [`IRQ_DMA`] when the transfer is done.
        2:2 irq_when_done => bool;
        /// Direction: 0 = RAM to device buffer, 1 = device buffer to RAM.
        1:1 to_ram => bool;
        /// Start (write); transfer pending (read).
        0:0 start => bool;
    }
}

/// Interrupt status bit raised when a factorial completes.
pub(crate) const IRQ_FACTORIAL: u32 = 0x1;

/// Interrupt status bit raised when a DMA transfer completes.
pub(crate) const IRQ_DMA: u32 = 0x100;

/// Device-side address of the 4 KiB DMA buffer, as the DMA registers see it.
pub(crate) const DMA_BUF_ADDR: u32 = 0x40000;

/// Size of the device's DMA buffer.
pub(crate) const DMA_BUF_SIZE: usize = 4096;

/// The device masks DMA addresses in RAM to this many bits.
pub(crate) const DMA_ADDR_BITS: u32 = 28;

/// Size of BAR0.
pub(crate) const BAR0_SIZE: usize = 0x10_0000;

/// Last BAR0 offset the lab's `PRINT_EDUINFO_CMD` dumps.
pub(crate) const LAB_DUMP_END: usize = 0x94;

impl STATUS {
    /// The status value the driver keeps: factorial completion raises an interrupt.
    pub(crate) fn irq_enabled() -> Self {
        Self::zeroed().with_irq_on_factorial(true)
    }
}

impl DMA_CMD {
    /// A command that starts a transfer and raises [`IRQ_DMA`] when it is done.
    pub(crate) fn run(to_ram: bool) -> Self {
        Self::zeroed()
            .with_start(true)
            .with_to_ram(to_ram)
            .with_irq_when_done(true)
    }

    /// Whether the transfer started by the last command is still pending.
    pub(crate) fn busy(self) -> bool {
        self.start()
    }
}
