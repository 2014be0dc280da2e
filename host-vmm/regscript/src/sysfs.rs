//! Runner A: a real edu device seen from Linux userspace, with no driver bound.
//!
//! - the device is found in `/sys/bus/pci/devices` by vendor 0x1234 and
//!   device 0x11e8, and enabled by writing `1` to its `enable` file;
//! - BAR0 is `resource0`, mapped with `mmap`, and every access is one x86
//!   `mov` of exactly the script's size at exactly the script's offset
//!   (aligned or not), so the device sees what a driver would make it see;
//! - configuration space is the `config` file (`pread`/`pwrite` of the
//!   access size, which the kernel turns into one access of that size when
//!   the offset is naturally aligned);
//! - bus mastering (command register bit 2) is switched on for DMA;
//! - the DMA buffer is one locked page whose physical address comes from
//!   `/proc/self/pagemap` (root only), retried until it is below 256 MiB,
//!   since the edu device masks DMA addresses to 28 bits.

use std::arch::asm;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::Duration;

use thiserror::Error;

use crate::exec::{Target, TargetError};
use crate::script::BUF_LEN;

/// PCI vendor id of QEMU's edu device.
pub const EDU_VENDOR: u16 = 0x1234;
/// PCI device id of QEMU's edu device.
pub const EDU_DEVICE: u16 = 0x11e8;
/// The edu device's default DMA mask: 28 address bits.
pub const DMA_LIMIT: u64 = 1 << 28;
const PAGE: usize = 4096;
/// How many pages to try before giving up on a buffer below [`DMA_LIMIT`].
const BUF_TRIES: usize = 4096;

/// Errors of the sysfs runner.
#[derive(Debug, Error)]
pub enum SysfsError {
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A driver owns the device; scripts need it unbound.
    #[error("{0}: a driver is bound to the device (boot without edu.ko)")]
    DriverBound(PathBuf),
    /// No edu device is there.
    #[error("no PCI device {EDU_VENDOR:04x}:{EDU_DEVICE:04x} in {0}")]
    NoDevice(PathBuf),
    /// BAR0 is not the size the edu device has.
    #[error("{0}: BAR0 is {1} bytes, expected 1 MiB")]
    Bar0Size(PathBuf, u64),
    /// `/proc/self/pagemap` gave no frame number (not root?).
    #[error("pagemap gives no frame number for the DMA buffer (run as root)")]
    NoPfn,
    /// Every page tried was above the device's DMA limit.
    #[error("no page below {DMA_LIMIT:#x} after {BUF_TRIES} tries (give the guest <= 256 MiB)")]
    NoLowPage,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SysfsError + 'a {
    move |source| SysfsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn read_hex(path: &Path) -> Result<u64, SysfsError> {
    let text = std::fs::read_to_string(path).map_err(io_err("read", path))?;
    let t = text.trim();
    u64::from_str_radix(t.trim_start_matches("0x"), 16).map_err(|_| SysfsError::Io {
        what: "parse",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("'{t}' is not hex")),
    })
}

