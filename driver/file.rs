// SPDX-License-Identifier: GPL-2.0

//! The edu char devices: the minor table, and `open`, `ioctl`, `read`,
//! `write` on `/dev/eduN` (or the lab's `mknod /dev/edu c MAJOR 0`).
//!
//! From userspace (see `docs/ioctl-abi.md`; `edu-test` wraps all of it):
//!
//! ```text
//! int fd = open("/dev/edu0", O_RDWR);
//! uint32_t n = 10;
//! ioctl(fd, EDU_IOC_FACTORIAL, &n);      // n == 3628800
//! pwrite(fd, buf, 4096, 0);              // RAM -> device buffer by DMA
//! pread(fd, buf, 4096, 0);               // device buffer -> RAM by DMA
//! ```

use crate::{abi, chrdev, hw::EduDev, regs};
use kernel::{
    num::casts::FromSafeCast,
    prelude::*,
    sync::Arc,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter},
};

/// Most devices the driver handles (minors 0..MAX_DEVICES).
pub(crate) const MAX_DEVICES: usize = 16;

/// Bound devices by minor.
pub(crate) struct DeviceTable {
    devs: [Option<Arc<EduDev>>; MAX_DEVICES],
}

impl DeviceTable {
    pub(crate) const fn new() -> Self {
        Self {
            devs: [const { None }; MAX_DEVICES],
        }
    }

    /// Returns the lowest free minor.
    pub(crate) fn free_minor(&self) -> Result<u32> {
        let minor = self.devs.iter().position(Option::is_none).ok_or(ENOSPC)?;
        Ok(u32::try_from(minor)?)
    }

    /// Publishes `dev` under its minor: `open` finds it from now on.
    pub(crate) fn insert(&mut self, dev: Arc<EduDev>) {
        let minor = usize::from_safe_cast(dev.id.minor);
        self.devs[minor] = Some(dev);
    }

    /// Unpublishes `minor`: later opens fail with `ENXIO`.
    pub(crate) fn remove(&mut self, minor: u32) {
        self.devs[usize::from_safe_cast(minor)] = None;
    }
}

kernel::sync::global_lock! {
    // SAFETY: initialised by the module initialiser before the char device
    // and the PCI driver, the only users, are registered.
    pub(crate) unsafe(uninit) static DEVICES: Mutex<DeviceTable> = DeviceTable::new();
}

// SAFETY: `EduDma` is `repr(C)` with only integer fields and no padding (the
// ABI file asserts its size), so every byte pattern is a valid value.
unsafe impl FromBytes for abi::EduDma {}

// SAFETY: `EduInfo` is `repr(C)` with only integer fields and no padding (the
// ABI file asserts its size), so it has no uninitialised bytes.
unsafe impl AsBytes for abi::EduInfo {}

/// Reads an ioctl argument of type `T` from user address `arg`.
fn read_arg<T: FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .reader()
        .read()
}

/// Writes an ioctl result of type `T` to user address `arg`.
fn write_arg<T: AsBytes>(arg: usize, value: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .writer()
        .write(value)
}

/// `_IOWR` commands taking and returning a `u32`.
fn u32_in_out(arg: usize, f: impl FnOnce(u32) -> Result<u32>) -> Result<isize> {
    let out = f(read_arg::<u32>(arg)?)?;
    write_arg(arg, &out)?;
    Ok(0)
}

/// Runs an `EDU_IOC_DMA_*` command.
fn dma_ioctl(dev: &EduDev, arg: usize, to_device: bool) -> Result<isize> {
    let req: abi::EduDma = read_arg(arg)?;
    let (offset, len) = (
        usize::from_safe_cast(req.offset),
        usize::from_safe_cast(req.len),
    );
    // A 64-bit address that a 32-bit kernel cannot hold is no user address.
    let addr = usize::try_from(req.user_addr).map_err(|_| EFAULT)?;
    let user = UserSlice::new(UserPtr::from_addr(addr), len);
    if to_device {
        dev.dma_to_device(&mut user.reader(), offset, len)?;
    } else {
        dev.dma_from_device(&mut user.writer(), offset, len)?;
    }
    Ok(0)
}

/// Clamps a transfer at file position `pos` to the device buffer; `None`
/// at or past its end.
fn window(pos: i64, count: usize) -> Option<(usize, usize)> {
    let pos = usize::try_from(pos).ok()?;
    let left = regs::DMA_BUF_SIZE.checked_sub(pos).filter(|&n| n > 0)?;
    Some((pos, count.min(left)))
}

impl chrdev::Operations for EduDev {
    const SIZE: i64 = abi::EDU_BUF_SIZE as i64;

    fn open(minor: u32) -> Result<Arc<Self>> {
        let table = DEVICES.lock();
        let dev = table
            .devs
            .get(usize::from_safe_cast(minor))
            .and_then(Option::as_ref);
        dev.cloned().ok_or(ENXIO)
    }

    fn ioctl(dev: &Self, cmd: u32, arg: usize, writable: bool) -> Result<isize> {
        // Like write(2), changing the device buffer needs a file opened
        // for writing.
        if matches!(cmd, abi::DMA_WRITE_CMD | abi::EDU_IOC_DMA_TO_DEVICE) && !writable {
            return Err(EBADF);
        }
        match cmd {
            abi::PRINT_EDUINFO_CMD => dev.lab_print_info().map(|()| 0),
            abi::SEND_INTERRUPT_CMD => dev.lab_send_interrupt().map(|()| 0),
            abi::FACTORIAL_CMD => dev.lab_factorial().map(|()| 0),
            abi::DMA_WRITE_CMD => dev.lab_dma_write().map(|()| 0),
            abi::DMA_READ_CMD => dev.lab_dma_read().map(|()| 0),
            abi::EDU_IOC_INFO => write_arg(arg, &dev.info()?).map(|()| 0),
            abi::EDU_IOC_FACTORIAL => u32_in_out(arg, |n| dev.factorial(n)),
            abi::EDU_IOC_LIVENESS => u32_in_out(arg, |v| dev.liveness(v)),
            abi::EDU_IOC_RAISE_IRQ => u32_in_out(arg, |v| dev.raise(v)),
            abi::EDU_IOC_DMA_TO_DEVICE => dma_ioctl(dev, arg, true),
            abi::EDU_IOC_DMA_FROM_DEVICE => dma_ioctl(dev, arg, false),
            _ => Err(ENOTTY),
        }
    }

    fn read(dev: &Self, mut out: UserSliceWriter, pos: &mut i64) -> Result<usize> {
        let Some((offset, len)) = window(*pos, out.len()) else {
            return Ok(0);
        };
        if len == 0 {
            return Ok(0);
        }
        dev.dma_from_device(&mut out, offset, len)?;
        *pos += i64::try_from(len)?;
        Ok(len)
    }

    fn write(dev: &Self, mut data: UserSliceReader, pos: &mut i64) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let (offset, len) = window(*pos, data.len()).ok_or(ENOSPC)?;
        dev.dma_to_device(&mut data, offset, len)?;
        *pos += i64::try_from(len)?;
        Ok(len)
    }
}
