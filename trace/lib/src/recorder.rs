//! A bounded recorder for a VMM: the vCPU threads and the device workers
//! hand it small raw records; a writer thread names them with a
//! [`Decoder`] and writes the event file. Whatever the guest does, memory
//! and disk stay bounded:
//!
//! - at most `max_events` records are accepted, and at most
//!   [`PENDING_MAX`] wait for the writer at any time (a writer that falls
//!   behind loses records rather than stalling a vCPU);
//! - the file stops growing at `max_bytes` (minus room for its last line);
//! - every record not written is counted, and the file ends with a `meta`
//!   `dropped` event that says how many and why, then `trace_end`.
//!
//! Recording costs a clock read, a mutex and a push; decoding and
//! formatting happen on the writer thread. A VMM without a recorder pays a
//! branch on an `Option`.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use edu_devices::{DmaOutcome, EduEvent};

use crate::clock;
use crate::decode::edu::{dma_addr_words, dma_cmd_words, irq_reasons};
use crate::decode::pci::msi_event;
use crate::decode::{size_words, Access, Decoder};
use crate::event::{Event, Layer};

/// Records that may wait for the writer at once.
pub const PENDING_MAX: usize = 1 << 16;
/// Room kept below `max_bytes` for the closing lines.
const CLOSING_RESERVE: u64 = 1024;
/// The writer wakes at least this often.
const WRITER_PERIOD: Duration = Duration::from_millis(100);

/// Limits of one trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Records accepted in all.
    pub max_events: u64,
    /// Size of the file.
    pub max_bytes: u64,
}

impl Default for Caps {
    /// 1,000,000 events or 256 MiB: the lab flow on a whole Linux boot
    /// is about 40,000 events and 8 MiB.
    fn default() -> Self {
        Caps {
            max_events: 1_000_000,
            max_bytes: 256 << 20,
        }
    }
}

/// What happened, in raw form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Raw {
    /// A port or MMIO exit handled by the VMM.
    Access {
        /// vCPU index.
        vcpu: u8,
        /// The access.
        access: Access,
    },
    /// Something an edu did (index as in [`Decoder::add_edu`] order).
    Edu {
        /// edu index.
        dev: u8,
        /// What.
        event: EduEvent,
    },
    /// An edu's MSI went to KVM.
    Msi {
        /// edu index.
        dev: u8,
        /// Message address.
        address: u64,
        /// Message data.
        data: u32,
    },
    /// An edu's INTx line changed.
    Intx {
        /// edu index.
        dev: u8,
        /// The GSI the pin is wired to.
        gsi: u32,
        /// Asserted or lowered.
        level: bool,
    },
    /// KVM lowered a level-triggered line at the guest's EOI.
    Resample {
        /// The GSI.
        gsi: u32,
        /// Whether the device still asserted, so the line went up again.
        reraised: bool,
    },
}

/// One record: when, how long, what.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    /// CLOCK_MONOTONIC nanoseconds.
    pub t_ns: u64,
    /// Handling time (exits), 0 for instants.
    pub dur_ns: u64,
    /// What.
    pub raw: Raw,
}

#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    finished: bool,
}

/// The producers' side; see the module documentation.
pub struct Recorder {
    pending: Mutex<Pending>,
    wake: Condvar,
    caps: Caps,
    accepted: AtomicU64,
    dropped_cap: AtomicU64,
    dropped_behind: AtomicU64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("caps", &self.caps)
            .field("accepted", &self.accepted)
            .finish()
    }
}