/// The edu devices under `root` (normally `/sys/bus/pci/devices`), sorted by
/// address.
pub fn find_edu_devices(root: &Path) -> Result<Vec<PathBuf>, SysfsError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_err("list", root))? {
        let dir = entry.map_err(io_err("list", root))?.path();
        let id = (read_hex(&dir.join("vendor")), read_hex(&dir.join("device")));
        if let (Ok(v), Ok(d)) = id {
            if v == u64::from(EDU_VENDOR) && d == u64::from(EDU_DEVICE) {
                found.push(dir);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// An `mmap`ed region, unmapped on drop.
///
/// # Invariants
/// `ptr` is the start of a live mapping of `len` bytes made by `mmap` and
/// owned by this value.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize, prot: i32, flags: i32, fd: i32) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping at an address the kernel picks; no existing
        // memory is affected. The result is checked for MAP_FAILED.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // INVARIANT: `p` is a live mapping of `len` bytes that we own.
        NonNull::new(p.cast::<u8>())
            .map(|ptr| Mapping { ptr, len })
            .ok_or_else(|| io::Error::other("mmap returned NULL"))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this is our own live mapping, and no
        // reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Read `size` bytes at `p` with one `mov` of that size.
///
/// # Safety
/// `p..p+size` must be mapped readable.
unsafe fn mmio_read(p: *const u8, size: u8) -> u64 {
    match size {
        1 => {
            let v: u8;
            // SAFETY: the caller guarantees the byte at `p` is mapped.
            unsafe {
                asm!("mov {v}, byte ptr [{p}]", p = in(reg) p, v = out(reg_byte) v, options(nostack, preserves_flags))
            };
            u64::from(v)
        }
        2 => {
            let v: u16;
            // SAFETY: the caller guarantees `p..p+2` is mapped; x86 allows
            // unaligned moves.
            unsafe {
                asm!("mov {v:x}, word ptr [{p}]", p = in(reg) p, v = out(reg) v, options(nostack, preserves_flags))
            };
            u64::from(v)
        }
        4 => {
            let v: u32;
            // SAFETY: as above for 4 bytes.
            unsafe {
                asm!("mov {v:e}, dword ptr [{p}]", p = in(reg) p, v = out(reg) v, options(nostack, preserves_flags))
            };
            u64::from(v)
        }
        _ => {
            let v: u64;
            // SAFETY: as above for 8 bytes.
            unsafe {
                asm!("mov {v}, qword ptr [{p}]", p = in(reg) p, v = out(reg) v, options(nostack, preserves_flags))
            };
            v
        }
    }
}

/// Write `size` bytes at `p` with one `mov` of that size.
///
/// # Safety
/// `p..p+size` must be mapped writable and not aliased by Rust references.
unsafe fn mmio_write(p: *mut u8, size: u8, v: u64) {
    // Truncation to the access size is intended.
    match size {
        1 => {
            // SAFETY: the caller guarantees the byte at `p` is mapped writable.
            unsafe {
                asm!("mov byte ptr [{p}], {v}", p = in(reg) p, v = in(reg_byte) v as u8, options(nostack, preserves_flags))
            }
        }
        2 => {
            // SAFETY: the caller guarantees `p..p+2` is mapped writable.
            unsafe {
                asm!("mov word ptr [{p}], {v:x}", p = in(reg) p, v = in(reg) v as u16, options(nostack, preserves_flags))
            }
        }
        4 => {
            // SAFETY: the caller guarantees `p..p+4` is mapped writable.
            unsafe {
                asm!("mov dword ptr [{p}], {v:e}", p = in(reg) p, v = in(reg) v as u32, options(nostack, preserves_flags))
            }
        }
        _ => {
            // SAFETY: the caller guarantees `p..p+8` is mapped writable.
            unsafe {
                asm!("mov qword ptr [{p}], {v}", p = in(reg) p, v = in(reg) v, options(nostack, preserves_flags))
            }
        }
    }
}

/// A locked page with a known physical address below [`DMA_LIMIT`].
struct DmaPage {
    map: Mapping,
    phys: u64,
}

fn physical_address(pagemap: &File, virt: usize) -> Result<u64, SysfsError> {
    let mut entry = [0u8; 8];
    let index = (virt / PAGE) as u64 * 8;
    pagemap
        .read_exact_at(&mut entry, index)
        .map_err(io_err("read", Path::new("/proc/self/pagemap")))?;
    let entry = u64::from_le_bytes(entry);
    let present = entry >> 63 == 1;
    let pfn = entry & ((1 << 55) - 1);
    if !present || pfn == 0 {
        return Err(SysfsError::NoPfn);
    }
    Ok(pfn * PAGE as u64)
}

fn dma_page(limit: u64) -> Result<DmaPage, SysfsError> {
    let pagemap_path = Path::new("/proc/self/pagemap");
    let pagemap = File::open(pagemap_path).map_err(io_err("open", pagemap_path))?;
    // Pages above the limit stay mapped until we are done, so the kernel
    // hands out a different one each try.
    let mut rejected = Vec::new();
    for _ in 0..BUF_TRIES {
        let map = Mapping::new(
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | libc::MAP_LOCKED,
            -1,
        )
        .map_err(io_err("mmap", pagemap_path))?;
        // SAFETY: `map` is our own live mapping of PAGE bytes.
        if unsafe { libc::mlock(map.ptr.as_ptr().cast(), PAGE) } != 0 {
            return Err(io_err("mlock", pagemap_path)(io::Error::last_os_error()));
        }
        // SAFETY: the page is mapped writable and nothing else refers to it;
        // writing makes sure it has its own frame (not the shared zero page).
        unsafe { std::ptr::write_bytes(map.ptr.as_ptr(), 0, PAGE) };
        let phys = physical_address(&pagemap, map.ptr.as_ptr() as usize)?;
        if phys + PAGE as u64 <= limit {
            return Ok(DmaPage { map, phys });
        }
        rejected.push(map);
    }
    Err(SysfsError::NoLowPage)
}

/// An edu device driven through sysfs.
pub struct SysfsTarget {
    dir: PathBuf,
    config: File,
    bar0: Mapping,
    buf: DmaPage,
}

impl SysfsTarget {
    /// Enable the device at `dir`, map BAR0, switch on bus mastering and get
    /// a DMA buffer.
    pub fn open(dir: &Path) -> Result<SysfsTarget, SysfsError> {
        if dir.join("driver").exists() {
            return Err(SysfsError::DriverBound(dir.to_path_buf()));
        }
        let enable = dir.join("enable");
        std::fs::write(&enable, "1").map_err(io_err("write", &enable))?;

        let config_path = dir.join("config");
        let config = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&config_path)
            .map_err(io_err("open", &config_path))?;
        let mut cmd = [0u8; 2];
        config
            .read_exact_at(&mut cmd, 4)
            .map_err(io_err("read", &config_path))?;
        let cmd = u16::from_le_bytes(cmd) | 0x4;
        config
            .write_all_at(&cmd.to_le_bytes(), 4)
            .map_err(io_err("write", &config_path))?;

        let res_path = dir.join("resource0");
        let res = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&res_path)
            .map_err(io_err("open", &res_path))?;
        let len = res.metadata().map_err(io_err("stat", &res_path))?.len();
        if len != crate::script::BAR0_LEN {
            return Err(SysfsError::Bar0Size(res_path, len));
        }
        use std::os::fd::AsRawFd;
        let bar0 = Mapping::new(
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            res.as_raw_fd(),
        )
        .map_err(io_err("mmap", &res_path))?;

        let buf = dma_page(DMA_LIMIT)?;
        Ok(SysfsTarget {
            dir: dir.to_path_buf(),
            config,
            bar0,
            buf,
        })
    }

    /// The device's sysfs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn bar0_ptr(&self, offset: u64, size: u8) -> Result<*mut u8, TargetError> {
        let end = offset.checked_add(u64::from(size));
        if end.is_none_or(|e| e > self.bar0.len as u64) {
            return Err(TargetError::Unsupported(format!(
                "bar0 access {offset:#x}+{size} outside BAR0"
            )));
        }
        // SAFETY: offset + size <= len (checked above), so the result stays
        // inside the mapping.
        Ok(unsafe { self.bar0.ptr.as_ptr().add(offset as usize) })
    }

    fn buf_check(&self, offset: usize, len: usize) -> Result<(), TargetError> {
        if offset.checked_add(len).is_none_or(|e| e > BUF_LEN) {
            return Err(TargetError::Unsupported(format!(
                "buffer range {offset:#x}+{len} outside the buffer"
            )));
        }
        Ok(())
    }

    fn config_err(&self, what: &str, source: io::Error) -> TargetError {
        TargetError::Io {
            what: format!("{what} {}", self.dir.join("config").display()),
            source,
        }
    }
}

