// SPDX-License-Identifier: GPL-2.0

//! Register map of QEMU's `edu` device (BAR0, 1 MiB of MMIO).
//!
//! Offsets and bits follow QEMU's `hw/misc/edu.c`; `docs/driver.md` has the
//! register map in prose. Below 0x80 the device only answers 4-byte
//! accesses; the DMA registers at 0x80 and up also take 8-byte ones. Other
//! offsets read as all ones.

use kernel::io::register;

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
}

/// Size of BAR0.
pub(crate) const BAR0_SIZE: usize = 0x10_0000;
