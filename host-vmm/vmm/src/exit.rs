//! What a vCPU exit leads to, as a plain function.
//!
//! The vCPU loop ([`crate::vcpu`]) runs `KVM_RUN` and decodes what it
//! returned into an [`Exit`]: the kind of exit, the port or address, the
//! data and its direction. [`handle`] takes that exit, the device [`Bus`]
//! and the vCPU's [`ExitLog`], and returns the [`Action`] the vCPU takes
//! next. Nothing here touches KVM, so every exit a guest can cause is
//! unit-tested and fuzzed (`fuzz/fuzz_targets/vmm_exits.rs`) without
//! `/dev/kvm`. It is the one place that sees every exit the VMM handles,
//! so it is also where each access is timed for the exit statistics and,
//! with `--trace`, recorded ([`crate::trace`]). [`VmExit`] is why the VM
//! ended.

use edu_trace::decode::Space;

use crate::bus::{Bus, PioOutcome};
use crate::trace::ExitLog;

/// `KVM_SYSTEM_EVENT_SHUTDOWN` and `KVM_SYSTEM_EVENT_RESET`.
pub const SYSTEM_EVENT_SHUTDOWN: u32 = 1;
/// See [`SYSTEM_EVENT_SHUTDOWN`].
pub const SYSTEM_EVENT_RESET: u32 = 2;

/// Which way the data of a port or MMIO exit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The guest reads: the VMM fills `data`.
    In,
    /// The guest writes `data`.
    Out,
}

/// One return of `KVM_RUN`, decoded.
#[derive(Debug)]
pub enum Exit<'a> {
    /// Port I/O (`KVM_EXIT_IO`): `data` holds `data.len() / size` elements
    /// of `size` bytes (more than one for a string instruction such as
    /// `rep outsb`), each its own access to `port`, in order.
    Io {
        /// The port.
        port: u16,
        /// Bytes per element.
        size: u8,
        /// In or out.
        direction: Direction,
        /// The elements, in KVM's `kvm_run` page.
        data: &'a mut [u8],
    },
    /// An access to guest physical memory KVM does not back
    /// (`KVM_EXIT_MMIO`).
    Mmio {
        /// Guest physical address.
        addr: u64,
        /// Read or write.
        direction: Direction,
        /// The bytes, in KVM's `kvm_run` page.
        data: &'a mut [u8],
    },
    /// `HLT` exited (it never should with the in-kernel local APIC).
    Hlt,
    /// Triple fault (`KVM_EXIT_SHUTDOWN`).
    Shutdown {
        /// Instruction pointer, if readable.
        rip: Option<u64>,
    },
    /// `KVM_EXIT_SYSTEM_EVENT` of this type.
    SystemEvent(u32),
    /// `KVM_EXIT_INTERNAL_ERROR`.
    InternalError {
        /// KVM's suberror (1 = emulation failure).
        suberror: u32,
        /// Instruction pointer, if readable.
        rip: Option<u64>,
    },
    /// `KVM_EXIT_FAIL_ENTRY` with its hardware reason.
    FailEntry(u64),
    /// `KVM_RUN` returned with nothing to do: a signal (`EINTR`,
    /// `KVM_EXIT_INTR`) or an interrupt window.
    Interrupted,
    /// `KVM_RUN` returned `EAGAIN`.
    Again,
    /// Any other exit reason, or `KVM_RUN` failed otherwise.
    Other(String),
}

/// What the vCPU does after an exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Enter the guest again.
    Continue,
    /// Enter the guest again after a pause that grows while `KVM_RUN`
    /// keeps having nothing to run, silently: `EAGAIN` comes once or twice
    /// while an AP takes INIT/SIPI, and at once from every `KVM_RUN` of a
    /// vCPU with an event it cannot take (an NMI before INIT/SIPI).
    BackOff,
    /// End the VM.
    End(VmExit),
}

