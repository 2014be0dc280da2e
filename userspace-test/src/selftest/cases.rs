//! The selftest's cases, in the order they run.

use std::fmt::Debug;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use edu_abi::*;

use super::evidence::{dma_irqs, reg, Irqs, Regs};
use super::{ensure, evidence, Case, CaseResult, Ctx, Verdict};
use super::{kmod, sysfs};
use crate::device::{factorial_u32, DevError, Device, Dir, GuardPages, LAB_COMMANDS};
use crate::errno::Errno;

mod basic;
mod concurrency;
mod dma;
mod unbind;

const BUF: usize = EDU_BUF_SIZE as usize;

fn case(name: &'static str, about: &'static str, secs: u64, run: fn(&Ctx) -> CaseResult) -> Case {
    Case {
        name,
        about,
        run,
        limit: Duration::from_secs(secs),
    }
}

/// Every case, in running order, with its time limit in seconds: at least
/// ten times what it takes on QEMU TCG (`docs/edu-test.md` has the
/// figures). The unbind cases stay last.
#[rustfmt::skip]
pub fn all() -> Vec<Case> {
    use basic::*;
    use concurrency::*;
    use dma::*;
    use unbind::*;
    vec![
        case("info", "EDU_IOC_INFO against sysfs, /proc/interrupts and the ID register", 10, info),
        case("liveness", "EDU_IOC_LIVENESS reads back NOT v, as the register does", 10, liveness),
        case("factorial-0", "0! = 1, one interrupt", 10, |c| factorial_is(c, 0)),
        case("factorial-1", "1! = 1, one interrupt", 10, |c| factorial_is(c, 1)),
        case("factorial-10", "10! = 0x375f00, the lab's value, one interrupt", 10, |c| factorial_is(c, 10)),
        case("factorial-12", "12!, the largest that fits in 32 bits, one interrupt", 10, |c| factorial_is(c, 12)),
        case("factorial-13", "13! wraps mod 2^32, one interrupt", 10, |c| factorial_is(c, 13)),
        case("factorial-0-20", "every n! for n in 0..=20, an interrupt each", 20, factorial_sweep),
        case("raise", "EDU_IOC_RAISE_IRQ: the raised bits, one interrupt, status acknowledged", 10, raise),
        case("raise-einval", "raising 0, bit 0 or bit 8 is EINVAL without an interrupt", 10, raise_einval),
        case("unknown-ioctl", "unknown numbers, sizes, directions, magic: ENOTTY", 10, unknown_ioctl),
        case("efault", "unreadable arguments and DMA buffers: EFAULT, nothing sent", 30, efault),
        case("dma-einval", "DMA len 0 or past the buffer: EINVAL, nothing moved", 30, dma_einval),
        case("dma-4096", "4096-byte DMA round trips of several patterns", 30, dma_4096),
        case("dma-1byte", "1-byte DMAs at the buffer's edges leave neighbours alone", 60, dma_1byte),
        case("dma-ranges", "DMAs of assorted offsets and lengths against a model", 60, dma_ranges),
        case("rw-roundtrip", "write()/read() move the buffer by DMA, shared with the ioctls", 30, rw_roundtrip),
        case("rw-end", "read at the end is 0, write is ENOSPC, partial transfers", 30, rw_end),
        case("rw-seek", "lseek SET/CUR/END, pread/pwrite keep the position", 30, rw_seek),
        case("lab-commands", "the lab's five commands: their interrupts and kernel log lines", 30, lab_commands),
        case("concurrent-threads", "factorials from many threads, shared and own fds", 120, concurrent_threads),
        case("concurrent-dma", "threads DMA disjoint regions while others compute", 120, concurrent_dma),
        case("concurrent-processes", "factorials from several processes at once", 120, concurrent_processes),
        case("signal-interrupt", "signals during waits: success or EINTR, never stale data", 60, signal_interrupt),
        case("two-devices", "two devices: distinct minors, IRQs and buffers", 120, two_devices),
        case("two-devices-parallel", "two devices' DMAs overlap in time, each keeps its data", 60, two_devices_parallel),
        case("unbind-rebind", "unbind with an fd open: ENODEV; rebind: the data stayed in the device", 60, unbind_rebind),
        case("unbind-busy", "unbind while every thread is inside an ioctl", 60, unbind_busy),
        case("unbind-rmmod", "rmmod with a file open: refused, or safe and reloadable", 60, rmmod_busy),
    ]
}

