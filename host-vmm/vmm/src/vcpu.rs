//! The vCPU run loop: one thread per vCPU, `KVM_RUN` until an exit the
//! device bus handles, or one that ends the VM.

use std::sync::mpsc::Sender;
use std::sync::Arc;

use kvm_bindings::{kvm_run, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_IO, KVM_EXIT_IO_OUT};
use kvm_ioctls::{VcpuExit, VcpuFd};

use edu_trace::decode::Space;

use crate::bus::{Bus, PioOutcome};
use crate::trace::ExitLog;

/// `KVM_SYSTEM_EVENT_SHUTDOWN` and `KVM_SYSTEM_EVENT_RESET`.
const SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const SYSTEM_EVENT_RESET: u32 = 2;

/// The accesses one port I/O exit stands for: `data` holds `count`
/// elements of `size` bytes (count > 1 for a string instruction such as
/// `rep outsb` or `insw`), each its own access to the same port, in order.
fn pio_elements(data: &mut [u8], size: u8) -> std::slice::ChunksMut<'_, u8> {
    data.chunks_mut(usize::from(size.max(1)))
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

/// A vCPU ready to run.
pub struct Vcpu {
    fd: VcpuFd,
    id: u8,
    bus: Arc<Bus>,
    log: ExitLog,
}

impl Vcpu {
    /// Wraps a configured vCPU; `log` times (and traces) its exits.
    pub fn new(fd: VcpuFd, id: u8, bus: Arc<Bus>, log: ExitLog) -> Self {
        Vcpu { fd, id, bus, log }
    }

    /// Logs where the vCPU is (after a watchdog kick: the guest made no
    /// exit for a while).
    fn report_position(&self) {
        let regs = self.fd.get_regs();
        let sregs = self.fd.get_sregs();
        match (regs, sregs) {
            (Ok(r), Ok(s)) => log::info!(
                "vcpu {}: no exit for a while; rip {:#x} rsp {:#x} rflags {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x} cs {:#x}/l{}d{}",
                self.id, r.rip, r.rsp, r.rflags, s.cr0, s.cr3, s.cr4, s.efer, s.cs.selector, s.cs.l, s.cs.db
            ),
            _ => log::info!("vcpu {}: no exit for a while; registers unreadable", self.id),
        }
    }

    fn rip(&self) -> Option<u64> {
        self.fd.get_regs().ok().map(|r| r.rip)
    }