/// Handles one exit on `bus` of the vCPU whose exits `log` times and
/// records.
pub fn handle(exit: Exit<'_>, bus: &Bus, log: &mut ExitLog) -> Action {
    let cpu = log.cpu();
    let end = |what: String| Action::End(VmExit::Error { cpu, what });
    match exit {
        Exit::Io {
            port,
            size,
            direction,
            data,
        } => port_io(port, size, direction, data, bus, log),
        Exit::Mmio {
            addr,
            direction,
            data,
        } => {
            let t0 = ExitLog::start();
            match direction {
                Direction::In => bus.mmio_read(addr, data),
                Direction::Out => bus.mmio_write(addr, data),
            }
            log.access(Space::Mmio, direction == Direction::Out, addr, data, t0);
            Action::Continue
        }
        // With the in-kernel local APIC, HLT never exits; if it does, the
        // CPU halted with nothing to wake it.
        Exit::Hlt => end("halted with interrupts that can never arrive (HLT exit)".into()),
        Exit::Shutdown { rip } => Action::End(VmExit::TripleFault { cpu, rip }),
        Exit::SystemEvent(SYSTEM_EVENT_RESET) => Action::End(VmExit::Reset),
        Exit::SystemEvent(SYSTEM_EVENT_SHUTDOWN) => Action::End(VmExit::Shutdown),
        Exit::SystemEvent(t) => end(format!("unexpected KVM system event {t}")),
        Exit::InternalError { suberror, rip } => {
            Action::End(VmExit::InternalError { cpu, suberror, rip })
        }
        Exit::FailEntry(reason) => Action::End(VmExit::FailEntry { cpu, reason }),
        Exit::Interrupted => Action::Continue,
        Exit::Again => Action::BackOff,
        Exit::Other(what) => end(what),
    }
}

/// One port I/O exit: one access of `size` bytes per element, in order,
/// each timed and recorded on its own; a write that resets the machine or
/// powers it off ends the exit there.
fn port_io(
    port: u16,
    size: u8,
    direction: Direction,
    data: &mut [u8],
    bus: &Bus,
    log: &mut ExitLog,
) -> Action {
    for element in data.chunks_mut(usize::from(size.max(1))) {
        let t0 = ExitLog::start();
        let outcome = match direction {
            Direction::In => {
                bus.pio_read(port, element);
                PioOutcome::Done
            }
            Direction::Out => bus.pio_write(port, element),
        };
        let write = direction == Direction::Out;
        log.access(Space::Port, write, port.into(), element, t0);
        match outcome {
            PioOutcome::Done => {}
            PioOutcome::Reset => return Action::End(VmExit::Reset),
            PioOutcome::PowerOff => return Action::End(VmExit::PowerOff),
        }
    }
    Action::Continue
}

/// Why the VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest asked for a reset (i8042, port 0xcf9, or a KVM system event).
    Reset,
    /// The guest powered off through a KVM system event.
    Shutdown,
    /// The guest powered off through ACPI: S5 written to PM1a control.
    PowerOff,
    /// Triple fault (KVM_EXIT_SHUTDOWN) on a vCPU.
    TripleFault {
        /// vCPU index.
        cpu: u8,
        /// Instruction pointer when it happened, if readable.
        rip: Option<u64>,
    },
    /// KVM could not emulate or run the guest.
    InternalError {
        /// vCPU index.
        cpu: u8,
        /// KVM's suberror (1 = emulation failure).
        suberror: u32,
        /// Instruction pointer, if readable.
        rip: Option<u64>,
    },
    /// VM entry failed.
    FailEntry {
        /// vCPU index.
        cpu: u8,
        /// Hardware reason.
        reason: u64,
    },
    /// An ioctl failed or an exit we cannot handle arrived.
    Error {
        /// vCPU index.
        cpu: u8,
        /// What happened.
        what: String,
    },
}

impl VmExit {
    /// Process exit status: 0 for a guest-requested reset or power-off.
    pub fn status(&self) -> i32 {
        match self {
            VmExit::Reset | VmExit::Shutdown | VmExit::PowerOff => 0,
            _ => 1,
        }
    }
}

