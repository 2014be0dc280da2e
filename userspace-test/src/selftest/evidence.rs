//! Evidence that the device did the work, from places a driver that only
//! answered in software could not fake:
//!
//! - [`Irqs`]: the device's interrupt count in `/proc/interrupts`, counted
//!   by the kernel's interrupt core for every interrupt the device raised;
//! - [`Regs`]: the device's registers, read through sysfs `resource0`;
//! - [`Kmsg`]: the lines the driver's interrupt handler logged;
//! - [`blocked_in_ioctl`]: the kernel's view of a thread inside an ioctl.
//!
//! Every message says where the evidence was missing (`/proc/interrupts`,
//! `resource0`, `/dev/kmsg`, `/proc/self/task`).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;

use super::{CaseResult, Verdict};
use crate::device::Device;

/// One IRQ's line in `/proc/interrupts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqLine {
    /// Interrupts counted, summed over the CPUs.
    pub count: u64,
    /// The handlers' names (`edu`, `edu, edu` on a shared INTx line).
    pub actions: Vec<String>,
}

/// Finds `irq`'s line in the text of `/proc/interrupts`:
/// `" 24:   12   0   PCI-MSI-0000:00:04.0   0-edge   edu"`: the counts per
/// CPU, the chip, and after a gap of two or more spaces the handlers.
pub fn parse_irq_line(text: &str, irq: u32) -> Option<IrqLine> {
    text.lines().find_map(|line| {
        let (num, rest) = line.trim_start().split_once(':')?;
        if num.parse::<u32>().ok()? != irq {
            return None;
        }
        let count = rest
            .split_whitespace()
            .map_while(|t| t.parse::<u64>().ok())
            .sum();
        let rest = rest.trim_end();
        let actions = match rest.rfind("  ") {
            Some(gap) if gap + 2 < rest.len() => rest[gap + 2..]
                .split(", ")
                .map(|a| a.trim().to_string())
                .collect(),
            _ => Vec::new(),
        };
        Some(IrqLine { count, actions })
    })
}

/// `irq`'s line in `/proc/interrupts` now, if it has one.
pub fn irq_line(irq: u32) -> Result<Option<IrqLine>, Verdict> {
    let text = std::fs::read_to_string("/proc/interrupts")
        .map_err(|e| Verdict::Fail(format!("/proc/interrupts: {e}")))?;
    Ok(parse_irq_line(&text, irq))
}

/// The interrupt counter of one IRQ that an edu device uses, checked
/// between operations.
///
/// On a line whose handlers are all edu's (MSI, or INTx not shared with
/// another driver) the count is exact: cases run one at a time and leave
/// no work running, so another edu device on a shared line is idle. On a
/// line shared with another driver, only "at least" can be known.
pub struct Irqs {
    irq: u32,
    last: u64,
    exact: bool,
}

impl Irqs {
    /// The counter of the IRQ that `EDU_IOC_INFO` names for `dev`.
    pub fn of(dev: &Device) -> Result<Self, Verdict> {
        Self::of_irq(dev.info()?.irq)
    }

    /// The counter of `irq`, which must have an `edu` handler.
    pub fn of_irq(irq: u32) -> Result<Self, Verdict> {
        let line = irq_line(irq)?.ok_or_else(|| {
            Verdict::Fail(format!(
                "/proc/interrupts has no line for IRQ {irq}, the device's"
            ))
        })?;
        if !line.actions.iter().any(|a| a == "edu") {
            return Err(Verdict::Fail(format!(
                "/proc/interrupts: IRQ {irq} has no edu handler (handlers: {:?})",
                line.actions
            )));
        }
        Ok(Irqs {
            irq,
            last: line.count,
            exact: line.actions.iter().all(|a| a == "edu"),
        })
    }

    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Interrupts counted since the last check.
    fn take(&mut self) -> Result<u64, Verdict> {
        let now = irq_line(self.irq)?
            .ok_or_else(|| {
                Verdict::Fail(format!(
                    "/proc/interrupts: the line of IRQ {} went away",
                    self.irq
                ))
            })?
            .count;
        let delta = now.saturating_sub(self.last);
        self.last = now;
        Ok(delta)
    }

    /// The device raised exactly `n` interrupts since the last check (at
    /// least `n` on a line shared with another driver).
    pub fn expect(&mut self, n: u64, during: &str) -> CaseResult {
        self.expect_within(n, n, during)
    }

