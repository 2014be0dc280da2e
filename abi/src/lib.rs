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
