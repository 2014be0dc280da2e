//! Command line and the validated VM configuration it produces.
//!
//! `Cli` is what clap parses; `Config` is what the rest of the VMM consumes.
//! Everything a user can get wrong is checked here, so the boot code only
//! sees values in range.

use std::path::PathBuf;

use crate::prefault::Prefault;
use clap::Parser;
use edu_trace::recorder::Caps;

/// Smallest guest RAM we accept: the boot structures live in the first MiB
/// and a kernel is loaded at 1 MiB or above.
pub const MIN_MEMORY_MIB: u64 = 8;
/// Largest guest RAM we accept (the boot page tables map 4 GiB and RAM above
/// the PCI hole is placed at 4 GiB; 64 GiB keeps us far from any limit).
pub const MAX_MEMORY_MIB: u64 = 64 * 1024;
/// The MP table must fit in the last KiB of base memory, which bounds CPUs.
pub const MAX_VCPUS: u8 = 16;
/// Edu devices each take a PCI slot after the host bridge at 00:00.0.
pub const MAX_EDU_DEVICES: u8 = 8;

/// Errors in the command line values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A memory size could not be parsed.
    #[error("invalid memory size {0:?}: use a number of MiB, optionally with a K, M or G suffix")]
    MemorySyntax(String),
    /// The memory size is outside what we can boot.
    #[error("memory size {0} MiB is too small: at least {MIN_MEMORY_MIB} MiB is needed")]
    MemoryTooSmall(u64),
    /// The memory size is larger than we support.
    #[error("memory size {0} MiB is too large: at most {MAX_MEMORY_MIB} MiB is supported")]
    MemoryTooLarge(u64),
    /// The vCPU count is outside 1..=MAX_VCPUS.
    #[error("--vcpus {0} is out of range: use 1 to {MAX_VCPUS}")]
    Vcpus(u8),
    /// Too many edu devices.
    #[error("--edu {0} is out of range: use 0 to {MAX_EDU_DEVICES}")]
    EduCount(u8),
    /// The DMA mask could not be parsed.
    #[error("invalid --edu-dma-mask {0:?}: use a number such as 0x0fffffff")]
    DmaMask(String),
    /// The serial destination could not be parsed.
    #[error("invalid --serial {0:?}: use `stdout` or `file:PATH`")]
    Serial(String),
    /// A trace cap could not be parsed.
    #[error("invalid {0} {1:?}: use a number greater than 0 (bytes may have a K, M or G suffix)")]
    TraceCap(&'static str, String),
    /// The kernel file is missing or unreadable.
    #[error("kernel {path}: {source}")]
    Kernel {
        /// The path given on the command line.
        path: PathBuf,
        /// Why it could not be opened.
        source: std::io::Error,
    },
    /// The initramfs file is missing or unreadable.
    #[error("initramfs {path}: {source}")]
    Initramfs {
        /// The path given on the command line.
        path: PathBuf,
        /// Why it could not be opened.
        source: std::io::Error,
    },
}

/// Where the guest's serial console goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialOut {
    /// The VMM's standard output.
    Stdout,
    /// A file, created or truncated.
    File(PathBuf),
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings (guest errors are warnings).
    Warn,
    /// Boot steps and the exit reason.
    Info,
    /// Device configuration details.
    Debug,
    /// Everything, including every exit.
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// edu-vmm: boot a Linux kernel under KVM with emulated edu PCI devices.
///
/// The guest's reboot (for example `reboot -f` with `reboot=k`, through the
/// keyboard controller's reset line) ends the VMM with status 0. A triple
/// fault or a KVM error ends it with status 1 and names the reason.
#[derive(Debug, Parser)]
#[command(name = "edu-vmm", version)]
pub struct Cli {
    /// Kernel to boot: a bzImage (64-bit boot protocol) or an ELF vmlinux
    /// (PVH entry when the image has one, 64-bit entry otherwise).
    #[arg(long, value_name = "PATH")]
    pub kernel: PathBuf,

