//! A safe wrapper around one edu char device node: every ioctl of the ABI
//! in `edu-abi` as a method, plus read/write/lseek, with errors that name
//! the node, the operation and the errno.

use std::ffi::c_void;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use edu_abi::*;

use crate::errno::Errno;

/// A failed operation on a device node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevError {
    /// The device node, e.g. `/dev/edu0`.
    pub path: String,
    /// The operation: an ioctl name such as `EDU_IOC_RAISE_IRQ`, or `open`,
    /// `read`, `write`, `lseek`.
    pub op: &'static str,
    /// What the kernel answered.
    pub errno: Errno,
}

impl fmt::Display for DevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path, self.op, self.errno)
    }
}

impl std::error::Error for DevError {}

/// Direction of a DMA transfer between user memory and the device buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `EDU_IOC_DMA_TO_DEVICE`: user memory into the device buffer.
    ToDevice,
    /// `EDU_IOC_DMA_FROM_DEVICE`: the device buffer into user memory.
    FromDevice,
}

impl Dir {
    fn request(self) -> (u32, &'static str) {
        match self {
            Dir::ToDevice => (EDU_IOC_DMA_TO_DEVICE, "EDU_IOC_DMA_TO_DEVICE"),
            Dir::FromDevice => (EDU_IOC_DMA_FROM_DEVICE, "EDU_IOC_DMA_FROM_DEVICE"),
        }
    }
}

/// The lab's argument-less commands, in the order the lab's program used.
pub const LAB_COMMANDS: [(&str, u32); 5] = [
    ("PRINT_EDUINFO_CMD", PRINT_EDUINFO_CMD),
    ("SEND_INTERRUPT_CMD", SEND_INTERRUPT_CMD),
    ("FACTORIAL_CMD", FACTORIAL_CMD),
    ("DMA_WRITE_CMD", DMA_WRITE_CMD),
    ("DMA_READ_CMD", DMA_READ_CMD),
];

/// An open edu device node.
pub struct Device {
    file: File,
    path: String,
}

impl Device {
    /// Opens `path` read-write.
    pub fn open(path: &str) -> Result<Self, DevError> {
        Self::open_with(path, OpenOptions::new().read(true).write(true))
    }

    /// Opens `path` read-only: the driver refuses what writes the buffer.
    pub fn open_read_only(path: &str) -> Result<Self, DevError> {
        Self::open_with(path, OpenOptions::new().read(true))
    }

    fn open_with(path: &str, options: &OpenOptions) -> Result<Self, DevError> {
        let file = options.open(path).map_err(|e| DevError {
            path: path.to_string(),
            op: "open",
            errno: Errno::from_io(&e).unwrap_or(Errno(0)),
        })?;
        Ok(Device {
            file,
            path: path.to_string(),
        })
    }