    /// The device raised between `lo` and `hi` interrupts since the last
    /// check (at least `lo` on a line shared with another driver).
    pub fn expect_within(&mut self, lo: u64, hi: u64, during: &str) -> CaseResult {
        let got = self.take()?;
        let hi = if self.exact { hi } else { u64::MAX };
        if (lo..=hi).contains(&got) {
            return Ok(());
        }
        let want = match (lo == hi, hi == u64::MAX) {
            (true, _) => format!("{lo}"),
            (false, true) => format!("at least {lo}"),
            (false, false) => format!("{lo} to {hi}"),
        };
        Err(Verdict::Fail(format!(
            "/proc/interrupts: IRQ {} counted {got} interrupts during {during}, expected {want}{}",
            self.irq,
            if got < lo {
                ": the device did not interrupt for this work"
            } else {
                ""
            }
        )))
    }
}

/// Interrupts a DMA of `len` bytes at `offset` of the device buffer raises
/// through the driver: one, except for a transfer that lies entirely in
/// the buffer's last byte, which the driver keeps itself
/// (`docs/ioctl-abi.md`, "QEMU 7.2 and the last byte").
pub fn dma_irqs(offset: usize, len: usize) -> u64 {
    u64::from(len > 0 && offset < edu_abi::EDU_BUF_SIZE as usize - 1)
}

/// Register offsets in BAR0 (`docs/edu-device.md`). Reading these has no
/// side effect on the device.
pub mod reg {
    pub const ID: usize = 0x00;
    pub const LIVENESS: usize = 0x04;
    pub const FACTORIAL: usize = 0x08;
    pub const STATUS: usize = 0x20;
    pub const IRQ_STATUS: usize = 0x24;
    pub const DMA_CMD: usize = 0x98;
}

/// The first page of the device's BAR0, mapped read-only through sysfs
/// `resource0`: the device's registers as the device answers them.
pub struct Regs {
    base: NonNull<u32>,
    path: String,
}

/// Bytes mapped: the registers the cases read all lie in the first page.
const REGS_LEN: usize = 4096;

impl Regs {
    /// Maps `resource0` of the PCI device directory `pci_dir`.
    pub fn map(pci_dir: &Path) -> Result<Self, Verdict> {
        let path = pci_dir.join("resource0");
        let shown = path.display().to_string();
        let file = File::open(&path).map_err(|e| Verdict::Fail(format!("{shown}: {e}")))?;
        // SAFETY: a new shared, read-only mapping at an address the kernel
        // picks, of a file we opened; it overlaps nothing we own.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                REGS_LEN,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            return Err(Verdict::Fail(format!("mmap of {shown}: {e}")));
        }
        let base = NonNull::new(addr.cast::<u32>())
            .ok_or_else(|| Verdict::Fail(format!("mmap of {shown} returned address 0")))?;
        Ok(Regs { base, path: shown })
    }

    /// Reads the 32-bit register at `offset`.
    ///
    /// # Panics
    ///
    /// If `offset` is not a 4-byte aligned offset within the mapping.
    pub fn read(&self, offset: usize) -> u32 {
        assert!(
            offset.is_multiple_of(4) && offset < REGS_LEN,
            "register {offset:#x}"
        );
        // SAFETY: `base` is the start of a live REGS_LEN-byte mapping (until
        // Drop) and `offset` is aligned and within it; a volatile 4-byte
        // read is how device registers are read, and the registers in
        // [`reg`] have no read side effects.
        unsafe { self.base.as_ptr().add(offset / 4).read_volatile() }
    }

    /// Checks that the register at `offset` reads `want`.
    pub fn expect(&self, offset: usize, want: u32, what: &str) -> CaseResult {
        let got = self.read(offset);
        if got == want {
            return Ok(());
        }
        Err(Verdict::Fail(format!(
            "{}: register {offset:#04x} reads {got:#010x}, expected {want:#010x} ({what})",
            self.path
        )))
    }
}

impl Regs {
    /// The device's state as its registers show it, for a failure message.
    pub fn state(&self) -> String {
        format!(
            "the device's STATUS {:#x}, IRQ_STATUS {:#x}, DMA_CMD {:#x}",
            self.read(reg::STATUS),
            self.read(reg::IRQ_STATUS),
            self.read(reg::DMA_CMD)
        )
    }
}

