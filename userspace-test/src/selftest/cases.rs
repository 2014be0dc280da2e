//! The selftest's cases, in the order they run.

use std::fmt::Debug;
use std::io::SeekFrom;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use edu_abi::*;

use super::sysfs;
use super::{ensure, Case, CaseResult, Ctx, Verdict};
use crate::device::{factorial_u32, DevError, Device, Dir, GuardPages, LAB_COMMANDS};
use crate::errno::Errno;

const BUF: usize = EDU_BUF_SIZE as usize;

fn case(name: &'static str, about: &'static str, secs: u64, run: fn(&Ctx) -> CaseResult) -> Case {
    Case {
        name,
        about,
        run,
        limit: Duration::from_secs(secs),
    }
}

/// Every case, in running order. The unbind cases stay last.
pub fn all() -> Vec<Case> {
    vec![
        case(
            "info",
            "EDU_IOC_INFO: id, BAR0, DMA mask, IRQ mode, minor",
            10,
            info,
        ),
        case(
            "liveness",
            "EDU_IOC_LIVENESS reads back NOT v",
            10,
            liveness,
        ),
        case("factorial-0", "0! = 1", 10, |c| factorial_is(c, 0)),
        case("factorial-1", "1! = 1", 10, |c| factorial_is(c, 1)),
        case("factorial-10", "10! = 0x375f00, the lab's value", 10, |c| {
            factorial_is(c, 10)
        }),
        case(
            "factorial-12",
            "12!, the largest that fits in 32 bits",
            10,
            |c| factorial_is(c, 12),
        ),
        case("factorial-13", "13! wraps mod 2^32", 10, |c| {
            factorial_is(c, 13)
        }),
        case(
            "factorial-0-20",
            "every n! for n in 0..=20",
            20,
            factorial_sweep,
        ),
        case(
            "raise",
            "EDU_IOC_RAISE_IRQ returns exactly the raised bits",
            10,
            raise,
        ),
        case(
            "raise-einval",
            "raising 0, bit 0 or bit 8 is EINVAL",
            10,
            raise_einval,
        ),
        case(
            "unknown-ioctl",
            "unknown numbers, sizes, directions, magic: ENOTTY",
            10,
            unknown_ioctl,
        ),
        case(
            "efault",
            "unreadable arguments and DMA buffers: EFAULT",
            30,
            efault,
        ),
        case(
            "dma-einval",
            "DMA len 0 or past the buffer: EINVAL, nothing moved",
            30,
            dma_einval,
        ),
        case(
            "dma-4096",
            "4096-byte DMA round trips of several patterns",
            30,
            dma_4096,
        ),
        case(
            "dma-1byte",
            "1-byte DMAs at the buffer's edges leave neighbours alone",
            60,
            dma_1byte,
        ),
        case(
            "dma-ranges",
            "DMAs of assorted offsets and lengths against a model",
            60,
            dma_ranges,
        ),
        case(
            "rw-roundtrip",
            "write()/read() move the buffer, shared with the ioctls",
            30,
            rw_roundtrip,
        ),
        case(
            "rw-end",
            "read at the end is 0, write is ENOSPC, partial transfers",
            30,
            rw_end,
        ),
        case(
            "rw-seek",
            "lseek SET/CUR/END, pread/pwrite keep the position",
            30,
            rw_seek,
        ),
        case(
            "lab-commands",
            "the lab's five commands succeed",
            30,
            lab_commands,
        ),
        case(
            "concurrent-threads",
            "factorials from many threads, shared and own fds",
            120,
            concurrent_threads,
        ),
        case(
            "concurrent-dma",
            "threads DMA disjoint regions while others compute",
            120,
            concurrent_dma,
        ),
        case(
            "concurrent-processes",
            "factorials from several processes at once",
            120,
            concurrent_processes,
        ),
        case(
            "signal-interrupt",
            "signals during DMA: success or EINTR, never stale data",
            60,
            signal_interrupt,
        ),
        case(
            "two-devices",
            "two devices: distinct minors, independent buffers",
            120,
            two_devices,
        ),
        case(
            "two-devices-parallel",
            "two devices' DMAs overlap in time",
            60,
            two_devices_parallel,
        ),
        case(
            "unbind-rebind",
            "unbind with an fd open: ENODEV; rebind: fresh open works",
            60,
            unbind_rebind,
        ),
        case(
            "unbind-busy",
            "unbind while threads are inside ioctls",
            60,
            unbind_busy,
        ),
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

/// `iters` factorials of n in 0..=20 (a sequence chosen by `seed`), each
/// checked against the value computed here.
pub fn factorial_loop(dev: &Device, iters: u32, seed: u32) -> Result<(), String> {
    for i in 0..iters {
        let n = seed.wrapping_mul(7).wrapping_add(i.wrapping_mul(5)) % 21;
        let got = dev.factorial(n).map_err(|e| e.to_string())?;
        if got != factorial_u32(n) {
            return Err(format!(
                "{n}! gave {got:#x}, expected {:#x} (iteration {i})",
                factorial_u32(n)
            ));
        }
    }
    Ok(())
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

// --- single-command cases -----------------------------------------------------

fn info(ctx: &Ctx) -> CaseResult {
    let i = ctx.dev.info()?;
    ensure(i.id == 0x010000ed, || {
        format!("id {:#010x}, expected 0x010000ed", i.id)
    })?;
    ensure(i.dma_mask == 0x0fff_ffff, || {
        format!("dma_mask {:#x}, expected 0x0fffffff", i.dma_mask)
    })?;
    ensure(i.bar0_len == 1 << 20, || {
        format!("bar0_len {:#x}, expected 1 MiB", i.bar0_len)
    })?;
    ensure(i.bar0_start != 0 && i.bar0_start % i.bar0_len == 0, || {
        format!(
            "bar0_start {:#x} is not a naturally aligned BAR",
            i.bar0_start
        )
    })?;
    ensure(
        matches!(i.irq_mode, EDU_IRQ_MODE_INTX | EDU_IRQ_MODE_MSI),
        || format!("irq_mode {}", i.irq_mode),
    )?;
    ensure(i.irq != 0, || "irq 0".into())?;
    let path = ctx.path();
    let (_, minor) = sysfs::node_numbers(&path).map_err(Verdict::Fail)?;
    ensure(u64::from(i.minor) == minor, || {
        format!("minor {}, but {path} is minor {minor}", i.minor)
    })?;
    // Cross-check with what the PCI core says about the device.
    let dir = sysfs::pci_dir_of(&path).map_err(Verdict::Fail)?;
    let resource = std::fs::read_to_string(dir.join("resource")).unwrap_or_default();
    let start = resource
        .split_whitespace()
        .next()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
    ensure(start == Some(i.bar0_start), || {
        format!(
            "bar0_start {:#x}, sysfs resource says {start:?}",
            i.bar0_start
        )
    })?;
    let msi_dir = dir.join("msi_irqs");
    let msi_enabled = std::fs::read_dir(&msi_dir)
        .map(|d| d.count() > 0)
        .unwrap_or(false);
    ensure(msi_enabled == (i.irq_mode == EDU_IRQ_MODE_MSI), || {
        format!(
            "irq_mode {}, but {} says MSI is {}",
            i.irq_mode,
            msi_dir.display(),
            if msi_enabled { "on" } else { "off" }
        )
    })
}

fn liveness(ctx: &Ctx) -> CaseResult {
    for v in [0, 1, 0xffff_ffff, 0x1234_5678, 0xa5a5_a5a5, 0x8000_0000] {
        let got = ctx.dev.liveness(v)?;
        ensure(got == !v, || {
            format!(
                "liveness({v:#010x}) read back {got:#010x}, expected {:#010x}",
                !v
            )
        })?;
    }
    Ok(())
}

fn factorial_is(ctx: &Ctx, n: u32) -> CaseResult {
    let got = ctx.dev.factorial(n)?;
    let want = factorial_u32(n);
    ensure(got == want, || {
        format!("{n}! = {got:#x}, expected {want:#x}")
    })
}

fn factorial_sweep(ctx: &Ctx) -> CaseResult {
    (0..=20).try_for_each(|n| factorial_is(ctx, n))
}

fn raise(ctx: &Ctx) -> CaseResult {
    // A factorial first: its completion bit must not leak into the raise.
    factorial_is(ctx, 5)?;
    for v in [0x2, 0x4, 0x80, 0x200, 0x8000_0000, 0x1234_5678, 0xffff_fefe] {
        let seen = ctx.dev.raise(v)?;
        ensure(seen == v, || {
            format!("raised {v:#x}, the handler saw {seen:#x}")
        })?;
    }
    Ok(())
}

fn raise_einval(ctx: &Ctx) -> CaseResult {
    for v in [0, 0x1, 0x100, 0x101, 0x102, 0x3, 0x1234_5679, 0xffff_ffff] {
        expect_errno(ctx.dev.raise(v), libc::EINVAL, &format!("raise({v:#x})"))?;
    }
    let seen = ctx.dev.raise(0x2)?;
    ensure(seen == 0x2, || {
        format!("after the refusals, raising 0x2 gave {seen:#x}")
    })
}

fn unknown_ioctl(ctx: &Ctx) -> CaseResult {
    let other_magic = (EDU_IOC_INFO & !0xff00) | (u32::from(b'x') << 8);
    let requests: [(&str, u32); 10] = [
        ("_IO('k', 0x7f)", io(0x7f)),
        ("_IO('k', 0x19)", io(0x19)),
        ("_IO('k', 0x1f)", io(0x1f)),
        ("_IO('k', 0x26)", io(0x26)),
        ("_IO('k', 0x20)", io(0x20)),
        ("_IOR('k', 0x20, 32 bytes)", ior::<[u8; 32]>(0x20)),
        ("_IOW('k', 0x20, struct edu_info)", iow::<EduInfo>(0x20)),
        ("_IOR('k', 0x21, u32)", ior::<u32>(0x21)),
        ("EDU_IOC_INFO with magic 'x'", other_magic),
        ("TCGETS", 0x5401),
    ];
    let guard = GuardPages::new().map_err(|e| Verdict::Fail(format!("mmap: {e}")))?;
    for (name, req) in requests {
        expect_errno(
            ctx.dev.ioctl_unmapped("ioctl", req, &guard),
            libc::ENOTTY,
            name,
        )?;
    }
    Ok(())
}

fn efault(ctx: &Ctx) -> CaseResult {
    let guard = GuardPages::new().map_err(|e| Verdict::Fail(format!("mmap: {e}")))?;
    let typed = [
        ("EDU_IOC_INFO", EDU_IOC_INFO),
        ("EDU_IOC_FACTORIAL", EDU_IOC_FACTORIAL),
        ("EDU_IOC_LIVENESS", EDU_IOC_LIVENESS),
        ("EDU_IOC_RAISE_IRQ", EDU_IOC_RAISE_IRQ),
        ("EDU_IOC_DMA_TO_DEVICE", EDU_IOC_DMA_TO_DEVICE),
        ("EDU_IOC_DMA_FROM_DEVICE", EDU_IOC_DMA_FROM_DEVICE),
    ];
    for (name, req) in typed {
        expect_errno(
            ctx.dev.ioctl_unmapped(name, req, &guard),
            libc::EFAULT,
            &format!("{name} with an unmapped argument"),
        )?;
    }
    let before = pattern(0xefa, BUF);
    ctx.dev.dma_to_device(0, &before)?;
    for dir in [Dir::ToDevice, Dir::FromDevice] {
        for (offset, len) in [(0, 16), (0, 4096), (4000, 96)] {
            let what = format!("{dir:?} of {len} bytes at {offset} from an unmapped buffer");
            expect_errno(
                ctx.dev.dma_unmapped(dir, &guard, offset, len),
                libc::EFAULT,
                &what,
            )?;
        }
        for addr in [
            0xffff_ffff_8100_0000u64,
            0xffff_8880_0000_0000,
            0x8000_0000_0000_0000,
        ] {
            let what = format!("{dir:?} with user_addr {addr:#x}");
            expect_errno(
                ctx.dev.dma_kernel_address(dir, addr, 0, 64),
                libc::EFAULT,
                &what,
            )?;
        }
    }
    compare(
        "device buffer after the refused DMAs",
        0,
        &read_all(&ctx.dev)?,
        &before,
    )?;
    factorial_is(ctx, 12)
}

// --- DMA ------------------------------------------------------------------------

fn dma_einval(ctx: &Ctx) -> CaseResult {
    let before = pattern(0xe1, BUF);
    ctx.dev.dma_to_device(0, &before)?;
    let big = pattern(3, BUF + 1);
    let ranges: [(u32, usize); 8] = [
        (0, 0),
        (4096, 0),
        (4096, 1),
        (4095, 2),
        (0, BUF + 1),
        (1, BUF),
        (u32::MAX, 2),
        (0xffff_f001, BUF),
    ];
    for (offset, len) in ranges {
        let what = |d: &str| format!("{d} offset {offset:#x} len {len}");
        expect_errno(
            ctx.dev.dma_to_device(offset, &big[..len]),
            libc::EINVAL,
            &what("DMA to device"),
        )?;
        let mut buf = vec![0x5a; len];
        expect_errno(
            ctx.dev.dma_from_device(offset, &mut buf),
            libc::EINVAL,
            &what("DMA from device"),
        )?;
        ensure(buf.iter().all(|&b| b == 0x5a), || {
            format!(
                "{} wrote to the user buffer",
                what("refused DMA from device")
            )
        })?;
    }
    compare(
        "device buffer after the refused DMAs",
        0,
        &read_all(&ctx.dev)?,
        &before,
    )
}

fn dma_4096(ctx: &Ctx) -> CaseResult {
    let patterns = [
        pattern(1, BUF),
        vec![0; BUF],
        vec![0xff; BUF],
        (0..BUF).map(|i| i as u8).collect(),
        pattern(2, BUF),
    ];
    for (k, data) in patterns.iter().enumerate() {
        ctx.dev.dma_to_device(0, data)?;
        compare(&format!("pattern {k}"), 0, &read_all(&ctx.dev)?, data)?;
    }
    Ok(())
}

fn dma_1byte(ctx: &Ctx) -> CaseResult {
    let mut model = pattern(0x1b, BUF);
    ctx.dev.dma_to_device(0, &model)?;
    for (k, offset) in [0u32, 1, 7, 8, 2047, 2048, 4094, 4095]
        .into_iter()
        .enumerate()
    {
        let byte = !model[offset as usize] ^ (k as u8);
        ctx.dev.dma_to_device(offset, &[byte])?;
        model[offset as usize] = byte;
        let mut got = [0u8];
        ctx.dev.dma_from_device(offset, &mut got)?;
        ensure(got[0] == byte, || {
            format!(
                "1 byte at {offset}: read {:#04x}, wrote {byte:#04x}",
                got[0]
            )
        })?;
    }
    compare(
        "whole buffer after the 1-byte writes",
        0,
        &read_all(&ctx.dev)?,
        &model,
    )
}

fn dma_ranges(ctx: &Ctx) -> CaseResult {
    let mut model = pattern(0xd0, BUF);
    ctx.dev.dma_to_device(0, &model)?;
    let ranges: [(usize, usize); 9] = [
        (1, 4095),
        (0, 2048),
        (2048, 2048),
        (100, 300),
        (4032, 64),
        (13, 77),
        (4095, 1),
        (511, 2),
        (3000, 1096),
    ];
    for (k, (offset, len)) in ranges.into_iter().enumerate() {
        let data = pattern(0x100 + k as u32, len);
        ctx.dev.dma_to_device(offset as u32, &data)?;
        model[offset..offset + len].copy_from_slice(&data);
        let mut got = vec![0; len];
        ctx.dev.dma_from_device(offset as u32, &mut got)?;
        compare(&format!("range {offset}+{len}"), offset, &got, &data)?;
    }
    compare(
        "whole buffer after the range writes",
        0,
        &read_all(&ctx.dev)?,
        &model,
    )
}

// --- read/write/lseek -------------------------------------------------------------

fn expect_usize(r: Result<usize, DevError>, want: usize, what: &str) -> CaseResult {
    let got = r?;
    ensure(got == want, || {
        format!("{what} returned {got}, expected {want}")
    })
}

fn rw_roundtrip(ctx: &Ctx) -> CaseResult {
    let dev = Device::open(&ctx.path())?;
    let p = pattern(0x77, BUF);
    ensure(dev.seek(SeekFrom::Current(0))? == 0, || {
        "a fresh fd is not at position 0".into()
    })?;
    expect_usize(dev.write(&p), BUF, "write of 4096 bytes at 0")?;
    ensure(dev.seek(SeekFrom::Current(0))? == BUF as u64, || {
        "write did not advance the position to 4096".into()
    })?;
    compare("DMA read after write()", 0, &read_all(&dev)?, &p)?;
    dev.seek(SeekFrom::Start(0))?;
    let mut got = vec![0; BUF];
    expect_usize(dev.read(&mut got), BUF, "read of 4096 bytes at 0")?;
    compare("read() after write()", 0, &got, &p)?;
    let q = pattern(0x78, BUF);
    dev.dma_to_device(0, &q)?;
    dev.seek(SeekFrom::Start(1000))?;
    let mut part = vec![0; 500];
    expect_usize(dev.read(&mut part), 500, "read of 500 bytes at 1000")?;
    compare("read() after a DMA ioctl", 1000, &part, &q[1000..1500])?;
    ensure(dev.seek(SeekFrom::Current(0))? == 1500, || {
        "read did not advance the position to 1500".into()
    })
}

fn rw_end(ctx: &Ctx) -> CaseResult {
    let dev = Device::open(&ctx.path())?;
    let p = pattern(0xe4, BUF);
    dev.dma_to_device(0, &p)?;
    ensure(dev.seek(SeekFrom::Start(BUF as u64))? == BUF as u64, || {
        "lseek to 4096 failed".into()
    })?;
    let mut buf = vec![0; 200];
    expect_usize(dev.read(&mut buf), 0, "read at the end")?;
    expect_errno(dev.write(&[1]), libc::ENOSPC, "write at the end")?;
    expect_usize(dev.read_at(&mut buf, BUF as u64), 0, "pread at 4096")?;
    expect_errno(
        dev.write_at(&[1, 2], BUF as u64),
        libc::ENOSPC,
        "pwrite at 4096",
    )?;

    let tail = pattern(0xe5, 200);
    dev.seek(SeekFrom::Start(4000))?;
    expect_usize(dev.write(&tail), 96, "write of 200 bytes at 4000")?;
    ensure(dev.seek(SeekFrom::Current(0))? == BUF as u64, || {
        "partial write did not stop at 4096".into()
    })?;
    dev.seek(SeekFrom::Start(4000))?;
    expect_usize(dev.read(&mut buf), 96, "read of 200 bytes at 4000")?;
    compare("partial read", 4000, &buf[..96], &tail[..96])?;
    expect_usize(
        dev.read_at(&mut buf[..10], 4095),
        1,
        "pread of 10 bytes at 4095",
    )?;
    ensure(buf[0] == tail[95], || {
        "pread at 4095 returned the wrong byte".into()
    })?;
    expect_usize(
        dev.write_at(&tail[..10], 4090),
        6,
        "pwrite of 10 bytes at 4090",
    )?;
    let mut want = p.clone();
    want[4000..].copy_from_slice(&tail[..96]);
    want[4090..].copy_from_slice(&tail[..6]);
    compare(
        "buffer after the partial writes",
        0,
        &read_all(&dev)?,
        &want,
    )
}

fn rw_seek(ctx: &Ctx) -> CaseResult {
    let dev = Device::open(&ctx.path())?;
    let p = pattern(0x5e, BUF);
    dev.dma_to_device(0, &p)?;
    let steps: [(SeekFrom, u64); 5] = [
        (SeekFrom::Start(100), 100),
        (SeekFrom::Current(50), 150),
        (SeekFrom::Current(-150), 0),
        (SeekFrom::End(0), BUF as u64),
        (SeekFrom::End(-16), BUF as u64 - 16),
    ];
    for (pos, want) in steps {
        let got = dev.seek(pos)?;
        ensure(got == want, || {
            format!("lseek {pos:?} gave {got}, expected {want}")
        })?;
    }
    let mut buf = [0u8; 16];
    expect_usize(dev.read(&mut buf), 16, "read of 16 bytes at END-16")?;
    compare("read at END-16", BUF - 16, &buf, &p[BUF - 16..])?;
    dev.seek(SeekFrom::Start(10))?;
    expect_errno(
        dev.seek(SeekFrom::Current(-11)),
        libc::EINVAL,
        "lseek to -1",
    )?;
    ensure(dev.seek(SeekFrom::Current(0))? == 10, || {
        "a refused lseek moved the position".into()
    })?;
    expect_usize(dev.read_at(&mut buf, 2000), 16, "pread at 2000")?;
    compare("pread at 2000", 2000, &buf, &p[2000..2016])?;
    expect_usize(dev.write_at(&buf, 3000), 16, "pwrite at 3000")?;
    ensure(dev.seek(SeekFrom::Current(0))? == 10, || {
        "pread/pwrite moved the file position".into()
    })
}

fn lab_commands(ctx: &Ctx) -> CaseResult {
    for (name, req) in LAB_COMMANDS {
        ctx.dev.lab(name, req)?;
    }
    Ok(())
}

// --- concurrency ----------------------------------------------------------------

fn concurrent_threads(ctx: &Ctx) -> CaseResult {
    let path = ctx.path();
    let results = thread::scope(|s| {
        let handles: Vec<_> = (0..ctx.threads)
            .map(|t| {
                let path = &path;
                s.spawn(move || {
                    // Even threads share the suite's fd, odd ones open their own.
                    let own;
                    let dev = if t % 2 == 0 {
                        &ctx.dev
                    } else {
                        own = Device::open(path).map_err(|e| e.to_string())?;
                        &own
                    };
                    factorial_loop(dev, ctx.iters, t).map_err(|e| format!("thread {t}: {e}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    first_error(results)
}

fn concurrent_dma(ctx: &Ctx) -> CaseResult {
    let n = ctx.threads.clamp(1, 16) as usize;
    let size = BUF / n;
    let results = thread::scope(|s| {
        let mut handles: Vec<_> = (0..n)
            .map(|t| {
                s.spawn(move || -> Result<Vec<u8>, String> {
                    let offset = t * size;
                    let mut last = Vec::new();
                    for round in 0..3u32 {
                        let data = pattern(0x1000 + (t as u32) * 16 + round, size);
                        ctx.dev
                            .dma_to_device(offset as u32, &data)
                            .map_err(|e| e.to_string())?;
                        let mut got = vec![0; size];
                        ctx.dev
                            .dma_from_device(offset as u32, &mut got)
                            .map_err(|e| e.to_string())?;
                        if let Err(Verdict::Fail(m)) =
                            compare(&format!("thread {t} round {round}"), offset, &got, &data)
                        {
                            return Err(m);
                        }
                        last = data;
                    }
                    Ok(last)
                })
            })
            .collect();
        // Interrupts of the other kinds at the same time.
        let fact = s.spawn(|| factorial_loop(&ctx.dev, ctx.iters, 99));
        let raise = s.spawn(|| -> Result<(), String> {
            for _ in 0..ctx.iters {
                let seen = ctx.dev.raise(0x4).map_err(|e| e.to_string())?;
                if seen & 0x4 == 0 {
                    return Err(format!("raised 0x4 during DMAs, the handler saw {seen:#x}"));
                }
            }
            Ok(())
        });
        let regions: Vec<_> = handles
            .drain(..)
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect();
        let others =
            [fact.join(), raise.join()].map(|r| r.unwrap_or_else(|_| Err("panicked".into())));
        (regions, others)
    });
    let (regions, others) = results;
    let mut want = Vec::with_capacity(BUF);
    let mut errors = Vec::new();
    for r in regions {
        match r {
            Ok(data) => want.extend_from_slice(&data),
            Err(e) => errors.push(Err(e)),
        }
    }
    errors.extend(others);
    first_error(errors)?;
    let got = read_all(&ctx.dev)?;
    compare(
        "buffer after the concurrent DMAs",
        0,
        &got[..want.len()],
        &want,
    )
}

fn concurrent_processes(ctx: &Ctx) -> CaseResult {
    let exe = std::env::current_exe()
        .map_err(|e| Verdict::Fail(format!("cannot find my own executable: {e}")))?;
    let path = ctx.path();
    let mut children = Vec::new();
    for k in 0..ctx.procs {
        let child = Command::new(&exe)
            .args([
                "--device",
                &path,
                "worker",
                "--iters",
                &ctx.iters.to_string(),
                "--seed",
                &(k + 1).to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Verdict::Fail(format!("spawning {}: {e}", exe.display())))?;
        children.push(child);
    }
    // The parent computes too, with threads, while the children run.
    let mine = thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|t| s.spawn(move || factorial_loop(&ctx.dev, ctx.iters, 50 + t)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect::<Vec<_>>()
    });
    let mut results = mine;
    for (k, child) in children.into_iter().enumerate() {
        let out = child
            .wait_with_output()
            .map_err(|e| Verdict::Fail(format!("waiting for worker {k}: {e}")))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            results.push(Err(format!("worker {k} {}: {msg}", out.status)));
        }
    }
    first_error(results)
}

extern "C" fn on_signal(_: libc::c_int) {}

/// Installs a do-nothing SIGUSR1 handler without SA_RESTART, so that a
/// signal makes an interruptible wait in the driver return EINTR.
fn install_sigusr1() -> Result<(), String> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
    sa.sa_flags = 0;
    // SAFETY: `sa` is initialised and its handler is async-signal-safe (it
    // does nothing); the old action is not needed.
    let r = unsafe { libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(format!("sigaction: {}", Errno::last()))
    }
}

fn signal_interrupt(ctx: &Ctx) -> CaseResult {
    install_sigusr1().map_err(Verdict::Fail)?;
    let dev = Device::open(&ctx.path())?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    // The worker only returns after `stop` is set, so the thread is alive
    // for every pthread_kill below.
    let (tid_tx, tid_rx) = mpsc::channel();
    let worker = thread::spawn(move || -> (u32, u32, Vec<String>) {
        // SAFETY: pthread_self has no preconditions. (pthread_t is a
        // pointer on musl, not Send: the id travels as an integer.)
        let _ = tid_tx.send(unsafe { libc::pthread_self() } as usize);
        let (mut ok, mut eintr, mut errors) = (0, 0, Vec::new());
        let mut i = 0u32;
        while !stop2.load(Ordering::SeqCst) {
            i += 1;
            let data = pattern(0x5100 + i, BUF);
            let mut got = vec![0; BUF];
            let r = dev
                .dma_to_device(0, &data)
                .and_then(|()| dev.dma_from_device(0, &mut got));
            match r {
                Ok(()) if got == data => ok += 1,
                Ok(()) => errors.push(format!(
                    "round {i}: read back data that was not just written"
                )),
                Err(e) if e.errno == Errno(libc::EINTR) => eintr += 1,
                Err(e) => errors.push(format!("round {i}: {e}")),
            }
            match dev.factorial(12) {
                Ok(v) if v == factorial_u32(12) => {}
                Ok(v) => errors.push(format!("round {i}: 12! gave {v:#x}")),
                Err(e) if e.errno == Errno(libc::EINTR) => eintr += 1,
                Err(e) => errors.push(format!("round {i}: {e}")),
            }
        }
        (ok, eintr, errors)
    });
    let tid = tid_rx.recv().map_err(|_| Verdict::Fail("worker thread did not start".into()))?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2000) {
        // SAFETY: the worker thread is alive until `stop` is set below.
        unsafe { libc::pthread_kill(tid as libc::pthread_t, libc::SIGUSR1) };
        thread::sleep(Duration::from_millis(37));
    }
    stop.store(true, Ordering::SeqCst);
    let (_ok, _eintr, errors) = worker
        .join()
        .map_err(|_| Verdict::Fail("worker panicked".into()))?;
    first_error(errors.into_iter().map(Err).collect())?;
    // Afterwards, without signals, everything works and the data is right.
    let dev = Device::open(&ctx.path())?;
    let data = pattern(0x5fff, BUF);
    dev.dma_to_device(0, &data)?;
    compare("round trip after the signals", 0, &read_all(&dev)?, &data)
}

// --- two devices ----------------------------------------------------------------

fn two_nodes() -> Result<Vec<String>, Verdict> {
    let nodes = sysfs::numbered_nodes();
    if nodes.len() < 2 {
        return Err(Verdict::Skip(format!(
            "{} /dev/eduN node(s), need 2",
            nodes.len()
        )));
    }
    Ok(nodes)
}

fn two_devices(_ctx: &Ctx) -> CaseResult {
    let nodes = two_nodes()?;
    let devs = nodes
        .iter()
        .map(|n| Device::open(n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut minors = Vec::new();
    for (node, dev) in nodes.iter().zip(&devs) {
        let i = dev.info()?;
        ensure(i.id == 0x010000ed, || format!("{node}: id {:#x}", i.id))?;
        if let Some(n) = sysfs::node_index(node) {
            ensure(i.minor == n, || format!("{node} reports minor {}", i.minor))?;
        }
        ensure(!minors.contains(&i.minor), || {
            format!("{node}: minor {} used twice", i.minor)
        })?;
        minors.push(i.minor);
    }
    let results = thread::scope(|s| {
        let hs: Vec<_> = devs
            .iter()
            .enumerate()
            .map(|(k, dev)| {
                s.spawn(move || -> Result<(), String> {
                    let data = pattern(0x2000 + k as u32, BUF);
                    dev.dma_to_device(0, &data).map_err(|e| e.to_string())?;
                    factorial_loop(dev, 20, k as u32)?;
                    let seen = dev.raise(0x2).map_err(|e| e.to_string())?;
                    if seen != 0x2 {
                        return Err(format!("{}: raised 0x2, saw {seen:#x}", dev.path()));
                    }
                    let got = read_all(dev).map_err(|e| e.to_string())?;
                    if got != data {
                        return Err(format!(
                            "{}: buffer changed under a parallel run",
                            dev.path()
                        ));
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    first_error(results)?;
    // Each buffer still holds its own device's pattern.
    for (k, dev) in devs.iter().enumerate() {
        compare(
            &format!("{} after both ran", dev.path()),
            0,
            &read_all(dev)?,
            &pattern(0x2000 + k as u32, BUF),
        )?;
    }
    Ok(())
}

fn two_devices_parallel(_ctx: &Ctx) -> CaseResult {
    const ROUNDS: u32 = 6;
    let nodes = two_nodes()?;
    let devs = nodes[..2]
        .iter()
        .map(|n| Device::open(n))
        .collect::<Result<Vec<_>, _>>()?;
    let dmas = |dev: &Device| -> Result<(), DevError> {
        let data = pattern(0x3000, BUF);
        (0..ROUNDS).try_for_each(|_| dev.dma_to_device(0, &data))
    };
    let t = Instant::now();
    dmas(&devs[0])?;
    let alone = t.elapsed();
    let t = Instant::now();
    let results: Vec<Result<(), DevError>> = thread::scope(|s| {
        let hs: Vec<_> = devs.iter().map(|d| s.spawn(move || dmas(d))).collect();
        hs.into_iter()
            .map(|h| h.join().expect("DMA thread panicked"))
            .collect()
    });
    let both = t.elapsed();
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    ensure(both.as_secs_f64() < 1.6 * alone.as_secs_f64(), || {
        format!("{ROUNDS} DMAs took {alone:?} on one device but {both:?} on two at once: the devices are serialised")
    })
}

// --- unbind -----------------------------------------------------------------------

/// The device behind the suite's node, bound to the `edu` driver.
struct Bound {
    pci: std::path::PathBuf,
    addr: String,
    driver: std::path::PathBuf,
}

fn bound_device(ctx: &Ctx) -> Result<Bound, Verdict> {
    if ctx.no_unbind {
        return Err(Verdict::Skip("--no-unbind".into()));
    }
    let pci = sysfs::pci_dir_of(&ctx.path()).map_err(Verdict::Fail)?;
    let driver = sysfs::bound_driver(&pci)
        .ok_or_else(|| Verdict::Fail(format!("{} has no driver", pci.display())))?;
    ensure(driver.file_name().is_some_and(|n| n == "edu"), || {
        format!("bound to {}, not edu", driver.display())
    })?;
    if !driver.join("unbind").exists() {
        return Err(Verdict::Skip(format!("no {}/unbind", driver.display())));
    }
    Ok(Bound {
        addr: sysfs::pci_address(&pci),
        pci,
        driver,
    })
}

/// Unbinds on creation, and binds again when dropped unless `rebind` ran.
struct Unbound<'a> {
    dev: &'a Bound,
    rebound: bool,
}

impl<'a> Unbound<'a> {
    fn new(dev: &'a Bound) -> Result<Self, Verdict> {
        sysfs::write_control(&dev.driver, "unbind", &dev.addr).map_err(Verdict::Fail)?;
        Ok(Unbound {
            dev,
            rebound: false,
        })
    }

    /// Binds again, waits for the node, and makes it the suite's node.
    fn rebind(mut self, ctx: &Ctx) -> Result<String, Verdict> {
        self.rebound = true;
        sysfs::write_control(&self.dev.driver, "bind", &self.dev.addr).map_err(Verdict::Fail)?;
        ensure(
            sysfs::bound_driver(&self.dev.pci).as_ref() == Some(&self.dev.driver),
            || "bind did not bind".into(),
        )?;
        let node = sysfs::node_of(&self.dev.pci, Duration::from_secs(5)).map_err(Verdict::Fail)?;
        let mut path = ctx.path.lock().unwrap();
        if sysfs::node_index(&path).is_some() {
            *path = node.clone();
        }
        Ok(node)
    }
}

impl Drop for Unbound<'_> {
    fn drop(&mut self) {
        if !self.rebound {
            let _ = sysfs::write_control(&self.dev.driver, "bind", &self.dev.addr);
        }
    }
}

/// A fresh open of `node` works and computes correctly.
fn check_fresh(node: &str) -> CaseResult {
    let dev = Device::open(node)?;
    let i = dev.info()?;
    ensure(i.id == 0x010000ed, || {
        format!("after rebind: id {:#x}", i.id)
    })?;
    let got = dev.factorial(12)?;
    ensure(got == factorial_u32(12), || {
        format!("after rebind: 12! = {got:#x}")
    })?;
    let data = pattern(0x4242, 256);
    dev.dma_to_device(0, &data)?;
    let mut back = vec![0; 256];
    dev.dma_from_device(0, &mut back)?;
    compare("after rebind: DMA round trip", 0, &back, &data)
}

/// Every kind of call on a stale fd gives ENODEV.
fn check_stale(dev: &Device, when: &str) -> CaseResult {
    let mut buf = [0u8; 16];
    let e = libc::ENODEV;
    expect_errno(dev.info(), e, &format!("{when}: EDU_IOC_INFO"))?;
    expect_errno(dev.factorial(5), e, &format!("{when}: EDU_IOC_FACTORIAL"))?;
    expect_errno(dev.liveness(5), e, &format!("{when}: EDU_IOC_LIVENESS"))?;
    expect_errno(dev.raise(2), e, &format!("{when}: EDU_IOC_RAISE_IRQ"))?;
    expect_errno(
        dev.dma_to_device(0, &buf),
        e,
        &format!("{when}: EDU_IOC_DMA_TO_DEVICE"),
    )?;
    expect_errno(
        dev.dma_from_device(0, &mut buf),
        e,
        &format!("{when}: EDU_IOC_DMA_FROM_DEVICE"),
    )?;
    expect_errno(
        dev.lab("SEND_INTERRUPT_CMD", SEND_INTERRUPT_CMD),
        e,
        &format!("{when}: SEND_INTERRUPT_CMD"),
    )?;
    expect_errno(dev.read_at(&mut buf, 0), e, &format!("{when}: pread"))?;
    expect_errno(dev.write_at(&buf, 0), e, &format!("{when}: pwrite"))
}

fn unbind_rebind(ctx: &Ctx) -> CaseResult {
    let bound = bound_device(ctx)?;
    let old = Device::open(&ctx.path())?;
    old.info()?;
    let unbound = Unbound::new(&bound)?;
    ensure(sysfs::bound_driver(&bound.pci).is_none(), || {
        "still bound after unbind".into()
    })?;
    check_stale(&old, "after unbind")?;
    let node = unbound.rebind(ctx)?;
    check_fresh(&node)?;
    check_stale(&old, "after rebind, on the old fd")
}

fn unbind_busy(ctx: &Ctx) -> CaseResult {
    let bound = bound_device(ctx)?;
    let path = ctx.path();
    let (tx, rx) = mpsc::channel::<(usize, Result<u32, String>)>();
    let kinds = ["factorial", "dma", "raise", "factorial", "dma"];
    for (k, kind) in kinds.into_iter().enumerate() {
        let dev = Device::open(&path)?;
        let tx = tx.clone();
        // Each thread loops until the unbind makes its call fail, checking
        // every result it gets before that; it must end with ENODEV.
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut n = 0u32;
            let verdict = loop {
                if Instant::now() > deadline {
                    break Err("still working 20 s after the unbind".to_string());
                }
                n += 1;
                let r = match kind {
                    "factorial" => dev.factorial(n % 13).map(|v| {
                        if v == factorial_u32(n % 13) {
                            None
                        } else {
                            Some(format!("{}! = {v:#x}", n % 13))
                        }
                    }),
                    "dma" => {
                        let data = pattern(0x6000 + n, 512);
                        let mut back = vec![0; 512];
                        let off = 512 * (k as u32 % 8);
                        dev.dma_to_device(off, &data)
                            .and_then(|()| dev.dma_from_device(off, &mut back))
                            .map(|()| {
                                if back == data {
                                    None
                                } else {
                                    Some("DMA read back other data".to_string())
                                }
                            })
                    }
                    _ => dev.raise(0x8).map(|s| {
                        if s == 0x8 {
                            None
                        } else {
                            Some(format!("raise 0x8 saw {s:#x}"))
                        }
                    }),
                };
                match r {
                    Ok(None) => {}
                    Ok(Some(wrong)) => break Err(format!("{kind} thread: {wrong}")),
                    Err(e) if e.errno == Errno(libc::ENODEV) => break Ok(n),
                    Err(e) => break Err(format!("{kind} thread: {e}")),
                }
            };
            let _ = tx.send((k, verdict));
        });
    }
    drop(tx);
    thread::sleep(Duration::from_millis(400));
    let unbound = Unbound::new(&bound)?;
    let mut results = Vec::new();
    for _ in 0..kinds.len() {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((k, r)) => results.push(r.map(|_| ()).map_err(|e| format!("thread {k}: {e}"))),
            Err(_) => {
                results.push(Err("a thread hung inside an ioctl across the unbind".into()));
                break;
            }
        }
    }
    let node = unbound.rebind(ctx)?;
    first_error(results)?;
    check_fresh(&node)
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
