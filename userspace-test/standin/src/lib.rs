//! A stand-in for the edu driver that has no device: an `LD_PRELOAD`
//! library for a host (glibc) build of edu-test. It answers every typed
//! ioctl, `read`, `write`, `pread`, `pwrite` and `lseek` on `/dev/eduN` in
//! software, with the values the ABI (`docs/ioctl-abi.md`) promises: right
//! factorials, `NOT v`, the raised bits, `EINVAL`, `EFAULT`, `ENOTTY`, a
//! 4 KiB buffer (kept in the node's file, so processes share it). What it
//! cannot do is make a device interrupt, answer through `resource0`, or log
//! from an interrupt handler.
//!
//! edu-test's host test (`userspace-test/tests/standin.rs`) builds a fake
//! root with the files the selftest reads (`/proc/interrupts` whose counts
//! never move, sysfs, `/dev/kmsg`, the nodes) and runs the selftest over
//! this library: every case that claims the device did something must
//! fail for lack of evidence.
//!
//! Environment: `EDU_STANDIN_ROOT`, the fake root that `/dev`, `/dev/eduN`,
//! `/dev/kmsg`, `/proc/interrupts`, `/sys/...` and `/lib/modules/...` are
//! redirected into; `EDU_STANDIN_MAJOR`, the nodes' major number. Device N
//! finds its IRQ and BAR0 in the fake sysfs (`/sys/dev/char/MAJOR:N/device/
//! {irq,resource,msi_irqs}`).
//!
//! x86_64 glibc only: the variadic `open` and `ioctl` are defined with their
//! fixed arguments, which the x86_64 calling convention passes alike.

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr, CString};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use edu_abi::*;
use libc::{off64_t, size_t, ssize_t};

/// Device fds this library answers for: fd -> minor + 1 (0: not ours).
const MAX_FD: usize = 4096;
static MINOR: [AtomicU32; MAX_FD] = [const { AtomicU32::new(0) }; MAX_FD];
/// File positions of the device fds.
static POS: [AtomicU64; MAX_FD] = [const { AtomicU64::new(0) }; MAX_FD];

const BUF: u64 = EDU_BUF_SIZE as u64;

/// Accessors for the next definitions (glibc's) of the symbols this
/// library interposes, each looked up once.
macro_rules! reals {
    ($($name:ident = $sym:literal: $ty:ty;)*) => {$(
        fn $name() -> $ty {
            static SYM: OnceLock<usize> = OnceLock::new();
            let addr = *SYM.get_or_init(|| {
                // SAFETY: the name is a NUL-terminated literal; RTLD_NEXT
                // looks past this library.
                unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($sym, "\0").as_ptr().cast()) as usize }
            });
            assert!(addr != 0, concat!("edu-standin: no ", $sym));
            // SAFETY: `addr` is glibc's definition of this symbol, whose C
            // prototype is `$ty`.
            unsafe { std::mem::transmute::<usize, $ty>(addr) }
        }
    )*};
}

reals! {
    real_open64 = "open64": unsafe extern "C" fn(*const c_char, c_int, libc::mode_t) -> c_int;
    real_statx = "statx": unsafe extern "C" fn(c_int, *const c_char, c_int, libc::c_uint, *mut libc::statx) -> c_int;
    real_opendir = "opendir": unsafe extern "C" fn(*const c_char) -> *mut libc::DIR;
    real_realpath = "realpath": unsafe extern "C" fn(*const c_char, *mut c_char) -> *mut c_char;
    real_ioctl = "ioctl": unsafe extern "C" fn(c_int, c_ulong, *mut c_void) -> c_int;
    real_read = "read": unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t;
    real_write = "write": unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
    real_pread64 = "pread64": unsafe extern "C" fn(c_int, *mut c_void, size_t, off64_t) -> ssize_t;
    real_pwrite64 = "pwrite64": unsafe extern "C" fn(c_int, *const c_void, size_t, off64_t) -> ssize_t;
    real_lseek64 = "lseek64": unsafe extern "C" fn(c_int, off64_t, c_int) -> off64_t;
    real_close = "close": unsafe extern "C" fn(c_int) -> c_int;
}

