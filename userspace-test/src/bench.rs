//! `bench`: latency (min/median/p99) and throughput of factorial,
//! raise-irq and 4 KiB DMA round trips, with one thread and with N. A
//! measurement, not a test: it fails only if the device does.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use edu_abi::EDU_BUF_SIZE;

use serde::Serialize;

use crate::cli::{BenchArgs, BenchOp};
use crate::commands::irq_mode_name;
use crate::device::{factorial_u32, Device};
use crate::output::{fields, Failure, Outcome};

/// Latency statistics of one run, in nanoseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub ops: usize,
    pub min_ns: u64,
    pub median_ns: u64,
    pub p99_ns: u64,
    pub mean_ns: u64,
    /// Completed operations per second of wall time, over all threads.
    pub ops_per_sec: f64,
}

/// The `q`-quantile (0..=1) of sorted samples, by the nearest-rank method.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Statistics of latency samples taken over `wall` time.
pub fn stats(mut samples: Vec<u64>, wall: Duration) -> Stats {
    samples.sort_unstable();
    let ops = samples.len();
    let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
    Stats {
        ops,
        min_ns: samples.first().copied().unwrap_or(0),
        median_ns: quantile(&samples, 0.5),
        p99_ns: quantile(&samples, 0.99),
        mean_ns: if ops == 0 {
            0
        } else {
            (sum / ops as u128) as u64
        },
        ops_per_sec: if wall.is_zero() {
            0.0
        } else {
            ops as f64 / wall.as_secs_f64()
        },
    }
}

/// A duration in ns, printed with a unit that keeps it short.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns}ns"),
        10_000..=999_999 => format!("{:.1}us", ns as f64 / 1e3),
        1_000_000..=9_999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// Where time stamps come from. Small guests often run on the jiffies
/// clocksource (no calibrated TSC, no HPET), where `CLOCK_MONOTONIC` moves
/// in 4 ms steps: far too coarse for a 20 us ioctl. There the x86 time
/// stamp counter, calibrated against `CLOCK_MONOTONIC`, is used instead.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    /// `CLOCK_MONOTONIC` (std's `Instant`).
    Monotonic { start: Instant },
    /// The TSC, at `ns_per_tick`; `given` if the rate came from the user.
    Tsc {
        base: u64,
        ns_per_tick: f64,
        given: bool,
    },
}