    /// Initial ramdisk (cpio archive) to place in guest memory.
    #[arg(long, value_name = "PATH")]
    pub initramfs: Option<PathBuf>,

    /// Kernel command line.
    #[arg(long, default_value = "console=ttyS0 reboot=k panic=-1")]
    pub cmdline: String,

    /// Guest RAM in MiB (suffixes K, M, G accepted, e.g. 1G).
    #[arg(long, default_value = "256", value_name = "SIZE")]
    pub memory: String,

    /// Number of virtual CPUs.
    #[arg(long, default_value_t = 1)]
    pub vcpus: u8,

    /// Number of edu PCI devices (each in its own slot, 00:01.0 upwards).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub edu: u8,

    /// Delay in milliseconds before an edu DMA transfer completes.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub edu_dma_delay_ms: u64,

    /// Mask applied to edu DMA addresses (QEMU's default is 28 bits).
    #[arg(long, default_value = "0x0fffffff", value_name = "MASK")]
    pub edu_dma_mask: String,

    /// Serial console destination: `stdout` or `file:PATH`.
    #[arg(long, default_value = "stdout", value_name = "DEST")]
    pub serial: String,

    /// Log level for the VMM's own messages (on standard error).
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log every device access (port and MMIO) the guest makes.
    #[arg(long)]
    pub trace_devices: bool,

    /// Do not install the seccomp filters (for debugging only).
    #[arg(long)]
    pub no_seccomp: bool,

    /// Guest RAM mapped in KVM before the guest runs, saving the exit of
    /// its first touch of each page: none, boot (the kernel's image, the
    /// initramfs, low memory) or all.
    #[arg(long, value_enum, default_value_t = Prefault::Boot)]
    pub prefault: Prefault,

    /// After this many seconds without a port or MMIO exit, log where each
    /// vCPU is (0: never).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub watchdog_secs: u64,

    /// Record every exit the VMM handles and what the devices do (decoded,
    /// one JSON event per line, CLOCK_MONOTONIC) into FILE; see
    /// docs/trace.md.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Stop recording after this many events (the rest are counted).
    #[arg(long, default_value = "1000000", value_name = "N")]
    pub trace_max_events: String,

    /// Stop writing the trace at this size (suffixes K, M, G).
    #[arg(long, default_value = "256M", value_name = "SIZE")]
    pub trace_max_bytes: String,

    /// Also write the exit statistics printed at the end as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,

    /// Test hook, not for users: a guest write to this port panics the
    /// vCPU thread that handles it (the tests check that a panic in any
    /// thread ends the VMM at once).
    #[arg(long, hide = true, value_name = "PORT", value_parser = parse_port)]
    pub test_panic_on_port: Option<u16>,
}

/// A validated VM configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Kernel image path (checked readable).
    pub kernel: PathBuf,
    /// Initramfs path (checked readable).
    pub initramfs: Option<PathBuf>,
    /// Kernel command line.
    pub cmdline: String,
    /// Guest RAM in bytes.
    pub memory_bytes: u64,
    /// vCPU count.
    pub vcpus: u8,
    /// Number of edu devices.
    pub edu_devices: u8,
    /// Edu DMA completion delay.
    pub edu_dma_delay_ms: u64,
    /// Edu DMA address mask.
    pub edu_dma_mask: u64,
    /// Serial console destination.
    pub serial: SerialOut,
    /// Log every device access.
    pub trace_devices: bool,
    /// Install seccomp filters.
    pub seccomp: bool,
    /// Seconds without exits before the vCPUs report their position (0: off).
    pub watchdog_secs: u64,
    /// Guest RAM mapped in KVM before the guest runs.
    pub prefault: Prefault,
    /// Where the trace goes, if anywhere.
    pub trace: Option<PathBuf>,
    /// Its limits.
    pub trace_caps: Caps,
    /// Where the exit statistics go as JSON, if anywhere.
    pub stats_json: Option<PathBuf>,
    /// Test hook: a guest write to this port panics its vCPU thread.
    pub test_panic_on_port: Option<u16>,
}