// --- helpers ----------------------------------------------------------------

/// Passes if `r` failed with `want`.
fn expect_errno<T: Debug>(r: Result<T, DevError>, want: i32, what: &str) -> CaseResult {
    match r {
        Err(e) if e.errno == Errno(want) => Ok(()),
        Err(e) => Err(Verdict::Fail(format!(
            "{what}: {}, expected {}",
            e.errno,
            Errno(want)
        ))),
        Ok(v) => Err(Verdict::Fail(format!(
            "{what}: succeeded ({v:?}), expected {}",
            Errno(want)
        ))),
    }
}

/// Deterministic pseudo-random bytes (xorshift32) for a seed.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// `Err` naming the first differing byte, if `got != want`.
fn compare(what: &str, base: usize, got: &[u8], want: &[u8]) -> CaseResult {
    if got.len() != want.len() {
        return Err(Verdict::Fail(format!(
            "{what}: {} bytes, expected {}",
            got.len(),
            want.len()
        )));
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(Verdict::Fail(format!(
            "{what}: byte at offset {} is {:#04x}, expected {:#04x}",
            base + i,
            got[i],
            want[i]
        ))),
    }
}

/// The whole device buffer, by DMA.
fn read_all(dev: &Device) -> Result<Vec<u8>, DevError> {
    let mut buf = vec![0; BUF];
    dev.dma_from_device(0, &mut buf)?;
    Ok(buf)
}

/// The `i`-th n in 0..=20 of the factorial sequence `seed` (a splitmix64
/// hash, so that different seeds give unrelated sequences, not shifts of
/// one another: concurrent callers then rarely ask for the same n at once,
/// and a result delivered to the wrong caller shows).
pub fn factorial_n(seed: u32, i: u32) -> u32 {
    let mut z = (u64::from(seed) << 32 | u64::from(i)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) % 21) as u32
}

/// Seeds of the factorial sequences, one range per kind of caller, so that
/// no two concurrent callers (threads or processes) share a sequence.
pub mod seed {
    /// `concurrent-threads`: thread t uses `THREAD + t`.
    pub const THREAD: u32 = 0x1000;
    /// `concurrent-processes`: worker process k uses `PROCESS + k`.
    pub const PROCESS: u32 = 0x2000;
    /// `concurrent-processes`: the parent's thread t uses `PARENT + t`.
    pub const PARENT: u32 = 0x3000;
    /// `concurrent-dma`'s factorial thread.
    pub const BESIDE_DMA: u32 = 0x4000;
    /// `two-devices`: device k uses `DEVICE + k`.
    pub const DEVICE: u32 = 0x5000;
}

/// `iters` factorials of the sequence `seed`, each checked against the
/// value computed here.
pub fn factorial_loop(dev: &Device, iters: u32, seed: u32) -> Result<(), String> {
    for i in 0..iters {
        let n = factorial_n(seed, i);
        let got = dev.factorial(n).map_err(|e| e.to_string())?;
        if got != factorial_u32(n) {
            return Err(format!(
                "{n}! gave {got:#x}, expected {:#x} (sequence {seed:#x}, iteration {i})",
                factorial_u32(n)
            ));
        }
    }
    Ok(())
}

/// The PCI device directory of the case's node.
fn pci_dir(ctx: &Ctx) -> Result<PathBuf, Verdict> {
    sysfs::pci_dir_of(&ctx.path).map_err(Verdict::Fail)
}