/// Sets errno and returns -1, as a failing libc call does.
fn fail<T: From<i8>>(errno: c_int) -> T {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = errno };
    T::from(-1)
}

fn root() -> Option<&'static [u8]> {
    static ROOT: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    ROOT.get_or_init(|| std::env::var_os("EDU_STANDIN_ROOT").map(|r| r.into_encoded_bytes()))
        .as_deref()
}

fn major() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| {
        std::env::var("EDU_STANDIN_MAJOR")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(240)
    })
}

/// The minor of a device node path: `/dev/edu` (the lab's node) is 0.
fn node_minor(path: &[u8]) -> Option<u32> {
    let rest = path.strip_prefix(b"/dev/edu")?;
    if rest.is_empty() {
        return Some(0);
    }
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// The path in the fake root that `path` stands for, if it is one of the
/// redirected ones.
fn redirect(path: &CStr) -> Option<CString> {
    let root = root()?;
    let p = path.to_bytes();
    let ours = p == b"/dev"
        || p.starts_with(b"/dev/edu")
        || p == b"/dev/kmsg"
        || p == b"/proc/interrupts"
        || p == b"/sys"
        || p.starts_with(b"/sys/")
        || p.starts_with(b"/lib/modules/");
    if !ours {
        return None;
    }
    let mut full = root.to_vec();
    full.extend_from_slice(p);
    CString::new(full).ok()
}

/// `path`, redirected if it is one of ours.
///
/// # Safety
///
/// `path` must be null or a NUL-terminated string.
unsafe fn resolve(path: *const c_char) -> (Option<CString>, Option<u32>) {
    if path.is_null() {
        return (None, None);
    }
    // SAFETY: the caller passes a C string.
    let p = unsafe { CStr::from_ptr(path) };
    let minor = if root().is_some() {
        node_minor(p.to_bytes())
    } else {
        None
    };
    (redirect(p), minor)
}

fn device_of(fd: c_int) -> Option<(usize, u32)> {
    let i = usize::try_from(fd).ok().filter(|&i| i < MAX_FD)?;
    match MINOR[i].load(Ordering::SeqCst) {
        0 => None,
        m => Some((i, m - 1)),
    }
}

/// Copies `len` bytes from our own memory at `addr`, failing with EFAULT
/// where the kernel's copy_from_user would.
fn copy_in(addr: u64, len: usize) -> Result<Vec<u8>, c_int> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: len,
    };
    // SAFETY: process_vm_readv on our own pid reads `remote` through the
    // kernel (EFAULT if unmapped or unreadable) into `buf`, which is `len`
    // bytes long.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == len as isize {
        Ok(buf)
    } else {
        Err(libc::EFAULT)
    }
}

/// Copies `data` to our own memory at `addr`, failing with EFAULT where the
/// kernel's copy_to_user would.
fn copy_out(addr: u64, data: &[u8]) -> Result<(), c_int> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: data.len(),
    };
    // SAFETY: process_vm_writev on our own pid writes `data` to `remote`
    // through the kernel, as copy_to_user does for the driver: the caller
    // of ioctl/read gave us that memory for the result, and an unmapped or
    // read-only range fails with EFAULT.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(libc::EFAULT)
    }
}