/// Parses "256", "256M", "1G", "65536K" into MiB.
pub fn parse_memory_mib(s: &str) -> Result<u64, Error> {
    let t = s.trim();
    let err = || Error::MemorySyntax(s.to_string());
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits.parse().map_err(|_| err())?;
    let mib = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" | "M" => n,
        "G" => n.checked_mul(1024).ok_or_else(err)?,
        "K" => {
            if n % 1024 != 0 {
                return Err(err());
            }
            n / 1024
        }
        _ => return Err(err()),
    };
    if mib < MIN_MEMORY_MIB {
        return Err(Error::MemoryTooSmall(mib));
    }
    if mib > MAX_MEMORY_MIB {
        return Err(Error::MemoryTooLarge(mib));
    }
    Ok(mib)
}

/// Parses a number in decimal or with a 0x prefix.
pub fn parse_u64(s: &str) -> Option<u64> {
    let t = s.trim().replace('_', "");
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// Parses a byte count: decimal or 0x hex, optionally with K, M or G
/// (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    parse_u64(num)?.checked_mul(1 << shift)
}

/// Parses a port number in decimal or with a 0x prefix.
fn parse_port(s: &str) -> Result<u16, String> {
    parse_u64(s)
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| format!("{s:?} is not a port number (0 to 0xffff)"))
}

/// Parses `stdout` or `file:PATH`.
pub fn parse_serial(s: &str) -> Result<SerialOut, Error> {
    if s == "stdout" {
        return Ok(SerialOut::Stdout);
    }
    match s.strip_prefix("file:") {
        Some(p) if !p.is_empty() => Ok(SerialOut::File(PathBuf::from(p))),
        _ => Err(Error::Serial(s.to_string())),
    }
}

impl TryFrom<&Cli> for Config {
    type Error = Error;

