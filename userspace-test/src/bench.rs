//! `bench`: latency (min/median/p99) and throughput of factorial,
//! raise-irq and 4 KiB DMA round trips, with one thread and with N. A
//! measurement, not a test: it fails only if the device does.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use edu_abi::EDU_BUF_SIZE;

use crate::cli::{BenchArgs, BenchOp};
use crate::commands::{irq_mode_name, Failure};
use crate::device::{factorial_u32, Device};
use crate::json::Json;

/// Latency statistics of one run, in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
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
        10_000..=9_999_999 => format!("{:.1}us", ns as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// One operation, checked; the DMA one is a 4 KiB write plus read back.
fn one_op(dev: &Device, op: BenchOp, data: &[u8], back: &mut [u8]) -> Result<(), Failure> {
    match op {
        BenchOp::Factorial => {
            let v = dev.factorial(12)?;
            if v != factorial_u32(12) {
                return Err(Failure::Other(format!("{}: 12! gave {v:#x}", dev.path())));
            }
        }
        BenchOp::Raise => {
            dev.raise(0x2)?;
        }
        BenchOp::Dma => {
            dev.dma_to_device(0, data)?;
            dev.dma_from_device(0, back)?;
        }
    }
    Ok(())
}

/// Runs `iters` operations on each of `threads` threads, each with its own
/// fd, all starting together.
fn measure(path: &str, op: BenchOp, threads: u32, iters: u32) -> Result<Stats, Failure> {
    let devs = (0..threads)
        .map(|_| Device::open(path))
        .collect::<Result<Vec<_>, _>>()?;
    let barrier = Barrier::new(threads as usize + 1);
    let (results, wall) = thread::scope(|s| {
        let handles: Vec<_> = devs
            .iter()
            .map(|dev| {
                let barrier = &barrier;
                s.spawn(move || -> Result<Vec<u64>, Failure> {
                    let data = vec![0xa5u8; EDU_BUF_SIZE as usize];
                    let mut back = vec![0u8; EDU_BUF_SIZE as usize];
                    let mut samples = Vec::with_capacity(iters as usize);
                    barrier.wait();
                    for _ in 0..iters {
                        let t = Instant::now();
                        one_op(dev, op, &data, &mut back)?;
                        samples.push(t.elapsed().as_nanos() as u64);
                    }
                    Ok(samples)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect();
        (results, start.elapsed())
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok(stats(all, wall))
}

pub fn run(dev: &Device, args: &BenchArgs, json: bool) -> Result<(), Failure> {
    let info = dev.info()?;
    let mut thread_counts = vec![1];
    if args.threads > 1 {
        thread_counts.push(args.threads);
    }
    if !json {
        println!(
            "{}: irq {} ({})",
            dev.path(),
            info.irq,
            irq_mode_name(info.irq_mode)
        );
        println!(
            "{:<18} {:>7} {:>7} {:>9} {:>9} {:>9} {:>10}",
            "op", "threads", "ops", "min", "median", "p99", "ops/s"
        );
    }
    let mut rows = Vec::new();
    for &op in &args.ops {
        let iters = if op == BenchOp::Dma {
            args.dma_iters
        } else {
            args.iters
        };
        for &threads in &thread_counts {
            let s = measure(dev.path(), op, threads, iters)?;
            if json {
                rows.push(
                    Json::obj()
                        .with("op", op.name())
                        .with("threads", threads)
                        .with("ops", s.ops)
                        .with("min_ns", s.min_ns)
                        .with("median_ns", s.median_ns)
                        .with("p99_ns", s.p99_ns)
                        .with("mean_ns", s.mean_ns)
                        .with("ops_per_sec", s.ops_per_sec),
                );
            } else {
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
        }
    }
    if json {
        let j = Json::obj()
            .with("device", dev.path())
            .with("irq", info.irq)
            .with("irq_mode", irq_mode_name(info.irq_mode))
            .with("results", rows);
        println!("{j}");
    }
    Ok(())
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
    fn human_units() {
        assert_eq!(human_ns(950), "950ns");
        assert_eq!(human_ns(12_345), "12.3us");
        assert_eq!(human_ns(100_200_000), "100.2ms");
        assert_eq!(human_ns(12_000_000_000), "12.00s");
    }
}