fn copy_in_u32(arg: u64) -> Result<u32, c_int> {
    let b = copy_in(arg, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads or writes the device buffer, kept in the node's file.
fn buffer_io(fd: c_int, offset: u64, data: &mut [u8], write: bool) -> Result<(), c_int> {
    let n = if write {
        // SAFETY: `data` is valid for its length; fd is an open file.
        unsafe { real_pwrite64()(fd, data.as_ptr().cast(), data.len(), offset as off64_t) }
    } else {
        // SAFETY: `data` is valid and writable for its length.
        unsafe { real_pread64()(fd, data.as_mut_ptr().cast(), data.len(), offset as off64_t) }
    };
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(libc::EIO)
    }
}

/// The first field of a file in device `minor`'s fake sysfs directory.
fn sysfs_field(minor: u32, file: &str) -> Option<String> {
    let root = String::from_utf8(root()?.to_vec()).ok()?;
    let path = format!("{root}/sys/dev/char/{}:{minor}/device/{file}", major());
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

fn info(minor: u32) -> EduInfo {
    let msi = root()
        .and_then(|r| String::from_utf8(r.to_vec()).ok())
        .and_then(|r| {
            std::fs::read_dir(format!(
                "{r}/sys/dev/char/{}:{minor}/device/msi_irqs",
                major()
            ))
            .ok()
        })
        .is_some_and(|mut d| d.next().is_some());
    EduInfo {
        id: 0x010000ed,
        irq: sysfs_field(minor, "irq")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        irq_mode: if msi {
            EDU_IRQ_MODE_MSI
        } else {
            EDU_IRQ_MODE_INTX
        },
        minor,
        bar0_start: sysfs_field(minor, "resource")
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0),
        bar0_len: 1 << 20,
        dma_mask: 0x0fff_ffff,
    }
}

fn in_range(offset: u32, len: u32) -> bool {
    len != 0 && u64::from(offset) + u64::from(len) <= BUF
}

/// One ioctl on a device fd, as the driver answers it: Ok(0) or an errno.
fn device_ioctl(fd: c_int, minor: u32, req: u32, arg: u64) -> Result<c_int, c_int> {
    let u32_in_out = |f: &dyn Fn(u32) -> Result<u32, c_int>| {
        let v = f(copy_in_u32(arg)?)?;
        copy_out(arg, &v.to_le_bytes()).map(|()| 0)
    };
    match req {
        PRINT_EDUINFO_CMD | SEND_INTERRUPT_CMD | FACTORIAL_CMD | DMA_WRITE_CMD | DMA_READ_CMD => {
            Ok(0)
        }
        EDU_IOC_INFO => {
            let i = info(minor);
            let mut bytes = Vec::with_capacity(40);
            for v in [i.id, i.irq, i.irq_mode, i.minor] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            for v in [i.bar0_start, i.bar0_len, i.dma_mask] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            copy_out(arg, &bytes).map(|()| 0)
        }
        EDU_IOC_FACTORIAL => u32_in_out(&|n| Ok((1..=n).fold(1u32, |a, k| a.wrapping_mul(k)))),
        EDU_IOC_LIVENESS => u32_in_out(&|v| Ok(!v)),
        EDU_IOC_RAISE_IRQ => u32_in_out(&|v| {
            if v == 0 || v & (EDU_IRQ_FACTORIAL | EDU_IRQ_DMA) != 0 {
                Err(libc::EINVAL)
            } else {
                Ok(v)
            }
        }),
        EDU_IOC_DMA_TO_DEVICE | EDU_IOC_DMA_FROM_DEVICE => {
            let d = copy_in(arg, 16)?;
            let user = u64::from_le_bytes(d[..8].try_into().map_err(|_| libc::EINVAL)?);
            let offset = u32::from_le_bytes(d[8..12].try_into().map_err(|_| libc::EINVAL)?);
            let len = u32::from_le_bytes(d[12..].try_into().map_err(|_| libc::EINVAL)?);
            if !in_range(offset, len) {
                return Err(libc::EINVAL);
            }
            if req == EDU_IOC_DMA_TO_DEVICE {
                let mut data = copy_in(user, len as usize)?;
                buffer_io(fd, offset.into(), &mut data, true)?;
            } else {
                let mut data = vec![0; len as usize];
                buffer_io(fd, offset.into(), &mut data, false)?;
                copy_out(user, &data)?;
            }
            Ok(0)
        }
        _ => Err(libc::ENOTTY),
    }
}

/// A transfer of `count` bytes at `pos`: how many bytes move.
fn window(pos: u64, count: usize) -> u64 {
    (count as u64).min(BUF.saturating_sub(pos))
}

fn device_read(fd: c_int, buf: *mut c_void, count: size_t, pos: u64) -> Result<u64, c_int> {
    let n = window(pos, count);
    if n == 0 {
        return Ok(0);
    }
    let mut data = vec![0; n as usize];
    buffer_io(fd, pos, &mut data, false)?;
    copy_out(buf as u64, &data)?;
    Ok(n)
}

fn device_write(fd: c_int, buf: *const c_void, count: size_t, pos: u64) -> Result<u64, c_int> {
    if count == 0 {
        return Ok(0);
    }
    let n = window(pos, count);
    if n == 0 {
        return Err(libc::ENOSPC);
    }
    let mut data = copy_in(buf as u64, n as usize)?;
    buffer_io(fd, pos, &mut data, true)?;
    Ok(n)
}

fn ssize(r: Result<u64, c_int>) -> ssize_t {
    match r {
        Ok(n) => n as ssize_t,
        Err(e) => fail(e),
    }
}

/// # Safety
///
/// As `open(2)`.
#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: `path` is the caller's C string.
    let (redirected, minor) = unsafe { resolve(path) };
    let p = redirected.as_deref().map_or(path, CStr::as_ptr);
    // SAFETY: as the caller's open, with the path redirected.
    let fd = unsafe { real_open64()(p, flags, mode) };
    if let (Some(minor), Ok(i)) = (minor, usize::try_from(fd)) {
        if i < MAX_FD {
            POS[i].store(0, Ordering::SeqCst);
            MINOR[i].store(minor + 1, Ordering::SeqCst);
        }
    }
    fd
}