impl Recorder {
    /// A recorder with `caps`.
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Recorder {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            caps,
            accepted: AtomicU64::new(0),
            dropped_cap: AtomicU64::new(0),
            dropped_behind: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `raw`, which started at `t_ns` and took `dur_ns`.
    pub fn record(&self, t_ns: u64, dur_ns: u64, raw: Raw) {
        if self.accepted.load(Ordering::Relaxed) >= self.caps.max_events {
            self.dropped_cap.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut p = self.lock();
        if p.records.len() >= PENDING_MAX {
            drop(p);
            self.dropped_behind.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        p.records.push(Record { t_ns, dur_ns, raw });
        if p.records.len() == PENDING_MAX / 2 {
            self.wake.notify_one();
        }
    }

    /// Records an instant event happening now.
    pub fn now(&self, raw: Raw) {
        self.record(clock::now_ns(), 0, raw);
    }

    /// Waits up to `period` for records; returns them and whether the
    /// recorder is finished.
    fn take(&self, period: Duration) -> (Vec<Record>, bool) {
        let mut p = self.lock();
        if p.records.is_empty() && !p.finished {
            p = self
                .wake
                .wait_timeout(p, period)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        (std::mem::take(&mut p.records), p.finished)
    }

    fn finish(&self) {
        self.lock().finished = true;
        self.wake.notify_all();
    }
}

/// Names records and writes them, within the byte cap.
pub struct TraceWriter<W: Write> {
    out: W,
    decoder: Decoder,
    src: String,
    max_bytes: u64,
    bytes: u64,
    written: u64,
    dropped_bytes: u64,
}

impl<W: Write> TraceWriter<W> {
    /// A writer for `src` (e.g. `edu-vmm`) that decodes with `decoder`
    /// (which must know the VMM's edus) and writes to `out`. Writes the
    /// `trace_start` line at once.
    pub fn new(out: W, decoder: Decoder, src: &str, caps: Caps) -> std::io::Result<Self> {
        let mut w = TraceWriter {
            out,
            decoder,
            src: src.into(),
            max_bytes: caps.max_bytes,
            bytes: 0,
            written: 0,
            dropped_bytes: 0,
        };
        let start = Event::trace_start(clock::now_ns(), src, "CLOCK_MONOTONIC")
            .with("max_events", caps.max_events)
            .with("max_bytes", caps.max_bytes);
        w.line(&start)?;
        Ok(w)
    }

    fn line(&mut self, e: &Event) -> std::io::Result<()> {
        let mut l = e.to_line();
        l.push('\n');
        self.raw_line(&l)
    }

    fn raw_line(&mut self, l: &str) -> std::io::Result<()> {
        self.out.write_all(l.as_bytes())?;
        self.bytes += l.len() as u64;
        Ok(())
    }

    /// Names and writes a batch (sorted by time first: records arrive in
    /// the order they completed).
    pub fn write_batch(&mut self, mut batch: Vec<Record>) -> std::io::Result<()> {
        batch.sort_by_key(|r| r.t_ns);
        for r in batch {
            let mut l = self.event(&r).to_line();
            l.push('\n');
            if self.bytes + l.len() as u64 + CLOSING_RESERVE > self.max_bytes {
                self.dropped_bytes += 1;
                continue;
            }
            self.raw_line(&l)?;
            self.written += 1;
        }
        self.out.flush()
    }

    /// The event for a record.
    pub fn event(&mut self, r: &Record) -> Event {
        let src = self.src.clone();
        let mut e = match r.raw {
            Raw::Access { vcpu, access } => {
                let d = self.decoder.decode(&access);
                access.event(r.t_ns, &src, Some(vcpu.into()), d)
            }
            Raw::Edu { dev, event } => edu_event(r.t_ns, &src, dev, event),
            Raw::Msi { dev, address, data } => {
                msi_event(r.t_ns, &src, &format!("edu{dev}"), address, data)
            }
            Raw::Intx { dev, gsi, level } => {
                let what = if level {
                    "asserted"
                } else {
                    "lowered by the device (the line drops at the guest's EOI)"
                };
                let mut e = Event::new(
                    r.t_ns,
                    Layer::Irq,
                    &src,
                    "intx",
                    format!("edu{dev} INTx on GSI {gsi} {what}"),
                )
                .with("gsi", gsi)
                .with("level", level);
                e.dev = Some(format!("edu{dev}"));
                e
            }
            Raw::Resample { gsi, reraised } => Event::new(
                r.t_ns,
                Layer::Irq,
                &src,
                "intx_resample",
                if reraised {
                    format!("GSI {gsi} EOI: the device still asserts, line raised again")
                } else {
                    format!("GSI {gsi} EOI: line lowered")
                },
            )
            .with("gsi", gsi)
            .with("reraised", reraised),
        };
        e.dur_ns = r.dur_ns;
        e
    }

    /// Writes the closing lines: how many records were dropped and why,
    /// then `trace_end`.
    pub fn close(mut self, rec: &Recorder) -> std::io::Result<W> {
        let cap = rec.dropped_cap.load(Ordering::Relaxed);
        let behind = rec.dropped_behind.load(Ordering::Relaxed);
        let total = cap + behind + self.dropped_bytes;
        let now = clock::now_ns();
        if total > 0 {
            let e = Event::new(
                now,
                Layer::Meta,
                &self.src.clone(),
                "dropped",
                format!(
                    "{total} events dropped: {cap} over the cap of {} events, {} over the \
                     cap of {} bytes, {behind} while the writer was behind",
                    rec.caps.max_events,
                    self.dropped_bytes,
                    size_words(rec.caps.max_bytes)
                ),
            )
            .with("count", total)
            .with("over_event_cap", cap)
            .with("over_byte_cap", self.dropped_bytes)
            .with("writer_behind", behind);
            self.line(&e)?;
        }
        let end = Event::new(
            now,
            Layer::Meta,
            &self.src.clone(),
            "trace_end",
            format!("{} events written, {total} dropped", self.written),
        )
        .with("written", self.written)
        .with("dropped", total);
        self.line(&end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn edu_event(t_ns: u64, src: &str, dev: u8, ev: EduEvent) -> Event {
    let name = format!("edu{dev}");
    let mut e = match ev {
        EduEvent::FactorialDone { n, result } => Event::new(
            t_ns,
            Layer::Device,
            src,
            "factorial_done",
            format!("{name} factorial done: {n}! = {result} ({result:#x})"),
        )
        .with("n", n)
        .with("result", result),
        EduEvent::DmaStarted { regs, delay } => Event::new(
            t_ns,
            Layer::Dma,
            src,
            "dma_start",
            format!(
                "{name} DMA start {}, completes in {} ms",
                dma_cmd_words(regs.cmd, regs.src, regs.dst, regs.cnt),
                delay.as_millis()
            ),
        )
        .with("src", regs.src)
        .with("dst", regs.dst)
        .with("cnt", regs.cnt)
        .with("cmd", regs.cmd)
        .with("delay_ns", delay.as_nanos() as u64),
        EduEvent::DmaDone {
            regs,
            ram,
            outcome,
            waited,
        } => {
            let to_ram = regs.cmd & edu_devices::edu::regs::DMA_CMD_TO_RAM != 0;
            let (what, ok) = match outcome {
                DmaOutcome::Copied => ("copied", "copied"),
                DmaOutcome::OutOfRange => ("out of range: nothing copied", "out_of_range"),
                DmaOutcome::Blocked => ("bus mastering off: nothing reached RAM", "blocked"),
                DmaOutcome::Failed => ("guest memory refused the copy", "failed"),
            };
            let dev_side = if to_ram { regs.src } else { regs.dst };
            let words = if to_ram {
                format!(
                    "{} from {} to RAM {ram:#x}",
                    size_words(regs.cnt),
                    dma_addr_words(dev_side)
                )
            } else {
                format!(
                    "{} from RAM {ram:#x} to {}",
                    size_words(regs.cnt),
                    dma_addr_words(dev_side)
                )
            };
            Event::new(
                t_ns,
                Layer::Dma,
                src,
                "dma_done",
                format!(
                    "{name} DMA done after {:.1} ms: {words}, {what}",
                    waited.as_secs_f64() * 1e3
                ),
            )
            .with("to_ram", to_ram)
            .with("ram", ram)
            .with(
                "dev_offset",
                dev_side.wrapping_sub(edu_devices::edu::DMA_BUF_START),
            )
            .with("cnt", regs.cnt)
            .with("outcome", ok)
            .with("waited_ns", waited.as_nanos() as u64)
        }
        EduEvent::IrqStatus { old, new } => Event::new(
            t_ns,
            Layer::Device,
            src,
            "irq_status",
            format!(
                "{name} interrupt status {old:#x} -> {new:#x} ({})",
                irq_reasons(new.into())
            ),
        )
        .with("old", old)
        .with("new", new),
    };
    e.dev = Some(name);
    e
}

/// The writer's work, handed to the thread that does it: write what the
/// recorder collects until it is finished, then hand the writer back.
pub type WriterBody<W> = Box<dyn FnOnce() -> std::io::Result<TraceWriter<W>> + Send>;

/// The thread that runs a [`WriterBody`]; it returns `None` if it ended
/// without running it (a VMM's thread whose set-up failed).
pub type WriterHandle<W> = JoinHandle<Option<std::io::Result<TraceWriter<W>>>>;

/// The writer thread: owns a [`TraceWriter`] until [`WriterThread::finish`].
pub struct WriterThread<W: Write + Send + 'static> {
    rec: Arc<Recorder>,
    handle: Option<WriterHandle<W>>,
}

impl<W: Write + Send + 'static> WriterThread<W> {
    /// Starts the thread `name`, writing what `rec` collects.
    pub fn spawn(name: &str, rec: Arc<Recorder>, w: TraceWriter<W>) -> std::io::Result<Self> {
        Self::spawn_with(rec, w, |body| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || Some(body()))
        })
    }

    /// Starts the writer on a thread that `spawn` starts and that runs the
    /// body it is given: the way a VMM starts its threads (edu-vmm's each
    /// install their seccomp filter first).
    pub fn spawn_with<E>(
        rec: Arc<Recorder>,
        mut w: TraceWriter<W>,
        spawn: impl FnOnce(WriterBody<W>) -> Result<WriterHandle<W>, E>,
    ) -> Result<Self, E> {
        let r = rec.clone();
        let handle = spawn(Box::new(move || loop {
            let (batch, finished) = r.take(WRITER_PERIOD);
            w.write_batch(batch)?;
            if finished {
                return Ok(w);
            }
        }))?;
        Ok(WriterThread {
            rec,
            handle: Some(handle),
        })
    }

    /// Writes what is left and the closing lines; returns the writer's
    /// output. Records that arrive later are dropped uncounted.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.rec.finish();
        let w = match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Some(w))) => w?,
            Some(Ok(None)) => {
                return Err(std::io::Error::other(
                    "the trace writer thread ended before it wrote anything",
                ))
            }
            _ => return Err(std::io::Error::other("the trace writer thread panicked")),
        };
        w.close(&self.rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Bdf, Space};
    use crate::event::read_events;
    use edu_devices::edu::DmaRegs;

