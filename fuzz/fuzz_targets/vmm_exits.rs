//! Fuzzes edu-vmm's exit handling, `edu_vmm::exit::handle`, the plain
//! function every vCPU exit goes through, on the device bus the VMM builds
//! (UART to a sink, i8042, CMOS, the ACPI PM1 registers, reset control at
//! 0xcf9, the PCI bus with two edus and the VMM's BARs) over the VMM's real memory layout: RAM
//! below the 32-bit hole and above 4 GiB, from `edu_vmm::memory`. Only KVM
//! is missing: interrupt sinks that record, or fail in a pattern the input
//! chooses, and edu's manual clock, moved by the input.
//!
//! Each vCPU's exits go through its own `ExitLog`, as in the VMM: with
//! flags bit 4, with the trace recorder on (small caps, so the caps are
//! reached) and its writer thread naming and writing the events; without,
//! statistics only.
//!
//! The input is a flags byte, an optional failure pattern, then exits:
//! port I/O (string I/O included), MMIO, DMAs aimed at the edges of the
//! RAM regions and the hole, clock steps, configuration writes and the
//! exits that do not touch the bus. Invariants: no panic; a port read
//! answers all ones where nothing decodes it; an exit ends the VM with a
//! reset exactly when it writes one of the two reset values, with a power
//! off exactly when it writes ACPI S5 (SLP_EN with `\_S5`'s sleep type in
//! PM1a control), and no access of the same exit follows either; the exits that end the VM say why;
//! every access is counted by the bus and timed in its vCPU's log; every
//! interrupt the sink refused is counted by the device; edu's
//! identification register survives; a trace reads back, its accesses
//! within the caps and each from a vCPU that made one.

#![no_main]

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use edu_devices::edu::regs::{
    DMA_BUF_START, ID_VALUE, REG_DMA_CMD, REG_DMA_CNT, REG_DMA_DST, REG_DMA_SRC, REG_ID,
};
use edu_devices::EduConfig;
use edu_pci::{FailingInterrupts, InterruptSink, RecordingInterrupts};
use edu_trace::event::read_events;
use edu_trace::recorder::{Caps, Recorder, TraceWriter, WriterThread};
use edu_vmm::acpi::{PM1A_CNT_BLK, PM1A_EVT_BLK, PM1_CNT_LEN, S5_SLP_TYP};
use edu_vmm::bus::{Bus, RESET_CONTROL_PORT};
use edu_vmm::exit::{self, Action, Direction, Exit, VmExit};
use edu_vmm::legacy::{EventFdTrigger, Legacy, I8042_PORT, I8042_PORT_LEN, SERIAL_PORT};
use edu_vmm::memory::{self, MMIO_GAP_END, MMIO_GAP_START, PCI_MMIO_START};
use edu_vmm::pci::PciDevices;
use edu_vmm::seccomp::Policy;
use edu_vmm::trace::{decoder, EduTrace, ExitLog};
use libfuzzer_sys::fuzz_target;
use vm_memory::GuestMemoryMmap;

/// Guest RAM: 3 GiB below the hole and 32 MiB above 4 GiB, as the VMM
/// lays out a guest of this size (mapped once, touched only where DMAs go).
const RAM: u64 = MMIO_GAP_START + (32 << 20);
/// Bytes per exit: op, 3 address bytes, size, 8 data bytes, one more.
const CHUNK: usize = 14;
/// Ports something decodes, and one that nothing does, for `port`.
const PORT_BASES: [u16; 7] = [
    SERIAL_PORT,
    I8042_PORT,
    0x70,
    PM1A_EVT_BLK,
    0xcf8,
    0x80,
    0x1234,
];
/// The i8042 command port and its reset command.
const I8042_COMMAND: u16 = 0x64;
const I8042_RESET: u8 = 0xfe;
/// Bytes of one edu BAR (the VMM places them 1 MiB apart from the window).
const BAR_SIZE: u64 = 1 << 20;
/// The recorder's caps when tracing: small, so that inputs reach them.
const CAPS: Caps = Caps {
    max_events: 256,
    max_bytes: 16 << 10,
};
/// Where DMAs aim on the RAM side: the first page, both sides of the
/// hole's start and end, the top of high RAM.
const RAM_EDGES: [u64; 5] = [
    0,
    MMIO_GAP_START,
    MMIO_GAP_END - 0x1000,
    MMIO_GAP_END,
    RAM - MMIO_GAP_START + MMIO_GAP_END,
];

fn guest_memory() -> &'static GuestMemoryMmap {
    static MEM: OnceLock<GuestMemoryMmap> = OnceLock::new();
    MEM.get_or_init(|| memory::create_guest_memory(RAM).expect("guest memory"))
}

