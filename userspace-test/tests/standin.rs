//! The selftest against a stand-in for the driver that has no device
//! (`standin/`, preloaded): it answers every typed ioctl, read, write and
//! lseek with the values the ABI promises, and a fake root gives the suite
//! every file it reads (sysfs, a `/proc/interrupts` whose counts never
//! move, an empty `/dev/kmsg`, a `resource0` with nothing behind it). Every
//! case that claims the device did something must fail, and for lack of
//! evidence, not for a missing file. The cases that may pass check what
//! needs no device: `unknown-ioctl` (the driver's refusal of numbers it
//! does not know is argument validation).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The nodes' major number in the fake root (`EDU_STANDIN_MAJOR`).
const MAJOR: u32 = 240;
/// Devices in the fake root: two, so that the two-device cases run too.
const DEVICES: u32 = 2;

/// The stand-in library, built as this package's dev-dependency next to
/// the test executable.
fn standin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().unwrap().join("libedu_standin.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

fn write(path: &Path, data: impl AsRef<[u8]>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn link(target: &str, at: &Path) {
    fs::create_dir_all(at.parent().unwrap()).unwrap();
    symlink(target, at).unwrap();
}

/// A fake root with `DEVICES` edu devices bound to `edu`, as sysfs, /dev,
/// /proc/interrupts and /dev/kmsg show them on a guest, in MSI mode.
fn fake_root(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("standin-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let mut interrupts =
        String::from("            CPU0\n   0:         44  IO-APIC    2-edge      timer\n");
    for k in 0..DEVICES {
        let addr = format!("0000:00:{:02x}.0", 4 + k);
        let irq = 24 + k;
        let bar: u64 = 0xfe00_0000 + (u64::from(k) << 20);
        let pci = root.join("sys/devices/pci0000:00").join(&addr);
        write(&pci.join("vendor"), "0x1234\n");
        write(&pci.join("device"), "0x11e8\n");
        write(
            &pci.join("resource"),
            format!(
                "0x{bar:016x} 0x{:016x} 0x0000000000040200\n",
                bar + 0xf_ffff
            ),
        );
        // Nothing answers behind the BAR: all ones, as on a real bus.
        write(&pci.join("resource0"), vec![0xff; 4096]);
        write(&pci.join("irq"), format!("{irq}\n"));
        write(&pci.join(format!("msi_irqs/{irq}")), "msi\n");
        let mut config = vec![0u8; 64];
        config[..4].copy_from_slice(&[0x34, 0x12, 0xe8, 0x11]);
        write(&pci.join("config"), config);
        link("../../../bus/pci/drivers/edu", &pci.join("driver"));
        link(
            &format!("../../../devices/pci0000:00/{addr}"),
            &root.join("sys/bus/pci/devices").join(&addr),
        );
        let chr = root.join(format!("sys/dev/char/{MAJOR}:{k}"));
        link(
            &format!("../../../devices/pci0000:00/{addr}"),
            &chr.join("device"),
        );
        write(
            &chr.join("uevent"),
            format!("MAJOR={MAJOR}\nMINOR={k}\nDEVNAME=edu{k}\n"),
        );
        write(&root.join(format!("dev/edu{k}")), vec![0u8; 4096]);
        interrupts += &format!("  {irq}:       1000  PCI-MSI-{addr}    0-edge      edu\n");
    }
    write(&root.join("sys/bus/pci/drivers/edu/bind"), "");
    write(&root.join("sys/bus/pci/drivers/edu/unbind"), "");
    write(&root.join("sys/module/edu/parameters/irq_mode"), "auto\n");
    write(&root.join("sys/module/edu/parameters/timeout_ms"), "2000\n");
    write(&root.join("lib/modules/edu.ko"), "not a module\n");
    write(&root.join("dev/kmsg"), "");
    write(&root.join("proc/interrupts"), interrupts);
    root
}

/// edu-test under the stand-in.
fn edu_test(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edu-test"))
        .args(args)
        .env("LD_PRELOAD", standin())
        .env("EDU_STANDIN_ROOT", root)
        .env("EDU_STANDIN_MAJOR", MAJOR.to_string())
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The stand-in is good enough that a failure of the selftest under it is
/// about evidence: through it, edu-test gets the answers the driver gives.
#[test]
fn the_stand_in_answers_as_the_abi_says() {
    let root = fake_root("answers");
    let dev = ["--json", "--device", "/dev/edu1"];
    let run = |args: &[&str]| {
        let all: Vec<&str> = dev.iter().chain(args).copied().collect();
        let out = edu_test(&root, &all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&out)
    };
    let info = run(&["info"]);
    assert_eq!(info["id"], 0x010000ed);
    assert_eq!(
        (info["irq"].as_u64(), info["minor"].as_u64()),
        (Some(25), Some(1))
    );
    assert_eq!(info["irq_mode"], "msi");
    assert_eq!(run(&["factorial", "13"])["result"], 0x7328_cc00u32);
    assert_eq!(run(&["liveness", "1"])["result"], !1u32);
    assert_eq!(run(&["raise", "0x12"])["handler_saw"], 0x12);
    fs::write(root.join("in"), b"from software").unwrap();
    run(&[
        "dma-write",
        "--offset",
        "4090",
        "--length",
        "6",
        root.join("in").to_str().unwrap(),
    ]);
    assert_eq!(
        run(&["dma-read", "--offset", "4090"])["hex"],
        "66726f6d2073"
    );
    let out = edu_test(&root, &["--device", "/dev/edu1", "raise", "0x100"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EINVAL"));
    fs::remove_dir_all(&root).unwrap();
}

/// Where each case must find its evidence missing.
fn missing_evidence(case: &str) -> Option<&'static str> {
    match case {
        // Nothing to do with the device: may pass.
        "unknown-ioctl" => None,
        // No interrupt: the device's registers through resource0.
        "info" | "liveness" => Some("resource0: register"),
        _ => Some("/proc/interrupts: IRQ"),
    }
}

#[test]
fn the_selftest_fails_every_device_case_for_lack_of_evidence() {
    let root = fake_root("selftest");
    let out = edu_test(&root, &["--json", "--device", "/dev/edu0", "selftest"]);
    // The case lines, for the test's log.
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let doc = json(&out);
    let list = edu_test(&root, &["selftest", "--list"]);
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let cases = doc["cases"].as_array().unwrap();
    let ran: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(ran, names, "every case ran, none vanished");
    let mut wrong = Vec::new();
    for c in cases {
        let (name, result, reason) = (
            c["name"].as_str().unwrap(),
            c["result"].as_str().unwrap(),
            c["reason"].as_str().unwrap(),
        );
        match missing_evidence(name) {
            None if result == "ok" => {}
            Some(marker) if result == "fail" && reason.contains(marker) => {}
            want => wrong.push(format!("{name}: {result}: {reason} (wanted {want:?})")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(doc["passed"], 1, "{doc}");
    assert_eq!(doc["skipped"], 0, "{doc}");
    assert_eq!(out.status.code(), Some(1));
    fs::remove_dir_all(&root).unwrap();
}
