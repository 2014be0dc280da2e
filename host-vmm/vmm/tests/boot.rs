//! Boot-path tests: the bare-metal guests go through the same memory,
//! kernel loading, zero page, MP table and vCPU code as Linux.

mod common;

use common::{boot, parse_kv, run_vmm, temp_file};

/// Guest reads the zero page and the MP table; the host compares every
/// value with what it configured.
#[test]
fn guest_reads_boot_params_and_mp_table() {
    let initrd: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sum: u64 = initrd.iter().map(|&b| u64::from(b)).sum();
    let rd = temp_file("initrd", &initrd);
    let r = boot(
        "bootinfo",
        &[
            "--memory",
            "32",
            "--vcpus",
            "3",
            "--edu",
            "0",
            "--initramfs",
            rd.to_str().unwrap(),
            "--cmdline",
            "console=ttyS0 edu.bootinfo=42",
        ],
    );
    r.assert_pass();

    // e820: base RAM, the reserved MP-table/BIOS range, RAM from 1 MiB.
    let e820: Vec<Vec<u64>> = r
        .lines("e820 0x")
        .iter()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(r.value("e820 count", "count"), 3);
    assert_eq!(
        e820,
        vec![
            vec![0, 0x9_fc00, 1],
            vec![0x9_fc00, 0x6_0400, 2],
            vec![0x10_0000, (32 << 20) - 0x10_0000, 1],
        ]
    );

    assert_eq!(
        r.lines("cmdline=")[0],
        "cmdline=[console=ttyS0 edu.bootinfo=42]"
    );

    // Initramfs: page aligned at the top of RAM, contents intact.
    let addr = r.value("initrd", "addr");
    assert_eq!(r.value("initrd", "size"), 3000);
    assert_eq!(addr % 4096, 0);
    assert_eq!(addr, ((32u64 << 20) - 3000) & !0xfff);
    assert_eq!(r.value("initrd", "sum"), sum);

    // MP table: found at 0x9fc00, checksums verified by the guest, 3 CPUs,
    // PCI + ISA buses, one IOAPIC, 16 ISA interrupts, LINT0/LINT1.
    assert_eq!(r.value("mp floating", "floating"), 0x9_fc00);
    assert_eq!(r.value("mp lapic", "lapic"), 0xfee0_0000);
    assert_eq!(r.value("mp ioapic", "ioapic"), 0xfec0_0000);
    let counts = r.lines("mp cpus=")[0];
    assert_eq!(parse_kv(counts, "cpus"), Some(3));
    assert_eq!(parse_kv(counts, "buses"), Some(2));
    assert_eq!(parse_kv(counts, "ioapics"), Some(1));
    assert_eq!(parse_kv(counts, "ints"), Some(16));
    assert_eq!(parse_kv(counts, "lints"), Some(2));
    assert!(
        r.lines("mp-pci").is_empty(),
        "no PCI slots without edu devices"
    );
    assert!(r.log.contains("guest reset"), "{}", r.log);
}

/// The same guest packaged as a bzImage goes through the bzImage loader
/// (setup header copied into the zero page, 64-bit entry at load + 0x200).
#[test]
fn bzimage_guest_reads_boot_params() {
    let initrd = vec![3u8; 5000];
    let rd = temp_file("bz-initrd", &initrd);
    let r = common::boot_image(
        "bootinfo.bzImage",
        &[
            "--memory",
            "16",
            "--initramfs",
            rd.to_str().unwrap(),
            "--cmdline",
            "bz=1",
        ],
    );
    r.assert_pass();
    assert!(r.log.contains("(Linux64, entry 0x100200"), "{}", r.log);
    assert_eq!(r.lines("cmdline=")[0], "cmdline=[bz=1]");
    assert_eq!(r.value("initrd", "size"), 5000);
    assert_eq!(r.value("initrd", "sum"), 15000);
    assert_eq!(r.value("initrd", "addr"), ((16u64 << 20) - 5000) & !0xfff);
    assert_eq!(r.value("e820 count", "count"), 3);
    assert_eq!(r.value("mp cpus", "cpus"), 1);
}

/// An ELF with a Xen PVH note is entered in 32-bit mode with ebx pointing
/// at hvm_start_info, which carries the command line, the initramfs as a
/// module, and the memory map.
#[test]
fn pvh_guest_reads_start_info() {
    let initrd: Vec<u8> = (0..777u32).map(|i| i as u8).collect();
    let sum: u64 = initrd.iter().map(|&b| u64::from(b)).sum();
    let rd = temp_file("pvh-initrd", &initrd);
    let r = boot(
        "pvh",
        &[
            "--memory",
            "24",
            "--initramfs",
            rd.to_str().unwrap(),
            "--cmdline",
            "pvh=yes",
        ],
    );
    r.assert_pass();
    assert!(r.log.contains("(Pvh, entry 0x200000"), "{}", r.log);
    let head = r.lines("pvh version")[0];
    assert_eq!(parse_kv(head, "version"), Some(1));
    assert_eq!(parse_kv(head, "modules"), Some(1));
    assert_eq!(parse_kv(head, "memmap"), Some(3));
    assert_eq!(parse_kv(head, "rsdp"), Some(0xe_0000));
    assert_eq!(r.lines("cmdline=")[0], "cmdline=[pvh=yes]");
    assert_eq!(r.value("module", "size"), 777);
    assert_eq!(r.value("module", "sum"), sum);
    assert_eq!(r.value("module", "addr"), ((24u64 << 20) - 777) & !0xfff);
    let map: Vec<&str> = r.lines("pvh-e820");
    assert_eq!(
        map,
        vec![
            "pvh-e820 0x00000000 0x0009fc00 0x00000001",
            "pvh-e820 0x0009fc00 0x00060400 0x00000002",
            "pvh-e820 0x00100000 0x01700000 0x00000001",
        ]
    );
}

