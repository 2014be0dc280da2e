//! Guests that try to make the VMM flood its log or spin a host core: the
//! VMM must keep its log bounded, count what it did not log, and stay idle
//! while the guest waits.

mod common;

use common::boot;

/// Log lines each kind of 20,000 events gets: the first 16, then #32,
/// #64, ... #16384 (see `edu_devices::guest_log`).
const LINES_PER_FLOOD: usize = 16 + 10;
/// The most log lines a whole flood run may write: the two floods, and
/// well under a hundred for start-up and the exit report.
const FLOOD_LOG_LINES: usize = 2 * LINES_PER_FLOOD + 50;

/// 20,000 MSIs KVM cannot deliver and 20,000 console bytes that cannot be
/// written: a few dozen log lines, and both failures counted exactly.
#[test]
fn a_guest_cannot_flood_the_log() {
    let r = boot(
        "flood",
        &["--memory", "16", "--edu", "1", "--serial", "file:/dev/full"],
    );
    assert_eq!(r.status, 0, "{}", r.log);
    let lines = r.log.lines().count();
    assert!(
        lines <= FLOOD_LOG_LINES,
        "{lines} log lines (at most {FLOOD_LOG_LINES}); the first 40:\n{}",
        r.log.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    for kind in ["(interrupt error #", "(console byte lost #"] {
        assert_eq!(
            r.log.lines().filter(|l| l.contains(kind)).count(),
            LINES_PER_FLOOD,
            "{kind}"
        );
    }
    assert!(r.log.contains("interrupt_errors: 20000,"), "{}", r.log);
    // "flood: start\n", "flood: raised\n", 20,000 dots and a newline, "PASS\n".
    let console_bytes = 13 + 14 + 20_000 + 1 + 5;
    assert!(
        r.log.contains(&format!(
            "console: {console_bytes} bytes could not be written"
        )),
        "{}",
        r.log
    );
}

/// A panic in any VMM thread ends the VMM at once (panic = "abort"), never
/// a VM left hanging with one vCPU thread gone. The test hook panics vCPU
/// 0's thread at the guest's first serial write; vCPU 1, never started by
/// the guest, would otherwise keep the VMM waiting forever.
#[test]
fn a_panicking_vcpu_thread_ends_the_vmm() {
    common::require_kvm();
    let g = common::guest("spin");
    let r = common::run_vmm_limited(
        &[
            "--kernel",
            g.to_str().unwrap(),
            "--memory",
            "16",
            "--vcpus",
            "2",
            "--watchdog-secs",
            "0",
            "--test-panic-on-port",
            "0x3f8",
        ],
        Some(std::time::Duration::from_secs(10)),
    );
    assert!(
        r.log.contains("write to port 0x3f8 (--test-panic-on-port)"),
        "{}",
        r.log
    );
    assert_eq!(
        r.signal,
        Some(libc::SIGABRT),
        "the VMM did not abort by itself (signal {:?} after {:?}):\n{}",
        r.signal,
        r.elapsed,
        r.log
    );
}

/// How long `nmi_stall`'s vCPU 0 sleeps in hlt while vCPU 1 cannot run.
const STALL: std::time::Duration = std::time::Duration::from_millis(2500);

/// A vCPU that KVM cannot run (an NMI pending before INIT/SIPI, so every
/// KVM_RUN returns EAGAIN at once) costs neither log lines nor a host
/// core; when the watchdog asks where the vCPUs are, it answers once and
/// says why.
#[test]
fn a_vcpu_kvm_cannot_run_is_neither_spun_nor_logged() {
    let r = boot(
        "nmi_stall",
        &[
            "--memory",
            "16",
            "--vcpus",
            "2",
            "--edu",
            "0",
            "--watchdog-secs",
            "1",
        ],
    );
    r.assert_pass();
    let vcpu1: Vec<&str> = r.log.lines().filter(|l| l.contains("vcpu 1")).collect();
    assert!(
        vcpu1.len() == 1 && vcpu1[0].contains("EAGAIN"),
        "{} lines about vcpu 1, the first: {:?}",
        vcpu1.len(),
        vcpu1.first()
    );
    assert!(
        r.cpu < STALL / 10,
        "the VMM used {:?} of CPU while the guest slept {STALL:?}",
        r.cpu
    );
}