/// The case's device's registers, through `resource0`.
fn regs(ctx: &Ctx) -> Result<Regs, Verdict> {
    Regs::map(&pci_dir(ctx)?)
}

/// Joins scoped threads' results into one verdict.
fn first_error(results: Vec<Result<(), String>>) -> CaseResult {
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    match errors.len() {
        0 => Ok(()),
        1 => Err(Verdict::Fail(errors[0].clone())),
        n => Err(Verdict::Fail(format!("{} (and {} more)", errors[0], n - 1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_deterministic_and_distinct() {
        assert_eq!(pattern(1, 64), pattern(1, 64));
        assert_ne!(pattern(1, 64), pattern(2, 64));
        assert_eq!(&pattern(1, 100)[..50], &pattern(1, 50)[..]);
        // Not constant: a pattern stuck at one value would hide offset bugs.
        let p = pattern(0, 4096);
        assert!(p.iter().any(|&b| b != p[0]));
    }

    #[test]
    fn factorial_sequences_differ_per_caller() {
        let seq = |seed| (0..50).map(|i| factorial_n(seed, i)).collect::<Vec<_>>();
        let mut seeds: Vec<u32> = (0..256).map(|t| seed::THREAD + t).collect();
        seeds.extend((0..64).map(|k| seed::PROCESS + k));
        seeds.extend((0..2).map(|t| seed::PARENT + t));
        seeds.extend([seed::BESIDE_DMA, seed::DEVICE, seed::DEVICE + 1]);
        let seqs: Vec<Vec<u32>> = seeds.iter().map(|&s| seq(s)).collect();
        for (a, sa) in seqs.iter().enumerate() {
            assert!(sa.iter().all(|&n| n <= 20));
            // Not constant, and covering most of 0..=20.
            let mut seen = sa.clone();
            seen.sort_unstable();
            seen.dedup();
            assert!(seen.len() >= 12, "seed {:#x}: {seen:?}", seeds[a]);
            for (b, sb) in seqs.iter().enumerate().skip(a + 1) {
                let same = sa.iter().zip(sb).filter(|(x, y)| x == y).count();
                assert!(
                    same <= 12,
                    "seeds {:#x} and {:#x} agree at {same} of 50",
                    seeds[a],
                    seeds[b]
                );
            }
        }
    }

    #[test]
    fn compare_names_the_first_difference() {
        assert_eq!(compare("x", 0, &[1, 2, 3], &[1, 2, 3]), Ok(()));
        assert_eq!(
            compare("x", 100, &[1, 9, 3], &[1, 2, 4]),
            Err(Verdict::Fail(
                "x: byte at offset 101 is 0x09, expected 0x02".into()
            ))
        );
        assert!(compare("x", 0, &[1], &[1, 2]).is_err());
    }

    #[test]
    fn expect_errno_distinguishes_outcomes() {
        let err = |n| -> Result<(), DevError> {
            Err(DevError {
                path: "/dev/edu0".into(),
                op: "x",
                errno: Errno(n),
            })
        };
        assert_eq!(expect_errno(err(libc::EINVAL), libc::EINVAL, "w"), Ok(()));
        assert_eq!(
            expect_errno(err(libc::EFAULT), libc::EINVAL, "w"),
            Err(Verdict::Fail(
                "w: EFAULT (Bad address), expected EINVAL (Invalid argument)".into()
            ))
        );
        assert!(expect_errno(Ok::<u32, DevError>(3), libc::EINVAL, "w").is_err());
    }

    #[test]
    fn first_error_counts_the_rest() {
        assert_eq!(first_error(vec![Ok(()), Ok(())]), Ok(()));
        assert_eq!(
            first_error(vec![Ok(()), Err("a".into()), Err("b".into())]),
            Err(Verdict::Fail("a (and 1 more)".into()))
        );
    }
}