/// The resolution of `CLOCK_MONOTONIC` in ns.
fn monotonic_resolution_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64 (the guest kernels we
    // run on do not set CR4.TSD).
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl Clock {
    /// `CLOCK_MONOTONIC` when it resolves 1 us or better, else the TSC
    /// calibrated over about `calibrate` of monotonic time, measured
    /// between two clock ticks so that the coarse steps do not matter.
    pub fn choose(calibrate: Duration) -> Self {
        let res = monotonic_resolution_ns();
        if res > 0 && res <= 1_000 {
            return Clock::Monotonic {
                start: Instant::now(),
            };
        }
        let edge = || {
            let t0 = Instant::now();
            loop {
                let (tsc, t) = (rdtsc(), Instant::now());
                if t != t0 {
                    return (tsc, t);
                }
            }
        };
        let (tsc0, t0) = edge();
        while t0.elapsed() < calibrate {
            std::hint::spin_loop();
        }
        let (tsc1, t1) = edge();
        let ticks = tsc1.saturating_sub(tsc0).max(1);
        Clock::Tsc {
            base: tsc0,
            ns_per_tick: (t1 - t0).as_nanos() as f64 / ticks as f64,
            given: false,
        }
    }

    /// The TSC at a known rate.
    pub fn tsc_at(mhz: f64) -> Self {
        Clock::Tsc {
            base: rdtsc(),
            ns_per_tick: 1e3 / mhz,
            given: true,
        }
    }

    /// Nanoseconds since the clock was chosen.
    pub fn now_ns(&self) -> u64 {
        match *self {
            Clock::Monotonic { start } => start.elapsed().as_nanos() as u64,
            Clock::Tsc {
                base, ns_per_tick, ..
            } => (rdtsc().saturating_sub(base) as f64 * ns_per_tick) as u64,
        }
    }

    /// How the clock is described in the output.
    pub fn describe(&self) -> String {
        match self {
            Clock::Monotonic { .. } => "CLOCK_MONOTONIC".into(),
            Clock::Tsc {
                ns_per_tick,
                given: true,
                ..
            } => format!("TSC at {:.0} MHz (given)", 1e3 / ns_per_tick),
            Clock::Tsc { ns_per_tick, .. } => format!(
                "TSC at {:.0} MHz, calibrated against CLOCK_MONOTONIC, which resolves only {} \
                 (pass --tsc-mhz if the guest clock drifts)",
                1e3 / ns_per_tick,
                human_ns(monotonic_resolution_ns())
            ),
        }
    }
}

/// One operation, checked; the DMA one is a 4 KiB write plus read back.
fn one_op(dev: &Device, op: BenchOp, data: &[u8], back: &mut [u8]) -> Result<(), Failure> {
    match op {
        BenchOp::Factorial => {
            let v = dev.factorial(12)?;
            if v != factorial_u32(12) {
                return Err(Failure::Check(format!("{}: 12! gave {v:#x}", dev.path())));
            }
        }
        BenchOp::Raise => {
            let seen = dev.raise(0x2)?;
            if seen != 0x2 {
                return Err(Failure::Check(format!(
                    "{}: raised 0x2, the handler saw {seen:#x}",
                    dev.path()
                )));
            }
        }
        BenchOp::Dma => {
            dev.dma_to_device(0, data)?;
            back.fill(0);
            dev.dma_from_device(0, back)?;
            if back != data {
                return Err(Failure::Check(format!(
                    "{}: a 4 KiB DMA round trip read back other data",
                    dev.path()
                )));
            }
        }
        BenchOp::DmaRw => {
            let wrote = dev.write_at(data, 0)?;
            back.fill(0);
            let read = dev.read_at(back, 0)?;
            if wrote != data.len() || read != back.len() || back != data {
                return Err(Failure::Check(format!(
                    "{}: a 4 KiB pwrite wrote {wrote} bytes, the pread read {read}, \
                     or other data",
                    dev.path()
                )));
            }
        }
    }
    Ok(())
}

/// One thread's first start, last end (ns) and latencies.
type ThreadRun = Result<(u64, u64, Vec<u64>), Failure>;

/// Runs `iters` operations on each of `threads` threads, each with its own
/// fd, all starting together. The wall time runs from the first
/// operation's start to the last one's end, as the threads saw them.
fn measure(
    clock: &Clock,
    path: &str,
    op: BenchOp,
    threads: u32,
    iters: u32,
) -> Result<Stats, Failure> {
    let devs = (0..threads)
        .map(|_| Device::open(path))
        .collect::<Result<Vec<_>, _>>()?;
    let barrier = Barrier::new(threads as usize);
    let results: Vec<ThreadRun> = thread::scope(|s| {
        let handles: Vec<_> = devs
            .iter()
            .map(|dev| {
                let barrier = &barrier;
                s.spawn(move || {
                    let data = vec![0xa5u8; EDU_BUF_SIZE as usize];
                    let mut back = vec![0u8; EDU_BUF_SIZE as usize];
                    let mut samples = Vec::with_capacity(iters as usize);
                    barrier.wait();
                    let first = clock.now_ns();
                    let mut last = first;
                    for _ in 0..iters {
                        let t = clock.now_ns();
                        one_op(dev, op, &data, &mut back)?;
                        last = clock.now_ns();
                        samples.push(last.saturating_sub(t));
                    }
                    Ok((first, last, samples))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    });
    let (mut first, mut last, mut all) = (u64::MAX, 0, Vec::new());
    for r in results {
        let (f, l, samples) = r?;
        first = first.min(f);
        last = last.max(l);
        all.extend(samples);
    }
    Ok(stats(all, Duration::from_nanos(last.saturating_sub(first))))
}

/// One row of the results: an operation at a thread count.
#[derive(Serialize)]
struct Row {
    op: &'static str,
    threads: u32,
    #[serde(flatten)]
    stats: Stats,
}

#[derive(Serialize)]
struct BenchDoc<'a> {
    device: &'a str,
    irq: u32,
    irq_mode: &'static str,
    timer: String,
    results: Vec<Row>,
}

pub fn run(dev: &Device, args: &BenchArgs, json: bool) -> Result<Outcome, Failure> {
    let info = dev.info()?;
    // --tsc-mhz was checked by the command line's parser.
    let clock = match args.tsc_mhz {
        Some(mhz) => Clock::tsc_at(mhz),
        None => Clock::choose(Duration::from_millis(200)),
    };
    let mut thread_counts = vec![1];
    if args.threads > 1 {
        thread_counts.push(args.threads);
    }
    if !json {
        println!(
            "{}: irq {} ({}); timer: {}",
            dev.path(),
            info.irq,
            irq_mode_name(info.irq_mode),
            clock.describe()
        );
        println!(
            "{:<18} {:>7} {:>7} {:>9} {:>9} {:>9} {:>10}",
            "op", "threads", "ops", "min", "median", "p99", "ops/s"
        );
    }
    let mut rows = Vec::new();
    for &op in &args.ops {
        let iters = if matches!(op, BenchOp::Dma | BenchOp::DmaRw) {
            args.dma_iters
        } else {
            args.iters
        };
        for &threads in &thread_counts {
            let s = measure(&clock, dev.path(), op, threads, iters)?;
            if !json {
                println!(
                    "{:<18} {:>7} {:>7} {:>9} {:>9} {:>9} {:>10.1}",
                    op.name(),
                    threads,
                    s.ops,
                    human_ns(s.min_ns),
                    human_ns(s.median_ns),
                    human_ns(s.p99_ns),
                    s.ops_per_sec
                );
            }
            rows.push(Row {
                op: op.name(),
                threads,
                stats: s,
            });
        }
    }
    Ok(Outcome::ok(fields(&BenchDoc {
        device: dev.path(),
        irq: info.irq,
        irq_mode: irq_mode_name(info.irq_mode),
        timer: clock.describe(),
        results: rows,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&v, 0.0), 1);
        assert_eq!(quantile(&[7], 0.99), 7);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[1, 2, 3], 0.5), 2);
    }

    #[test]
    fn stats_of_unsorted_samples() {
        let s = stats(vec![30, 10, 20, 40], Duration::from_secs(2));
        assert_eq!(
            (s.ops, s.min_ns, s.median_ns, s.p99_ns, s.mean_ns),
            (4, 10, 20, 40, 25)
        );
        assert_eq!(s.ops_per_sec, 2.0);
        let empty = stats(vec![], Duration::ZERO);
        assert_eq!((empty.ops, empty.min_ns, empty.ops_per_sec), (0, 0, 0.0));
    }

    #[test]
    fn clocks_advance_and_agree() {
        // Force the TSC path and compare it with CLOCK_MONOTONIC.
        let (tsc0, t0) = (rdtsc(), Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let ns_per_tick = t0.elapsed().as_nanos() as f64 / (rdtsc() - tsc0) as f64;
        let tsc = Clock::Tsc {
            base: rdtsc(),
            ns_per_tick,
            given: false,
        };
        let mono = Clock::Monotonic {
            start: Instant::now(),
        };
        std::thread::sleep(Duration::from_millis(50));
        let (a, b) = (tsc.now_ns() as f64, mono.now_ns() as f64);
        assert!(b >= 50e6, "{b}");
        assert!((a / b - 1.0).abs() < 0.2, "tsc {a} ns vs monotonic {b} ns");
        assert!(tsc.describe().starts_with("TSC at "));
        let given = Clock::tsc_at(1000.0);
        assert_eq!(given.describe(), "TSC at 1000 MHz (given)");
        let Clock::Tsc { ns_per_tick, .. } = given else {
            panic!()
        };
        assert_eq!(ns_per_tick, 1.0);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(950), "950ns");
        assert_eq!(human_ns(12_345), "12.3us");
        assert_eq!(human_ns(100_200_000), "100.2ms");
        assert_eq!(human_ns(4_000_000), "4.0ms");
        assert_eq!(human_ns(12_000_000_000), "12.00s");
    }
}
