// SPDX-License-Identifier: GPL-2.0
//! The edu-rs character device ABI: ioctl numbers and argument layouts.
//!
//! This one file is compiled into both the kernel module (`driver/edu.rs`)
//! and userspace (`edu-abi` crate, used by `edu-test`). It uses `core` only.
//! All integers are little-endian (x86_64) and the structs have no padding.
//! `docs/ioctl-abi.md` describes the semantics of every command, and
//! `abi/include/edu_abi.h` is the same ABI for C programs.
//!
//! The numbers are built with `_IO`/`_IOR`/`_IOW`/`_IOWR` from the
//! including crate's `ioctl` module: `kernel::ioctl` in the driver, the
//! `edu-abi` crate's own `ioctl.rs` in userspace.

use super::ioctl::{_IO, _IOR, _IOW, _IOWR};

/// The ioctl "type" byte of every edu command (`'k'`, as in the lab driver).
pub const EDU_IOC_MAGIC: u32 = b'k' as u32;

/// Size of the device's DMA buffer, and so of the char device's file.
pub const EDU_BUF_SIZE: u32 = 4096;

// Lab-compatible commands: no argument, results go to the kernel log in
// the lab report's format.

/// Lab: DMA the test pattern back from the device buffer and check it.
pub const DMA_READ_CMD: u32 = _IO(EDU_IOC_MAGIC, 0x1a);
/// Lab: DMA a 4-byte test pattern from RAM into the device buffer.
pub const DMA_WRITE_CMD: u32 = _IO(EDU_IOC_MAGIC, 0x1b);
/// Lab: log BAR0 length, config bytes 0x00-0x3f, the IRQ and BAR0 0x00-0x94.
pub const PRINT_EDUINFO_CMD: u32 = _IO(EDU_IOC_MAGIC, 0x1c);
/// Lab: raise interrupt status 0x12345678 and log the handler's view.
pub const SEND_INTERRUPT_CMD: u32 = _IO(EDU_IOC_MAGIC, 0x1d);
/// Lab: compute 10! on the device with its completion interrupt.
pub const FACTORIAL_CMD: u32 = _IO(EDU_IOC_MAGIC, 0x1e);

// Typed commands.

/// Reads an [`EduInfo`].
pub const EDU_IOC_INFO: u32 = _IOR::<EduInfo>(EDU_IOC_MAGIC, 0x20);
/// In: `u32` n. Out: n! mod 2^32 as computed by the device.
pub const EDU_IOC_FACTORIAL: u32 = _IOWR::<u32>(EDU_IOC_MAGIC, 0x21);
/// In: `u32` v. Out: the liveness register's read-back (`!v`).
pub const EDU_IOC_LIVENESS: u32 = _IOWR::<u32>(EDU_IOC_MAGIC, 0x22);
/// In: `u32` status bits to raise. Out: the bits the interrupt handler saw.
pub const EDU_IOC_RAISE_IRQ: u32 = _IOWR::<u32>(EDU_IOC_MAGIC, 0x23);
/// Copies user memory into the device buffer by DMA ([`EduDma`]).
pub const EDU_IOC_DMA_TO_DEVICE: u32 = _IOW::<EduDma>(EDU_IOC_MAGIC, 0x24);
/// Copies the device buffer into user memory by DMA ([`EduDma`]).
pub const EDU_IOC_DMA_FROM_DEVICE: u32 = _IOW::<EduDma>(EDU_IOC_MAGIC, 0x25);

/// [`EduInfo::irq_mode`] value: legacy INTx (pin A).
pub const EDU_IRQ_MODE_INTX: u32 = 0;
/// [`EduInfo::irq_mode`] value: MSI.
pub const EDU_IRQ_MODE_MSI: u32 = 1;

/// Interrupt status bit the device sets when a factorial completes.
pub const EDU_IRQ_FACTORIAL: u32 = 0x1;
/// Interrupt status bit the device sets when a DMA transfer completes.
pub const EDU_IRQ_DMA: u32 = 0x100;

/// Result of [`EDU_IOC_INFO`]: 40 bytes, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EduInfo {
    /// The identification register (0x010000ed on QEMU's edu).
    pub id: u32,
    /// Linux IRQ number the driver uses.
    pub irq: u32,
    /// [`EDU_IRQ_MODE_INTX`] or [`EDU_IRQ_MODE_MSI`].
    pub irq_mode: u32,
    /// Char device minor of this device.
    pub minor: u32,
    /// Physical start of BAR0.
    pub bar0_start: u64,
    /// Length of BAR0 in bytes.
    pub bar0_len: u64,
    /// DMA mask the driver set (0x0fff_ffff: 28 bits).
    pub dma_mask: u64,
}

/// Argument of [`EDU_IOC_DMA_TO_DEVICE`] and [`EDU_IOC_DMA_FROM_DEVICE`]:
/// 16 bytes, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EduDma {
    /// Address of the user buffer.
    pub user_addr: u64,
    /// Offset into the device's 4 KiB buffer.
    pub offset: u32,
    /// Number of bytes; 1..=4096 and `offset + len <= 4096`.
    pub len: u32,
}

const _: () = assert!(core::mem::size_of::<EduInfo>() == 40);
const _: () = assert!(core::mem::size_of::<EduDma>() == 16);