/// The VMM's bus, with slot `n`'s interrupts failing by `pattern` when
/// `failing[n - 1]`; returns the failing sinks with their slots.
fn bus(
    trace: bool,
    full_dma_mask: bool,
    pattern: u64,
    failing: [bool; 2],
) -> (Bus, PciDevices, Vec<(u8, Arc<FailingInterrupts>)>) {
    let serial_irq = EventFdTrigger::new().expect("eventfd");
    let reset = EventFdTrigger::new().expect("eventfd");
    let reset_rx = reset.try_clone().expect("eventfd clone");
    let mut bus = Bus::new(
        Legacy::new(serial_irq, reset, Box::new(std::io::sink())),
        reset_rx,
        trace,
    );
    let config = EduConfig {
        dma_mask: if full_dma_mask {
            u64::MAX
        } else {
            EduConfig::default().dma_mask
        },
        ..EduConfig::manual()
    };
    let mut sinks = Vec::new();
    let pci = PciDevices::with_interrupts(guest_memory(), 2, config, Policy::Off, |slot| {
        if failing[usize::from(slot - 1)] {
            let f = Arc::new(FailingInterrupts::new(pattern));
            sinks.push((slot, f.clone()));
            Ok(f as Arc<dyn InterruptSink>)
        } else {
            Ok(Arc::new(RecordingInterrupts::new()))
        }
    })
    .expect("pci devices");
    bus.set_pci(pci.access());
    (bus, pci, sinks)
}

/// The PM1 event and control blocks.
fn pm1(port: u16) -> bool {
    (PM1A_EVT_BLK..PM1A_CNT_BLK + u16::from(PM1_CNT_LEN)).contains(&port)
}

/// Whether a write of `data` at `port` is ACPI S5: it starts on a PM1 port
/// and its byte for the control register's high half has SLP_EN (bit 13)
/// and SLP_TYP (bits 12:10) = `\_S5`'s type.
fn powers_off(port: u16, data: &[u8]) -> bool {
    let high = (PM1A_CNT_BLK + 1).wrapping_sub(port);
    pm1(port)
        && data
            .get(usize::from(high))
            .is_some_and(|b| b & 0x20 != 0 && (b >> 2) & 7 == S5_SLP_TYP)
}

/// Whether anything on the bus decodes a read of `len` bytes at `port`.
fn decoded(port: u16, len: usize) -> bool {
    (SERIAL_PORT..SERIAL_PORT + 8).contains(&port)
        || (I8042_PORT..I8042_PORT + I8042_PORT_LEN).contains(&port)
        || matches!(port, 0x70 | 0x71)
        || pm1(port)
        || (port == RESET_CONTROL_PORT && len == 1)
        || (0xcf8..0xd00).contains(&port)
}

/// Whether writing `data` to `port` resets the machine.
fn resets(port: u16, data: &[u8]) -> bool {
    (port == RESET_CONTROL_PORT && data.len() == 1 && data[0] & 0x04 != 0)
        || (port == I8042_COMMAND && data.first() == Some(&I8042_RESET))
}

/// Counts of what the exits handed to the bus.
#[derive(Default)]
struct Expected {
    pio: u64,
    mmio: u64,
}

/// One port I/O exit of `count` elements of `size` bytes, checked.
fn port_exit(
    bus: &Bus,
    log: &mut ExitLog,
    want: &mut Expected,
    port: u16,
    size: u8,
    direction: Direction,
    data: &mut [u8],
) {
    let elements: Vec<Vec<u8>> = data.chunks(usize::from(size)).map(<[u8]>::to_vec).collect();
    let action = exit::handle(
        Exit::Io {
            port,
            size,
            direction,
            data,
        },
        bus,
        log,
    );
    match direction {
        Direction::In => {
            want.pio += elements.len() as u64;
            assert_eq!(action, Action::Continue);
            if !decoded(port, usize::from(size)) {
                assert!(data.iter().all(|&b| b == 0xff), "{port:#x}: {data:02x?}");
            }
        }
        Direction::Out => {
            // The first element that resets or powers off ends the exit.
            let end = elements.iter().find_map(|e| {
                if resets(port, e) {
                    Some(VmExit::Reset)
                } else if powers_off(port, e) {
                    Some(VmExit::PowerOff)
                } else {
                    None
                }
            });
            let ended = elements
                .iter()
                .position(|e| resets(port, e) || powers_off(port, e));
            want.pio += ended.map_or(elements.len(), |i| i + 1) as u64;
            assert_eq!(
                action,
                end.map_or(Action::Continue, Action::End),
                "{elements:02x?} to {port:#x}"
            );
        }
    }
    assert_eq!(bus.stats.pio.load(Ordering::Relaxed), want.pio, "pio count");
}

