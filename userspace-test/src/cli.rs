//! Command line: `edu-test [--device PATH] [--json] [COMMAND]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Drives the edu driver through its char device: the lab's test flow,
/// one command per ioctl, an in-guest test suite and a benchmark.
#[derive(Parser, Debug, PartialEq)]
#[command(name = "edu-test", version)]
pub struct Cli {
    /// Device node [default: /dev/edu if it exists, else /dev/edu0]
    #[arg(long, global = true, value_name = "PATH")]
    pub device: Option<String>,

    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do [default: lab]
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug, PartialEq)]
pub enum Command {
    /// The lab's flow: PRINT_EDUINFO, SEND_INTERRUPT, FACTORIAL, DMA_WRITE,
    /// DMA_READ (their output goes to the kernel log)
    Lab,
    /// Print the device's EDU_IOC_INFO
    Info,
    /// Compute N! mod 2^32 on the device
    Factorial {
        #[arg(value_parser = parse_u32)]
        n: u32,
    },
    /// Write V to the liveness register and print what it reads back
    Liveness {
        #[arg(value_parser = parse_u32)]
        value: u32,
    },
    /// Raise interrupt status bits V and print the bits the handler saw
    Raise {
        #[arg(value_parser = parse_u32)]
        value: u32,
    },
    /// DMA a file (or stdin) into the device buffer
    DmaWrite {
        #[command(flatten)]
        range: DmaRange,
        /// Input file; `-` is stdin
        #[arg(default_value = "-")]
        file: PathBuf,
    },
    /// DMA the device buffer into a file (or stdout)
    DmaRead {
        #[command(flatten)]
        range: DmaRange,
        /// Output file; `-` is stdout
        #[arg(default_value = "-")]
        file: PathBuf,
    },
    /// Run the in-guest test suite of the whole ABI
    Selftest(SelftestArgs),
    /// Measure latency and throughput of factorial, raise-irq and 4 KiB DMA
    Bench(BenchArgs),
    /// Internal: the driver hardening tests of issue 11
    #[command(hide = true, subcommand)]
    Hardening(crate::hardening::Hardening),
    /// Internal: one process of the selftest's multi-process case
    #[command(hide = true)]
    Worker {
        /// Number of factorials to compute and check
        #[arg(long, default_value_t = 100, value_parser = u32_in(1, u32::MAX))]
        iters: u32,
        /// Seed that picks the sequence of n
        #[arg(long, default_value_t = 0, value_parser = parse_u32)]
        seed: u32,
    },
    /// Internal: one selftest case, run by `selftest` in a process of its own
    #[command(hide = true)]
    SelftestCase {
        /// The case's name
        name: String,
        #[command(flatten)]
        opts: CaseOpts,
    },
}

impl Command {
    /// The subcommand's name as typed, which JSON documents carry.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Lab => "lab",
            Command::Info => "info",
            Command::Factorial { .. } => "factorial",
            Command::Liveness { .. } => "liveness",
            Command::Raise { .. } => "raise",
            Command::DmaWrite { .. } => "dma-write",
            Command::DmaRead { .. } => "dma-read",
            Command::Selftest(_) => "selftest",
            Command::Bench(_) => "bench",
            Command::Worker { .. } => "worker",
            Command::SelftestCase { .. } => "selftest-case",
            Command::Hardening(_) => "hardening",
        }
    }
}

/// Where in the 4 KiB device buffer a DMA command works.
#[derive(clap::Args, Debug, PartialEq)]
pub struct DmaRange {
    /// Offset into the device buffer
    #[arg(long, default_value = "0", value_parser = parse_u32)]
    pub offset: u32,
    /// Bytes to transfer [default: dma-write: the input's size; dma-read:
    /// up to the end of the buffer]
    #[arg(long, value_parser = parse_u32)]
    pub length: Option<u32>,
}

#[derive(clap::Args, Debug, PartialEq)]
pub struct SelftestArgs {
    /// Run only these cases (repeatable; `prefix*` matches a group)
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// List the cases and exit
    #[arg(long)]
    pub list: bool,
    /// Seconds the whole suite may take; a case gets at most what is left,
    /// and cases that find nothing left fail unrun
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = u32_in(1, 86_400))]
    pub budget: u32,
    #[command(flatten)]
    pub opts: CaseOpts,
}

/// What the cases themselves take; the suite passes them on to each case.
#[derive(clap::Args, Debug, PartialEq, Clone)]
pub struct CaseOpts {
    /// Threads in the concurrency cases
    #[arg(long, default_value_t = 8, value_parser = u32_in(1, 256))]
    pub threads: u32,
    /// Processes in the multi-process case
    #[arg(long, default_value_t = 4, value_parser = u32_in(1, 64))]
    pub procs: u32,
    /// Factorials per thread or process in the concurrency cases
    #[arg(long, default_value_t = 50, value_parser = u32_in(1, 100_000))]
    pub iters: u32,
    /// Skip the cases that unbind the device or unload the module
    #[arg(long)]
    pub no_unbind: bool,
}

