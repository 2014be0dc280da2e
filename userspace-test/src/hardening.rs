//! Hidden `edu-test hardening ...` subcommands: the in-guest side of the
//! driver tests of issue 11, run by `scripts/guest/hardening/bin/edu-hardening`.
//!
//! - `bind-faults`: fails the 1st, 2nd, ... allocation of a bind in turn
//!   (`/proc/thread-self/fail-nth`, debug kernel) and checks after each
//!   that the device is either bound and working, or unbound with no node
//!   and a lab node that refuses to open.
//! - `uffd`: blocks a transfer's user copy in a userfaultfd fault and
//!   checks that another process's ioctls and an unbind still complete.
//! - `read-only`: a file opened read-only cannot change the device buffer.
//! - `all-ones`: an interrupt whose status reads all ones (what a removed
//!   device answers) is declined as "not mine".
//! - `ops`: a few ioctls of every kind; the other process of `uffd`.
//!
//! Each prints `ok   NAME: ...` or `FAIL NAME: ...` lines and fails the
//! command when one check failed.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Subcommand, ValueEnum};
use edu_abi::{EduDma, DMA_WRITE_CMD, EDU_IOC_DMA_FROM_DEVICE, EDU_IOC_DMA_TO_DEVICE};

use crate::device::{factorial_u32, DevError, Device};
use crate::errno::Errno;

/// The `edu` driver's directory in sysfs.
const DRIVER: &str = "/sys/bus/pci/drivers/edu";

#[derive(Subcommand, Debug, PartialEq)]
pub enum Hardening {
    /// Fail each allocation of a bind of `--pci` in turn (debug kernel)
    BindFaults {
        /// PCI address of the device, e.g. 0000:00:04.0
        #[arg(long)]
        pci: String,
        /// The lab's `mknod` node for the device's minor
        #[arg(long)]
        lab_node: String,
        /// Give up a pass after this many binds
        #[arg(long, default_value_t = 2000)]
        max: u32,
        /// Passes over all allocations: under the debug kernel the same
        /// allocation is not always the same N (object pools refill now
        /// and then), so one pass may step over one
        #[arg(long, default_value_t = 2)]
        passes: u32,
    },
    /// Block a transfer in a userfaultfd fault; other users and unbind go on
    Uffd {
        /// PCI address of the device behind `--device`
        #[arg(long)]
        pci: String,
        /// The transfer that blocks
        #[arg(long, value_enum)]
        via: Via,
        /// Seconds another process's ioctls, and the unbind, may take
        #[arg(long, default_value_t = 10)]
        limit: u64,
    },
    /// A file opened read-only cannot write the device buffer
    ReadOnly,
    /// The handler declines an interrupt whose status reads all ones
    AllOnes {
        /// PCI address of the device behind `--device`
        #[arg(long)]
        pci: String,
    },
    /// A few ioctls of every kind, each checked
    Ops,
}

/// A transfer between user memory and the device buffer.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// write(2)
    Write,
    /// EDU_IOC_DMA_TO_DEVICE
    DmaToDevice,
    /// read(2)
    Read,
    /// EDU_IOC_DMA_FROM_DEVICE
    DmaFromDevice,
}

/// Runs one subcommand on the device `node`; false when a check failed.
pub fn run(node: &str, cmd: &Hardening) -> bool {
    let mut t = Tally::default();
    match cmd {
        Hardening::BindFaults {
            pci,
            lab_node,
            max,
            passes,
        } => {
            for _ in 0..*passes {
                if t.failed == 0 {
                    bind_faults(&mut t, pci, lab_node, *max);
                }
            }
        }
        Hardening::Uffd { pci, via, limit } => {
            uffd(&mut t, node, pci, *via, Duration::from_secs(*limit))
        }
        Hardening::ReadOnly => read_only(&mut t, node),
        Hardening::AllOnes { pci } => {
            if let Err(e) = all_ones(&mut t, node, pci) {
                t.fail("all-ones", e);
            }
        }
        Hardening::Ops => {
            if let Err(e) = ops(node) {
                t.fail("ops", e);
            }
        }
    }
    t.failed == 0
}

/// Counts failed checks and prints every verdict.
#[derive(Default)]
struct Tally {
    failed: u32,
}

impl Tally {
    fn ok(&mut self, name: &str, what: impl AsRef<str>) {
        println!("ok   {name}: {}", what.as_ref());
    }

    fn fail(&mut self, name: &str, why: impl AsRef<str>) {
        self.failed += 1;
        println!("FAIL {name}: {}", why.as_ref());
    }