impl Drop for Regs {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `map`; no reference into it
        // outlives `self`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), REGS_LEN) };
    }
}

/// The kernel log from now on, through `/dev/kmsg`.
pub struct Kmsg {
    file: File,
}

impl Kmsg {
    /// Opens `/dev/kmsg` and skips everything logged so far.
    pub fn from_now() -> Result<Self, Verdict> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .map_err(|e| Verdict::Fail(format!("/dev/kmsg: {e}")))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| Verdict::Fail(format!("/dev/kmsg: lseek to the end: {e}")))?;
        Ok(Kmsg { file })
    }

    /// The messages logged since the last call (or [`Kmsg::from_now`]).
    pub fn read_new(&mut self) -> Result<Vec<String>, Verdict> {
        let mut lines = Vec::new();
        let mut record = vec![0u8; 8192];
        loop {
            match self.file.read(&mut record) {
                Ok(0) => break,
                Ok(n) => lines.extend(kmsg_message(&record[..n])),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // EPIPE: records were overwritten before we read them; the
                // next read goes on with the oldest one left.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Verdict::Fail(format!("/dev/kmsg: {e}"))),
            }
        }
        Ok(lines)
    }
}

/// The message of one `/dev/kmsg` record, `PRIO,SEQ,USEC,FLAGS;TEXT\n`
/// followed by ` KEY=VALUE` continuation lines.
pub fn kmsg_message(record: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(record);
    let (_, msg) = text.split_once(';')?;
    Some(msg.lines().next().unwrap_or("").to_string())
}

/// Whether thread `tid` of this process is blocked inside `ioctl(2)` now,
/// as `/proc/self/task/TID/syscall` says (its first field is the number of
/// the system call the thread sleeps in).
pub fn blocked_in_ioctl(tid: libc::pid_t) -> Result<bool, Verdict> {
    let path = format!("/proc/self/task/{tid}/syscall");
    let text = std::fs::read_to_string(&path).map_err(|e| Verdict::Fail(format!("{path}: {e}")))?;
    Ok(text.split_whitespace().next() == Some(&libc::SYS_ioctl.to_string()))
}

/// This thread's id.
pub fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Linux 7.3 prints them (kernel/irq/proc.c).
    const INTERRUPTS: &str = "           CPU0       CPU1       
  0:         44          0  IO-APIC    2-edge      timer
  4:          0          0  IO-APIC    4-edge      ttyS0
 11:        120          7  IO-APIC   11-fasteoi   edu, edu
 10:          3          0  IO-APIC   10-fasteoi   
 24:       1234          0  PCI-MSI-0000:00:04.0    0-edge      edu
NMI:          0          0   Non-maskable interrupts
";

    #[test]
    fn interrupt_lines_parse() {
        let l = parse_irq_line(INTERRUPTS, 24).unwrap();
        assert_eq!(l.count, 1234);
        assert_eq!(l.actions, ["edu"]);
        let l = parse_irq_line(INTERRUPTS, 11).unwrap();
        assert_eq!(l.count, 127);
        assert_eq!(l.actions, ["edu", "edu"]);
        assert_eq!(parse_irq_line(INTERRUPTS, 0).unwrap().actions, ["timer"]);
        assert_eq!(parse_irq_line(INTERRUPTS, 25), None);
        assert_eq!(parse_irq_line(INTERRUPTS, 10).unwrap().count, 3);
    }

    #[test]
    fn last_byte_dmas_raise_no_interrupt() {
        assert_eq!(dma_irqs(0, 4096), 1);
        assert_eq!(dma_irqs(4094, 2), 1);
        assert_eq!(dma_irqs(4095, 1), 0);
        assert_eq!(dma_irqs(0, 0), 0);
    }

    #[test]
    fn kmsg_records_give_their_message() {
        let r = b"6,1234,5678,-;edu 0000:00:04.0: length 100000\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:04.0\n";
        assert_eq!(
            kmsg_message(r).as_deref(),
            Some("edu 0000:00:04.0: length 100000")
        );
        assert_eq!(kmsg_message(b"garbage"), None);
    }

    #[test]
    fn a_running_thread_is_not_blocked_in_ioctl() {
        // The positive side needs an ioctl that sleeps: the selftest's
        // unbind-busy case sees its threads there on the device.
        assert_eq!(blocked_in_ioctl(gettid()), Ok(false));
        assert!(blocked_in_ioctl(-1).is_err());
    }
}
