//! Unbinding the device through sysfs under open fds and running ioctls.

use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64};

use super::*;

/// The device behind the suite's node, bound to the `edu` driver.
struct Bound {
    pci: std::path::PathBuf,
    addr: String,
    driver: std::path::PathBuf,
}

fn bound_device(ctx: &Ctx) -> Result<Bound, Verdict> {
    if ctx.opts.no_unbind {
        return Err(Verdict::Skip("--no-unbind".into()));
    }
    let pci = pci_dir(ctx)?;
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
        // Without root the unbind file cannot be opened for writing at all:
        // that is a reason to skip, not a failure of the driver.
        let unbind = dev.driver.join("unbind");
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(&unbind) {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                return Err(Verdict::Skip(format!("{}: {e}", unbind.display())));
            }
        }
        sysfs::write_control(&dev.driver, "unbind", &dev.addr).map_err(Verdict::Fail)?;
        Ok(Unbound {
            dev,
            rebound: false,
        })
    }

    /// Binds again and waits for the device's node.
    fn rebind(mut self) -> Result<String, Verdict> {
        self.rebound = true;
        sysfs::write_control(&self.dev.driver, "bind", &self.dev.addr).map_err(Verdict::Fail)?;
        ensure(
            sysfs::bound_driver(&self.dev.pci).as_ref() == Some(&self.dev.driver),
            || "bind did not bind".into(),
        )?;
        sysfs::node_of(&self.dev.pci, Duration::from_secs(5)).map_err(Verdict::Fail)
    }
}

impl Drop for Unbound<'_> {
    fn drop(&mut self) {
        if !self.rebound {
            let _ = sysfs::write_control(&self.dev.driver, "bind", &self.dev.addr);
        }
    }
}

/// A fresh open of `node` works and computes correctly, with the device's
/// interrupts.
fn check_fresh(node: &str) -> CaseResult {
    let dev = Device::open(node)?;
    let i = dev.info()?;
    ensure(i.id == 0x010000ed, || {
        format!("after rebind: id {:#x}", i.id)
    })?;
    let mut irqs = Irqs::of_irq(i.irq)?;
    let got = dev.factorial(12)?;
    ensure(got == factorial_u32(12), || {
        format!("after rebind: 12! = {got:#x}")
    })?;
    let data = pattern(0x4242, 256);
    dev.dma_to_device(0, &data)?;
    let mut back = vec![0; 256];
    dev.dma_from_device(0, &mut back)?;
    compare("after rebind: DMA round trip", 0, &back, &data)?;
    irqs.expect(3, "a factorial and a DMA round trip after the rebind")
}

/// The data the device buffer held before the driver let go of the device
/// is what a fresh open of `node` reads: it stayed in the device, and the
/// new driver instance (a new, zeroed DMA buffer) got it from there by
/// DMA. The last byte is left out: the driver keeps that one itself.
fn check_kept(node: &str, kept: &[u8], after: &str) -> CaseResult {
    let dev = Device::open(node)?;
    let mut irqs = Irqs::of(&dev)?;
    let mut got = vec![0; BUF - 1];
    dev.dma_from_device(0, &mut got)?;
    compare(
        &format!("{after}, the device buffer (what was DMAed before)"),
        0,
        &got,
        &kept[..BUF - 1],
    )?;
    irqs.expect(1, &format!("a DMA from the device {after}"))
}