    fn check(&mut self, name: &str, cond: bool, what: impl AsRef<str>) {
        if cond {
            self.ok(name, what);
        } else {
            self.fail(name, what);
        }
    }
}

/// An errno's name, or `ok`.
fn outcome<T>(r: &Result<T, Errno>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.name().map_or_else(|| e.to_string(), str::to_string),
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_io(&e).unwrap_or(Errno(libc::EIO))
}

fn write_control(file: &str, pci: &str) -> Result<(), Errno> {
    fs::write(Path::new(DRIVER).join(file), pci).map_err(io_errno)
}

fn is_bound(pci: &str) -> bool {
    Path::new(&format!("/sys/bus/pci/devices/{pci}/driver")).exists()
}

/// Waits up to two seconds for `path` to exist (or, with `present` false,
/// to be gone): devtmpfs creates and removes nodes in its own thread.
fn node_settles(path: &str, present: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if Path::new(path).exists() == present {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// --- ops ------------------------------------------------------------------

/// Every kind of ioctl once, results checked: factorial, liveness, raise,
/// info, and a DMA round trip in the upper half of the buffer.
fn ops(node: &str) -> Result<(), String> {
    let dev = Device::open(node).map_err(|e| e.to_string())?;
    let err = |e: DevError| e.to_string();
    let n = dev.factorial(9).map_err(err)?;
    let v = dev.liveness(0x1234_5678).map_err(err)?;
    let seen = dev.raise(0x2).map_err(err)?;
    let info = dev.info().map_err(err)?;
    let data: Vec<u8> = (0..64u8).map(|i| i ^ 0x5a).collect();
    dev.dma_to_device(2048, &data).map_err(err)?;
    let mut back = [0u8; 64];
    dev.dma_from_device(2048, &mut back).map_err(err)?;
    if n != factorial_u32(9) || v != !0x1234_5678 || seen != 0x2 || back[..] != data[..] {
        return Err(format!(
            "wrong results: 9! = {n}, liveness {v:#x}, raise saw {seen:#x}, DMA equal {}",
            back[..] == data[..]
        ));
    }
    println!(
        "ok   ops: factorial, liveness, raise, info (minor {}), DMA",
        info.minor
    );
    Ok(())
}

// --- read-only ------------------------------------------------------------

/// Through a read-only file, everything that changes the device buffer
/// fails with `EBADF`; reading it and the other ioctls work. The two
/// ioctls are the driver's own check (they failed before it); `write` and
/// `pwrite` are refused by the VFS before the driver runs, and are here
/// because the ABI promises the same errno for every way to the buffer.
fn read_only(t: &mut Tally, node: &str) {
    let dev = match Device::open_read_only(node) {
        Ok(d) => d,
        Err(e) => return t.fail("read-only", e.to_string()),
    };
    let errno = |r: Result<(), DevError>| r.map_err(|e| e.errno);
    let refused = [
        ("EDU_IOC_DMA_TO_DEVICE", errno(dev.dma_to_device(0, b"ro"))),
        (
            "DMA_WRITE_CMD",
            errno(dev.lab("DMA_WRITE_CMD", DMA_WRITE_CMD)),
        ),
        ("write", errno(dev.write(b"ro").map(drop))),
        ("pwrite", errno(dev.write_at(b"ro", 8).map(drop))),
    ];
    for (op, r) in refused {
        t.check(
            "read-only",
            r == Err(Errno(libc::EBADF)),
            format!("{op} on a read-only file: {} (want EBADF)", outcome(&r)),
        );
    }
    let mut buf = [0u8; 16];
    let allowed = [
        (
            "EDU_IOC_DMA_FROM_DEVICE",
            errno(dev.dma_from_device(0, &mut buf)),
        ),
        ("pread", errno(dev.read_at(&mut buf, 0).map(drop))),
        ("EDU_IOC_FACTORIAL", errno(dev.factorial(5).map(drop))),
    ];
    for (op, r) in allowed {
        t.check(
            "read-only",
            r.is_ok(),
            format!("{op} on a read-only file: {}", outcome(&r)),
        );
    }
}

// --- all-ones -------------------------------------------------------------

/// BAR0 offsets this test writes behind the driver's back.
const IRQ_STATUS: usize = 0x24;
const IRQ_RAISE: usize = 0x60;
const IRQ_ACK: usize = 0x64;

/// The first page of a device's BAR0, mapped through sysfs.
struct Bar0Page(*mut u32);

impl Bar0Page {
    fn map(pci: &str) -> Result<Self, String> {
        let path = format!("/sys/bus/pci/devices/{pci}/resource0");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{path}: {e}"))?;
        // SAFETY: a shared mapping of the first page of the device's BAR0
        // at an address the kernel picks; it overlaps nothing we own.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(format!("mmap {path}: {}", Errno::last()));
        }
        Ok(Bar0Page(addr.cast()))
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `offset` is one of the 4-byte-aligned registers below
        // 0x80 inside the mapped page; MMIO needs a volatile access.
        unsafe { self.0.add(offset / 4).read_volatile() }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.0.add(offset / 4).write_volatile(value) }
    }
}

