//! The vCPU run loop: one thread per vCPU, `KVM_RUN`, then the exit
//! decoded from `kvm_run` into an [`Exit`] and handled by
//! [`exit::handle`], until an exit ends the VM.

use std::sync::mpsc::Sender;
use std::sync::Arc;

use kvm_bindings::{kvm_run, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_IO, KVM_EXIT_IO_OUT, KVM_EXIT_MMIO};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::bus::Bus;
use crate::exit::{self, Action, Direction, Exit, VmExit};

/// A vCPU ready to run.
pub struct Vcpu {
    fd: VcpuFd,
    id: u8,
    bus: Arc<Bus>,
    /// Test hook (`--test-panic-on-port`): a write to this port panics.
    panic_port: Option<u16>,
}

impl Vcpu {
    /// Wraps a configured vCPU.
    pub fn new(fd: VcpuFd, id: u8, bus: Arc<Bus>, panic_port: Option<u16>) -> Self {
        Vcpu {
            fd,
            id,
            bus,
            panic_port,
        }
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

    fn rip(fd: &VcpuFd) -> Option<u64> {
        fd.get_regs().ok().map(|r| r.rip)
    }

    fn internal_suberror(fd: &mut VcpuFd) -> u32 {
        let run = fd.get_kvm_run();
        if run.exit_reason != KVM_EXIT_INTERNAL_ERROR {
            return 0;
        }
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal`
        // is the member of the exit union KVM filled in; it is plain data.
        unsafe { run.__bindgen_anon_1.internal.suberror }
    }

    /// The data of a `KVM_EXIT_IO` as an [`Exit::Io`]. Its size and count
    /// are not in kvm-ioctls' `IoIn`/`IoOut` (only their product, the
    /// buffer's length), so they come from `kvm_run`.
    fn port_io_exit(run: &mut kvm_run) -> Exit<'_> {
        if run.exit_reason != KVM_EXIT_IO {
            return Exit::Other(format!(
                "port I/O exit with exit reason {}",
                run.exit_reason
            ));
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
        Exit::Io {
            port: io.port,
            size: io.size,
            direction: if u32::from(io.direction) == KVM_EXIT_IO_OUT {
                Direction::Out
            } else {
                Direction::In
            },
            data,
        }
    }

    /// The data of a `KVM_EXIT_MMIO` as an [`Exit::Mmio`], from `kvm_run`
    /// as for port I/O (kvm-ioctls hands a write's data out read-only).
    fn mmio_exit(run: &mut kvm_run) -> Exit<'_> {
        if run.exit_reason != KVM_EXIT_MMIO {
            return Exit::Other(format!("MMIO exit with exit reason {}", run.exit_reason));
        }
        // SAFETY: the exit reason is KVM_EXIT_MMIO, so `mmio` is the member
        // of the exit union KVM filled in; it is plain data, and `run`
        // borrows the VcpuFd's kvm_run mutably for the slice's life.
        let mmio = unsafe { &mut run.__bindgen_anon_1.mmio };
        let len = (mmio.len as usize).min(mmio.data.len());
        Exit::Mmio {
            addr: mmio.phys_addr,
            direction: if mmio.is_write != 0 {
                Direction::Out
            } else {
                Direction::In
            },
            data: &mut mmio.data[..len],
        }
    }

    /// Runs `KVM_RUN` once on vCPU `id` and decodes what it returned.
    fn run_and_decode(fd: &mut VcpuFd, id: u8) -> Exit<'_> {
        let r = fd.run();
        if log::log_enabled!(log::Level::Trace) {
            log::trace!("vcpu {id}: {r:?}");
        }
        match r {
            Ok(VcpuExit::IoIn(..)) | Ok(VcpuExit::IoOut(..)) => {
                Self::port_io_exit(fd.get_kvm_run())
            }
            Ok(VcpuExit::MmioRead(..)) | Ok(VcpuExit::MmioWrite(..)) => {
                Self::mmio_exit(fd.get_kvm_run())
            }
            Ok(VcpuExit::Hlt) => Exit::Hlt,
            Ok(VcpuExit::Shutdown) => Exit::Shutdown { rip: Self::rip(fd) },
            Ok(VcpuExit::SystemEvent(t, _)) => Exit::SystemEvent(t),
            Ok(VcpuExit::InternalError) => Exit::InternalError {
                suberror: Self::internal_suberror(fd),
                rip: Self::rip(fd),
            },
            Ok(VcpuExit::FailEntry(reason, _)) => Exit::FailEntry(reason),
            Ok(VcpuExit::Intr) | Ok(VcpuExit::IrqWindowOpen) => Exit::Interrupted,
            Ok(other) => Exit::Other(format!("unhandled KVM exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR => Exit::Interrupted,
            Err(e) if e.errno() == libc::EAGAIN => Exit::Again,
            Err(e) => Exit::Other(format!("KVM_RUN failed: {e}")),
        }
    }

    /// Runs one `KVM_RUN` and handles its exit; `Some` ends the VM.
    pub fn run_once(&mut self) -> Option<VmExit> {
        let exit = Self::run_and_decode(&mut self.fd, self.id);
        if let Exit::Io {
            port,
            direction: Direction::Out,
            ..
        } = exit
        {
            assert!(
                Some(port) != self.panic_port,
                "vcpu {}: write to port {port:#x} (--test-panic-on-port)",
                self.id
            );
        }
        let interrupted = matches!(exit, Exit::Interrupted | Exit::Again);
        match exit::handle(self.id, exit, &self.bus) {
            Action::End(why) => Some(why),
            Action::Continue => {
                if interrupted {
                    self.report_position();
                }
                None
            }
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