    fn internal_suberror(&mut self) -> u32 {
        let run = self.fd.get_kvm_run();
        if run.exit_reason != KVM_EXIT_INTERNAL_ERROR {
            return 0;
        }
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal`
        // is the member of the exit union KVM filled in; it is plain data.
        unsafe { run.__bindgen_anon_1.internal.suberror }
    }

    /// Handles a `KVM_EXIT_IO` as `count` accesses of `size` bytes. The
    /// exit's size and count are not in kvm-ioctls' `IoIn`/`IoOut` (only
    /// their product, the buffer's length), so they come from `kvm_run`.
    fn port_io(&mut self) -> Option<VmExit> {
        let run: &mut kvm_run = self.fd.get_kvm_run();
        if run.exit_reason != KVM_EXIT_IO {
            return Some(VmExit::Error {
                cpu: self.id,
                what: format!("port I/O exit with exit reason {}", run.exit_reason),
            });
        }
        // SAFETY: the exit reason is KVM_EXIT_IO, so `io` is the member of
        // the exit union KVM filled in; it is plain data.
        let io = unsafe { run.__bindgen_anon_1.io };
        let len = usize::from(io.size) * io.count as usize;
        let base = (run as *mut kvm_run).cast::<u8>();
        // SAFETY: KVM put the `size * count` data bytes at `data_offset`
        // inside the vCPU's kvm_run mapping, which the VcpuFd keeps mapped
        // for as long as it lives (kvm-ioctls builds its IoIn/IoOut slice
        // the same way). `run` borrows the VcpuFd mutably for the slice's
        // life, and nothing else touches those bytes before the next KVM_RUN.
        let data =
            unsafe { std::slice::from_raw_parts_mut(base.add(io.data_offset as usize), len) };
        let write = u32::from(io.direction) == KVM_EXIT_IO_OUT;
        for element in pio_elements(data, io.size) {
            let t0 = ExitLog::start();
            let outcome = if write {
                self.bus.pio_write(io.port, element)
            } else {
                self.bus.pio_read(io.port, element);
                PioOutcome::Done
            };
            self.log
                .access(Space::Port, write, io.port.into(), element, t0);
            match outcome {
                PioOutcome::Done => {}
                PioOutcome::Reset => return Some(VmExit::Reset),
                PioOutcome::PowerOff => return Some(VmExit::PowerOff),
            }
        }
        None
    }

    /// Runs one `KVM_RUN` and handles its exit; `Some` ends the VM.
    pub fn run_once(&mut self) -> Option<VmExit> {
        let cpu = self.id;
        let r = self.fd.run();
        if log::log_enabled!(log::Level::Trace) {
            log::trace!("vcpu {cpu}: {r:?}");
        }
        match r {
            Ok(VcpuExit::IoIn(..)) | Ok(VcpuExit::IoOut(..)) => self.port_io(),
            Ok(VcpuExit::MmioRead(addr, data)) => {
                let t0 = ExitLog::start();
                self.bus.mmio_read(addr, data);
                self.log.access(Space::Mmio, false, addr, data, t0);
                None
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                let t0 = ExitLog::start();
                self.bus.mmio_write(addr, data);
                self.log.access(Space::Mmio, true, addr, data, t0);
                None
            }
            Ok(VcpuExit::Hlt) => {
                // With the in-kernel LAPIC, HLT never exits; if it does, the
                // CPU halted with nothing to wake it.
                Some(VmExit::Error {
                    cpu,
                    what: "halted with interrupts that can never arrive (HLT exit)".into(),
                })
            }
            Ok(VcpuExit::Shutdown) => Some(VmExit::TripleFault {
                cpu,
                rip: self.rip(),
            }),
            Ok(VcpuExit::SystemEvent(t, _)) => Some(match t {
                SYSTEM_EVENT_RESET => VmExit::Reset,
                SYSTEM_EVENT_SHUTDOWN => VmExit::Shutdown,
                t => VmExit::Error {
                    cpu,
                    what: format!("unexpected KVM system event {t}"),
                },
            }),
            Ok(VcpuExit::InternalError) => Some(VmExit::InternalError {
                cpu,
                suberror: self.internal_suberror(),
                rip: self.rip(),
            }),
            Ok(VcpuExit::FailEntry(reason, _)) => Some(VmExit::FailEntry { cpu, reason }),
            Ok(VcpuExit::Intr) | Ok(VcpuExit::IrqWindowOpen) => None,
            Ok(other) => Some(VmExit::Error {
                cpu,
                what: format!("unhandled KVM exit {other:?}"),
            }),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.report_position();
                None
            }
            Err(e) => Some(VmExit::Error {
                cpu,
                what: format!("KVM_RUN failed: {e}"),
            }),
        }
    }

    /// Runs until the VM ends, then reports why on `exits`.
    pub fn run(mut self, exits: Sender<VmExit>) {
        log::debug!("vcpu {}: running", self.id);
        let reason = loop {
            if let Some(r) = self.run_once() {
                break r;
            }
        };
        // The receiver only goes away when the VMM is already exiting.
        let _ = exits.send(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        assert_eq!(VmExit::Reset.status(), 0);
        assert_eq!(VmExit::Shutdown.status(), 0);
        assert_eq!(VmExit::PowerOff.status(), 0);
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

    #[test]
    fn one_port_access_per_element() {
        let mut single = *b"\x12\x34";
        let v: Vec<&mut [u8]> = pio_elements(&mut single, 2).collect();
        assert_eq!(v, [&[0x12, 0x34]]);

        // rep outsb of three bytes: three 1-byte accesses, in order.
        let mut outsb = *b"abc";
        let v: Vec<&mut [u8]> = pio_elements(&mut outsb, 1).collect();
        assert_eq!(v, [b"a", b"b", b"c"]);

        // rep insd, count 2: two 4-byte accesses, each filled in place.
        let mut insd = [0u8; 8];
        for (i, e) in pio_elements(&mut insd, 4).enumerate() {
            e.copy_from_slice(&(i as u32 + 1).to_le_bytes());
        }
        assert_eq!(insd, [1, 0, 0, 0, 2, 0, 0, 0]);
    }
}