    /// The node this device was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn err(&self, op: &'static str, errno: Errno) -> DevError {
        DevError {
            path: self.path.clone(),
            op,
            errno,
        }
    }

    fn io_err(&self, op: &'static str, e: &io::Error) -> DevError {
        self.err(op, Errno::from_io(e).unwrap_or(Errno(0)))
    }

    /// Issues `ioctl(fd, req, arg)`.
    ///
    /// # Safety
    ///
    /// `arg` must be null, or point to memory that the kernel may read and
    /// write for as many bytes as `req` encodes (and as the ABI defines for
    /// `req`), or to memory this process cannot access at all.
    unsafe fn ioctl(&self, op: &'static str, req: u32, arg: *mut c_void) -> Result<i32, DevError> {
        crate::marker::mark(format_args!("begin {op}"));
        // SAFETY: the fd is open for the lifetime of `self.file`; the caller
        // guarantees what the kernel may do with `arg`.
        let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), req as libc::Ioctl, arg) };
        if ret < 0 {
            let errno = Errno::last();
            crate::marker::mark(format_args!("end {op} {}", errno.name().unwrap_or("error")));
            Err(self.err(op, errno))
        } else {
            crate::marker::mark(format_args!("end {op} ok"));
            Ok(ret)
        }
    }

    /// A `_IOWR` command with a `u32` in and out.
    fn ioctl_u32(&self, op: &'static str, req: u32, value: u32) -> Result<u32, DevError> {
        let mut v = value;
        // SAFETY: `v` is a live, writable u32 and every u32 command of the
        // ABI reads and writes exactly 4 bytes.
        unsafe { self.ioctl(op, req, (&mut v as *mut u32).cast()) }?;
        Ok(v)
    }

    /// `EDU_IOC_INFO`.
    pub fn info(&self) -> Result<EduInfo, DevError> {
        let mut info = EduInfo::default();
        // SAFETY: `info` is a live, writable EduInfo, the type encoded in
        // EDU_IOC_INFO.
        unsafe {
            self.ioctl(
                "EDU_IOC_INFO",
                EDU_IOC_INFO,
                (&mut info as *mut EduInfo).cast(),
            )
        }?;
        Ok(info)
    }

    /// `EDU_IOC_FACTORIAL`: n! mod 2^32 as the device computed it.
    pub fn factorial(&self, n: u32) -> Result<u32, DevError> {
        self.ioctl_u32("EDU_IOC_FACTORIAL", EDU_IOC_FACTORIAL, n)
    }

    /// `EDU_IOC_LIVENESS`: what the liveness register reads back after `v`.
    pub fn liveness(&self, v: u32) -> Result<u32, DevError> {
        self.ioctl_u32("EDU_IOC_LIVENESS", EDU_IOC_LIVENESS, v)
    }

    /// `EDU_IOC_RAISE_IRQ`: the status bits the interrupt handler saw.
    pub fn raise(&self, v: u32) -> Result<u32, DevError> {
        self.ioctl_u32("EDU_IOC_RAISE_IRQ", EDU_IOC_RAISE_IRQ, v)
    }

    /// DMAs `data` into the device buffer at `offset`. An empty `data`
    /// sends `len` 0 (which the driver must refuse).
    pub fn dma_to_device(&self, offset: u32, data: &[u8]) -> Result<(), DevError> {
        let mut arg = EduDma {
            user_addr: data.as_ptr() as u64,
            offset,
            len: data.len() as u32,
        };
        let (req, op) = Dir::ToDevice.request();
        // SAFETY: `arg` is a live EduDma, the type encoded in the request;
        // the kernel reads at most `len` bytes at `user_addr`, which is `data`.
        unsafe { self.ioctl(op, req, (&mut arg as *mut EduDma).cast()) }?;
        Ok(())
    }

    /// DMAs the device buffer at `offset` into all of `buf`.
    pub fn dma_from_device(&self, offset: u32, buf: &mut [u8]) -> Result<(), DevError> {
        let mut arg = EduDma {
            user_addr: buf.as_mut_ptr() as u64,
            offset,
            len: buf.len() as u32,
        };
        let (req, op) = Dir::FromDevice.request();
        // SAFETY: `arg` is a live EduDma, the type encoded in the request;
        // the kernel writes at most `len` bytes at `user_addr`, which is
        // `buf`, borrowed mutably for the call.
        unsafe { self.ioctl(op, req, (&mut arg as *mut EduDma).cast()) }?;
        Ok(())
    }

    /// A DMA whose user buffer is `len` bytes (at most the guard's size)
    /// of the inaccessible `guard`.
    pub fn dma_unmapped(
        &self,
        dir: Dir,
        guard: &GuardPages,
        offset: u32,
        len: u32,
    ) -> Result<(), DevError> {
        let len = len.min(guard.len() as u32);
        self.dma_inaccessible(dir, guard.addr() as u64, offset, len)
    }

    /// A DMA whose user buffer is at `addr` in the kernel half of the
    /// address space (or the non-canonical hole), which no user access
    /// can reach.
    ///
    /// # Panics
    ///
    /// If `addr` is below 2^56, where user memory may live.
    pub fn dma_kernel_address(
        &self,
        dir: Dir,
        addr: u64,
        offset: u32,
        len: u32,
    ) -> Result<(), DevError> {
        assert!(addr >= 1 << 56, "{addr:#x} may be a user address");
        self.dma_inaccessible(dir, addr, offset, len.min(4096))
    }

    /// A DMA ioctl with a user buffer this process cannot access.
    fn dma_inaccessible(
        &self,
        dir: Dir,
        user_addr: u64,
        offset: u32,
        len: u32,
    ) -> Result<(), DevError> {
        let mut arg = EduDma {
            user_addr,
            offset,
            len,
        };
        let (req, op) = dir.request();
        // SAFETY: `arg` is a live EduDma; both callers ensure that its user
        // buffer is memory this process cannot access (a PROT_NONE range of
        // at least `len` bytes, or a non-user address), so the kernel
        // cannot change memory of ours through it.
        unsafe { self.ioctl(op, req, (&mut arg as *mut EduDma).cast()) }?;
        Ok(())
    }

    /// Issues any request `req` with an argument pointing into `guard`.
    pub fn ioctl_unmapped(
        &self,
        op: &'static str,
        req: u32,
        guard: &GuardPages,
    ) -> Result<i32, DevError> {
        // SAFETY: `guard` is mapped PROT_NONE: the kernel can neither read
        // nor write memory of ours through this argument.
        unsafe { self.ioctl(op, req, guard.addr()) }
    }

    /// Issues one of the lab's argument-less commands.
    pub fn lab(&self, op: &'static str, req: u32) -> Result<(), DevError> {
        // SAFETY: a null argument: the kernel cannot change memory of ours.
        unsafe { self.ioctl(op, req, std::ptr::null_mut()) }?;
        Ok(())
    }

    /// `read(2)` at the file position.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, DevError> {
        (&self.file).read(buf).map_err(|e| self.io_err("read", &e))
    }

    /// `write(2)` at the file position.
    pub fn write(&self, data: &[u8]) -> Result<usize, DevError> {
        (&self.file)
            .write(data)
            .map_err(|e| self.io_err("write", &e))
    }

    /// `pread(2)`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, DevError> {
        self.file
            .read_at(buf, offset)
            .map_err(|e| self.io_err("pread", &e))
    }

    /// `pwrite(2)`.
    pub fn write_at(&self, data: &[u8], offset: u64) -> Result<usize, DevError> {
        self.file
            .write_at(data, offset)
            .map_err(|e| self.io_err("pwrite", &e))
    }

    /// `lseek(2)`.
    pub fn seek(&self, pos: SeekFrom) -> Result<u64, DevError> {
        (&self.file).seek(pos).map_err(|e| self.io_err("lseek", &e))
    }
}

