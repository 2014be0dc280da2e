//! Many threads, processes, signals and devices at once.

use super::*;

pub(super) fn concurrent_threads(ctx: &Ctx) -> CaseResult {
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

pub(super) fn concurrent_dma(ctx: &Ctx) -> CaseResult {
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

pub(super) fn concurrent_processes(ctx: &Ctx) -> CaseResult {
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

pub(super) fn signal_interrupt(ctx: &Ctx) -> CaseResult {
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
    let tid = tid_rx
        .recv()
        .map_err(|_| Verdict::Fail("worker thread did not start".into()))?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2000) {
        // SAFETY: the worker thread is alive until `stop` is set below.
        unsafe { libc::pthread_kill(tid as libc::pthread_t, libc::SIGUSR1) };
        thread::sleep(Duration::from_millis(37));
    }
    stop.store(true, Ordering::SeqCst);
    let (ok, eintr, errors) = worker
        .join()
        .map_err(|_| Verdict::Fail("worker panicked".into()))?;
    first_error(errors.into_iter().map(Err).collect())?;
    // A DMA waits ~100 ms for its interrupt and a signal comes every
    // 37 ms: an interruptible wait must have been cut short at least once.
    ensure(eintr > 0, || {
        format!(
            "{ok} round trips under 2 s of signals and no EINTR: the waits are not interruptible"
        )
    })?;
    // Afterwards, without signals, everything works and the data is right.
    let dev = Device::open(&ctx.path())?;
    let data = pattern(0x5fff, BUF);
    dev.dma_to_device(0, &data)?;
    compare("round trip after the signals", 0, &read_all(&dev)?, &data)
}

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

pub(super) fn two_devices(_ctx: &Ctx) -> CaseResult {
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

pub(super) fn two_devices_parallel(_ctx: &Ctx) -> CaseResult {
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
