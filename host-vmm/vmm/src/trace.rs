//! edu-vmm's side of the I/O trace (`--trace FILE`, `docs/trace.md`) and
//! of the exit statistics printed at the end of every run (and written
//! with `--stats-json FILE`): thin hooks into the `edu-trace` crate.
//!
//! - Each vCPU thread owns an [`ExitLog`] (no lock): around every port or
//!   MMIO access, [`crate::exit::handle`] takes the time before
//!   ([`ExitLog::start`]) and hands the access over after
//!   ([`ExitLog::access`]); the log adds it to the vCPU's exit statistics
//!   and, with `--trace`, to the recorder. The vCPU hands its log back
//!   when its thread is joined.
//! - The edus report what they do off the vCPU ([`EduTrace`]), and the
//!   interrupt delivery what it sends ([`IrqTrace`]).
//! - [`Tracing`] opens the files before the seccomp filters go on, starts
//!   the recorder's writer thread (a seccomp thread kind of its own), and
//!   at the end closes the trace and prints the statistics of every vCPU,
//!   named by a decoder that knows the final BARs.
//!
//! Without `--trace` an access costs two clock reads and an update of the
//! vCPU's own table (the last access's slot, else one hash probe), inlined
//! into `exit::handle`; the recorder is an `Option` that stays `None`, and
//! recording is out of line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use edu_devices::{EduEvent, EduObserver};
use edu_trace::clock;
use edu_trace::decode::{Access, Bdf, Decoder, Space};
use edu_trace::recorder::{Caps, Raw, Recorder, TraceWriter, WriterThread};
use edu_trace::stats::{render, ExitKind, ExitStats, Row};

use crate::seccomp::{self, Policy, Thread};

