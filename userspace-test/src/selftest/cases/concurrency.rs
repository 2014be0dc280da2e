//! Many threads, processes, signals and devices at once.

use super::*;

pub(super) fn concurrent_threads(ctx: &Ctx) -> CaseResult {
    let (threads, iters) = (ctx.opts.threads, ctx.opts.iters);
    let mut irqs = Irqs::of(&ctx.dev)?;
    let path = &ctx.path;
    let results = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    // Even threads share the suite's fd, odd ones open their own.
                    let own;
                    let dev = if t % 2 == 0 {
                        &ctx.dev
                    } else {
                        own = Device::open(path).map_err(|e| e.to_string())?;
                        &own
                    };
                    factorial_loop(dev, iters, seed::THREAD + t)
                        .map_err(|e| format!("thread {t}: {e}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    first_error(results)?;
    irqs.expect(
        u64::from(threads) * u64::from(iters),
        &format!("{threads} threads' {iters} factorials each"),
    )
}

pub(super) fn concurrent_dma(ctx: &Ctx) -> CaseResult {
    const ROUNDS: u32 = 3;
    let iters = ctx.opts.iters;
    let mut irqs = Irqs::of(&ctx.dev)?;
    let n = ctx.opts.threads.clamp(1, 16) as usize;
    let size = BUF / n;
    let results = thread::scope(|s| {
        let mut handles: Vec<_> = (0..n)
            .map(|t| {
                s.spawn(move || -> Result<Vec<u8>, String> {
                    let offset = t * size;
                    let mut last = Vec::new();
                    for round in 0..ROUNDS {
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
        let fact = s.spawn(|| factorial_loop(&ctx.dev, iters, seed::BESIDE_DMA));
        let raise = s.spawn(|| -> Result<(), String> {
            for _ in 0..iters {
                let seen = ctx.dev.raise(0x4).map_err(|e| e.to_string())?;
                if seen != 0x4 {
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
    )?;
    // Every region lies before the last byte: two DMAs per round.
    irqs.expect(
        2 * n as u64 * u64::from(ROUNDS) + 2 * u64::from(iters) + 1,
        &format!("{n} threads' DMA round trips, {iters} factorials and raises, a read back"),
    )
}

pub(super) fn concurrent_processes(ctx: &Ctx) -> CaseResult {
    let exe = std::env::current_exe()
        .map_err(|e| Verdict::Fail(format!("cannot find my own executable: {e}")))?;
    let (procs, iters) = (ctx.opts.procs, ctx.opts.iters);
    let mut irqs = Irqs::of(&ctx.dev)?;
    let mut children = Vec::new();
    for k in 0..procs {
        let child = Command::new(&exe)
            .args([
                "--device",
                &ctx.path,
                "worker",
                "--iters",
                &iters.to_string(),
                "--seed",
                &(seed::PROCESS + k).to_string(),
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
            .map(|t| s.spawn(move || factorial_loop(&ctx.dev, iters, seed::PARENT + t)))
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
    first_error(results)?;
    irqs.expect(
        u64::from(procs + 2) * u64::from(iters),
        &format!("{procs} processes' and 2 threads' {iters} factorials each"),
    )
}

/// SIGUSR1s this process has handled.
static DELIVERED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    // An atomic add is async-signal-safe.
    DELIVERED.fetch_add(1, Ordering::SeqCst);
}

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

/// A small xorshift generator for the signal case's varied inputs.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// A value in `lo..=hi`.
    fn within(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// What the signalled thread saw.
#[derive(Default)]
struct Signalled {
    /// Calls that completed; each raised one interrupt (or none, for the
    /// buffer's last byte).
    done_irqs: u64,
    /// Interrupts all calls could have raised: each started call at most one.
    most_irqs: u64,
    eintr: u32,
    /// Calls during which a signal was handled (the handler runs as the
    /// system call returns).
    hit: u32,
    errors: Vec<String>,
    /// The device's registers right after the first error.
    state: Option<String>,
}

impl Signalled {
    /// Makes one call that can raise `irqs` interrupts and accounts for it;
    /// its value if it completed.
    fn call<T>(
        &mut self,
        irqs: u64,
        what: &str,
        f: impl FnOnce() -> Result<T, DevError>,
    ) -> Option<T> {
        let before = DELIVERED.load(Ordering::SeqCst);
        let r = f();
        if DELIVERED.load(Ordering::SeqCst) != before {
            self.hit += 1;
        }
        self.most_irqs += irqs;
        match r {
            Ok(v) => {
                self.done_irqs += irqs;
                Some(v)
            }
            Err(e) if e.errno == Errno(libc::EINTR) => {
                self.eintr += 1;
                None
            }
            Err(e) => {
                self.errors.push(format!("{what}: {e}"));
                None
            }
        }
    }
}

/// Values `EDU_IOC_RAISE_IRQ` accepts, for varied raises.
const RAISE_VALUES: [u32; 6] = [0x2, 0x4, 0x80, 0x200, 0x8000_0000, 0xffff_fefe];

/// One round of varied work under signals: a DMA round trip of a random
/// range, a factorial and a raise of varied inputs.
fn signalled_round(dev: &Device, regs: Option<&Regs>, i: u32, rng: &mut Rng, seen: &mut Signalled) {
    let errors = seen.errors.len();
    signalled_calls(dev, i, rng, seen);
    if seen.errors.len() > errors && seen.state.is_none() {
        seen.state = regs.map(Regs::state);
    }
}

fn signalled_calls(dev: &Device, i: u32, rng: &mut Rng, seen: &mut Signalled) {
    let offset = rng.within(0, BUF as u32 - 1) as usize;
    let len = rng.within(1, (BUF - offset) as u32) as usize;
    let data = pattern(0x5100 + i, len);
    let dma = dma_irqs(offset, len);
    let what = format!("round {i}: DMA of {len} bytes at {offset}");
    if seen
        .call(dma, &what, || dev.dma_to_device(offset as u32, &data))
        .is_some()
    {
        let mut got = vec![0; len];
        let back = seen.call(dma, &what, || dev.dma_from_device(offset as u32, &mut got));
        if back.is_some() && got != data {
            seen.errors.push(format!("{what}: read back other data"));
        }
    }
    let n = factorial_n(0x5200, i);
    if let Some(v) = seen.call(1, &format!("round {i}: {n}!"), || dev.factorial(n)) {
        if v != factorial_u32(n) {
            seen.errors.push(format!("round {i}: {n}! gave {v:#x}"));
        }
    }
    let v = RAISE_VALUES[i as usize % RAISE_VALUES.len()];
    if let Some(s) = seen.call(1, &format!("round {i}: raise {v:#x}"), || dev.raise(v)) {
        if s != v {
            seen.errors
                .push(format!("round {i}: raised {v:#x}, saw {s:#x}"));
        }
    }
}

pub(super) fn signal_interrupt(ctx: &Ctx) -> CaseResult {
    /// Pauses between two signals: random, about as frequent on average
    /// as the fixed 37 ms this case used before (nested guests under load
    /// fared worse with twice as many).
    const MIN_GAP_MS: u32 = 10;
    const MAX_GAP_MS: u32 = 50;
    install_sigusr1().map_err(Verdict::Fail)?;
    let dev = Device::open(&ctx.path)?;
    let mut irqs = Irqs::of(&dev)?;
    let pci = pci_dir(ctx)?;
    // The worker maps the registers for itself (a mapping is not Send).
    Regs::map(&pci)?;
    // How long one DMA takes here, without signals: whether signals this
    // frequent must catch a wait, which depends on the device's DMA delay.
    let t = Instant::now();
    dev.dma_to_device(0, &pattern(0x5000, BUF))?;
    let dma_time = t.elapsed();
    irqs.expect(1, "a 4096-byte DMA to the device")?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    // The worker only returns after `stop` is set, so the thread is alive
    // for every pthread_kill below.
    let (tid_tx, tid_rx) = mpsc::channel();
    let worker = thread::spawn(move || -> Signalled {
        // SAFETY: pthread_self has no preconditions. (pthread_t is a
        // pointer on musl, not Send: the id travels as an integer.)
        let _ = tid_tx.send(unsafe { libc::pthread_self() } as usize);
        let regs = Regs::map(&pci).ok();
        let (mut seen, mut rng) = (Signalled::default(), Rng(0x5eed));
        let mut i = 0u32;
        while !stop2.load(Ordering::SeqCst) {
            i += 1;
            signalled_round(&dev, regs.as_ref(), i, &mut rng, &mut seen);
        }
        seen
    });
    let tid = tid_rx
        .recv()
        .map_err(|_| Verdict::Fail("worker thread did not start".into()))?;
    let (start, mut gaps) = (Instant::now(), Rng(0x9a95));
    let mut sent = 0u32;
    while start.elapsed() < Duration::from_millis(2000) {
        // SAFETY: the worker thread is alive until `stop` is set below.
        unsafe { libc::pthread_kill(tid as libc::pthread_t, libc::SIGUSR1) };
        sent += 1;
        thread::sleep(Duration::from_millis(
            gaps.within(MIN_GAP_MS, MAX_GAP_MS).into(),
        ));
    }
    stop.store(true, Ordering::SeqCst);
    let seen = worker
        .join()
        .map_err(|_| Verdict::Fail("worker panicked".into()))?;
    if let Err(Verdict::Fail(m)) = first_error(seen.errors.into_iter().map(Err).collect()) {
        let state = seen.state.unwrap_or_default();
        return Err(Verdict::Fail(format!("{m}; then {state}")));
    }
    // A wait cut short is an EINTR. Whether signals land in waits depends
    // on the device (its DMA delay) and on the guest's load (how often the
    // signalling thread gets to run), so an EINTR is required only when
    // both were seen to allow it: DMAs longer than twice the longest gap,
    // and ten calls or more during which a signal came.
    if dma_time >= Duration::from_millis(2 * u64::from(MAX_GAP_MS)) && seen.hit >= 10 {
        ensure(seen.eintr > 0, || {
            format!(
                "{} calls had a signal come during them ({sent} sent) and a DMA takes \
                 {dma_time:?}, yet none was interrupted: the waits are not interruptible",
                seen.hit
            )
        })?;
    }
    // Afterwards, without signals, everything works and the data is right.
    // The DMA and the factorial first wait for any the signals cut short.
    let dev = Device::open(&ctx.path)?;
    let data = pattern(0x5fff, BUF);
    dev.dma_to_device(0, &data)?;
    compare("round trip after the signals", 0, &read_all(&dev)?, &data)?;
    ensure(dev.factorial(12)? == factorial_u32(12), || {
        "12! after the signals is wrong".into()
    })?;
    irqs.expect_within(
        seen.done_irqs + 3,
        seen.most_irqs + 3,
        &format!(
            "calls under signals ({} interrupted) and a round trip and a factorial after",
            seen.eintr
        ),
    )
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

/// The interrupt counters of `devs`, one per IRQ, with the devices each
/// one serves: two edu devices may share an INTx line.
fn irqs_of(devs: &[Device]) -> Result<Vec<(Irqs, Vec<usize>)>, Verdict> {
    let mut groups: Vec<(Irqs, Vec<usize>)> = Vec::new();
    for (k, dev) in devs.iter().enumerate() {
        let irq = dev.info()?.irq;
        match groups.iter_mut().find(|(i, _)| i.irq() == irq) {
            Some((_, members)) => members.push(k),
            None => groups.push((Irqs::of_irq(irq)?, vec![k])),
        }
    }
    Ok(groups)
}

/// Checks that each device raised `per_dev[k]` interrupts (summed over
/// the devices that share an IRQ).
fn expect_per_device(
    groups: &mut [(Irqs, Vec<usize>)],
    per_dev: &[u64],
    during: &str,
) -> CaseResult {
    for (irqs, members) in groups {
        irqs.expect(members.iter().map(|&k| per_dev[k]).sum(), during)?;
    }
    Ok(())
}

pub(super) fn two_devices(_ctx: &Ctx) -> CaseResult {
    const FACTORIALS: u32 = 20;
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
    let mut groups = irqs_of(&devs)?;
    let results = thread::scope(|s| {
        let hs: Vec<_> = devs
            .iter()
            .enumerate()
            .map(|(k, dev)| {
                s.spawn(move || -> Result<(), String> {
                    let data = pattern(0x2000 + k as u32, BUF);
                    dev.dma_to_device(0, &data).map_err(|e| e.to_string())?;
                    factorial_loop(dev, FACTORIALS, seed::DEVICE + k as u32)?;
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
    let each = 2 + u64::from(FACTORIALS) + 1 + 1;
    expect_per_device(
        &mut groups,
        &vec![each; devs.len()],
        &format!("each device's 3 DMAs, {FACTORIALS} factorials and a raise"),
    )
}

pub(super) fn two_devices_parallel(_ctx: &Ctx) -> CaseResult {
    const ROUNDS: u32 = 6;
    let nodes = two_nodes()?;
    let devs = nodes[..2]
        .iter()
        .map(|n| Device::open(n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut groups = irqs_of(&devs)?;
    // Device k's data in the parallel run; round r writes the r-th slice
    // of it, so that the buffer ends up holding all of it.
    let data: Vec<Vec<u8>> = (0..2).map(|k| pattern(0x3100 + k, BUF)).collect();
    let dmas = |dev: &Device, data: &[u8]| -> Result<(), DevError> {
        let slice = BUF / ROUNDS as usize;
        (0..ROUNDS as usize).try_for_each(|r| {
            let end = if r + 1 == ROUNDS as usize {
                BUF
            } else {
                (r + 1) * slice
            };
            dev.dma_to_device((r * slice) as u32, &data[r * slice..end])
        })
    };
    let t = Instant::now();
    dmas(&devs[0], &pattern(0x3000, BUF))?;
    let alone = t.elapsed();
    let t = Instant::now();
    let results: Vec<Result<(), DevError>> = thread::scope(|s| {
        let hs: Vec<_> = devs
            .iter()
            .zip(&data)
            .map(|(d, data)| s.spawn(move || dmas(d, data)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("DMA thread panicked"))
            .collect()
    });
    let both = t.elapsed();
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    for (dev, data) in devs.iter().zip(&data) {
        compare(
            &format!("{} after the parallel DMAs", dev.path()),
            0,
            &read_all(dev)?,
            data,
        )?;
    }
    let r = u64::from(ROUNDS);
    expect_per_device(
        &mut groups,
        &[2 * r + 1, r + 1],
        "6 DMAs alone, 6 on each device at once and a read back each",
    )?;
    ensure(both.as_secs_f64() < 1.6 * alone.as_secs_f64(), || {
        format!("{ROUNDS} DMAs took {alone:?} on one device but {both:?} on two at once: the devices are serialised")
    })
}