impl Drop for Bar0Page {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `map`.
        unsafe { libc::munmap(self.0.cast(), PAGE) };
    }
}

/// The "unhandled" count of `/proc/irq/N/spurious`: interrupts for which
/// every handler said "not mine".
fn unhandled(irq: u32) -> Result<u64, String> {
    let path = format!("/proc/irq/{irq}/spurious");
    let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("unhandled "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("{path}: no unhandled count in {text:?}"))
}

/// Makes the device's interrupt status read all ones, by raising every
/// bit through BAR0 (the driver's ioctl refuses that value), and checks
/// that the handler declines the interrupt and leaves the status alone;
/// then clears it and checks that the device still works. MSI only: with
/// INTx the line would stay asserted until the kernel disables it.
fn all_ones(t: &mut Tally, node: &str, pci: &str) -> Result<(), String> {
    const NAME: &str = "all-ones";
    let info = Device::open(node)
        .and_then(|d| d.info())
        .map_err(|e| e.to_string())?;
    if info.irq_mode != edu_abi::EDU_IRQ_MODE_MSI {
        return Err("needs the device in MSI mode".into());
    }
    let bar = Bar0Page::map(pci)?;
    let before = unhandled(info.irq)?;
    bar.write(IRQ_RAISE, u32::MAX);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut declined = unhandled(info.irq)?;
    while declined == before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        declined = unhandled(info.irq)?;
    }
    let status = bar.read(IRQ_STATUS);
    t.check(
        NAME,
        declined > before,
        format!(
            "the handler declined {} interrupt(s) whose status read all ones",
            declined - before
        ),
    );
    t.check(
        NAME,
        status == u32::MAX,
        format!("it left the status alone: {status:#x}"),
    );
    bar.write(IRQ_ACK, u32::MAX);
    match works(node) {
        Ok(()) => t.ok(NAME, "the device works once the status is cleared"),
        Err(e) => t.fail(NAME, format!("after clearing the status: {e}")),
    }
    Ok(())
}

// --- bind-faults ----------------------------------------------------------

/// Makes every allocation of this kernel fail on demand through
/// `fail-nth`: by default sleeping allocations (and single pages) are
/// exempt; and keeps the injector from logging a stack trace each time.
fn configure_fault_injection() -> Result<(), String> {
    let knobs = [
        ("failslab/ignore-gfp-wait", "N"),
        ("failslab/verbose", "0"),
        ("fail_page_alloc/ignore-gfp-wait", "N"),
        ("fail_page_alloc/min-order", "0"),
        ("fail_page_alloc/verbose", "0"),
    ];
    for (knob, value) in knobs {
        let path = format!("/sys/kernel/debug/{knob}");
        fs::write(&path, value).map_err(|e| {
            format!("{path}: {e} (needs debugfs mounted and a kernel with FAILSLAB, FAIL_PAGE_ALLOC and FAULT_INJECTION_DEBUG_FS: --debug-kernel)")
        })?;
    }
    Ok(())
}

/// This thread's `fail-nth`: writing N fails the N-th fault-injection
/// point this thread reaches; reading gives how many are left (0: it fired).
struct FailNth(File);

impl FailNth {
    fn open() -> Result<Self, String> {
        let path = "/proc/thread-self/fail-nth";
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(FailNth)
            .map_err(|e| format!("{path}: {e} (needs CONFIG_FAULT_INJECTION)"))
    }

    fn arm(&self, n: u32) -> Result<(), String> {
        (&self.0)
            .write_all(n.to_string().as_bytes())
            .map_err(|e| format!("fail-nth {n}: {e}"))
    }