/// Errors setting up or closing the trace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be created.
    #[error("{0}: {1}")]
    Create(PathBuf, #[source] std::io::Error),
    /// The writer thread could not start with its filter.
    #[error("starting the trace writer thread: {0}")]
    Thread(#[source] seccomp::Error),
    /// Writing failed.
    #[error("writing {0}: {1}")]
    Write(PathBuf, #[source] std::io::Error),
}

/// One vCPU's exit statistics and, when tracing, the recorder; owned by
/// the vCPU's thread.
#[derive(Debug)]
pub struct ExitLog {
    cpu: u8,
    stats: ExitStats,
    rec: Option<Arc<Recorder>>,
}

impl ExitLog {
    /// The log of vCPU `cpu`, recording into `rec` when tracing (tests and
    /// fuzz targets; the VMM's come from [`Tracing::exit_log`]).
    pub fn new(cpu: u8, rec: Option<Arc<Recorder>>) -> Self {
        ExitLog {
            cpu,
            stats: ExitStats::default(),
            rec,
        }
    }

    /// The vCPU whose exits these are.
    pub fn cpu(&self) -> u8 {
        self.cpu
    }

    /// The time an access starts.
    #[inline]
    pub fn start() -> u64 {
        clock::now_ns()
    }

    /// An access that started at `t0` is done; `data` holds what was
    /// written, or what the device answered. Inlined into
    /// [`crate::exit::handle`], with the recording out of line: this runs
    /// on every exit, traced or not.
    #[inline(always)]
    pub fn access(&mut self, space: Space, write: bool, addr: u64, data: &[u8], t0: u64) {
        let dur = clock::now_ns().saturating_sub(t0);
        self.stats.add(ExitKind::of(space, write), addr, dur);
        if let Some(r) = &self.rec {
            Self::record(r, self.cpu, space, write, addr, data, t0, dur);
        }
    }

    /// Hands an access to the recorder (`--trace`).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn record(
        rec: &Recorder,
        vcpu: u8,
        space: Space,
        write: bool,
        addr: u64,
        data: &[u8],
        t0: u64,
        dur: u64,
    ) {
        let mut v = [0u8; 8];
        let n = data.len().min(8);
        v[..n].copy_from_slice(&data[..n]);
        let access = Access {
            space,
            write,
            addr,
            size: data.len() as u8,
            value: u64::from_le_bytes(v),
        };
        rec.record(t0, dur, Raw::Access { vcpu, access });
    }

    /// This vCPU's statistics so far.
    pub fn stats(&self) -> &ExitStats {
        &self.stats
    }
}

/// An edu's events into the recorder.
pub struct EduTrace {
    rec: Arc<Recorder>,
    dev: u8,
}

impl EduTrace {
    /// Edu number `dev`'s events into `rec`.
    pub fn new(rec: Arc<Recorder>, dev: u8) -> Self {
        EduTrace { rec, dev }
    }
}

impl EduObserver for EduTrace {
    fn event(&self, event: EduEvent) {
        self.rec.now(Raw::Edu {
            dev: self.dev,
            event,
        });
    }
}

/// The interrupts one edu sends, into the recorder.
#[derive(Clone)]
pub struct IrqTrace {
    rec: Arc<Recorder>,
    dev: u8,
}

impl IrqTrace {
    /// An MSI went to KVM.
    pub fn msi(&self, address: u64, data: u32) {
        self.rec.now(Raw::Msi {
            dev: self.dev,
            address,
            data,
        });
    }

    /// The INTx line on `gsi` changed.
    pub fn intx(&self, gsi: u32, level: bool) {
        self.rec.now(Raw::Intx {
            dev: self.dev,
            gsi,
            level,
        });
    }

    /// KVM signalled the resample of `gsi`; `reraised` if it went up again.
    pub fn resample(&self, gsi: u32, reraised: bool) {
        self.rec.now(Raw::Resample { gsi, reraised });
    }
}

/// The trace and statistics of one VM.
pub struct Tracing {
    rec: Option<Arc<Recorder>>,
    file: Option<(PathBuf, File, Caps)>,
    writer: Option<WriterThread<BufWriter<File>>>,
    stats_json: Option<(PathBuf, File)>,
}

impl Tracing {
    /// Creates the files (they cannot be opened once the seccomp filter is
    /// on): the trace, with its caps, and the statistics JSON.
    pub fn new(
        trace: Option<&PathBuf>,
        caps: Caps,
        stats_json: Option<&PathBuf>,
    ) -> Result<Self, Error> {
        let create = |p: &PathBuf| File::create(p).map_err(|e| Error::Create(p.clone(), e));
        let file = match trace {
            Some(p) => Some((p.clone(), create(p)?, caps)),
            None => None,
        };
        let stats_json = match stats_json {
            Some(p) => Some((p.clone(), create(p)?)),
            None => None,
        };
        Ok(Tracing {
            rec: file.as_ref().map(|_| Recorder::new(caps)),
            file,
            writer: None,
            stats_json,
        })
    }

    /// The exit log of vCPU `cpu`, for its thread.
    pub fn exit_log(&self, cpu: u8) -> ExitLog {
        ExitLog::new(cpu, self.rec.clone())
    }

    /// What edu number `dev` does, when tracing.
    pub fn edu(&self, dev: u8) -> Option<Arc<dyn EduObserver>> {
        let rec = self.rec.clone()?;
        Some(Arc::new(EduTrace { rec, dev }))
    }

    /// The interrupts of edu number `dev`, when tracing.
    pub fn irq(&self, dev: u8) -> Option<IrqTrace> {
        let rec = self.rec.clone()?;
        Some(IrqTrace { rec, dev })
    }

    /// Starts writing the trace on the writer thread, which installs its
    /// filter per `seccomp` (a thread kind of its own: it writes to the
    /// trace and nothing else). `edus` are (slot, BAR0) in edu order.
    pub fn start(&mut self, edus: &[(u8, u64)], seccomp: Policy) -> Result<(), Error> {
        let (Some(rec), Some((path, file, caps))) = (&self.rec, self.file.take()) else {
            return Ok(());
        };
        let thread = Thread::TraceWriter {
            trace_fd: file.as_raw_fd(),
        };
        let out = BufWriter::new(file);
        let w = TraceWriter::new(out, decoder(edus), "edu-vmm", caps)
            .map_err(|e| Error::Write(path.clone(), e))?;
        let writer = WriterThread::spawn_with(rec.clone(), w, |body| {
            seccomp::spawn(seccomp, "trace-writer".into(), thread, body).map(|(h, _)| h)
        });
        self.writer = Some(writer.map_err(Error::Thread)?);
        log::info!(
            "tracing to {} (at most {} events, {} bytes)",
            path.display(),
            caps.max_events,
            caps.max_bytes
        );
        Ok(())
    }

    /// Whether the trace writer runs (for the seccomp report).
    pub fn writing(&self) -> bool {
        self.writer.is_some()
    }

    /// Ends the trace and prints the exit statistics of `logs`, the vCPUs'
    /// logs handed back by their threads; `edus` are the final (slot,
    /// BAR0) pairs.
    pub fn finish(
        &mut self,
        edus: &[(u8, u64)],
        logs: impl IntoIterator<Item = ExitLog>,
    ) -> Result<(), Error> {
        let rows = rows(edus, logs);
        for line in render("exit statistics (time = the VMM's handling)", &rows, 24).lines() {
            log::info!("{line}");
        }
        if let Some((path, mut f)) = self.stats_json.take() {
            let json = serde_json::json!({ "vmm": "edu-vmm", "timing": "vmm", "accesses": rows });
            writeln!(f, "{json}").map_err(|e| Error::Write(path, e))?;
        }
        if let Some(w) = self.writer.take() {
            let out = w
                .finish()
                .map_err(|e| Error::Write("the trace".into(), e))?;
            out.into_inner()
                .map_err(|e| Error::Write("the trace".into(), e.into_error()))?;
        }
        Ok(())
    }
}

/// The statistics of every vCPU in `logs`, named by a decoder that knows
/// the edus at `edus`.
pub fn rows(edus: &[(u8, u64)], logs: impl IntoIterator<Item = ExitLog>) -> Vec<Row> {
    let mut all = ExitStats::default();
    for log in logs {
        all.merge(&log.stats);
    }
    all.rows(&mut decoder(edus))
}

/// A decoder that knows the edus at (slot, BAR0), in order.
pub fn decoder(edus: &[(u8, u64)]) -> Decoder {
    let mut d = Decoder::new();
    for (slot, bar) in edus {
        d.add_edu(Bdf::new(0, *slot, 0), *bar);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use edu_trace::event::read_events;

    #[test]
    fn accesses_count_and_trace() {
        let dir = std::env::temp_dir().join(format!("edu-vmm-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (tp, sp) = (dir.join("t.jsonl"), dir.join("s.json"));
        let mut t = Tracing::new(Some(&tp), Caps::default(), Some(&sp)).unwrap();
        let mut log = t.exit_log(0);
        let edus = [(1u8, 0xc000_0000u64)];
        t.start(&edus, Policy::Off).unwrap();
        assert!(t.writing());
        let t0 = ExitLog::start();
        log.access(Space::Mmio, true, 0xc000_0008, &10u32.to_le_bytes(), t0);
        log.access(Space::Port, true, 0x3f8, b"a", ExitLog::start());
        t.irq(0).unwrap().msi(0xfee0_0000, 0x22);
        let mut other = t.exit_log(1);
        other.access(Space::Mmio, true, 0xc000_0008, &5u32.to_le_bytes(), t0);
        let logs = [log, other];
        let fact = rows(&edus, logs.iter().map(clone_log))
            .into_iter()
            .find(|r| r.reg == "FACTORIAL")
            .unwrap();
        assert_eq!((fact.dev.as_str(), fact.count), ("edu0", 2), "both vCPUs");
        t.finish(&edus, logs).unwrap();
        let ev = read_events(std::io::BufReader::new(File::open(&tp).unwrap())).unwrap();
        let texts: Vec<&str> = ev.iter().map(|e| e.text.as_str()).collect();
        assert!(
            texts.contains(&"edu0 FACTORIAL <- 0xa: start 10!"),
            "{texts:?}"
        );
        assert!(texts.contains(&"COM1 THR <- 'a'"), "{texts:?}");
        assert!(
            texts.iter().any(|t| t.starts_with("edu0 MSI sent")),
            "{texts:?}"
        );
        let s = std::fs::read_to_string(&sp).unwrap();
        assert!(s.contains(r#""reg":"FACTORIAL""#), "{s}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A copy of a log's statistics (the VMM's are moved, never copied).
    fn clone_log(l: &ExitLog) -> ExitLog {
        let mut c = ExitLog::new(l.cpu, None);
        c.stats.merge(&l.stats);
        c
    }

    #[test]
    fn without_trace_only_statistics() {
        let mut t = Tracing::new(None, Caps::default(), None).unwrap();
        let mut log = t.exit_log(0);
        assert!(t.edu(0).is_none() && t.irq(0).is_none());
        log.access(Space::Port, false, 0x3fd, &[0x60], ExitLog::start());
        t.start(&[], Policy::Off).unwrap();
        assert!(!t.writing());
        assert_eq!(rows(&[], [clone_log(&log)])[0].reg, "LSR");
        t.finish(&[], [log]).unwrap();
    }
}
