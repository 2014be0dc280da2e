//! The vCPU run loop: one thread per vCPU, `KVM_RUN`, then the exit
//! decoded from `kvm_run` into an [`Exit`] and handled by
//! [`exit::handle`] (which times and, with `--trace`, records each access
//! in the vCPU's own [`ExitLog`]), until an exit ends the VM or the main
//! thread asks the vCPU to stop. The thread then hands the vCPU back, with
//! its exit log, to whoever joins it.
//!
//! The main thread asks through [`Requests`] (stop; say where you are) and
//! then kicks the thread with [`kick`]: a signal whose handler sets
//! `immediate_exit` in the thread's `kvm_run`, so that the `KVM_RUN` in
//! progress, or the next one, returns at once (`EINTR`). The thread clears
//! `immediate_exit` after every exit and only then reads the requests, so a
//! request is never left waiting for an exit that may not come.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use edu_devices::guest_log;
use kvm_bindings::{kvm_run, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_IO, KVM_EXIT_IO_OUT, KVM_EXIT_MMIO};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use crate::bus::Bus;
use crate::exit::{self, Action, Direction, Exit, VmExit};
use crate::trace::ExitLog;

/// What the main thread asks of a running vCPU thread; it sets a request,
/// then [`kick`]s the thread.
#[derive(Debug, Default)]
pub struct Requests {
    stop: AtomicBool,
    report: AtomicBool,
}

impl Requests {
    /// Asks the vCPU to leave its loop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Asks the vCPU to log where it is (the watchdog saw no exit).
    pub fn report(&self) {
        self.report.store(true, Ordering::SeqCst);
    }
}

