//! The seccomp filters of the VMM's threads (compiled by seccompiler).
//!
//! Each kind of thread that runs while the guest runs has its own filter,
//! which the thread installs on itself once its start-up is done and before
//! it serves the guest ([`Policy::install`]): a vCPU, an edu worker, an
//! INTx resample thread, the console input thread, the trace writer
//! (`--trace`), and the main thread (watchdog and teardown). The filters
//! allow only what that kind of thread does, with argument rules:
//!
//! - `ioctl` only on the thread's own fds and with exactly the requests it
//!   makes: a vCPU `KVM_RUN`, `KVM_GET_REGS`, `KVM_GET_SREGS` on its own
//!   vCPU fd, and vCPUs and edu workers `KVM_SIGNAL_MSI` on the VM fd;
//!   nobody anything else (no `KVM_IRQ_LINE`: INTx goes through irqfds);
//! - signals only within this process and only those used: any thread may
//!   send itself `SIGABRT` (`abort` on a panic), the main thread may kick
//!   the vCPU threads with the kick signal (`tgkill` for glibc, `tkill` for
//!   musl, each with the exact thread ids);
//! - memory: `mmap`, `mprotect` never with `PROT_EXEC`, `mremap` without
//!   `MREMAP_FIXED` or `MREMAP_DONTUNMAP`, `madvise` only
//!   `MADV_DONTNEED`/`MADV_FREE` (the allocators and thread exit);
//! - `futex` without the priority-inheritance operations (only wait, wake,
//!   requeue and their bitset forms), which locks and condition variables
//!   use;
//! - `write` anywhere (log lines, the console, eventfds), except for the
//!   trace writer: its trace file and standard error only;
//! - `close` only for the main thread (teardown) and an INTx resample
//!   thread (its own eventfd); `read` only for the threads that read an
//!   eventfd or standard input; sleeping only for those that sleep.
//!
//! Anything else traps: the `SIGSYS` handler ([`register_refusal_report`])
//! writes which filter refused which system call and ends the process with
//! status [`REFUSED_STATUS`]. A guest that found a way to make the VMM do
//! something new meets a dead VMM, never a host it can explore.
//!
//! Installing fails closed: if the kernel refuses a filter, for whatever
//! reason, the thread reports the error and the VMM stops before the guest
//! runs. `--no-seccomp` is the only way to run without filters.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::thread::JoinHandle;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Errors building or installing a filter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// seccompiler rejected the rules.
    #[error("building the seccomp filter of the {0} thread: {1}")]
    Build(&'static str, #[source] seccompiler::BackendError),
    /// The kernel refused the filter.
    #[error(
        "installing the seccomp filter of the {0} thread: {1} (the host kernel needs \
         CONFIG_SECCOMP_FILTER; --no-seccomp runs without filters, for debugging only)"
    )]
    Install(&'static str, #[source] seccompiler::Error),
    /// The refusal report's signal handler could not be installed.
    #[error("installing the SIGSYS handler that reports refused system calls: {0}")]
    Handler(#[source] std::io::Error),
    /// A thread could not be started.
    #[error("starting thread {0}: {1}")]
    Spawn(String, #[source] std::io::Error),
    /// A thread ended before it reported on its filter.
    #[error("thread {0} ended while installing its seccomp filter")]
    Vanished(String),
}

/// Exit status after a filter refused a system call (128 + SIGSYS, as a
/// shell reports a process killed by that signal).
pub const REFUSED_STATUS: i32 = 128 + libc::SIGSYS;

const KVMIO: u64 = 0xae;
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
}

/// `KVM_RUN`.
pub const KVM_RUN: u64 = ioc(0, 0x80, 0);
/// `KVM_GET_REGS`.
pub const KVM_GET_REGS: u64 = ioc(
    IOC_READ,
    0x81,
    std::mem::size_of::<kvm_bindings::kvm_regs>(),
);
/// `KVM_GET_SREGS`.
pub const KVM_GET_SREGS: u64 = ioc(
    IOC_READ,
    0x83,
    std::mem::size_of::<kvm_bindings::kvm_sregs>(),
);
/// `KVM_SIGNAL_MSI`.
pub const KVM_SIGNAL_MSI: u64 = ioc(
    IOC_WRITE,
    0xa5,
    std::mem::size_of::<kvm_bindings::kvm_msi>(),
);

/// The futex operations allowed (`FUTEX_WAIT`, `FUTEX_WAKE`,
/// `FUTEX_REQUEUE`, `FUTEX_CMP_REQUEUE`, `FUTEX_WAIT_BITSET`,
/// `FUTEX_WAKE_BITSET`), with or without the private and realtime-clock
/// flags; not `FUTEX_FD`, `FUTEX_WAKE_OP` or any priority-inheritance one.
const FUTEX_OPS: [i32; 6] = [
    libc::FUTEX_WAIT,
    libc::FUTEX_WAKE,
    libc::FUTEX_REQUEUE,
    libc::FUTEX_CMP_REQUEUE,
    libc::FUTEX_WAIT_BITSET,
    libc::FUTEX_WAKE_BITSET,
];
/// The bits of a futex operation that are flags, not the operation.
const FUTEX_FLAGS: i32 = libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME;

/// What every filter knows about the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// This process's id.
    pub pid: i32,
    /// The VM's fd (`KVM_SIGNAL_MSI`).
    pub vm_fd: RawFd,
}