fn mmio_exit(
    bus: &Bus,
    log: &mut ExitLog,
    want: &mut Expected,
    addr: u64,
    direction: Direction,
    data: &mut [u8],
) {
    let action = exit::handle(
        Exit::Mmio {
            addr,
            direction,
            data,
        },
        bus,
        log,
    );
    want.mmio += 1;
    assert_eq!(action, Action::Continue);
    assert_eq!(
        bus.stats.mmio.load(Ordering::Relaxed),
        want.mmio,
        "mmio count"
    );
}

/// The exits that never reach the bus, and what they must lead to.
fn other_exit(bus: &Bus, log: &mut ExitLog, kind: u8, v: u64) {
    let (exit, ends) = match kind % 9 {
        0 => (Exit::Hlt, true),
        1 => (Exit::Shutdown { rip: Some(v) }, true),
        2 => (Exit::SystemEvent(v as u32), true),
        3 => (
            Exit::InternalError {
                suberror: v as u32,
                rip: None,
            },
            true,
        ),
        4 => (Exit::FailEntry(v), true),
        5 => (Exit::Other(format!("exit {v}")), true),
        6 => (Exit::Interrupted, false),
        _ => (Exit::Again, false),
    };
    let timed = log.stats().count();
    let action = exit::handle(exit, bus, log);
    assert_eq!(log.stats().count(), timed, "no access, nothing timed");
    assert_eq!(
        matches!(action, Action::End(_)),
        ends,
        "kind {kind}: {action:?}"
    );
    if let Action::End(why) = action {
        assert!(!why.to_string().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut data)) = data.split_first() else {
        return;
    };
    let failing = [flags & 4 != 0, flags & 8 != 0];
    let mut pattern = 0;
    if failing.contains(&true) {
        let Some((p, rest)) = data.split_first_chunk::<8>() else {
            return;
        };
        pattern = u64::from_le_bytes(*p);
        data = rest;
    }
    let (bus, pci, sinks) = bus(flags & 1 != 0, flags & 2 != 0, pattern, failing);
    let tracing = flags & 16 != 0;
    let (rec, writer) = if tracing {
        let rec = Recorder::new(CAPS);
        let edus = pci.bars();
        for (dev, (_, edu)) in pci.devices().enumerate() {
            edu.set_observer(Arc::new(EduTrace::new(rec.clone(), dev as u8)));
        }
        let w =
            TraceWriter::new(Vec::new(), decoder(&edus), "vmm_exits", CAPS).expect("trace writer");
        let writer = WriterThread::spawn("trace-writer", rec.clone(), w).expect("writer thread");
        (Some(rec), Some(writer))
    } else {
        (None, None)
    };
    // Two vCPUs, as the VMM runs them: each exit goes to the log of the
    // vCPU the input picks.
    let mut logs = [ExitLog::new(0, rec.clone()), ExitLog::new(1, rec)];
    let mut want = Expected::default();
    // What the guest kernel does first: enable memory decoding and bus
    // mastering on both edus (Command register, 00:0N.0 offset 4).
    for slot in 1..=2u32 {
        let log = &mut logs[0];
        let mut addr = (0x8000_0004 | slot << 11).to_le_bytes();
        port_exit(&bus, log, &mut want, 0xcf8, 4, Direction::Out, &mut addr);
        port_exit(
            &bus,
            log,
            &mut want,
            0xcfc,
            2,
            Direction::Out,
            &mut [0x06, 0],
        );
    }

    for c in data.chunks_exact(CHUNK).take(1024) {
        let op = c[0];
        let a = u32::from_le_bytes([c[1], c[2], c[3], 0]);
        let v = u64::from_le_bytes(c[5..13].try_into().expect("8 bytes"));
        let port = if op & 0x80 != 0 {
            a as u16
        } else {
            PORT_BASES[usize::from(c[1]) % PORT_BASES.len()]
                .wrapping_add(u16::from(c[2] % 16))
                .wrapping_sub(4)
        };
        // From just below the first BAR to past the second.
        let addr = PCI_MMIO_START - 0x1000 + u64::from(a & 0x3f_ffff);
        let bar = PCI_MMIO_START + u64::from(c[13] & 1) * BAR_SIZE;
        let log = &mut logs[usize::from(c[13] >> 7)];
        match op & 7 {
            op @ (0 | 1) => {
                // One to four elements of 1, 2 or 4 bytes.
                let size = [1u8, 2, 4][usize::from(c[4] % 3)];
                let count = 1 + usize::from(c[4] >> 2) % 4;
                let mut buf: Vec<u8> = c[5..13]
                    .iter()
                    .cycle()
                    .take(usize::from(size) * count)
                    .copied()
                    .collect();
                let direction = if op == 0 {
                    Direction::In
                } else {
                    Direction::Out
                };
                port_exit(&bus, log, &mut want, port, size, direction, &mut buf);
            }
            op @ (2 | 3) => {
                let mut buf = c[5..13].to_vec();
                buf.truncate(usize::from(c[4] % 9));
                let direction = if op == 2 {
                    Direction::In
                } else {
                    Direction::Out
                };
                mmio_exit(&bus, log, &mut want, addr, direction, &mut buf);
            }
            4 => {
                // A DMA between the buffer (and just past it) and an edge of
                // the RAM regions, with the run bit and any direction and
                // interrupt bits.
                let buffer = DMA_BUF_START + u64::from(u16::from_le_bytes([c[1], c[2]]) % 0x1010);
                let edge = RAM_EDGES[usize::from(c[3]) % RAM_EDGES.len()];
                let ram = edge.wrapping_add(v & 0xffff).wrapping_sub(0x8000);
                let cnt = (v >> 16) % 0x1100;
                let to_ram = c[4] & 2 != 0;
                let (src, dst) = if to_ram { (buffer, ram) } else { (ram, buffer) };
                let cmd = u64::from(c[4] & 6) | 1;
                for (reg, value) in [
                    (REG_DMA_SRC, src),
                    (REG_DMA_DST, dst),
                    (REG_DMA_CNT, cnt),
                    (REG_DMA_CMD, cmd),
                ] {
                    mmio_exit(
                        &bus,
                        log,
                        &mut want,
                        bar + reg,
                        Direction::Out,
                        &mut value.to_le_bytes(),
                    );
                }
            }
            5 => {
                for (_, edu) in pci.devices() {
                    edu.advance(Duration::from_millis(u64::from(c[4])));
                }
            }
            6 => other_exit(&bus, log, c[4], v),
            _ => {
                // A configuration write to one edu (Command, MSI, BAR...)
                // through CONFIG_ADDRESS/CONFIG_DATA.
                let slot = 1 + u32::from(c[13] & 1);
                let mut addr = (0x8000_0000 | slot << 11 | u32::from(c[1] & 0xfc)).to_le_bytes();
                port_exit(&bus, log, &mut want, 0xcf8, 4, Direction::Out, &mut addr);
                let size = [1u8, 2, 4][usize::from(c[4] % 3)];
                let mut value = c[5..5 + usize::from(size)].to_vec();
                port_exit(
                    &bus,
                    log,
                    &mut want,
                    0xcfc + u16::from(c[2] & 3),
                    size,
                    Direction::Out,
                    &mut value,
                );
            }
        }
    }
    for (slot, edu) in pci.devices() {
        assert!(edu.wait_idle(Duration::ZERO), "slot {slot} still busy");
        assert_eq!(edu.read_u32(REG_ID), ID_VALUE);
    }
    for (slot, sink) in &sinks {
        let (_, edu) = pci.devices().find(|(s, _)| s == slot).expect("slot");
        assert_eq!(
            edu.stats().interrupt_errors,
            sink.failures(),
            "slot {slot}: refused interrupts not all counted"
        );
    }
    // Every element of every port exit and every MMIO exit was timed in
    // the log of the vCPU that made it.
    let timed: u64 = logs.iter().map(|l| l.stats().count()).sum();
    assert_eq!(timed, want.pio + want.mmio, "accesses timed");
    let made: Vec<bool> = logs.iter().map(|l| l.stats().count() > 0).collect();
    if let Some(writer) = writer {
        drop(logs);
        let out = writer.finish().expect("trace written");
        assert!(out.len() as u64 <= CAPS.max_bytes, "{} bytes", out.len());
        let events = read_events(out.as_slice()).expect("the trace reads back");
        assert_eq!(events.last().map(|e| e.kind.as_str()), Some("trace_end"));
        let accesses: Vec<_> = events.iter().filter(|e| e.is_access()).collect();
        assert!(accesses.len() as u64 <= CAPS.max_events.min(timed));
        for e in accesses {
            let cpu = e.vcpu.expect("an access names its vCPU") as usize;
            assert!(made[cpu], "vCPU {cpu} made no access: {}", e.text);
        }
    }
});