    /// Disarms; true if the armed failure fired.
    fn fired(&self) -> Result<bool, String> {
        let mut buf = [0u8; 16];
        let n = self
            .0
            .read_at(&mut buf, 0)
            .map_err(|e| format!("fail-nth: {e}"))?;
        self.arm(0)?;
        Ok(buf[..n].trim_ascii() == b"0")
    }
}

/// Binds `pci` with its 1st, 2nd, ... allocation failing, until a bind
/// completes without reaching the armed one; checks the device after each.
fn bind_faults(t: &mut Tally, pci: &str, lab: &str, max: u32) {
    const NAME: &str = "bind-faults";
    let minor = match Device::open(lab).and_then(|d| d.info()) {
        Ok(i) => i.minor,
        Err(e) => return t.fail(NAME, format!("before the test: {e}")),
    };
    let node = format!("/dev/edu{minor}");
    let setup = configure_fault_injection()
        .and_then(|()| FailNth::open())
        .and_then(|f| {
            let bind = OpenOptions::new()
                .write(true)
                .open(Path::new(DRIVER).join("bind"))
                .map_err(|e| format!("{DRIVER}/bind: {e}"))?;
            write_control("unbind", pci).map_err(|e| format!("unbinding {pci}: {e}"))?;
            Ok((f, bind))
        });
    let (nth, bind) = match setup {
        Ok(s) => s,
        Err(e) => return t.fail(NAME, e),
    };
    let (mut cleanly_failed, mut bound_anyway) = (0, 0);
    for n in 1..=max {
        // Arm, then bind: no other system call between the two.
        if let Err(e) = nth.arm(n) {
            return t.fail(NAME, e);
        }
        let r = (&bind).write(pci.as_bytes()).map(drop).map_err(io_errno);
        let fired = match nth.fired() {
            Ok(f) => f,
            Err(e) => return t.fail(NAME, e),
        };
        let bound = is_bound(pci);
        println!(
            "{NAME}: n={n} bind={} {}",
            outcome(&r),
            if bound { "bound" } else { "unbound" }
        );
        if bound {
            if let Err(e) = works(lab) {
                return t.fail(NAME, format!("n={n}: bound but {e}"));
            }
            if !node_settles(&node, true) {
                // devtmpfs asks for the node's name in the binding task,
                // where the injected failure may hit it: not the driver's.
                println!("{NAME}: n={n}: bound and working, but no {node} (devtmpfs)");
            }
            if !fired {
                t.ok(
                    NAME,
                    format!(
                        "{} allocations: failing each left the device unbound and clean \
                         ({cleanly_failed}) or bound and working ({bound_anyway})",
                        n - 1
                    ),
                );
                return;
            }
            bound_anyway += 1;
            if let Err(e) = write_control("unbind", pci) {
                return t.fail(NAME, format!("n={n}: unbind: {e}"));
            }
            continue;
        }
        if !fired {
            return t.fail(
                NAME,
                format!("n={n}: bind without an injected failure: {}", outcome(&r)),
            );
        }
        if r.is_ok() {
            return t.fail(
                NAME,
                format!("n={n}: bind returned success but did not bind"),
            );
        }
        if !node_settles(&node, false) {
            return t.fail(NAME, format!("n={n}: {node} stays after a failed bind"));
        }
        match Device::open(lab) {
            Err(e) if [libc::ENXIO, libc::ENODEV].contains(&e.errno.0) => cleanly_failed += 1,
            Err(e) => return t.fail(NAME, format!("n={n}: {e} (want ENXIO or ENODEV)")),
            Ok(dev) => {
                println!("{NAME}: n={n}: {lab} opened for an unbound device; trying EDU_IOC_INFO");
                let r = dev.info();
                return t.fail(
                    NAME,
                    format!("n={n}: {lab} opens after a failed bind; EDU_IOC_INFO: {r:?}"),
                );
            }
        }
    }
    t.fail(NAME, format!("still failing after {max} binds"));
}

/// The device behind `node` computes and moves data correctly.
fn works(node: &str) -> Result<(), String> {
    let dev = Device::open(node).map_err(|e| e.to_string())?;
    let n = dev.factorial(5).map_err(|e| e.to_string())?;
    let data = *b"bound after a fault";
    dev.dma_to_device(100, &data).map_err(|e| e.to_string())?;
    let mut back = [0u8; 19];
    dev.dma_from_device(100, &mut back)
        .map_err(|e| e.to_string())?;
    if n != 120 || back != data {
        return Err(format!("5! = {n}, DMA read back {back:?}"));
    }
    Ok(())
}

// --- uffd -----------------------------------------------------------------