/// String port I/O: `rep insb` reads the line status register once per
/// byte (KVM hands the VMM all four in one exit), and `rep outsb` to the
/// serial port prints every byte.
#[test]
fn string_port_io_makes_one_access_per_element() {
    let r = boot("string_io", &["--memory", "16", "--edu", "0"]);
    r.assert_pass();
    assert!(
        r.serial
            .lines()
            .any(|l| l == "string_io: rep outsb reached the serial line"),
        "{}",
        r.serial
    );
    assert_eq!(
        r.value("string_io: lsr=", "lsr"),
        0x6060_6060,
        "{}",
        r.serial
    );
}

/// A triple fault ends the VMM with status 1 and says where.
#[test]
fn triple_fault_exits_nonzero_with_reason() {
    let r = boot("triple_fault", &["--memory", "16", "--edu", "0"]);
    assert!(r.serial.contains("triple_fault: start"), "{}", r.serial);
    assert_eq!(r.status, 1, "{}", r.log);
    assert!(r.log.contains("triple fault on vCPU 0"), "{}", r.log);
}

/// A guest that spins without exits is still visible: the watchdog kicks
/// the vCPU out of KVM_RUN and it logs its position.
#[test]
fn watchdog_reports_a_guest_spinning_without_exits() {
    common::require_kvm();
    let g = common::guest("spin");
    let r = common::run_vmm_limited(
        &[
            "--kernel",
            g.to_str().unwrap(),
            "--memory",
            "16",
            "--watchdog-secs",
            "1",
        ],
        Some(std::time::Duration::from_secs(4)),
    );
    assert!(r.serial.contains("spin: start"), "{}", r.serial);
    assert!(r.log.contains("no port or MMIO exit for 1 s"), "{}", r.log);
    let line = r
        .log
        .lines()
        .find(|l| l.contains("vcpu 0: no exit for a while; rip"))
        .unwrap_or_else(|| panic!("no position report in {}", r.log));
    // The spin loop is the jump right after the start message's call.
    let rip = line
        .split("rip 0x")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap();
    assert!((0x20_0000..0x20_1000).contains(&rip), "{line}");
    assert!(line.contains("efer 0x500"), "long mode: {line}");
}

/// The same guest runs with the seccomp filters off.
#[test]
fn no_seccomp_flag_runs_the_same_guest() {
    let r = boot(
        "bootinfo",
        &["--memory", "16", "--edu", "0", "--no-seccomp"],
    );
    r.assert_pass();
    assert!(r.log.contains("seccomp filters are off"), "{}", r.log);
}

/// Serial output can go to a file.
#[test]
fn serial_to_file() {
    let out = std::env::temp_dir().join(format!("edu-vmm-it-{}-serial.txt", std::process::id()));
    let arg = format!("file:{}", out.display());
    let r = boot(
        "bootinfo",
        &["--memory", "16", "--edu", "0", "--serial", &arg],
    );
    assert_eq!(r.status, 0, "{}", r.log);
    assert!(r.serial.is_empty(), "serial went to stdout: {}", r.serial);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.lines().any(|l| l == "PASS"), "{text}");
}

/// Errors a user can make are named, with status 1 and no guest run.
#[test]
fn user_errors_are_named() {
    let r = run_vmm(&["--kernel", "/nonexistent/bzImage"]);
    assert_eq!(r.status, 1);
    assert!(r.log.contains("/nonexistent/bzImage"), "{}", r.log);

    let junk = temp_file("junk-kernel", &[0x42; 4096]);
    let r = run_vmm(&["--kernel", junk.to_str().unwrap(), "--memory", "16"]);
    assert_eq!(r.status, 1);
    assert!(
        r.log.contains("neither an ELF vmlinux nor a bzImage"),
        "{}",
        r.log
    );

    let g = common::guest("bootinfo");
    let r = run_vmm(&["--kernel", g.to_str().unwrap(), "--memory", "4"]);
    assert_eq!(r.status, 1);
    assert!(r.log.contains("too small"), "{}", r.log);

    let big = temp_file("big-initrd", &vec![0u8; 17 << 20]);
    let r = run_vmm(&[
        "--kernel",
        g.to_str().unwrap(),
        "--memory",
        "16",
        "--initramfs",
        big.to_str().unwrap(),
    ]);
    assert_eq!(r.status, 1);
    assert!(r.log.contains("does not fit"), "{}", r.log);

    let r = run_vmm(&["--kernel", g.to_str().unwrap(), "--vcpus", "0"]);
    assert_eq!(r.status, 1);
    assert!(r.log.contains("--vcpus"), "{}", r.log);
}

/// With edu devices, the MP table has one level-triggered, active-low
/// interrupt entry per slot's INTA, on the IOAPIC pin the VMM wires it to.
#[test]
fn mp_table_routes_each_edu_slot_inta() {
    let r = boot(
        "bootinfo",
        &["--memory", "16", "--edu", "3", "--vcpus", "2"],
    );
    r.assert_pass();
    let pci: Vec<(u64, u64, u64, u64)> = r
        .lines("mp-pci")
        .iter()
        .map(|l| {
            (
                parse_kv(l, "dev").unwrap(),
                parse_kv(l, "pin").unwrap(),
                parse_kv(l, "gsi").unwrap(),
                parse_kv(l, "flags").unwrap(),
            )
        })
        .collect();
    assert_eq!(pci, vec![(1, 0, 16, 0xf), (2, 0, 17, 0xf), (3, 0, 18, 0xf)]);
    assert_eq!(r.value("mp cpus", "ints"), 16 + 3);
    assert_eq!(r.value("mp cpus", "cpus"), 2);
}
