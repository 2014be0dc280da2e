//! Teardown order, in process: `Vmm::run` returns only after every vCPU
//! thread has stopped and been joined, and then the devices (edu's worker,
//! the INTx resample thread) and guest memory go. The only test in this
//! binary, so the threads it counts are the VMM's.

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use edu_vmm::{Cli, Config, VmExit, Vmm};

/// Names of this process's threads.
fn threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// The VMM's threads that must be gone once `run` returned (the console
/// input thread may stay blocked reading standard input), sorted.
fn vmm_threads() -> Vec<String> {
    let mut v: Vec<String> = threads()
        .into_iter()
        .filter(|n| n.starts_with("vcpu") || n == "edu-worker" || n.starts_with("intx-"))
        .collect();
    v.sort();
    v
}

/// vCPU 0 resets the machine while vCPU 1 spins in the guest without
/// exits: `run` stops vCPU 1 (immediate exit and a kick) and joins it, then
/// drops the devices, whose threads end too.
#[test]
fn run_returns_after_every_vcpu_has_stopped_and_devices_are_gone() {
    common::require_kvm();
    let guest = common::guest("two_cpus");
    let serial = std::env::temp_dir().join(format!("edu-vmm-it-{}-teardown", std::process::id()));
    let cli = Cli::try_parse_from([
        "edu-vmm",
        "--kernel",
        guest.to_str().unwrap(),
        "--memory",
        "16",
        "--vcpus",
        "2",
        "--edu",
        "1",
        "--serial",
        &format!("file:{}", serial.display()),
        // The filter would hold this test's thread to the VMM's rules.
        "--no-seccomp",
    ])
    .unwrap();
    let vmm = Vmm::try_from(Config::try_from(&cli).unwrap()).unwrap();
    // The devices' threads name themselves once they run.
    assert!(
        settles(|| vmm_threads() == ["edu-worker", "intx-gsi16"]),
        "{:?}",
        vmm_threads()
    );
    let exit = vmm.run().unwrap();
    assert_eq!(exit, VmExit::Reset);
    let console = std::fs::read_to_string(&serial).unwrap();
    assert!(console.contains("two_cpus: vCPU 1 runs\nPASS"), "{console}");
    // Joined threads are gone at once; give the others a moment to go.
    assert!(
        settles(|| vmm_threads().is_empty()),
        "threads left after run(): {:?}",
        vmm_threads()
    );
}

/// Whether `done` becomes true within 2 s.
fn settles(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > Duration::from_secs(2) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}