/// # Safety
///
/// As `open(2)`.
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: the same call.
    unsafe { open64(path, flags, mode) }
}

/// # Safety
///
/// As `statx(2)`.
#[no_mangle]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: libc::c_uint,
    buf: *mut libc::statx,
) -> c_int {
    // SAFETY: `path` is the caller's C string (or null with AT_EMPTY_PATH).
    let (redirected, minor) = unsafe { resolve(path) };
    let p = redirected.as_deref().map_or(path, CStr::as_ptr);
    // SAFETY: as the caller's statx, with the path redirected.
    let r = unsafe { real_statx()(dirfd, p, flags, mask, buf) };
    if let (0, Some(minor)) = (r, minor) {
        // The node is a plain file in the fake root: make it the char
        // device it stands for.
        // SAFETY: statx succeeded, so `buf` is the caller's filled statx.
        let st = unsafe { &mut *buf };
        st.stx_mode = (st.stx_mode & !(libc::S_IFMT as u16)) | libc::S_IFCHR as u16;
        st.stx_rdev_major = major();
        st.stx_rdev_minor = minor;
    }
    r
}

/// # Safety
///
/// As `opendir(3)`.
#[no_mangle]
pub unsafe extern "C" fn opendir(path: *const c_char) -> *mut libc::DIR {
    // SAFETY: `path` is the caller's C string.
    let (redirected, _) = unsafe { resolve(path) };
    let p = redirected.as_deref().map_or(path, CStr::as_ptr);
    // SAFETY: as the caller's opendir, with the path redirected.
    unsafe { real_opendir()(p) }
}

/// # Safety
///
/// As `realpath(3)`.
#[no_mangle]
pub unsafe extern "C" fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
    // SAFETY: `path` is the caller's C string.
    let (redirected, _) = unsafe { resolve(path) };
    let p = redirected.as_deref().map_or(path, CStr::as_ptr);
    // SAFETY: as the caller's realpath, with the path redirected.
    unsafe { real_realpath()(p, resolved) }
}

