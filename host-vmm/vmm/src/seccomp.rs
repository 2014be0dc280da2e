//! The seccomp filter of the VMM's threads (compiled by seccompiler).
//!
//! It is installed once setup is done and before the guest runs, on every
//! thread of the process at once (`SECCOMP_FILTER_FLAG_TSYNC`): the vCPU
//! threads, the console input thread, the main thread, and the worker
//! threads the edu devices start themselves. It allows only what these do
//! while the guest runs:
//!
//! - `ioctl` with exactly `KVM_RUN`, `KVM_IRQ_LINE` and `KVM_SIGNAL_MSI`
//!   (interrupts from a vCPU exit or an edu worker) and `KVM_GET_REGS`,
//!   `KVM_GET_SREGS` (the exit report and the watchdog's position report);
//! - reads and writes (console, log, eventfds), memory allocation, futexes,
//!   clocks and sleeps, signal return, thread and process exit;
//!   `mprotect` only without `PROT_EXEC`.
//!
//! Anything else kills the process (`SECCOMP_RET_KILL_PROCESS`): a guest
//! that found a way to make the VMM do something new meets a dead VMM,
//! never a host it can explore. `--no-seccomp` turns this off for
//! debugging.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Errors building or installing a filter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// seccompiler rejected the rules.
    #[error("building the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    /// The kernel refused the filter.
    #[error("installing the seccomp filter: {0}")]
    Install(#[from] seccompiler::Error),
}

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
/// `KVM_IRQ_LINE`.
pub const KVM_IRQ_LINE: u64 = ioc(
    IOC_WRITE,
    0x61,
    std::mem::size_of::<kvm_bindings::kvm_irq_level>(),
);
/// `KVM_SIGNAL_MSI`.
pub const KVM_SIGNAL_MSI: u64 = ioc(
    IOC_WRITE,
    0xa5,
    std::mem::size_of::<kvm_bindings::kvm_msi>(),
);

/// System calls every VMM thread may make while the guest runs.
const COMMON: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_futex,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_sched_yield,
    libc::SYS_getrandom,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // abort() on a bug must still deliver SIGABRT, not a seccomp kill, and
    // the watchdog kicks vCPU threads with pthread_kill: glibc sends both
    // with tgkill, musl (the static binary run nested) with tkill.
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_tkill,
    // The tail of a thread's start-up (glibc and std), which a thread the
    // edu device started just before the filter went on may still be in.
    libc::SYS_rseq,
    libc::SYS_set_robust_list,
    libc::SYS_sched_getaffinity,
];

fn ioctl_rule(req: u64) -> Result<SeccompRule, Error> {
    Ok(SeccompRule::new(vec![SeccompCondition::new(
        1,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        req,
    )?])?)
}

/// Builds the filter.
pub fn filter() -> Result<BpfProgram, Error> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        COMMON.iter().map(|&s| (s, Vec::new())).collect();
    // Rust's standard library checks a descriptor with F_GETFD when it
    // closes one (in debug builds).
    rules.insert(
        libc::SYS_fcntl,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            libc::F_GETFD as u64,
        )?])?],
    );
    let ioctls = [
        KVM_RUN,
        KVM_GET_REGS,
        KVM_GET_SREGS,
        KVM_IRQ_LINE,
        KVM_SIGNAL_MSI,
    ]
    .into_iter()
    .map(ioctl_rule)
    .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctls);
    // A starting thread names itself.
    rules.insert(
        libc::SYS_prctl,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            libc::PR_SET_NAME as u64,
        )?])?],
    );
    // malloc grows its arenas with mprotect; never allow making memory
    // executable.
    rules.insert(
        libc::SYS_mprotect,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )?])?],
    );
    let f = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )?;
    Ok(f.try_into()?)
}

/// What [`install_all_threads`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The filter is on every thread.
    Yes,
    /// The kernel has no seccomp filter support (`CONFIG_SECCOMP_FILTER`
    /// off, as in a `tinyconfig` kernel): nothing was installed.
    KernelLacksSeccomp,
}

/// Installs the filter on every thread of the process.
pub fn install_all_threads() -> Result<Installed, Error> {
    let prog = filter()?;
    match seccompiler::apply_filter_all_threads(&prog) {
        Ok(()) => Ok(Installed::Yes),
        // ENOSYS: no seccomp at all; EINVAL: seccomp without filter mode.
        // (Our own filter is known good: the tests install it.)
        Err(seccompiler::Error::Seccomp(e))
            if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) =>
        {
            Ok(Installed::KernelLacksSeccomp)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_GET_SREGS, 0x8138_ae83);
        assert_eq!(KVM_IRQ_LINE, 0x4008_ae61);
        assert_eq!(KVM_SIGNAL_MSI, 0x4020_aea5);
    }

    #[test]
    fn filter_compiles() {
        assert!(!filter().unwrap().is_empty());
    }

    /// The COMMON allowlist with EPERM instead of a kill for anything else,
    /// so a test thread can observe a refusal and live.
    fn common_with_errno() -> BpfProgram {
        let rules: BTreeMap<i64, Vec<SeccompRule>> =
            COMMON.iter().map(|&s| (s, Vec::new())).collect();
        SeccompFilter::new(
            rules,
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
            TargetArch::x86_64,
        )
        .unwrap()
        .try_into()
        .unwrap()
    }

    #[test]
    fn filter_blocks_what_is_not_listed() {
        // Run in a child thread: a filter is per thread and cannot be undone.
        std::thread::spawn(|| {
            let prog = filter().unwrap();
            assert!(!prog.is_empty());
            seccompiler::apply_filter(&common_with_errno()).unwrap();
            // SAFETY: getppid has no arguments and no memory effects.
            let r = unsafe { libc::syscall(libc::SYS_getppid) };
            assert_eq!(r, -1);
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EPERM)
            );
            // SAFETY: gettid has no arguments and no memory effects.
            assert!(unsafe { libc::syscall(libc::SYS_gettid) } > 0);
        })
        .join()
        .unwrap();
    }

    extern "C" fn ignore(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

    #[test]
    fn watchdog_kick_passes_the_filter_with_glibc_and_musl() {
        // The watchdog's pthread_kill is tgkill on glibc and tkill on musl;
        // a kick refused by the filter killed the nested (musl) VMM.
        let sig = vmm_sys_util::signal::SIGRTMIN();
        vmm_sys_util::signal::register_signal_handler(sig, ignore).unwrap();
        std::thread::spawn(move || {
            seccompiler::apply_filter(&common_with_errno()).unwrap();
            // SAFETY: getpid and gettid have no arguments and no memory
            // effects; tkill and tgkill send SIGRTMIN, which has a handler
            // that does nothing, to this very thread.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid);
                let pid = libc::syscall(libc::SYS_getpid);
                assert_eq!(libc::syscall(libc::SYS_tkill, tid, sig), 0, "tkill refused");
                assert_eq!(
                    libc::syscall(libc::SYS_tgkill, pid, tid, sig),
                    0,
                    "tgkill refused"
                );
            }
        })
        .join()
        .unwrap();
    }
}