/// Anonymous pages mapped `PROT_NONE`: an address range that belongs to no
/// object of this process and that the kernel cannot copy to or from.
pub struct GuardPages {
    addr: *mut c_void,
    len: usize,
}

impl GuardPages {
    /// Maps two pages.
    pub fn new() -> io::Result<Self> {
        let len = 2 * 4096;
        // SAFETY: a fresh anonymous mapping at an address the kernel
        // chooses; it overlaps nothing we own.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(GuardPages { addr, len })
    }

    /// Start of the range.
    pub fn addr(&self) -> *mut c_void {
        self.addr
    }

    /// Length of the range in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for GuardPages {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` is exactly the mapping made in `new`, and
        // nothing refers into it after this.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// The default device: `/dev/edu` (the lab's `mknod`) if it exists,
/// otherwise `/dev/edu0`.
pub fn default_path() -> String {
    if std::path::Path::new("/dev/edu").exists() {
        "/dev/edu".into()
    } else {
        "/dev/edu0".into()
    }
}

/// n! mod 2^32, as the device computes it.
pub fn factorial_u32(n: u32) -> u32 {
    (1..=n).fold(1u32, |acc, k| acc.wrapping_mul(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factorial_wraps_like_the_device() {
        assert_eq!(factorial_u32(0), 1);
        assert_eq!(factorial_u32(1), 1);
        assert_eq!(factorial_u32(10), 0x375f00);
        assert_eq!(factorial_u32(12), 479_001_600);
        // 13! = 6227020800 = 0x1_7328_CC00.
        assert_eq!(factorial_u32(13), 0x7328_cc00);
    }

    #[test]
    fn dev_error_names_path_op_and_errno() {
        let e = DevError {
            path: "/dev/edu0".into(),
            op: "EDU_IOC_RAISE_IRQ",
            errno: Errno(libc::EINVAL),
        };
        assert_eq!(
            e.to_string(),
            "/dev/edu0: EDU_IOC_RAISE_IRQ: EINVAL (Invalid argument)"
        );
    }

    #[test]
    fn open_error_reports_the_errno() {
        let e = Device::open("/nonexistent/edu-test-node").err().unwrap();
        assert_eq!(e.op, "open");
        assert_eq!(e.errno, Errno(libc::ENOENT));
    }

    #[test]
    fn guard_pages_are_unreadable_by_the_kernel() {
        // write(2) into a pipe from a PROT_NONE range must fail with
        // EFAULT: the property the selftest's EFAULT cases rely on.
        let g = GuardPages::new().unwrap();
        let mut fds = [0; 2];
        // SAFETY: `fds` is a writable array of two ints.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the kernel only reads from `g`, which it cannot.
        let r = unsafe { libc::write(fds[1], g.addr(), 16) };
        let errno = Errno::last();
        for fd in fds {
            // SAFETY: both fds came from pipe() above and are closed once.
            unsafe { libc::close(fd) };
        }
        assert_eq!(r, -1);
        assert_eq!(errno, Errno(libc::EFAULT));
    }
}