impl std::fmt::Display for VmExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rip = |r: &Option<u64>| r.map_or("unknown".to_string(), |r| format!("{r:#x}"));
        match self {
            VmExit::Reset => write!(f, "guest reset (reboot)"),
            VmExit::Shutdown => write!(f, "guest shutdown"),
            VmExit::PowerOff => write!(f, "guest power-off (ACPI S5)"),
            VmExit::TripleFault { cpu, rip: r } => {
                write!(f, "triple fault on vCPU {cpu} at rip {}", rip(r))
            }
            VmExit::InternalError {
                cpu,
                suberror,
                rip: r,
            } => write!(
                f,
                "KVM internal error on vCPU {cpu}, suberror {suberror}{} at rip {}",
                if *suberror == 1 {
                    " (emulation failure)"
                } else {
                    ""
                },
                rip(r)
            ),
            VmExit::FailEntry { cpu, reason } => {
                write!(
                    f,
                    "VM entry failed on vCPU {cpu}, hardware reason {reason:#x}"
                )
            }
            VmExit::Error { cpu, what } => write!(f, "vCPU {cpu}: {what}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::RESET_CONTROL_PORT;
    use crate::legacy::{EventFdTrigger, Legacy, SERIAL_PORT};
    use edu_trace::decode::Decoder;
    use edu_trace::event::read_events;
    use edu_trace::recorder::{Caps, Recorder, TraceWriter, WriterThread};
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    /// The console's output, shared with the test.
    #[derive(Clone, Default)]
    struct Console(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Console {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn bus() -> (Bus, Console) {
        let console = Console::default();
        let reset = EventFdTrigger::new().unwrap();
        let reset_rx = reset.try_clone().unwrap();
        let legacy = Legacy::new(
            EventFdTrigger::new().unwrap(),
            reset,
            Box::new(console.clone()),
        );
        (Bus::new(legacy, reset_rx, false), console)
    }

    fn io(port: u16, size: u8, direction: Direction, data: &mut [u8]) -> Exit<'_> {
        Exit::Io {
            port,
            size,
            direction,
            data,
        }
    }

    #[test]
    fn string_port_io_is_one_access_per_element() {
        let (bus, console) = bus();
        // rep outsb of three bytes: three 1-byte writes, in order.
        let mut log = ExitLog::new(0, None);
        let mut text = *b"abc";
        let a = handle(
            io(SERIAL_PORT, 1, Direction::Out, &mut text),
            &bus,
            &mut log,
        );
        assert_eq!(a, Action::Continue);
        assert_eq!(*console.0.lock().unwrap(), b"abc");
        // rep insw of two elements from a port nothing decodes: each
        // element read on its own, all ones.
        let mut words = [0u8; 4];
        handle(io(0x1234, 2, Direction::In, &mut words), &bus, &mut log);
        assert_eq!(words, [0xff; 4]);
        assert_eq!(bus.stats.pio.load(Ordering::Relaxed), 5);
        assert_eq!(bus.stats.unhandled.count(), 2);
        assert_eq!(log.stats().count(), 5, "each element timed");
    }

    #[test]
    fn a_reset_write_ends_the_vm_and_the_rest_of_the_string() {
        let (bus, console) = bus();
        let mut log = ExitLog::new(1, None);
        let mut data = [0x06u8, 0x06];
        let a = handle(
            io(RESET_CONTROL_PORT, 1, Direction::Out, &mut data),
            &bus,
            &mut log,
        );
        assert_eq!(a, Action::End(VmExit::Reset));
        assert_eq!(bus.stats.pio.load(Ordering::Relaxed), 1);
        assert_eq!(log.stats().count(), 1);
        let mut kbd = [0xfeu8];
        assert_eq!(
            handle(io(0x64, 1, Direction::Out, &mut kbd), &bus, &mut log),
            Action::End(VmExit::Reset)
        );
        assert!(console.0.lock().unwrap().is_empty());
    }

    #[test]
    fn acpi_s5_ends_the_vm_as_a_power_off_with_status_0() {
        let (bus, _) = bus();
        let mut log = ExitLog::new(0, None);
        let port = crate::acpi::PM1A_CNT_BLK;
        let s5 = u16::from(crate::acpi::S5_SLP_TYP) << 10;
        // SLP_TYP alone, then with SLP_EN, then a write that never comes.
        let mut data = [s5.to_le_bytes(), (s5 | 1 << 13).to_le_bytes(), [0, 0]].concat();
        let a = handle(io(port, 2, Direction::Out, &mut data), &bus, &mut log);
        assert_eq!(a, Action::End(VmExit::PowerOff));
        assert_eq!(log.stats().count(), 2, "nothing after the power-off");
        assert_eq!(VmExit::PowerOff.status(), 0);
        assert_eq!(VmExit::PowerOff.to_string(), "guest power-off (ACPI S5)");
    }

    #[test]
    fn mmio_to_nothing_reads_all_ones_and_continues() {
        let (bus, _) = bus();
        let mut log = ExitLog::new(0, None);
        let mut data = [0u8; 8];
        let read = Exit::Mmio {
            addr: 0xd000_0000,
            direction: Direction::In,
            data: &mut data,
        };
        assert_eq!(handle(read, &bus, &mut log), Action::Continue);
        assert_eq!(data, [0xff; 8]);
        let write = Exit::Mmio {
            addr: 0xd000_0000,
            direction: Direction::Out,
            data: &mut data,
        };
        assert_eq!(handle(write, &bus, &mut log), Action::Continue);
        assert_eq!(bus.stats.mmio.load(Ordering::Relaxed), 2);
        assert_eq!(log.stats().count(), 2);
    }

    #[test]
    fn exits_that_end_the_vm_say_why() {
        let (bus, _) = bus();
        let mut log = ExitLog::new(3, None);
        let mut end = |e| match handle(e, &bus, &mut log) {
            Action::End(v) => v,
            a => panic!("{a:?}"),
        };
        assert_eq!(
            end(Exit::Shutdown { rip: Some(0x1000) }),
            VmExit::TripleFault {
                cpu: 3,
                rip: Some(0x1000)
            }
        );
        assert_eq!(end(Exit::SystemEvent(SYSTEM_EVENT_RESET)), VmExit::Reset);
        assert_eq!(
            end(Exit::SystemEvent(SYSTEM_EVENT_SHUTDOWN)),
            VmExit::Shutdown
        );
        assert!(end(Exit::SystemEvent(9))
            .to_string()
            .contains("system event 9"));
        assert!(end(Exit::Hlt).to_string().contains("HLT exit"));
        assert_eq!(
            end(Exit::InternalError {
                suberror: 3,
                rip: None
            }),
            VmExit::InternalError {
                cpu: 3,
                suberror: 3,
                rip: None
            }
        );
        assert_eq!(
            end(Exit::FailEntry(0x80)),
            VmExit::FailEntry {
                cpu: 3,
                reason: 0x80
            }
        );
        assert_eq!(
            end(Exit::Other("KVM_RUN failed: EFAULT".into())).to_string(),
            "vCPU 3: KVM_RUN failed: EFAULT"
        );
        assert_eq!(handle(Exit::Interrupted, &bus, &mut log), Action::Continue);
        assert_eq!(handle(Exit::Again, &bus, &mut log), Action::BackOff);
        assert_eq!(log.stats().count(), 0, "no access, nothing timed");
    }

    /// With `--trace`, every access an exit makes reaches the recorder, in
    /// order, with its vCPU and value: string I/O element by element.
    #[test]
    fn with_a_recorder_every_access_is_recorded() {
        let (bus, _) = bus();
        let rec = Recorder::new(Caps::default());
        let w = TraceWriter::new(Vec::new(), Decoder::new(), "edu-vmm", Caps::default()).unwrap();
        let writer = WriterThread::spawn("test-writer", rec.clone(), w).unwrap();
        let mut log = ExitLog::new(2, Some(rec));
        let mut text = *b"hi";
        handle(
            io(SERIAL_PORT, 1, Direction::Out, &mut text),
            &bus,
            &mut log,
        );
        let mut data = [0u8; 4];
        let read = Exit::Mmio {
            addr: 0xd000_0000,
            direction: Direction::In,
            data: &mut data,
        };
        handle(read, &bus, &mut log);
        handle(Exit::Interrupted, &bus, &mut log);
        assert_eq!(log.stats().count(), 3);
        let out = writer.finish().unwrap();
        let ev = read_events(out.as_slice()).unwrap();
        let accesses: Vec<(&str, Option<u32>, &str)> = ev
            .iter()
            .filter(|e| e.is_access())
            .map(|e| (e.kind.as_str(), e.vcpu, e.text.as_str()))
            .collect();
        assert_eq!(
            accesses,
            [
                ("pio_write", Some(2), "COM1 THR <- 'h'"),
                ("pio_write", Some(2), "COM1 THR <- 'i'"),
                (
                    "mmio_read",
                    Some(2),
                    "mmio 0xd0000000 -> 0xffffffff: nothing decodes this address"
                ),
            ]
        );
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(VmExit::Reset.status(), 0);
        assert_eq!(VmExit::Shutdown.status(), 0);
        assert_eq!(VmExit::TripleFault { cpu: 0, rip: None }.status(), 1);
        let e = VmExit::InternalError {
            cpu: 1,
            suberror: 1,
            rip: Some(0x1000),
        };
        assert_eq!(e.status(), 1);
        assert!(e.to_string().contains("emulation failure"));
        assert!(e.to_string().contains("0x1000"));
    }
}