/// A kind of thread, with what its filter needs to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thread<'a> {
    /// A vCPU thread running the vCPU whose fd this is.
    Vcpu {
        /// Its vCPU fd.
        vcpu_fd: RawFd,
    },
    /// An edu device's worker (factorial, DMA, their interrupts).
    EduWorker,
    /// An INTx resample thread, reading (and at its end closing) this
    /// resample eventfd.
    IntxResample {
        /// Its resample eventfd.
        resample_fd: RawFd,
    },
    /// The thread feeding standard input to the UART.
    ConsoleInput,
    /// The I/O trace's writer (`--trace`): it waits for records, names
    /// them and writes them to this file.
    TraceWriter {
        /// The trace file.
        trace_fd: RawFd,
    },
    /// The main thread: watchdog, vCPU kicks, teardown.
    Main {
        /// Thread ids of the vCPU threads it may kick.
        vcpu_tids: &'a [i32],
    },
}

impl Thread<'_> {
    /// The name used in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Thread::Vcpu { .. } => "vcpu",
            Thread::EduWorker => "edu-worker",
            Thread::IntxResample { .. } => "intx-resample",
            Thread::ConsoleInput => "console-in",
            Thread::TraceWriter { .. } => "trace-writer",
            Thread::Main { .. } => "main",
        }
    }
}

/// Whether the VMM's threads filter their system calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `--no-seccomp`.
    Off,
    /// Every thread installs its filter.
    On(Scope),
}

impl Policy {
    /// The policy for this process: `Off`, or `On` once the process is
    /// ready for filters: the refusal report's handler is installed, and
    /// the allocator opens no file ([`allocator_without_files`]). Called
    /// before any thread of ours starts.
    pub fn for_process(enabled: bool, vm_fd: RawFd) -> Result<Self, Error> {
        if !enabled {
            return Ok(Policy::Off);
        }
        allocator_without_files();
        register_refusal_report()?;
        Ok(Policy::On(Scope {
            pid: std::process::id() as i32,
            vm_fd,
        }))
    }

    /// Installs the filter of `thread` on the calling thread (nothing when
    /// off). An error means the thread must not serve the guest.
    pub fn install(&self, thread: Thread<'_>) -> Result<(), Error> {
        let Policy::On(scope) = self else {
            return Ok(());
        };
        let prog = filter(scope, &thread, gettid())?;
        seccompiler::apply_filter(&prog).map_err(|e| Error::Install(thread.name(), e))?;
        REFUSING_FILTER.set(thread.name());
        Ok(())
    }
}

/// glibc's malloc arenas (its default limit on two cores is 16; the VMM's
/// threads rarely allocate once the guest runs).
#[cfg(target_env = "gnu")]
const MALLOC_ARENAS: libc::c_int = 8;

