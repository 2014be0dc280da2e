//! `ioctl()` number encoding for userspace, as Linux's
//! `include/uapi/asm-generic/ioctl.h` defines it (x86 and most other
//! architectures).
//!
//! The kernel module builds the same numbers with `kernel::ioctl`, whose
//! functions have these names and signatures: `abi.rs` uses whichever one
//! the crate compiling it provides. `tests/c_header.rs` checks the result
//! against the C macros of `<linux/ioctl.h>`.

#![allow(non_snake_case)]

const NRBITS: u32 = 8;
const TYPEBITS: u32 = 8;
const SIZEBITS: u32 = 14;
const NRSHIFT: u32 = 0;
const TYPESHIFT: u32 = NRSHIFT + NRBITS;
const SIZESHIFT: u32 = TYPESHIFT + TYPEBITS;
const DIRSHIFT: u32 = SIZESHIFT + SIZEBITS;

const NONE: u32 = 0;
const WRITE: u32 = 1;
const READ: u32 = 2;

/// `_IOC(dir, type, nr, size)`. Out-of-range fields fail the build when
/// evaluated in a constant, as `build_assert!` does in the kernel.
const fn _IOC(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    assert!(ty < 1 << TYPEBITS && nr < 1 << NRBITS && size < 1 << SIZEBITS);
    (dir << DIRSHIFT) | (ty << TYPESHIFT) | (nr << NRSHIFT) | ((size as u32) << SIZESHIFT)
}

/// `_IO(type, nr)`: a command without argument.
pub const fn _IO(ty: u32, nr: u32) -> u32 {
    _IOC(NONE, ty, nr, 0)
}

/// `_IOR(type, nr, T)`: the kernel writes a `T` to the argument.
pub const fn _IOR<T>(ty: u32, nr: u32) -> u32 {
    _IOC(READ, ty, nr, core::mem::size_of::<T>())
}

/// `_IOW(type, nr, T)`: the kernel reads a `T` from the argument.
pub const fn _IOW<T>(ty: u32, nr: u32) -> u32 {
    _IOC(WRITE, ty, nr, core::mem::size_of::<T>())
}

/// `_IOWR(type, nr, T)`: the kernel reads a `T` and writes one back.
pub const fn _IOWR<T>(ty: u32, nr: u32) -> u32 {
    _IOC(READ | WRITE, ty, nr, core::mem::size_of::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_linux_numbers() {
        assert_eq!(_IO(0xAE, 0x80), 0xAE80); // KVM_RUN
        assert_eq!(_IOW::<[u8; 32]>(0xAE, 0x46), 0x4020_AE46); // KVM_SET_USER_MEMORY_REGION
        assert_eq!(_IOR::<[u8; 44]>(b'T' as u32, 0x2A), 0x802C_542A); // TCGETS2
        assert_eq!(_IOWR::<[u8; 24]>(0xAA, 0x3F), 0xC018_AA3F); // UFFDIO_API
    }
}