const PAGE: usize = 4096;

/// `struct uffdio_api`.
#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// `struct uffdio_register`.
#[repr(C)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

/// `struct uffdio_copy`.
#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

const UFFD_API: u64 = 0xaa;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
const UFFDIO_API: libc::Ioctl = libc::_IOWR::<UffdioApi>(0xaa, 0x3f);
const UFFDIO_REGISTER: libc::Ioctl = libc::_IOWR::<UffdioRegister>(0xaa, 0x00);
const UFFDIO_COPY: libc::Ioctl = libc::_IOWR::<UffdioCopy>(0xaa, 0x03);

/// Anonymous read-write pages whose missing-page faults a userfaultfd
/// holds until [`Uffd::fill`].
struct Uffd {
    fd: OwnedFd,
    addr: *mut libc::c_void,
    len: usize,
}

impl Uffd {
    fn new(len: usize) -> Result<Self, String> {
        let err = |what: &str| format!("{what}: {}", Errno::last());
        // SAFETY: a plain system call with flags; it returns a new fd.
        let fd =
            unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if fd < 0 {
            return Err(err("userfaultfd (needs CONFIG_USERFAULTFD)"));
        }
        // SAFETY: `fd` is a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let mut api = UffdioApi {
            api: UFFD_API,
            features: 0,
            ioctls: 0,
        };
        // SAFETY: `api` is a live `struct uffdio_api`, as UFFDIO_API expects.
        if unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api) } < 0 {
            return Err(err("UFFDIO_API"));
        }
        // SAFETY: a fresh anonymous mapping at an address the kernel picks.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(err("mmap"));
        }
        let uffd = Uffd { fd, addr, len };
        let mut reg = UffdioRegister {
            start: addr as u64,
            len: len as u64,
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        // SAFETY: `reg` is a live `struct uffdio_register` naming our mapping.
        if unsafe { libc::ioctl(uffd.fd.as_raw_fd(), UFFDIO_REGISTER, &mut reg) } < 0 {
            return Err(err("UFFDIO_REGISTER"));
        }
        Ok(uffd)
    }

    /// Waits up to `limit` for a page fault; returns its address.
    fn wait_fault(&self, limit: Duration) -> Result<u64, String> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n <= 0 {
            return Err(format!("no page fault within {} s", limit.as_secs()));
        }
        // `struct uffd_msg`: 32 bytes, event in byte 0, the fault address at 16.
        let mut msg = [0u8; 32];
        let mut file = File::from(self.fd.try_clone().map_err(|e| e.to_string())?);
        file.read_exact(&mut msg)
            .map_err(|e| format!("reading the userfaultfd: {e}"))?;
        if msg[0] != UFFD_EVENT_PAGEFAULT {
            return Err(format!("userfaultfd event {:#x}, not a page fault", msg[0]));
        }
        Ok(u64::from_ne_bytes(msg[16..24].try_into().expect("8 bytes")))
    }

    /// Resolves every fault: fills the pages with `byte` and wakes the faulters.
    fn fill(&self, byte: u8) -> Result<(), String> {
        let src = vec![byte; self.len];
        let mut copy = UffdioCopy {
            dst: self.addr as u64,
            src: src.as_ptr() as u64,
            len: self.len as u64,
            mode: 0,
            copy: 0,
        };
        // SAFETY: `copy` is a live `struct uffdio_copy`; the kernel reads
        // `len` bytes of `src` and fills our registered mapping.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), UFFDIO_COPY, &mut copy) } < 0 {
            return Err(format!("UFFDIO_COPY: {}", Errno::last()));
        }
        Ok(())
    }
}