thread_local! {
    /// This thread's `kvm_run` while it runs a vCPU, for [`kick_handler`].
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The kick signal's handler: the `KVM_RUN` in progress on this thread,
/// or its next one, returns `EINTR` at once.
extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let run = KVM_RUN.get();
    if !run.is_null() {
        // SAFETY: `run` is this thread's vCPU's kvm_run mapping, set by
        // `Vcpu::run` and cleared before that vCPU (and its mapping) can
        // go; KVM reads `immediate_exit` at the next KVM_RUN. A one-byte
        // volatile store from the handler is how KVM documents its use
        // (Firecracker does the same).
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

/// The signal that kicks a vCPU thread.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

/// Installs the kick signal's handler (once, before vCPU threads run).
pub fn register_kick_handler() -> std::io::Result<()> {
    register_signal_handler(kick_signal(), kick_handler)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

/// Kicks the vCPU thread `thread` out of `KVM_RUN` (see the module
/// documentation); harmless if it is not in `KVM_RUN` or has ended.
pub fn kick<T>(thread: &JoinHandle<T>) {
    use std::os::unix::thread::JoinHandleExt;
    // std's handle is a u64; libc's pthread_t is a u64 on glibc and a
    // pointer on musl.
    #[allow(clippy::unnecessary_cast)]
    let pt = thread.as_pthread_t() as libc::pthread_t;
    // SAFETY: the pthread_t belongs to a thread whose JoinHandle is alive
    // (not joined or detached), so it names that thread; the kick signal
    // has a handler (`register_kick_handler`).
    unsafe { libc::pthread_kill(pt, kick_signal()) };
}

/// The pause before the next `KVM_RUN` after `EAGAIN`s in a row: none for
/// the first [`Backoff::FREE`] (an AP taking INIT/SIPI returns `EAGAIN`
/// once or twice), then from [`Backoff::FIRST`] doubling up to
/// [`Backoff::MAX`], so a vCPU KVM cannot run costs about a hundred calls
/// a second instead of a host core.
#[derive(Debug, Default)]
struct Backoff {
    again: u32,
}

impl Backoff {
    const FREE: u32 = 2;
    const FIRST: Duration = Duration::from_micros(100);
    const MAX: Duration = Duration::from_millis(10);

    /// Counts one more `EAGAIN` and returns the pause before retrying.
    fn pause(&mut self) -> Duration {
        self.again = self.again.saturating_add(1);
        match self.again.checked_sub(Self::FREE + 1) {
            None => Duration::ZERO,
            Some(doublings) => Self::FIRST
                .saturating_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
                .min(Self::MAX),
        }
    }

    /// `KVM_RUN` ran the guest again.
    fn reset(&mut self) {
        self.again = 0;
    }
}

/// A vCPU ready to run.
pub struct Vcpu {
    fd: VcpuFd,
    id: u8,
    bus: Arc<Bus>,
    /// Test hook (`--test-panic-on-port`): a write to this port panics.
    panic_port: Option<u16>,
    /// Position reports made (rate-limited through [`guest_log`]).
    reports: u64,
    /// Its exits' statistics and, with `--trace`, the recorder.
    log: ExitLog,
}

/// The vCPU's fd (for its seccomp filter, and mapping RAM in advance).
impl std::os::fd::AsRawFd for Vcpu {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl Vcpu {
    /// Wraps a configured vCPU, whose exits go to `log` (and its index is
    /// the log's).
    pub fn new(fd: VcpuFd, bus: Arc<Bus>, panic_port: Option<u16>, log: ExitLog) -> Self {
        Vcpu {
            fd,
            id: log.cpu(),
            bus,
            panic_port,
            reports: 0,
            log,
        }
    }

    /// The vCPU's exit log, once its thread has been joined; the vCPU
    /// itself (its fd) is closed.
    pub fn into_exit_log(self) -> ExitLog {
        self.log
    }

    /// Logs where the vCPU is, when the watchdog asked (the guest made no
    /// exit for a while): stalled in `EAGAIN`s, or its registers.
    fn report_position(&mut self, backoff: &Backoff) {
        self.reports += 1;
        let (id, n) = (self.id, self.reports);
        let report = |args| guest_log::log(n, log::Level::Info, "position report", args);
        if backoff.again > 0 {
            return report(format_args!(
                "vcpu {id}: stalled: KVM_RUN returned EAGAIN {} times in a row (KVM cannot \
                 run it, e.g. an NMI or interrupt pending before INIT/SIPI)",
                backoff.again
            ));
        }
        match (self.fd.get_regs(), self.fd.get_sregs()) {
            (Ok(r), Ok(s)) => report(format_args!(
                "vcpu {id}: no exit for a while; rip {:#x} rsp {:#x} rflags {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x} cs {:#x}/l{}d{}",
                r.rip, r.rsp, r.rflags, s.cr0, s.cr3, s.cr4, s.efer, s.cs.selector, s.cs.l, s.cs.db
            )),
            _ => report(format_args!("vcpu {id}: no exit for a while; registers unreadable")),
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

    /// Runs until an exit ends the VM (reported on `exits`) or `requests`
    /// asks it to stop, then hands the vCPU back: its file is closed by
    /// whoever tears the VM down, after every vCPU has stopped.
    pub fn run(mut self, requests: &Requests, exits: Sender<VmExit>) -> Self {
        log::debug!("vcpu {}: running", self.id);
        KVM_RUN.set(self.fd.get_kvm_run() as *mut kvm_run);
        let mut backoff = Backoff::default();
        let why = loop {
            if requests.stop.load(Ordering::SeqCst) {
                break None;
            }
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
            match exit::handle(exit, &self.bus, &mut self.log) {
                Action::End(why) => break Some(why),
                Action::Continue => backoff.reset(),
                Action::BackOff => std::thread::sleep(backoff.pause()),
            }
            // A kick may have set it; clear it before reading the requests
            // (see the module documentation).
            self.fd.set_kvm_immediate_exit(0);
            if requests.report.swap(false, Ordering::SeqCst) {
                self.report_position(&backoff);
            }
        };
        KVM_RUN.set(std::ptr::null_mut());
        if let Some(why) = why {
            // The receiver only goes away when the VMM is already exiting.
            let _ = exits.send(why);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_free_at_first_then_doubles_to_a_cap() {
        let mut b = Backoff::default();
        let pauses: Vec<Duration> = (0..12).map(|_| b.pause()).collect();
        let us = Duration::from_micros;
        assert_eq!(
            pauses,
            [
                Duration::ZERO,
                Duration::ZERO,
                us(100),
                us(200),
                us(400),
                us(800),
                us(1600),
                us(3200),
                us(6400),
                us(10_000),
                us(10_000),
                us(10_000)
            ]
        );
        b.again = u32::MAX - 1;
        assert_eq!(b.pause(), Backoff::MAX);
        assert_eq!(b.pause(), Backoff::MAX, "saturates");
        b.reset();
        assert_eq!(b.pause(), Duration::ZERO);
    }

    #[test]
    fn a_stalled_second_is_about_a_hundred_retries() {
        let mut b = Backoff::default();
        let mut t = Duration::ZERO;
        let mut n = 0;
        while t < Duration::from_secs(1) {
            t += b.pause();
            n += 1;
        }
        assert!((95..=110).contains(&n), "{n} retries in a second");
    }

    #[test]
    fn requests_are_read_once() {
        let r = Requests::default();
        r.report();
        assert!(r.report.swap(false, Ordering::SeqCst));
        assert!(!r.report.swap(false, Ordering::SeqCst));
        assert!(!r.stop.load(Ordering::SeqCst));
        r.stop();
        assert!(r.stop.load(Ordering::SeqCst));
    }
}
