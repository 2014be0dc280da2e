//! The seccomp filters of the real binary: installing fails closed.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// A filter that answers EINVAL to every attempt to install a seccomp
/// filter (`seccomp(2)`, `prctl(PR_SET_SECCOMP)`), as a kernel without
/// CONFIG_SECCOMP_FILTER does, and allows everything else.
fn refuse_seccomp() -> BpfProgram {
    let set_seccomp = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::PR_SET_SECCOMP as u64,
    )
    .unwrap();
    let rules = BTreeMap::from([
        (libc::SYS_seccomp, vec![]),
        (
            libc::SYS_prctl,
            vec![SeccompRule::new(vec![set_seccomp]).unwrap()],
        ),
    ]);
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EINVAL as u32),
        TargetArch::x86_64,
    )
    .unwrap()
    .try_into()
    .unwrap()
}

/// When the kernel refuses a filter, the VMM stops before the guest runs,
/// naming the problem and the way out (`--no-seccomp`): it never runs a
/// guest without the filters it was asked for.
#[test]
fn a_filter_the_kernel_refuses_stops_the_vmm_before_the_guest_runs() {
    common::require_kvm();
    let guest = common::guest("bootinfo");
    let refuse = refuse_seccomp();
    let mut cmd = common::vmm_command();
    cmd.args(["--kernel", guest.to_str().unwrap(), "--memory", "16"]);
    // SAFETY: between fork and exec the child only installs a filter
    // built before the fork (two system calls, no allocation).
    unsafe {
        cmd.pre_exec(move || seccompiler::apply_filter(&refuse).map_err(std::io::Error::other));
    }
    let r = common::run_command(cmd, None);
    assert_eq!(r.status, 1, "{}", r.log);
    assert!(!r.serial.contains("PASS"), "the guest ran:\n{}", r.serial);
    assert!(
        r.log.contains("seccomp") && r.log.contains("--no-seccomp"),
        "{}",
        r.log
    );
}