/// Sets glibc's malloc so that it never opens a file, which no filter
/// allows; the one place that decides the allocator's settings. musl, the
/// static build's libc, opens nothing. Two habits of glibc had to go:
///
/// - sizing its arena limit: without a fixed one, glibc reads
///   `/sys/devices/system/cpu/online` when it creates its ninth arena, in
///   whichever thread first allocates then (seen: an edu worker killed at
///   its first allocation, in 1 of 40 runs with three edus and two vCPUs).
///   The limit is fixed at [`MALLOC_ARENAS`];
/// - trimming: the first time `free()` shrinks a thread's heap, glibc reads
///   `/proc/sys/vm/overcommit_memory` (seen: the trace writer, which
///   allocates and frees all the time, killed by it in 6 of 6 parallel
///   traced runs). Trimming is off (`M_TRIM_THRESHOLD`); heaps then only
///   shrink by unmapping whole heaps.
///
/// Must be called before any thread of ours allocates.
fn allocator_without_files() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets malloc tunables; called before any other
    // thread of ours runs.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

/// Starts a thread named `name` that installs the filter of `thread`
/// (per `policy`) and then runs `f`. Returns once the filter is on, with
/// the thread and its id; if installing failed, the thread ends without
/// running `f` and this returns the error.
pub fn spawn<T: Send + 'static>(
    policy: Policy,
    name: String,
    thread: Thread<'static>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<(JoinHandle<Option<T>>, i32), Error> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let installed = policy.install(thread).map(|()| gettid());
            let ok = installed.is_ok();
            // spawn() waits for this message.
            let _ = ready_tx.send(installed);
            ok.then(f)
        })
        .map_err(|e| Error::Spawn(name.clone(), e))?;
    match ready_rx.recv() {
        Ok(Ok(tid)) => Ok((handle, tid)),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => Err(Error::Vanished(name)),
    }
}

/// This thread's id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and no memory effects; a thread id
    // fits an i32 (pid_t).
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Rules under construction: system call -> rules, any of which allows it
/// (an empty list allows it unconditionally).
struct Rules {
    thread: &'static str,
    map: BTreeMap<i64, Vec<SeccompRule>>,
}

impl Rules {
    /// Allows `calls` whatever their arguments.
    fn allow(&mut self, calls: &[i64]) {
        for &nr in calls {
            let old = self.map.insert(nr, Vec::new());
            debug_assert!(old.is_none(), "system call {nr} listed twice");
        }
    }