    fn try_from(cli: &Cli) -> Result<Self, Error> {
        let memory_bytes = parse_memory_mib(&cli.memory)? << 20;
        if cli.vcpus == 0 || cli.vcpus > MAX_VCPUS {
            return Err(Error::Vcpus(cli.vcpus));
        }
        if cli.edu > MAX_EDU_DEVICES {
            return Err(Error::EduCount(cli.edu));
        }
        let edu_dma_mask =
            parse_u64(&cli.edu_dma_mask).ok_or_else(|| Error::DmaMask(cli.edu_dma_mask.clone()))?;
        let serial = parse_serial(&cli.serial)?;
        std::fs::File::open(&cli.kernel).map_err(|source| Error::Kernel {
            path: cli.kernel.clone(),
            source,
        })?;
        if let Some(p) = &cli.initramfs {
            std::fs::File::open(p).map_err(|source| Error::Initramfs {
                path: p.clone(),
                source,
            })?;
        }
        let cap = |flag, v: &str, parse: fn(&str) -> Option<u64>| {
            parse(v)
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::TraceCap(flag, v.to_string()))
        };
        let trace_caps = Caps {
            max_events: cap("--trace-max-events", &cli.trace_max_events, parse_u64)?,
            max_bytes: cap("--trace-max-bytes", &cli.trace_max_bytes, parse_size)?,
        };
        Ok(Config {
            kernel: cli.kernel.clone(),
            initramfs: cli.initramfs.clone(),
            cmdline: cli.cmdline.clone(),
            memory_bytes,
            vcpus: cli.vcpus,
            edu_devices: cli.edu,
            edu_dma_delay_ms: cli.edu_dma_delay_ms,
            edu_dma_mask,
            serial,
            trace_devices: cli.trace_devices,
            seccomp: !cli.no_seccomp,
            watchdog_secs: cli.watchdog_secs,
            prefault: cli.prefault,
            trace: cli.trace.clone(),
            trace_caps,
            stats_json: cli.stats_json.clone(),
            test_panic_on_port: cli.test_panic_on_port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["edu-vmm"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).expect("valid command line")
    }

    #[test]
    fn memory_sizes_parse_with_suffixes() {
        assert_eq!(parse_memory_mib("256").unwrap(), 256);
        assert_eq!(parse_memory_mib("256M").unwrap(), 256);
        assert_eq!(parse_memory_mib("1G").unwrap(), 1024);
        assert_eq!(parse_memory_mib("2GiB").unwrap(), 2048);
        assert_eq!(parse_memory_mib("16384K").unwrap(), 16);
        assert!(matches!(
            parse_memory_mib("1000K"),
            Err(Error::MemorySyntax(_))
        ));
        assert!(matches!(
            parse_memory_mib("lots"),
            Err(Error::MemorySyntax(_))
        ));
        assert!(matches!(
            parse_memory_mib("4"),
            Err(Error::MemoryTooSmall(4))
        ));
        assert!(matches!(
            parse_memory_mib("1024G"),
            Err(Error::MemoryTooLarge(_))
        ));
    }

    #[test]
    fn serial_destinations() {
        assert_eq!(parse_serial("stdout").unwrap(), SerialOut::Stdout);
        assert_eq!(
            parse_serial("file:/x/y").unwrap(),
            SerialOut::File(PathBuf::from("/x/y"))
        );
        assert!(parse_serial("file:").is_err());
        assert!(parse_serial("tty").is_err());
    }

    #[test]
    fn numbers_in_hex_and_decimal() {
        assert_eq!(parse_u64("0x0fffffff"), Some(0x0fff_ffff));
        assert_eq!(parse_u64("0xffff_ffff"), Some(0xffff_ffff));
        assert_eq!(parse_u64("42"), Some(42));
        assert_eq!(parse_u64("0xg"), None);
    }

    #[test]
    fn missing_kernel_is_named() {
        let c = cli(&["--kernel", "/nonexistent/bzImage"]);
        let e = Config::try_from(&c).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/bzImage"), "{e}");
    }

    #[test]
    fn ranges_are_checked() {
        let exe = std::env::current_exe().unwrap();
        let k = exe.to_str().unwrap();
        assert!(matches!(
            Config::try_from(&cli(&["--kernel", k, "--vcpus", "0"])),
            Err(Error::Vcpus(0))
        ));
        assert!(matches!(
            Config::try_from(&cli(&["--kernel", k, "--edu", "9"])),
            Err(Error::EduCount(9))
        ));
        assert!(matches!(
            Config::try_from(&cli(&["--kernel", k, "--edu-dma-mask", "x"])),
            Err(Error::DmaMask(_))
        ));
        let ok = Config::try_from(&cli(&["--kernel", k, "--memory", "64", "--edu", "2"])).unwrap();
        assert_eq!(ok.memory_bytes, 64 << 20);
        assert_eq!(ok.edu_devices, 2);
        assert_eq!(ok.edu_dma_mask, 0x0fff_ffff);
        assert!(ok.seccomp);
        assert_eq!(ok.trace, None);
        assert_eq!(ok.trace_caps, Caps::default());
    }

    #[test]
    fn trace_caps_parse_and_name_the_flag() {
        let exe = std::env::current_exe().unwrap();
        let k = exe.to_str().unwrap();
        let c = Config::try_from(&cli(&[
            "--kernel",
            k,
            "--trace",
            "/x/t.jsonl",
            "--trace-max-events",
            "5000",
            "--trace-max-bytes",
            "64K",
        ]))
        .unwrap();
        assert_eq!(c.trace, Some(PathBuf::from("/x/t.jsonl")));
        assert_eq!(
            c.trace_caps,
            Caps {
                max_events: 5000,
                max_bytes: 65536
            }
        );
        let e = Config::try_from(&cli(&["--kernel", k, "--trace-max-bytes", "lots"])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid --trace-max-bytes \"lots\""),
            "{e}"
        );
        let e = Config::try_from(&cli(&["--kernel", k, "--trace-max-events", "0"])).unwrap_err();
        assert!(matches!(e, Error::TraceCap("--trace-max-events", _)), "{e}");
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("0x100"), Some(256));
        assert_eq!(parse_size("12Q"), None);
    }
}
