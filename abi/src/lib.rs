//! The edu-rs ioctl ABI as a `no_std` crate for userspace.
//!
//! The definitions live in `abi.rs`, which the kernel module also compiles
//! (`#[path = "../abi/src/abi.rs"] mod abi;` in `driver/edu.rs`), so the
//! two sides cannot drift apart. `abi.rs` builds its numbers with
//! `super::ioctl`: here that is `ioctl.rs`, in the module `kernel::ioctl`.
//! C programs use `include/edu_abi.h`, checked against this crate by
//! `tests/c_header.rs`.
#![no_std]

mod abi;
mod ioctl;
pub use abi::*;

/// `_IO('k', nr)`: an edu command number without argument (for tests of
/// numbers the driver does not define).
pub const fn io(nr: u32) -> u32 {
    ioctl::_IO(EDU_IOC_MAGIC, nr)
}

/// `_IOR('k', nr, T)`.
pub const fn ior<T>(nr: u32) -> u32 {
    ioctl::_IOR::<T>(EDU_IOC_MAGIC, nr)
}

/// `_IOW('k', nr, T)`.
pub const fn iow<T>(nr: u32) -> u32 {
    ioctl::_IOW::<T>(EDU_IOC_MAGIC, nr)
}

/// `_IOWR('k', nr, T)`.
pub const fn iowr<T>(nr: u32) -> u32 {
    ioctl::_IOWR::<T>(EDU_IOC_MAGIC, nr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    /// Linux's `_IOC(dir, type, nr, size)` from `include/uapi/asm-generic/ioctl.h`,
    /// written out here, not taken from the ABI's own encoder, so that a
    /// mistake there cannot also be in the test: 8 bits nr, 8 bits type,
    /// 14 bits size, 2 bits direction (`_IOC_NONE` 0, `_IOC_WRITE` 1,
    /// `_IOC_READ` 2).
    fn linux_ioc(dir: u32, ty: u8, nr: u32, size: u32) -> u32 {
        assert!(nr < 1 << 8 && size < 1 << 14 && dir < 1 << 2);
        (dir << 30) | (size << 16) | (u32::from(ty) << 8) | nr
    }

    const NONE: u32 = 0;
    const WRITE: u32 = 1;
    const READ: u32 = 2;

    #[test]
    fn numbers_are_linux_ioc_encodings() {
        let k = b'k';
        // (constant, dir, nr, argument size, the number as the lab and C
        // users know it)
        let table: [(u32, u32, u32, u32, u32); 11] = [
            (DMA_READ_CMD, NONE, 0x1a, 0, 0x0000_6b1a),
            (DMA_WRITE_CMD, NONE, 0x1b, 0, 0x0000_6b1b),
            (PRINT_EDUINFO_CMD, NONE, 0x1c, 0, 0x0000_6b1c),
            (SEND_INTERRUPT_CMD, NONE, 0x1d, 0, 0x0000_6b1d),
            (FACTORIAL_CMD, NONE, 0x1e, 0, 0x0000_6b1e),
            (EDU_IOC_INFO, READ, 0x20, 40, 0x8028_6b20),
            (EDU_IOC_FACTORIAL, READ | WRITE, 0x21, 4, 0xc004_6b21),
            (EDU_IOC_LIVENESS, READ | WRITE, 0x22, 4, 0xc004_6b22),
            (EDU_IOC_RAISE_IRQ, READ | WRITE, 0x23, 4, 0xc004_6b23),
            (EDU_IOC_DMA_TO_DEVICE, WRITE, 0x24, 16, 0x4010_6b24),
            (EDU_IOC_DMA_FROM_DEVICE, WRITE, 0x25, 16, 0x4010_6b25),
        ];
        for (constant, dir, nr, size, number) in table {
            assert_eq!(constant, linux_ioc(dir, k, nr, size), "nr {nr:#x}");
            assert_eq!(constant, number, "nr {nr:#x}");
        }
        assert_eq!(EDU_IOC_MAGIC, u32::from(k));
    }

    #[test]
    fn struct_layouts_are_pinned() {
        assert_eq!(size_of::<EduInfo>(), 40);
        assert_eq!(offset_of!(EduInfo, id), 0);
        assert_eq!(offset_of!(EduInfo, irq), 4);
        assert_eq!(offset_of!(EduInfo, irq_mode), 8);
        assert_eq!(offset_of!(EduInfo, minor), 12);
        assert_eq!(offset_of!(EduInfo, bar0_start), 16);
        assert_eq!(offset_of!(EduInfo, bar0_len), 24);
        assert_eq!(offset_of!(EduInfo, dma_mask), 32);
        assert_eq!(size_of::<EduDma>(), 16);
        assert_eq!(offset_of!(EduDma, user_addr), 0);
        assert_eq!(offset_of!(EduDma, offset), 8);
        assert_eq!(offset_of!(EduDma, len), 12);
    }

    #[test]
    fn constants_are_pinned() {
        assert_eq!(EDU_BUF_SIZE, 4096);
        assert_eq!((EDU_IRQ_MODE_INTX, EDU_IRQ_MODE_MSI), (0, 1));
        assert_eq!((EDU_IRQ_FACTORIAL, EDU_IRQ_DMA), (0x1, 0x100));
    }
}