#[derive(clap::Args, Debug, PartialEq)]
pub struct BenchArgs {
    /// Threads for the multi-threaded runs (each with its own fd)
    #[arg(long, default_value_t = 4, value_parser = u32_in(1, 256))]
    pub threads: u32,
    /// Operations per thread for factorial and raise-irq
    #[arg(long, default_value_t = 1000, value_parser = u32_in(1, u32::MAX))]
    pub iters: u32,
    /// Round trips per thread for 4 KiB DMA (each is two DMAs)
    #[arg(long, default_value_t = 10, value_parser = u32_in(1, u32::MAX))]
    pub dma_iters: u32,
    /// TSC frequency to time with, instead of calibrating the TSC against
    /// the guest's clock (under QEMU TCG the guest TSC runs at the host's
    /// rate, and a guest on the jiffies clocksource calibrates it badly)
    #[arg(long, value_name = "MHZ", value_parser = parse_mhz)]
    pub tsc_mhz: Option<f64>,
    /// Operations to measure (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "factorial,raise,dma")]
    pub ops: Vec<BenchOp>,
}

/// An operation the benchmark can measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchOp {
    /// EDU_IOC_FACTORIAL of 12
    Factorial,
    /// EDU_IOC_RAISE_IRQ of 0x2
    Raise,
    /// 4 KiB EDU_IOC_DMA_TO_DEVICE + EDU_IOC_DMA_FROM_DEVICE
    Dma,
    /// 4 KiB pwrite + pread of the node (the driver DMAs each)
    DmaRw,
}

impl BenchOp {
    pub fn name(self) -> &'static str {
        match self {
            BenchOp::Factorial => "factorial",
            BenchOp::Raise => "raise-irq",
            BenchOp::Dma => "dma-4k-roundtrip",
            BenchOp::DmaRw => "dma-4k-pwrite-pread",
        }
    }
}

/// Parses a u32 written in decimal, `0x` hex, `0o` octal or `0b` binary;
/// `_` separators are allowed.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    let t = s.trim().replace('_', "");
    let (digits, radix) = match t.get(..2).map(|p| p.to_ascii_lowercase()) {
        Some(p) if p == "0x" => (&t[2..], 16),
        Some(p) if p == "0o" => (&t[2..], 8),
        Some(p) if p == "0b" => (&t[2..], 2),
        _ => (&t[..], 10),
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(format!("not a number: {s:?}"));
    }
    u32::from_str_radix(digits, radix).map_err(|e| format!("{s:?}: {e} (expected 0..=0xffffffff)"))
}

/// A parser for a u32 flag that must lie in `lo..=hi`, written as
/// [`parse_u32`] reads numbers (so every integer flag takes the same forms).
pub fn u32_in(lo: u32, hi: u32) -> impl Fn(&str) -> Result<u32, String> + Clone + Send + Sync {
    move |s| {
        let v = parse_u32(s)?;
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is not in {lo}..={hi}"))
        }
    }
}