impl Target for SysfsTarget {
    fn bar0_read(&mut self, offset: u64, size: u8) -> Result<u64, TargetError> {
        let p = self.bar0_ptr(offset, size)?;
        // SAFETY: `p..p+size` is inside our BAR0 mapping (checked by bar0_ptr).
        Ok(unsafe { mmio_read(p, size) })
    }

    fn bar0_write(&mut self, offset: u64, size: u8, value: u64) -> Result<(), TargetError> {
        let p = self.bar0_ptr(offset, size)?;
        // SAFETY: `p..p+size` is inside our BAR0 mapping, which no Rust
        // reference aliases.
        unsafe { mmio_write(p, size, value) };
        Ok(())
    }

    fn config_read(&mut self, offset: u64, size: u8) -> Result<u64, TargetError> {
        let mut bytes = [0u8; 8];
        let part = &mut bytes[..usize::from(size)];
        self.config
            .read_exact_at(part, offset)
            .map_err(|e| self.config_err("read", e))?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn config_write(&mut self, offset: u64, size: u8, value: u64) -> Result<(), TargetError> {
        let bytes = value.to_le_bytes();
        self.config
            .write_all_at(&bytes[..usize::from(size)], offset)
            .map_err(|e| self.config_err("write", e))
    }

    fn buf_addr(&self) -> u64 {
        self.buf.phys
    }

    fn buf_read(&mut self, offset: usize, out: &mut [u8]) -> Result<(), TargetError> {
        self.buf_check(offset, out.len())?;
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: offset + i < BUF_LEN == PAGE (checked), inside our
            // mapping; volatile because the device writes it behind our back.
            *b = unsafe { self.buf.map.ptr.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }

    fn buf_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TargetError> {
        self.buf_check(offset, data.len())?;
        for (i, b) in data.iter().enumerate() {
            // SAFETY: as in buf_read; volatile so the store happens before
            // the device is told to read it.
            unsafe { self.buf.map.ptr.as_ptr().add(offset + i).write_volatile(*b) };
        }
        Ok(())
    }

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_device(root: &Path, name: &str, vendor: &str, device: &str) {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("vendor"), vendor).unwrap();
        std::fs::write(d.join("device"), device).unwrap();
    }

    #[test]
    fn finds_edu_devices_sorted() {
        let root = std::env::temp_dir().join(format!("regscript-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        fake_device(&root, "0000:00:05.0", "0x1234\n", "0x11e8\n");
        fake_device(&root, "0000:00:04.0", "0x1234\n", "0x11e8\n");
        fake_device(&root, "0000:00:02.0", "0x1234\n", "0x1111\n");
        fake_device(&root, "0000:00:01.0", "0x8086\n", "0x7000\n");
        std::fs::create_dir_all(root.join("0000:00:09.0")).unwrap();
        let found = find_edu_devices(&root).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["0000:00:04.0", "0000:00:05.0"]);
        // A bound driver is refused before anything is touched.
        let bound = root.join("0000:00:04.0");
        std::fs::create_dir_all(bound.join("driver")).unwrap();
        assert!(matches!(
            SysfsTarget::open(&bound),
            Err(SysfsError::DriverBound(_))
        ));
        assert!(!bound.join("enable").exists());
        // Without one, the missing sysfs files are reported by name.
        let err = SysfsTarget::open(&root.join("0000:00:05.0")).err().unwrap();
        assert!(err.to_string().contains("/config"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
        assert!(find_edu_devices(&root).is_err());
    }

    #[test]
    fn mmio_helpers_do_exact_sized_unaligned_accesses() {
        // Plain memory stands in for BAR0: each size at an odd offset.
        let mut mem = [0u8; 32];
        let p = mem.as_mut_ptr();
        // SAFETY: every access is inside `mem`, which is not otherwise
        // borrowed while the raw pointer is used.
        unsafe {
            mmio_write(p.add(1), 8, 0x1122_3344_5566_7788);
            mmio_write(p.add(11), 4, 0xaabb_ccdd_eeff);
            mmio_write(p.add(17), 2, 0x1_2345);
            mmio_write(p.add(21), 1, 0x1ff);
            assert_eq!(mmio_read(p.add(1), 8), 0x1122_3344_5566_7788);
            assert_eq!(mmio_read(p.add(2), 4), 0x4455_6677);
            assert_eq!(mmio_read(p.add(11), 4), 0xccdd_eeff);
            assert_eq!(mmio_read(p.add(17), 2), 0x2345);
            assert_eq!(mmio_read(p.add(21), 1), 0xff);
        }
        assert_eq!(mem[0], 0);
        assert_eq!(mem[9], 0);
        assert_eq!(mem[15], 0);
        assert_eq!(mem[19], 0);
        assert_eq!(mem[22], 0);
    }

    #[test]
    fn pagemap_gives_distinct_page_frames() {
        // pagemap hides frame numbers from non-root: that must be reported
        // as NoPfn, not as address 0.
        match (dma_page(u64::MAX), dma_page(u64::MAX)) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.phys % PAGE as u64, 0);
                assert_ne!(a.phys, b.phys);
                // The page really is ours: the kernel maps it where we wrote.
                // SAFETY: `a.map` is a live mapping of PAGE bytes.
                assert_eq!(unsafe { a.map.ptr.as_ptr().read_volatile() }, 0);
            }
            (Err(e), _) | (_, Err(e)) => assert!(matches!(e, SysfsError::NoPfn), "{e}"),
        }
    }
}
