//! Unbinding the device through sysfs under open fds and running ioctls.

use std::path::Path;

use super::*;

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
    let (major, minor) = sysfs::node_numbers(&ctx.path()).map_err(Verdict::Fail)?;
    let old = Device::open(&ctx.path())?;
    old.info()?;
    let unbound = Unbound::new(&bound)?;
    ensure(sysfs::bound_driver(&bound.pci).is_none(), || {
        "still bound after unbind".into()
    })?;
    check_stale(&old, "after unbind")?;
    check_unbound_minor(major, minor)?;
    let node = unbound.rebind(ctx)?;
    check_fresh(&node)?;
    check_stale(&old, "after rebind, on the old fd")
}

pub(super) fn unbind_busy(ctx: &Ctx) -> CaseResult {
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

/// The loaded module's name, and its file for loading it again.
const MODULE: &str = "edu";
const MODULE_FILE: &str = "/lib/modules/edu.ko";

pub(super) fn rmmod_busy(ctx: &Ctx) -> CaseResult {
    if ctx.no_unbind {
        return Err(Verdict::Skip("--no-unbind".into()));
    }
    if !Path::new("/sys/module").join(MODULE).exists() {
        return Err(Verdict::Skip(format!("no module {MODULE} loaded")));
    }
    let path = ctx.path();
    let dev = Device::open(&path)?;
    let params = kmod::current_params(MODULE);
    match kmod::delete_module(MODULE) {
        // Refused while a file is open: the fd must still work.
        Err(e) if e == Errno(libc::EAGAIN) || e == Errno(libc::EBUSY) => {
            let got = dev.factorial(12)?;
            ensure(got == factorial_u32(12), || {
                format!("after the refused rmmod: 12! = {got:#x}")
            })
        }
        Err(e) if e == Errno(libc::EPERM) => {
            Err(Verdict::Skip("not allowed to unload modules".into()))
        }
        Err(e) => Err(Verdict::Fail(format!(
            "rmmod {MODULE} with {path} open: {e}"
        ))),
        // Allowed: then it must be safe. The fd fails, and loading the
        // module again gives a working device.
        Ok(()) => {
            check_stale(&dev, "after rmmod")?;
            drop(dev);
            kmod::load_module(Path::new(MODULE_FILE), &params)
                .map_err(|e| Verdict::Fail(format!("reloading {MODULE_FILE} {params}: {e}")))?;
            let pci = sysfs::pci_dir_of(&path).map_err(Verdict::Fail)?;
            let node = sysfs::node_of(&pci, Duration::from_secs(5)).map_err(Verdict::Fail)?;
            check_fresh(&node)
        }
    }
}