/// Parses a frequency in MHz: a positive, finite decimal number (`_`
/// separators allowed, as in every other number).
pub fn parse_mhz(s: &str) -> Result<f64, String> {
    let t = s.trim().replace('_', "");
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && !t.starts_with('+') => Ok(v),
        Ok(_) => Err(format!(
            "{s:?} is not a frequency (a positive number of MHz)"
        )),
        Err(_) => Err(format!("not a number: {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("edu-test").chain(args.iter().copied()))
    }

    #[test]
    fn numbers_in_several_bases() {
        assert_eq!(parse_u32("12"), Ok(12));
        assert_eq!(parse_u32("0x12345678"), Ok(0x1234_5678));
        assert_eq!(parse_u32("0XFF"), Ok(255));
        assert_eq!(parse_u32("0b101"), Ok(5));
        assert_eq!(parse_u32("0o17"), Ok(15));
        assert_eq!(parse_u32("0xffff_ffff"), Ok(u32::MAX));
        assert!(parse_u32("0x1_0000_0000").is_err());
        assert!(parse_u32("-1").is_err());
        assert!(parse_u32("0x").is_err());
        assert!(parse_u32("").is_err());
        assert!(parse_u32("12a").is_err());
    }

    #[test]
    fn no_arguments_is_the_lab_flow() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.command, None);
        assert_eq!(cli.device, None);
        assert!(!cli.json);
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = parse(&["factorial", "13", "--json", "--device", "/dev/edu1"]).unwrap();
        assert_eq!(cli.command, Some(Command::Factorial { n: 13 }));
        assert_eq!(cli.device.as_deref(), Some("/dev/edu1"));
        assert!(cli.json);
        let cli = parse(&["--device", "/dev/edu", "raise", "0x12345678"]).unwrap();
        assert_eq!(cli.command, Some(Command::Raise { value: 0x1234_5678 }));
    }

    #[test]
    fn dma_ranges_and_files() {
        let cli = parse(&["dma-read", "--offset", "0x100", "--length", "16"]).unwrap();
        let Some(Command::DmaRead { range, file }) = cli.command else {
            panic!()
        };
        assert_eq!(
            range,
            DmaRange {
                offset: 0x100,
                length: Some(16)
            }
        );
        assert_eq!(file, PathBuf::from("-"));
        let cli = parse(&["dma-write", "in.bin"]).unwrap();
        let Some(Command::DmaWrite { range, file }) = cli.command else {
            panic!()
        };
        assert_eq!(
            range,
            DmaRange {
                offset: 0,
                length: None
            }
        );
        assert_eq!(file, PathBuf::from("in.bin"));
    }

    #[test]
    fn selftest_and_bench_options() {
        let cli = parse(&["selftest", "--only", "info", "--only", "dma-*"]).unwrap();
        let Some(Command::Selftest(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.only, ["info", "dma-*"]);
        assert_eq!((a.opts.threads, a.opts.procs, a.list), (8, 4, false));
        assert_eq!(a.budget, 120);
        let cli = parse(&[
            "bench",
            "--threads",
            "2",
            "--iters",
            "10",
            "--ops",
            "raise,dma,dma-rw",
        ])
        .unwrap();
        let Some(Command::Bench(b)) = cli.command else {
            panic!()
        };
        assert_eq!((b.threads, b.iters), (2, 10));
        assert_eq!(b.ops, [BenchOp::Raise, BenchOp::Dma, BenchOp::DmaRw]);
        assert_eq!(b.tsc_mhz, None);
        let cli = parse(&["bench", "--tsc-mhz", "2596.1"]).unwrap();
        let Some(Command::Bench(b)) = cli.command else {
            panic!()
        };
        assert_eq!(b.tsc_mhz, Some(2596.1));
    }

    #[test]
    fn bad_arguments_are_rejected() {
        assert!(parse(&["factorial"]).is_err());
        assert!(parse(&["factorial", "x"]).is_err());
        assert!(parse(&["raise", "0x100000000"]).is_err());
        assert!(parse(&["bench", "--threads", "0"]).is_err());
        assert!(parse(&["bench", "--ops", "nope"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        for mhz in ["0", "-5", "+5", "nan", "inf", "0x10", "", "fast"] {
            assert!(parse(&["bench", "--tsc-mhz", mhz]).is_err(), "{mhz}");
        }
        assert!(parse(&["selftest", "--threads", "257"]).is_err());
        assert!(parse(&["selftest", "--procs", "0x41"]).is_err());
        assert!(parse(&["selftest", "--budget", "0"]).is_err());
    }

    /// Every integer flag reads numbers the same way: decimal, `0x`, `0o`,
    /// `0b`, `_` separators, and refuses the same things.
    #[test]
    fn every_integer_flag_reads_numbers_alike() {
        let flags: [&[&str]; 12] = [
            &["factorial"],
            &["liveness"],
            &["raise"],
            &["dma-read", "--offset"],
            &["dma-read", "--length"],
            &["selftest", "--threads"],
            &["selftest", "--procs"],
            &["selftest", "--iters"],
            &["selftest", "--budget"],
            &["bench", "--threads"],
            &["bench", "--iters"],
            &["bench", "--dma-iters"],
        ];
        for flag in flags {
            for (text, ok) in [
                ("0x10", true),
                ("0o20", true),
                ("0b1_0000", true),
                ("1_6", true),
                ("16", true),
                ("-16", false),
                ("16x", false),
                ("0x", false),
            ] {
                let args: Vec<&str> = flag.iter().copied().chain([text]).collect();
                assert_eq!(parse(&args).is_ok(), ok, "{args:?}");
            }
        }
        let cli = parse(&["selftest", "--threads", "0x10", "--iters", "1_000"]).unwrap();
        let Some(Command::Selftest(a)) = cli.command else {
            panic!()
        };
        assert_eq!((a.opts.threads, a.opts.iters), (16, 1000));
        assert_eq!(parse_mhz("2_596.5"), Ok(2596.5));
    }

    #[test]
    fn command_names_are_the_typed_ones() {
        for (args, name) in [
            (&["info"][..], "info"),
            (&["dma-write", "x"], "dma-write"),
            (&["selftest-case", "info"], "selftest-case"),
            (&["worker"], "worker"),
        ] {
            assert_eq!(parse(args).unwrap().command.unwrap().name(), name);
        }
    }
}
