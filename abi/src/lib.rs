//! The edu-rs ioctl ABI as a `no_std` crate for userspace.
//!
//! The definitions live in `abi.rs`, which the kernel module also compiles
//! (`#[path = "../abi/src/abi.rs"] mod abi;` in `driver/edu.rs`), so the
//! two sides cannot drift apart.
#![no_std]

mod abi;
pub use abi::*;