/// # Safety
///
/// As `ioctl(2)`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int {
    match device_of(fd) {
        Some((_, minor)) => match device_ioctl(fd, minor, req as u32, arg as u64) {
            Ok(r) => r,
            Err(e) => fail(e),
        },
        // SAFETY: not ours: the caller's ioctl as it was.
        None => unsafe { real_ioctl()(fd, req, arg) },
    }
}

/// # Safety
///
/// As `read(2)`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    match device_of(fd) {
        Some((i, _)) => {
            let r = device_read(fd, buf, count, POS[i].load(Ordering::SeqCst));
            if let Ok(n) = r {
                POS[i].fetch_add(n, Ordering::SeqCst);
            }
            ssize(r)
        }
        // SAFETY: not ours: the caller's read as it was.
        None => unsafe { real_read()(fd, buf, count) },
    }
}

/// # Safety
///
/// As `write(2)`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    match device_of(fd) {
        Some((i, _)) => {
            let r = device_write(fd, buf, count, POS[i].load(Ordering::SeqCst));
            if let Ok(n) = r {
                POS[i].fetch_add(n, Ordering::SeqCst);
            }
            ssize(r)
        }
        // SAFETY: not ours: the caller's write as it was.
        None => unsafe { real_write()(fd, buf, count) },
    }
}

/// # Safety
///
/// As `pread(2)`.
#[no_mangle]
pub unsafe extern "C" fn pread64(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    off: off64_t,
) -> ssize_t {
    match device_of(fd) {
        Some(_) if off < 0 => fail(libc::EINVAL),
        Some(_) => ssize(device_read(fd, buf, count, off as u64)),
        // SAFETY: not ours: the caller's pread as it was.
        None => unsafe { real_pread64()(fd, buf, count, off) },
    }
}

/// # Safety
///
/// As `pwrite(2)`.
#[no_mangle]
pub unsafe extern "C" fn pwrite64(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    off: off64_t,
) -> ssize_t {
    match device_of(fd) {
        Some(_) if off < 0 => fail(libc::EINVAL),
        Some(_) => ssize(device_write(fd, buf, count, off as u64)),
        // SAFETY: not ours: the caller's pwrite as it was.
        None => unsafe { real_pwrite64()(fd, buf, count, off) },
    }
}

/// # Safety
///
/// As `lseek(2)`.
#[no_mangle]
pub unsafe extern "C" fn lseek64(fd: c_int, off: off64_t, whence: c_int) -> off64_t {
    match device_of(fd) {
        Some((i, _)) => {
            let base = match whence {
                libc::SEEK_SET => 0,
                libc::SEEK_CUR => POS[i].load(Ordering::SeqCst) as i64,
                libc::SEEK_END => BUF as i64,
                _ => return fail(libc::EINVAL),
            };
            match base.checked_add(off) {
                Some(p) if (0..=BUF as i64).contains(&p) => {
                    POS[i].store(p as u64, Ordering::SeqCst);
                    p
                }
                _ => fail(libc::EINVAL),
            }
        }
        // SAFETY: not ours: the caller's lseek as it was.
        None => unsafe { real_lseek64()(fd, off, whence) },
    }
}

/// # Safety
///
/// As `lseek(2)`.
#[no_mangle]
pub unsafe extern "C" fn lseek(fd: c_int, off: off64_t, whence: c_int) -> off64_t {
    // SAFETY: the same call (off_t is 64 bits on x86_64).
    unsafe { lseek64(fd, off, whence) }
}

/// # Safety
///
/// As `close(2)`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if let Some((i, _)) = device_of(fd) {
        MINOR[i].store(0, Ordering::SeqCst);
    }
    // SAFETY: the caller's close as it was.
    unsafe { real_close()(fd) }
}