    fn mmio(vcpu: u8, addr: u64, write: bool, value: u64) -> Raw {
        Raw::Access {
            vcpu,
            access: Access {
                space: Space::Mmio,
                write,
                addr,
                size: 4,
                value,
            },
        }
    }

    fn decoder() -> Decoder {
        let mut d = Decoder::new();
        d.add_edu(Bdf::new(0, 1, 0), 0xc000_0000);
        d
    }

    #[test]
    fn writes_decoded_events_in_time_order() {
        let rec = Recorder::new(Caps::default());
        let w = TraceWriter::new(Vec::new(), decoder(), "edu-vmm", Caps::default()).unwrap();
        let t = WriterThread::spawn("test-writer", rec.clone(), w).unwrap();
        rec.record(
            200,
            0,
            Raw::Edu {
                dev: 0,
                event: EduEvent::FactorialDone {
                    n: 10,
                    result: 3_628_800,
                },
            },
        );
        rec.record(100, 50, mmio(0, 0xc000_0008, true, 10));
        rec.record(
            300,
            0,
            Raw::Msi {
                dev: 0,
                address: 0xfee0_0000,
                data: 0x22,
            },
        );
        let out = t.finish().unwrap();
        let ev = read_events(out.as_slice()).unwrap();
        let kinds: Vec<&str> = ev.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "trace_start",
                "mmio_write",
                "factorial_done",
                "msi",
                "trace_end"
            ]
        );
        assert_eq!(ev[1].text, "edu0 FACTORIAL <- 0xa: start 10!");
        assert_eq!((ev[1].t_ns, ev[1].dur_ns, ev[1].vcpu), (100, 50, Some(0)));
        assert_eq!(ev[1].u64("addr"), Some(0xc000_0008));
        assert_eq!(ev[2].text, "edu0 factorial done: 10! = 3628800 (0x375f00)");
        assert_eq!(
            ev[3].text,
            "edu0 MSI sent: address 0xfee00000 data 0x22: vector 0x22 to physical APIC 0 (fixed, edge)"
        );
        assert_eq!(ev[3].u64("vector"), Some(0x22));
        assert_eq!(ev[4].text, "3 events written, 0 dropped");
    }

    #[test]
    fn event_cap_counts_what_it_drops() {
        let caps = Caps {
            max_events: 10,
            max_bytes: 1 << 20,
        };
        let rec = Recorder::new(caps);
        let w = TraceWriter::new(Vec::new(), decoder(), "edu-vmm", caps).unwrap();
        let t = WriterThread::spawn("test-writer", rec.clone(), w).unwrap();
        for i in 0..1000 {
            rec.record(i, 1, mmio(0, 0xc000_0000, false, 0x0100_00ed));
        }
        let out = t.finish().unwrap();
        let ev = read_events(out.as_slice()).unwrap();
        let accesses = ev.iter().filter(|e| e.kind == "mmio_read").count();
        assert_eq!(accesses, 10);
        let dropped = ev.iter().find(|e| e.kind == "dropped").unwrap();
        assert_eq!(dropped.u64("count"), Some(990));
        assert_eq!(dropped.u64("over_event_cap"), Some(990));
        assert!(dropped
            .text
            .starts_with("990 events dropped: 990 over the cap of 10 events"));
        assert_eq!(ev.last().unwrap().kind, "trace_end");
    }

    #[test]
    fn memory_is_bounded_when_the_writer_falls_behind() {
        // No writer drains it: records beyond PENDING_MAX are counted, not kept.
        let rec = Recorder::new(Caps::default());
        let n = PENDING_MAX as u64 + 1234;
        for i in 0..n {
            rec.record(i, 1, mmio(0, 0xc000_0000, false, 0));
        }
        assert_eq!(rec.lock().records.len(), PENDING_MAX);
        assert_eq!(rec.dropped_behind.load(Ordering::Relaxed), 1234);
        let w = TraceWriter::new(Vec::new(), decoder(), "edu-vmm", Caps::default()).unwrap();
        let out = w.close(&rec).unwrap();
        let ev = read_events(out.as_slice()).unwrap();
        let d = ev.iter().find(|e| e.kind == "dropped").unwrap();
        assert_eq!(d.u64("writer_behind"), Some(1234));
        assert!(
            d.text.contains("1234 while the writer was behind"),
            "{}",
            d.text
        );
    }

    #[test]
    fn byte_cap_bounds_the_file() {
        let caps = Caps {
            max_events: 1_000_000,
            max_bytes: 8192,
        };
        let rec = Recorder::new(caps);
        let w = TraceWriter::new(Vec::new(), decoder(), "edu-vmm", caps).unwrap();
        let t = WriterThread::spawn("test-writer", rec.clone(), w).unwrap();
        for i in 0..5000 {
            rec.record(i, 1, mmio(0, 0xc000_0000, false, 0x0100_00ed));
        }
        let out = t.finish().unwrap();
        assert!(out.len() as u64 <= caps.max_bytes, "{}", out.len());
        let ev = read_events(out.as_slice()).unwrap();
        let written = ev.iter().filter(|e| e.kind == "mmio_read").count() as u64;
        let dropped = ev.iter().find(|e| e.kind == "dropped").unwrap();
        assert_eq!(written + dropped.u64("count").unwrap(), 5000);
        assert!(dropped.u64("over_byte_cap").unwrap() > 0);
    }

    #[test]
    fn device_events_in_words() {
        let mut w = TraceWriter::new(Vec::new(), decoder(), "edu-vmm", Caps::default()).unwrap();
        let regs = DmaRegs {
            src: 0x40000,
            dst: 0x0123_4000,
            cnt: 4,
            cmd: 7,
        };
        let ev = |w: &mut TraceWriter<Vec<u8>>, raw| {
            w.event(&Record {
                t_ns: 1,
                dur_ns: 0,
                raw,
            })
        };
        let e = ev(
            &mut w,
            Raw::Edu {
                dev: 0,
                event: EduEvent::DmaStarted {
                    regs,
                    delay: Duration::from_millis(100),
                },
            },
        );
        assert_eq!(
            e.text,
            "edu0 DMA start device -> RAM: device buffer +0x0 to RAM 0x1234000, 4 bytes, interrupt when done, completes in 100 ms"
        );
        let e = ev(
            &mut w,
            Raw::Edu {
                dev: 0,
                event: EduEvent::DmaDone {
                    regs,
                    ram: 0x0123_4000,
                    outcome: DmaOutcome::Copied,
                    waited: Duration::from_micros(100_200),
                },
            },
        );
        assert_eq!(
            e.text,
            "edu0 DMA done after 100.2 ms: 4 bytes from device buffer +0x0 to RAM 0x1234000, copied"
        );
        assert_eq!(e.layer, Layer::Dma);
        let e = ev(
            &mut w,
            Raw::Edu {
                dev: 0,
                event: EduEvent::IrqStatus { old: 0, new: 0x100 },
            },
        );
        assert_eq!(e.text, "edu0 interrupt status 0x0 -> 0x100 (DMA done)");
        let e = ev(
            &mut w,
            Raw::Intx {
                dev: 1,
                gsi: 17,
                level: true,
            },
        );
        assert_eq!(e.text, "edu1 INTx on GSI 17 asserted");
        let e = ev(
            &mut w,
            Raw::Resample {
                gsi: 17,
                reraised: true,
            },
        );
        assert_eq!(
            e.text,
            "GSI 17 EOI: the device still asserts, line raised again"
        );
    }
}