impl Drop for Uffd {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`; nothing refers into it
        // once the transfer using it has returned.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// One transfer of a page between `addr` and the device buffer at 0, with
/// raw system calls: `addr` is userfaultfd memory that userspace must not
/// touch while a fault is pending.
fn transfer(fd: RawFd, via: Via, addr: usize) -> Result<(), Errno> {
    let ptr = addr as *mut libc::c_void;
    let dma = |req| {
        let mut arg = EduDma {
            user_addr: addr as u64,
            offset: 0,
            len: PAGE as u32,
        };
        // SAFETY: `arg` is a live EduDma; the kernel reads or writes one
        // page at `addr`, our mapping, which only the kernel touches.
        unsafe { libc::ioctl(fd, req as libc::Ioctl, &mut arg) as isize }
    };
    let r = match via {
        // SAFETY: the kernel reads one page of our mapping.
        Via::Write => unsafe { libc::pwrite(fd, ptr, PAGE, 0) },
        // SAFETY: the kernel writes one page of our mapping.
        Via::Read => unsafe { libc::pread(fd, ptr, PAGE, 0) },
        Via::DmaToDevice => dma(EDU_IOC_DMA_TO_DEVICE),
        Via::DmaFromDevice => dma(EDU_IOC_DMA_FROM_DEVICE),
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Waits up to `limit` for `child`; `None` if it is still running.
fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A thread blocks in a transfer whose user page never arrives; meanwhile
/// another process's ioctls on the device, then an unbind, must complete
/// within `limit`. The fault is resolved at the end whatever happened,
/// so a driver that fails the test still lets the guest finish.
fn uffd(t: &mut Tally, node: &str, pci: &str, via: Via, limit: Duration) {
    let name = format!(
        "uffd-{}",
        via.to_possible_value().expect("not skipped").get_name()
    );
    let name = name.as_str();
    let setup = Uffd::new(PAGE).and_then(|u| {
        let file = OpenOptions::new().read(true).write(true).open(node);
        Ok((u, file.map_err(|e| format!("{node}: {e}"))?))
    });
    let (uffd, file) = match setup {
        Ok(s) => s,
        Err(e) => return t.fail(name, e),
    };
    let (fd, addr) = (file.as_raw_fd(), uffd.addr as usize);
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || done_tx.send(transfer(fd, via, addr)));
    match uffd.wait_fault(limit) {
        Ok(at) => t.ok(
            name,
            format!("{via:?} waits in a userfaultfd fault at {at:#x}"),
        ),
        Err(e) => return t.fail(name, format!("{via:?}: {e}")),
    }

    let start = Instant::now();
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let mut other = match Command::new(exe)
        .args(["--device", node, "hardening", "ops"])
        .spawn()
    {
        Ok(c) => Some(c),
        Err(e) => {
            t.fail(name, format!("starting another process: {e}"));
            None
        }
    };
    if let Some(child) = other.as_mut() {
        match wait_child(child, limit) {
            Some(st) => t.check(
                name,
                st.success(),
                format!(
                    "another process's ioctls ended ({st}) after {:?}",
                    start.elapsed()
                ),
            ),
            None => t.fail(
                name,
                format!(
                    "another process's ioctls still blocked after {} s",
                    limit.as_secs()
                ),
            ),
        }
    }

    let start = Instant::now();
    let (unbind_tx, unbind_rx) = mpsc::channel();
    let addr_owned = pci.to_string();
    thread::spawn(move || unbind_tx.send(write_control("unbind", &addr_owned)));
    let mut unbind = unbind_rx.recv_timeout(limit).ok();
    match &unbind {
        Some(r) => t.check(
            name,
            r.is_ok(),
            format!("unbind: {} after {:?}", outcome(r), start.elapsed()),
        ),
        None => t.fail(
            name,
            format!("unbind still blocked after {} s", limit.as_secs()),
        ),
    }

    // Let everything go.
    if let Err(e) = uffd.fill(0xa5) {
        return t.fail(name, e);
    }
    match done_rx.recv_timeout(limit) {
        Ok(r) => t.ok(
            name,
            format!(
                "the blocked {via:?} returned {} once its page arrived",
                outcome(&r)
            ),
        ),
        Err(_) => t.fail(
            name,
            format!("the blocked {via:?} did not return after its page arrived"),
        ),
    }
    if unbind.is_none() {
        unbind = unbind_rx.recv_timeout(limit).ok();
        println!("{name}: the unbind ended only after the page arrived: {unbind:?}");
    }
    if let Some(mut child) = other {
        if wait_child(&mut child, limit).is_none() {
            t.fail(name, "the other process never ended");
        }
    }
    drop(file);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uffd_numbers_match_linux() {
        // From <linux/userfaultfd.h> on x86_64.
        assert_eq!(UFFDIO_API as u32, 0xc018_aa3f);
        assert_eq!(UFFDIO_REGISTER as u32, 0xc020_aa00);
        assert_eq!(UFFDIO_COPY as u32, 0xc028_aa03);
    }

    #[test]
    fn outcomes_name_the_errno() {
        assert_eq!(outcome::<()>(&Ok(())), "ok");
        assert_eq!(outcome::<()>(&Err(Errno(libc::EBADF))), "EBADF");
        assert_eq!(outcome::<()>(&Err(Errno(4242))), "errno 4242");
    }
}