    /// Allows `nr` when arguments `(index, mask, value)` all match
    /// (`arg & mask == value`, on the argument's low 32 bits, which hold
    /// every argument these rules look at; [`EXACT`] compares all of
    /// them); each call adds an alternative.
    fn allow_if(&mut self, nr: i64, args: &[(u8, u64, u64)]) -> Result<(), Error> {
        let build = |e| Error::Build(self.thread, e);
        let conditions = args
            .iter()
            .map(|&(index, mask, value)| {
                let op = SeccompCmpOp::MaskedEq(mask);
                SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(build)?;
        let rule = SeccompRule::new(conditions).map_err(build)?;
        let unconditional = self.map.get(&nr).is_some_and(Vec::is_empty);
        debug_assert!(!unconditional, "system call {nr} is already allowed");
        self.map.entry(nr).or_default().push(rule);
        Ok(())
    }

    /// Allows `nr` when argument `index` equals `value`.
    fn allow_eq(&mut self, nr: i64, index: u8, value: u64) -> Result<(), Error> {
        self.allow_if(nr, &[(index, EXACT, value)])
    }

    /// Allows signal `sig` to thread `tid` of process `pid` and nothing
    /// else: tgkill (glibc's pthread_kill and raise) and tkill (musl's).
    fn allow_signal(&mut self, pid: i32, tid: i32, sig: i32) -> Result<(), Error> {
        self.allow_if(
            libc::SYS_tgkill,
            &[
                (0, EXACT, word(pid)),
                (1, EXACT, word(tid)),
                (2, EXACT, word(sig)),
            ],
        )?;
        self.allow_if(
            libc::SYS_tkill,
            &[(0, EXACT, word(tid)), (1, EXACT, word(sig))],
        )
    }
}

/// The mask of an argument rule that compares the whole 32-bit value.
const EXACT: u64 = 0xffff_ffff;

/// `value` as the 32-bit pattern a Dword argument rule compares.
fn word(value: i32) -> u64 {
    u64::from(value as u32)
}

/// Builds the filter of `thread`, whose id is `tid`.
pub fn filter(scope: &Scope, thread: &Thread<'_>, tid: i32) -> Result<BpfProgram, Error> {
    let mut r = Rules {
        thread: thread.name(),
        map: BTreeMap::new(),
    };
    // Every thread: allocation, locks, clocks, the kick handler's return,
    // thread and process exit. (`write`, for log lines, per kind below.)
    r.allow(&[
        libc::SYS_munmap,
        libc::SYS_brk,
        libc::SYS_clock_gettime,
        libc::SYS_sched_yield,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_getpid,
        libc::SYS_gettid,
    ]);
    let exec = libc::PROT_EXEC as u64;
    r.allow_if(libc::SYS_mmap, &[(2, exec, 0)])?;
    r.allow_if(libc::SYS_mprotect, &[(2, exec, 0)])?;
    let remap = (libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP) as u64;
    r.allow_if(libc::SYS_mremap, &[(3, remap, 0)])?;
    for advice in [libc::MADV_DONTNEED, libc::MADV_FREE] {
        r.allow_eq(libc::SYS_madvise, 2, word(advice))?;
    }
    for op in FUTEX_OPS {
        r.allow_if(libc::SYS_futex, &[(1, word(!FUTEX_FLAGS), word(op))])?;
    }
    // abort() on a panic: SIGABRT to this thread only.
    r.allow_signal(scope.pid, tid, libc::SIGABRT)?;
    let sleep = [libc::SYS_nanosleep, libc::SYS_clock_nanosleep];
    // Log lines, the console, eventfds (irqfds, the reset eventfd).
    let write_anywhere = [libc::SYS_write];
    match *thread {
        Thread::Vcpu { vcpu_fd } => {
            for request in [KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS] {
                r.allow_if(
                    libc::SYS_ioctl,
                    &[(0, EXACT, word(vcpu_fd)), (1, EXACT, request)],
                )?;
            }
            r.allow_if(
                libc::SYS_ioctl,
                &[(0, EXACT, word(scope.vm_fd)), (1, EXACT, KVM_SIGNAL_MSI)],
            )?;
            // The reset eventfd; the EAGAIN back-off.
            r.allow(&[libc::SYS_read]);
            r.allow(&sleep);
            r.allow(&write_anywhere);
        }
        Thread::EduWorker => {
            r.allow_if(
                libc::SYS_ioctl,
                &[(0, EXACT, word(scope.vm_fd)), (1, EXACT, KVM_SIGNAL_MSI)],
            )?;
            r.allow(&write_anywhere);
        }
        Thread::IntxResample { resample_fd } => {
            r.allow(&[libc::SYS_read]);
            r.allow(&write_anywhere);
            r.allow_eq(libc::SYS_close, 0, word(resample_fd))?;
            // Rust's standard library checks a descriptor with F_GETFD
            // before it closes it (debug builds).
            r.allow_if(
                libc::SYS_fcntl,
                &[
                    (0, EXACT, word(resample_fd)),
                    (1, EXACT, word(libc::F_GETFD)),
                ],
            )?;
        }
        Thread::ConsoleInput => {
            r.allow(&[libc::SYS_read]);
            r.allow(&sleep);
            r.allow(&write_anywhere);
        }
        Thread::TraceWriter { trace_fd } => {
            // Its file, and standard error (a panic's message).
            r.allow_eq(libc::SYS_write, 0, word(trace_fd))?;
            r.allow_eq(libc::SYS_write, 0, word(libc::STDERR_FILENO))?;
        }
        Thread::Main { vcpu_tids } => {
            for &vcpu in vcpu_tids {
                r.allow_signal(scope.pid, vcpu, crate::vcpu::kick_signal())?;
            }
            // Teardown closes every fd; waiting for the vCPUs to stop.
            r.allow(&[libc::SYS_close]);
            r.allow_eq(libc::SYS_fcntl, 1, word(libc::F_GETFD))?;
            r.allow(&sleep);
            r.allow(&write_anywhere);
        }
    }
    let name = r.thread;
    SeccompFilter::new(
        r.map,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| Error::Build(name, e))
}

thread_local! {
    /// The filter installed on this thread, for the refusal report.
    static REFUSING_FILTER: Cell<&'static str> = const { Cell::new("unknown") };
}

/// Installs the `SIGSYS` handler that reports a refused system call and
/// ends the process with [`REFUSED_STATUS`] (once, before the filters).
pub fn register_refusal_report() -> Result<(), Error> {
    vmm_sys_util::signal::register_signal_handler(libc::SIGSYS, report_refusal)
        .map_err(|e| Error::Handler(std::io::Error::from_raw_os_error(e.errno())))
}

/// Offset of `si_syscall` in a `SIGSYS` siginfo on x86_64: after
/// `si_signo`, `si_errno`, `si_code`, padding and `si_call_addr`.
const SI_SYSCALL_OFFSET: usize = 24;

/// The `SIGSYS` handler: "edu-vmm: seccomp: the vcpu filter refused system
/// call 257" on standard error, then `_exit`. Only async-signal-safe work:
/// no allocation, one `write`, one `exit_group`.
extern "C" fn report_refusal(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler;
    // for a seccomp SIGSYS its `_sigsys` member holds the system call
    // number as an int at SI_SYSCALL_OFFSET.
    let nr = unsafe {
        info.cast::<u8>()
            .add(SI_SYSCALL_OFFSET)
            .cast::<i32>()
            .read()
    };
    let mut msg = Message::default();
    msg.push(b"edu-vmm: seccomp: the ");
    msg.push(REFUSING_FILTER.get().as_bytes());
    msg.push(b" filter refused system call ");
    msg.number(nr);
    msg.push(b"; ending the VMM\n");
    // SAFETY: writes the message's initialised bytes to standard error,
    // then ends the process; both are async-signal-safe.
    unsafe {
        libc::write(2, msg.buf.as_ptr().cast(), msg.len);
        libc::_exit(REFUSED_STATUS);
    }
}

/// A fixed buffer for [`report_refusal`] (a signal handler cannot allocate).
struct Message {
    buf: [u8; 128],
    len: usize,
}

impl Default for Message {
    fn default() -> Self {
        Message {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl Message {
    /// Appends what fits.
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// Appends `n` in decimal.
    fn number(&mut self, n: i32) {
        let mut digits = [0u8; 11];
        let mut i = digits.len();
        let mut v = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if n < 0 {
            i -= 1;
            digits[i] = b'-';
        }
        self.push(&digits[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: Scope = Scope {
        pid: 4242,
        vm_fd: 20,
    };
    const VCPU_FD: RawFd = 21;
    const RESAMPLE_FD: RawFd = 22;
    const TRACE_FD: RawFd = 23;
    const VCPU_TIDS: [i32; 2] = [5001, 5002];

    /// Every kind of thread, as in a traced VM with two vCPUs.
    fn kinds() -> [Thread<'static>; 6] {
        [
            Thread::Vcpu { vcpu_fd: VCPU_FD },
            Thread::EduWorker,
            Thread::IntxResample {
                resample_fd: RESAMPLE_FD,
            },
            Thread::ConsoleInput,
            Thread::TraceWriter { trace_fd: TRACE_FD },
            Thread::Main {
                vcpu_tids: &VCPU_TIDS,
            },
        ]
    }

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_GET_SREGS, 0x8138_ae83);
        assert_eq!(KVM_SIGNAL_MSI, 0x4020_aea5);
    }

    #[test]
    fn every_filter_compiles() {
        for t in kinds() {
            assert!(!filter(&SCOPE, &t, 7).unwrap().is_empty(), "{t:?}");
        }
    }

    #[test]
    fn the_refusal_message_is_built_without_allocating() {
        let mut m = Message::default();
        m.push(b"call ");
        m.number(257);
        m.push(b" ");
        m.number(-1);
        m.number(i32::MIN);
        assert_eq!(&m.buf[..m.len], b"call 257 -1-2147483648");
        m.push(&[b'x'; 200]);
        assert_eq!(m.len, m.buf.len(), "truncated, not overflowed");
    }

    /// How a forked child ended.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        /// The call returned (allowed; whatever its result).
        Allowed,
        /// The filter refused it: the refusal report ended the child.
        Refused,
        /// Anything else (wait status).
        Other(i32),
    }

    /// Runs `call` in a forked child with `prog` installed on its only
    /// thread (and the refusal report registered).
    fn in_child(prog: &BpfProgram, call: &dyn Fn() -> i64) -> Outcome {
        register_refusal_report().unwrap();
        // SAFETY: after fork the child only makes raw system calls (no
        // allocation, no lock: the program was built before) and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: the child's stderr goes to /dev/null (the report is
            // checked by its exit status); _exit ends it without touching
            // the parent's state.
            unsafe {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                libc::dup2(null, 2);
                if seccompiler::apply_filter(prog).is_err() {
                    libc::_exit(3);
                }
                call();
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waits for our own child; writes one int.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
            (true, 0) => Outcome::Allowed,
            (true, REFUSED_STATUS) => Outcome::Refused,
            _ => Outcome::Other(status),
        }
    }

    /// A system call with up to six arguments.
    fn sys(nr: i64, args: [i64; 6]) -> i64 {
        // SAFETY: every call made through this in these tests does no harm
        // if allowed: absent fds and addresses, signal 0, fresh anonymous
        // memory, a process and thread that are not the caller's.
        unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) }
    }

    /// Calls no thread of the VMM may make, whatever its kind: opening
    /// files, running programs, sockets, new processes, tracing, signals
    /// to other processes or other signals, executable memory, mapping
    /// over existing memory, unusual memory advice, priority-inheritance
    /// futexes, ioctls other than the listed ones (KVM_IRQ_LINE among
    /// them), installing signal handlers.
    fn forbidden_everywhere() -> Vec<(&'static str, i64, [i64; 6])> {
        let rx = (libc::PROT_READ | libc::PROT_EXEC) as i64;
        let anon = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as i64;
        let pid = SCOPE.pid as i64;
        let irq_line = 0x4008_ae61; // KVM_IRQ_LINE
        vec![
            (
                "openat",
                libc::SYS_openat,
                [libc::AT_FDCWD as i64, 0, 0, 0, 0, 0],
            ),
            ("execve", libc::SYS_execve, [0; 6]),
            (
                "socket",
                libc::SYS_socket,
                [libc::AF_INET as i64, libc::SOCK_STREAM as i64, 0, 0, 0, 0],
            ),
            (
                "clone",
                libc::SYS_clone,
                [libc::CLONE_THREAD as i64, 0, 0, 0, 0, 0],
            ),
            ("fork", libc::SYS_fork, [0; 6]),
            (
                "ptrace",
                libc::SYS_ptrace,
                [libc::PTRACE_PEEKDATA as i64, 1, 0, 0, 0, 0],
            ),
            ("kill", libc::SYS_kill, [1, 0, 0, 0, 0, 0]),
            (
                "rt_sigaction",
                libc::SYS_rt_sigaction,
                [libc::SIGSYS as i64, 0, 0, 8, 0, 0],
            ),
            (
                "prctl",
                libc::SYS_prctl,
                [libc::PR_SET_DUMPABLE as i64, 1, 0, 0, 0, 0],
            ),
            (
                "tgkill to another process",
                libc::SYS_tgkill,
                [1, 1, 0, 0, 0, 0],
            ),
            (
                "tgkill SIGKILL",
                libc::SYS_tgkill,
                [pid, VCPU_TIDS[0] as i64, libc::SIGKILL as i64, 0, 0, 0],
            ),
            ("tkill another thread", libc::SYS_tkill, [1, 0, 0, 0, 0, 0]),
            ("mmap PROT_EXEC", libc::SYS_mmap, [0, 4096, rx, anon, -1, 0]),
            (
                "mprotect PROT_EXEC",
                libc::SYS_mprotect,
                [0, 0, rx, 0, 0, 0],
            ),
            (
                "mremap MREMAP_FIXED",
                libc::SYS_mremap,
                [
                    0,
                    0,
                    0,
                    (libc::MREMAP_FIXED | libc::MREMAP_MAYMOVE) as i64,
                    0,
                    0,
                ],
            ),
            (
                "madvise MADV_DONTFORK",
                libc::SYS_madvise,
                [0, 0, libc::MADV_DONTFORK as i64, 0, 0, 0],
            ),
            (
                "madvise MADV_HWPOISON",
                libc::SYS_madvise,
                [0, 0, libc::MADV_HWPOISON as i64, 0, 0, 0],
            ),
            (
                "futex FUTEX_LOCK_PI",
                libc::SYS_futex,
                [0, libc::FUTEX_LOCK_PI as i64, 0, 0, 0, 0],
            ),
            (
                "futex FUTEX_WAKE_OP",
                libc::SYS_futex,
                [0, libc::FUTEX_WAKE_OP as i64, 0, 0, 0, 0],
            ),
            (
                "ioctl KVM_IRQ_LINE",
                libc::SYS_ioctl,
                [SCOPE.vm_fd as i64, irq_line, 0, 0, 0, 0],
            ),
            (
                "ioctl KVM_RUN on the VM fd",
                libc::SYS_ioctl,
                [SCOPE.vm_fd as i64, KVM_RUN as i64, 0, 0, 0, 0],
            ),
            (
                "ioctl KVM_SIGNAL_MSI on another fd",
                libc::SYS_ioctl,
                [99, KVM_SIGNAL_MSI as i64, 0, 0, 0, 0],
            ),
            (
                "seccomp",
                libc::SYS_seccomp,
                [libc::SECCOMP_SET_MODE_STRICT as i64, 0, 0, 0, 0, 0],
            ),
        ]
    }

    /// Calls some kinds of thread make and the others may not.
    fn forbidden_for(t: &Thread<'_>) -> Vec<(&'static str, i64, [i64; 6])> {
        let pid = SCOPE.pid as i64;
        let kick = crate::vcpu::kick_signal() as i64;
        let vcpu = VCPU_TIDS[1] as i64;
        let ioctl = |fd: RawFd, request: u64| [fd as i64, request as i64, 0, 0, 0, 0];
        let all = [
            ("read", libc::SYS_read, [-1, 0, 0, 0, 0, 0]),
            ("write to any fd", libc::SYS_write, [-1, 0, 0, 0, 0, 0]),
            ("nanosleep", libc::SYS_nanosleep, [0; 6]),
            ("close", libc::SYS_close, [-1, 0, 0, 0, 0, 0]),
            ("KVM_RUN", libc::SYS_ioctl, ioctl(VCPU_FD, KVM_RUN)),
            (
                "KVM_GET_REGS",
                libc::SYS_ioctl,
                ioctl(VCPU_FD, KVM_GET_REGS),
            ),
            (
                "KVM_SIGNAL_MSI",
                libc::SYS_ioctl,
                ioctl(SCOPE.vm_fd, KVM_SIGNAL_MSI),
            ),
            ("tgkill kick", libc::SYS_tgkill, [pid, vcpu, kick, 0, 0, 0]),
            ("tkill kick", libc::SYS_tkill, [vcpu, kick, 0, 0, 0, 0]),
        ];
        let allowed: &[&str] = match t {
            Thread::Vcpu { .. } => &[
                "read",
                "write to any fd",
                "nanosleep",
                "KVM_RUN",
                "KVM_GET_REGS",
                "KVM_SIGNAL_MSI",
            ],
            Thread::EduWorker => &["write to any fd", "KVM_SIGNAL_MSI"],
            Thread::IntxResample { .. } => &["read", "write to any fd"],
            Thread::ConsoleInput => &["read", "write to any fd", "nanosleep"],
            Thread::TraceWriter { .. } => &[],
            Thread::Main { .. } => &[
                "write to any fd",
                "nanosleep",
                "close",
                "tgkill kick",
                "tkill kick",
            ],
        };
        all.into_iter()
            .filter(|(what, ..)| !allowed.contains(what))
            .collect()
    }

    /// Each kind's real filter refuses every call it does not need, in a
    /// forked child: the refusal report ends the child with its status.
    #[test]
    fn each_filter_refuses_every_call_its_thread_does_not_make() {
        let mut not_refused = Vec::new();
        for t in kinds() {
            let prog = filter(&SCOPE, &t, 7).unwrap();
            for (what, nr, args) in forbidden_everywhere().into_iter().chain(forbidden_for(&t)) {
                let outcome = in_child(&prog, &|| sys(nr, args));
                if outcome != Outcome::Refused {
                    not_refused.push(format!("{}: {what}: {outcome:?}", t.name()));
                }
            }
        }
        assert!(
            not_refused.is_empty(),
            "not refused:\n{}",
            not_refused.join("\n")
        );
    }

    /// The calls each kind makes pass its filter (the guests in tests/ run
    /// the same filters on real threads).
    #[test]
    fn each_filter_allows_what_its_thread_does() {
        let word = 0u32;
        let futex = &word as *const u32 as i64;
        let common: Vec<(&str, i64, [i64; 6])> = vec![
            // A log line (nothing written: the child's standard error is
            // /dev/null, and the length is 0).
            (
                "write to standard error",
                libc::SYS_write,
                [libc::STDERR_FILENO as i64, 0, 0, 0, 0, 0],
            ),
            (
                "mmap",
                libc::SYS_mmap,
                [
                    0,
                    4096,
                    (libc::PROT_READ | libc::PROT_WRITE) as i64,
                    (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as i64,
                    -1,
                    0,
                ],
            ),
            (
                "mprotect",
                libc::SYS_mprotect,
                [0, 0, libc::PROT_READ as i64, 0, 0, 0],
            ),
            (
                "mremap",
                libc::SYS_mremap,
                [0, 0, 0, libc::MREMAP_MAYMOVE as i64, 0, 0],
            ),
            (
                "madvise",
                libc::SYS_madvise,
                [0, 0, libc::MADV_DONTNEED as i64, 0, 0, 0],
            ),
            (
                "futex wake",
                libc::SYS_futex,
                [
                    futex,
                    (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as i64,
                    1,
                    0,
                    0,
                    0,
                ],
            ),
            (
                "futex wait bitset",
                libc::SYS_futex,
                [
                    futex,
                    (libc::FUTEX_WAIT_BITSET | libc::FUTEX_CLOCK_REALTIME) as i64,
                    1,
                    0,
                    0,
                    -1,
                ],
            ),
            // SIGABRT to itself (abort) would end the child either way:
            // tests/abuse.rs sees a panicking vCPU end in SIGABRT.
            ("sched_yield", libc::SYS_sched_yield, [0; 6]),
        ];
        let mut refused = Vec::new();
        for t in kinds() {
            let prog = filter(&SCOPE, &t, 7).unwrap();
            let own: Vec<(&str, i64, [i64; 6])> = match t {
                Thread::TraceWriter { trace_fd } => vec![(
                    "write to the trace",
                    libc::SYS_write,
                    [trace_fd.into(), 0, 0, 0, 0, 0],
                )],
                _ => Vec::new(),
            };
            for (what, nr, args) in common.iter().chain(&own) {
                if in_child(&prog, &|| sys(*nr, *args)) != Outcome::Allowed {
                    refused.push(format!("{}: {what}", t.name()));
                }
            }
        }
        assert!(refused.is_empty(), "refused: {refused:?}");
    }
}