/// How many of `irq`'s handlers are edu's now.
fn edu_handlers(irq: u32) -> Result<usize, Verdict> {
    Ok(evidence::irq_line(irq)?
        .map(|l| l.actions.iter().filter(|a| *a == "edu").count())
        .unwrap_or(0))
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

/// Opening the minor of an unbound device (through a node of our own, as
/// devtmpfs removed its node) fails with ENXIO.
fn check_unbound_minor(major: u64, minor: u64) -> CaseResult {
    let node = std::env::temp_dir().join(format!("edu-test-{}-{minor}", std::process::id()));
    let _ = std::fs::remove_file(&node);
    kmod::mknod_char(&node, major, minor)
        .map_err(|e| Verdict::Fail(format!("mknod {}: {e}", node.display())))?;
    let opened = Device::open(&node.to_string_lossy());
    let _ = std::fs::remove_file(&node);
    expect_errno(
        opened.map(|d| d.path().to_string()),
        libc::ENXIO,
        "open of the unbound minor",
    )
}

pub(super) fn unbind_rebind(ctx: &Ctx) -> CaseResult {
    let bound = bound_device(ctx)?;
    let (major, minor) = sysfs::node_numbers(&ctx.path).map_err(Verdict::Fail)?;
    let old = Device::open(&ctx.path)?;
    let irq = old.info()?.irq;
    let mut irqs = Irqs::of_irq(irq)?;
    let kept = pattern(0x4b1d, BUF);
    old.dma_to_device(0, &kept)?;
    irqs.expect(1, "a 4096-byte DMA to the device")?;
    let handlers = edu_handlers(irq)?;
    let unbound = Unbound::new(&bound)?;
    ensure(sysfs::bound_driver(&bound.pci).is_none(), || {
        "still bound after unbind".into()
    })?;
    let left = edu_handlers(irq)?;
    ensure(left + 1 == handlers, || {
        format!("/proc/interrupts: IRQ {irq} has {left} edu handlers after the unbind, {handlers} before")
    })?;
    check_stale(&old, "after unbind")?;
    check_unbound_minor(major, minor)?;
    let node = unbound.rebind()?;
    check_kept(&node, &kept, "after unbind and bind")?;
    check_fresh(&node)?;
    check_stale(&old, "after rebind, on the old fd")
}

/// The kinds of work the threads of `unbind-busy` loop in.
#[derive(Clone, Copy)]
enum Busy {
    Factorial,
    Dma,
    Raise,
}

/// What `unbind-busy`'s threads share with the case: each thread's id and
/// the interrupts its completed calls raised, and the moment the unbind
/// began.
struct BusyShared {
    base: Instant,
    /// Nanoseconds from `base` to the start of the unbind; 0 before it.
    unbind_at: AtomicU64,
    tids: Vec<AtomicI32>,
    irqs_done: Vec<AtomicU64>,
}

impl BusyShared {
    fn unbind_at(&self) -> Option<Duration> {
        match self.unbind_at.load(Ordering::SeqCst) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }
}

/// How a busy thread's loop ended.
struct BusyEnd {
    /// Whether one of its calls began before the unbind and ended after it.
    inside_at_unbind: bool,
    calls: u32,
}

/// Loops `kind` calls on `dev` until one fails with ENODEV, checking every
/// result before it.
fn busy_loop(dev: &Device, kind: Busy, k: usize, shared: &BusyShared) -> Result<BusyEnd, String> {
    shared.tids[k].store(evidence::gettid(), Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(40);
    // The last calls as (enter, exit) from `base`: once the unbind's start
    // is published (just after it is taken), the first call to end looks
    // back for the one that spans it, which is at most a call or two ago.
    let mut recent: Vec<(Duration, Duration)> = Vec::new();
    let mut inside_at_unbind = None;
    let mut n = 0u32;
    loop {
        if Instant::now() > deadline {
            return Err("still working 40 s after it started".into());
        }
        n += 1;
        let enter = shared.base.elapsed();
        let (r, irqs) = match kind {
            Busy::Factorial => {
                let m = factorial_n(0x7000 + k as u32, n);
                let r = dev
                    .factorial(m)
                    .map(|v| (v != factorial_u32(m)).then(|| format!("{m}! = {v:#x}")));
                (r, 1)
            }
            Busy::Dma => {
                let data = pattern(0x6000 + n, 512);
                let mut back = vec![0; 512];
                let off = 512 * (k as u32 % 8);
                let r = dev
                    .dma_to_device(off, &data)
                    .and_then(|()| dev.dma_from_device(off, &mut back))
                    .map(|()| (back != data).then(|| "DMA read back other data".to_string()));
                (r, 2)
            }
            Busy::Raise => {
                let r = dev
                    .raise(0x8)
                    .map(|s| (s != 0x8).then(|| format!("raise 0x8 saw {s:#x}")));
                (r, 1)
            }
        };
        recent.push((enter, shared.base.elapsed()));
        if recent.len() > 8 {
            recent.remove(0);
        }
        if inside_at_unbind.is_none() {
            if let Some(at) = shared.unbind_at() {
                inside_at_unbind = Some(recent.iter().any(|&(e, x)| e <= at && at <= x));
            }
        }
        match r {
            Ok(None) => {
                shared.irqs_done[k].fetch_add(irqs, Ordering::SeqCst);
                // Let the others run. Raises take microseconds and never
                // sleep: without this the raise thread starved the others
                // and the case itself (nested, each raise is an MMIO exit
                // and an MSI, and 18000 of them left the main thread a 5 ms
                // sleep that lasted 53 s).
                thread::yield_now();
            }
            Ok(Some(wrong)) => return Err(wrong),
            Err(e) if e.errno == Errno(libc::ENODEV) => {
                return Ok(BusyEnd {
                    inside_at_unbind: inside_at_unbind.unwrap_or(false),
                    calls: n,
                })
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Waits until every thread is blocked inside an ioctl at the same time,
/// as the kernel reports it.
fn wait_all_in_ioctl(shared: &BusyShared, within: Duration) -> CaseResult {
    let deadline = Instant::now() + within;
    loop {
        let mut all = true;
        for tid in &shared.tids {
            let tid = tid.load(Ordering::SeqCst);
            if tid == 0 || !evidence::blocked_in_ioctl(tid)? {
                all = false;
                break;
            }
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Verdict::Fail(format!(
                "/proc/self/task/*/syscall never showed all {} threads inside an ioctl at once in {within:?}",
                shared.tids.len()
            )));
        }
        thread::sleep(Duration::from_micros(200));
    }
}

pub(super) fn unbind_busy(ctx: &Ctx) -> CaseResult {
    /// Attempts at catching every thread inside a call: one can end its
    /// call in the instant between the kernel showing it blocked and the
    /// unbind, which proves nothing either way; three misses in a row do
    /// not happen by chance.
    const ATTEMPTS: u32 = 3;
    let bound = bound_device(ctx)?;
    let (mut node, mut attempt) = (ctx.path.clone(), 1);
    loop {
        let (next, missed) = busy_unbind(&bound, &node)?;
        node = next;
        match missed {
            None => return check_fresh(&node),
            Some(m) if attempt == ATTEMPTS => {
                return Err(Verdict::Fail(format!("{m}, {ATTEMPTS} times")))
            }
            Some(m) => eprintln!("unbind-busy: {m}; again"),
        }
        attempt += 1;
    }
}

/// One unbind of `node`'s device under five busy threads, and the bind
/// after it: the new node, and which thread (if any) was not inside a call
/// when the unbind began.
fn busy_unbind(bound: &Bound, node: &str) -> Result<(String, Option<String>), Verdict> {
    let dev = Device::open(node)?;
    let mut irqs = Irqs::of(&dev)?;
    let kinds = [
        Busy::Factorial,
        Busy::Dma,
        Busy::Raise,
        Busy::Factorial,
        Busy::Dma,
    ];
    let shared = Arc::new(BusyShared {
        base: Instant::now(),
        unbind_at: AtomicU64::new(0),
        tids: kinds.iter().map(|_| AtomicI32::new(0)).collect(),
        irqs_done: kinds.iter().map(|_| AtomicU64::new(0)).collect(),
    });
    let (tx, rx) = mpsc::channel::<(usize, Result<BusyEnd, String>)>();
    for (k, kind) in kinds.into_iter().enumerate() {
        let dev = Device::open(node)?;
        let (tx, shared) = (tx.clone(), Arc::clone(&shared));
        thread::spawn(move || {
            let _ = tx.send((k, busy_loop(&dev, kind, k, &shared)));
        });
    }
    drop(tx);
    // A thread that ended before the unbind failed: its reason says why.
    let ended = |why: String| -> Verdict {
        match rx.try_iter().find_map(|(k, r)| r.err().map(|e| (k, e))) {
            Some((k, e)) => Verdict::Fail(format!("{why}; thread {k}: {e}")),
            None => Verdict::Fail(why),
        }
    };
    // Evidence that the device serves them: their interrupts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared
        .irqs_done
        .iter()
        .any(|d| d.load(Ordering::SeqCst) == 0)
    {
        if Instant::now() > deadline {
            return Err(ended("a thread completed no call in 10 s".into()));
        }
        thread::sleep(Duration::from_millis(5));
    }
    let done: u64 = shared
        .irqs_done
        .iter()
        .map(|d| d.load(Ordering::SeqCst))
        .sum();
    irqs.expect_within(done, u64::MAX, "the threads' completed calls")?;
    // Progress on stderr, which the suite shows if the case hangs.
    eprintln!("unbind-busy: the threads run; waiting for all to be inside an ioctl");
    // Unbind the moment the kernel shows every thread inside an ioctl.
    wait_all_in_ioctl(&shared, Duration::from_secs(10)).map_err(|v| match v {
        Verdict::Fail(m) => ended(m),
        skip => skip,
    })?;
    eprintln!("unbind-busy: unbinding");
    let at = shared.base.elapsed().as_nanos().max(1) as u64;
    shared.unbind_at.store(at, Ordering::SeqCst);
    let unbound = Unbound::new(bound)?;
    let (mut errors, mut missed) = (Vec::new(), None);
    for _ in 0..kinds.len() {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((_, Ok(end))) if end.inside_at_unbind => {}
            Ok((k, Ok(end))) => {
                missed = Some(format!(
                    "thread {k} was between calls when the unbind began (after {} calls)",
                    end.calls
                ));
            }
            Ok((k, Err(e))) => errors.push(Err(format!("thread {k}: {e}"))),
            Err(_) => {
                errors.push(Err("a thread hung inside an ioctl across the unbind".into()));
                break;
            }
        }
    }
    eprintln!("unbind-busy: the threads ended; binding again");
    let node = unbound.rebind()?;
    first_error(errors)?;
    Ok((node, missed))
}

pub(super) fn rmmod_busy(ctx: &Ctx) -> CaseResult {
    use sysfs::{MODULE, MODULE_FILE};
    if ctx.opts.no_unbind {
        return Err(Verdict::Skip("--no-unbind".into()));
    }
    if !Path::new("/sys/module").join(MODULE).exists() {
        return Err(Verdict::Skip(format!("no module {MODULE} loaded")));
    }
    let dev = Device::open(&ctx.path)?;
    let mut irqs = Irqs::of(&dev)?;
    let kept = pattern(0x4b1e, BUF);
    dev.dma_to_device(0, &kept)?;
    irqs.expect(1, "a 4096-byte DMA to the device")?;
    let params = kmod::current_params(MODULE);
    match kmod::delete_module(MODULE) {
        // Refused while a file is open: the fd must still work.
        Err(e) if e == Errno(libc::EAGAIN) || e == Errno(libc::EBUSY) => {
            let got = dev.factorial(12)?;
            ensure(got == factorial_u32(12), || {
                format!("after the refused rmmod: 12! = {got:#x}")
            })?;
            irqs.expect(1, "a factorial after the refused rmmod")
        }
        Err(e) if e == Errno(libc::EPERM) => {
            Err(Verdict::Skip("not allowed to unload modules".into()))
        }
        Err(e) => Err(Verdict::Fail(format!(
            "rmmod {MODULE} with {} open: {e}",
            ctx.path
        ))),
        // Allowed: then it must be safe. The fd fails, and loading the
        // module again gives a working device that kept its data.
        Ok(()) => {
            check_stale(&dev, "after rmmod")?;
            drop(dev);
            kmod::load_module(Path::new(MODULE_FILE), &params)
                .map_err(|e| Verdict::Fail(format!("reloading {MODULE_FILE} {params}: {e}")))?;
            let pci = pci_dir(ctx)?;
            let node = sysfs::node_of(&pci, Duration::from_secs(5)).map_err(Verdict::Fail)?;
            check_kept(&node, &kept, "after rmmod and insmod")?;
            check_fresh(&node)
        }
    }
}
