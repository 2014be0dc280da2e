//! PCI and edu through the guest's eyes: enumeration over 0xCF8/0xCFC, BAR
//! sizing and relocation, command register, edu MMIO and DMA, one and two
//! devices.

mod common;

use common::{boot, parse_kv};

fn check_edu_lines(r: &common::Run, n: u64) {
    r.assert_pass();
    // Host bridge at 00:00.0 (class 0x060000), then the edus.
    let devs = r.lines("pci dev=");
    assert_eq!(devs.len() as u64, 1 + n, "{}", r.serial);
    assert_eq!(parse_kv(devs[0], "dev"), Some(0));
    assert_eq!(parse_kv(devs[0], "class").map(|c| c >> 8), Some(0x06_0000));
    for (i, l) in devs[1..].iter().enumerate() {
        assert_eq!(parse_kv(l, "dev"), Some(i as u64 + 1));
        assert_eq!(parse_kv(l, "id"), Some(0x11e8_1234));
        // Class 0x00ff00, revision 0x10.
        assert_eq!(parse_kv(l, "class"), Some(0x00ff_0010));
    }
    let edus = r.lines("edu dev=");
    assert_eq!(edus.len() as u64, n);
    for (i, l) in edus.iter().enumerate() {
        assert_eq!(parse_kv(l, "barmask"), Some(0xfff0_0000), "{l}");
        assert_eq!(parse_kv(l, "size"), Some(1 << 20), "{l}");
        assert_eq!(parse_kv(l, "bar0"), Some(0xe000_0000 + ((i as u64) << 20)));
        assert_eq!(parse_kv(l, "cmd").map(|c| c & 0x6), Some(0x6), "{l}");
    }
    let mmio = r.lines("edu-mmio");
    assert_eq!(mmio.len() as u64, n);
    for l in mmio {
        assert_eq!(parse_kv(l, "id"), Some(0x0100_00ed));
        assert_eq!(parse_kv(l, "liveness"), Some(!0x1234_5678u32 as u64));
        assert_eq!(parse_kv(l, "fact10"), Some(3_628_800));
        assert!(parse_kv(l, "polls").unwrap() >= 1);
    }
    assert_eq!(
        r.lines("edu-dma 4096 bytes both ways ok").len() as u64,
        n,
        "{}",
        r.serial
    );
    assert_eq!(r.value("pci edus", "edus"), n);
    // The device side agrees: two transfers per device, no guest errors.
    assert_eq!(
        r.log
            .matches("dma_completed: 2, dma_out_of_range: 0")
            .count() as u64,
        n,
        "{}",
        r.log
    );
}

/// One edu: found, BAR sized and moved, MMIO and DMA work.
#[test]
fn one_edu_enumerates_and_works() {
    let r = boot(
        "pci",
        &["--memory", "16", "--edu", "1", "--edu-dma-delay-ms", "1"],
    );
    check_edu_lines(&r, 1);
}

/// Two edus at once, each in its own slot with its own BAR and buffer.
#[test]
fn two_edus_enumerate_and_work_independently() {
    let r = boot(
        "pci",
        &["--memory", "16", "--edu", "2", "--edu-dma-delay-ms", "1"],
    );
    check_edu_lines(&r, 2);
}

/// QEMU's default DMA delay (100 ms) is honoured: the guest polls the
/// command register until the transfer completes.
#[test]
fn default_dma_delay_is_waited_for() {
    let r = boot("pci", &["--memory", "16", "--edu", "1"]);
    check_edu_lines(&r, 1);
    assert!(
        r.elapsed >= std::time::Duration::from_millis(200),
        "two transfers of 100 ms finished in {:?}",
        r.elapsed
    );
}

/// With no edu, only the host bridge answers.
#[test]
fn no_edu_only_host_bridge() {
    let r = boot("pci", &["--memory", "16", "--edu", "0"]);
    r.assert_pass();
    assert_eq!(r.lines("pci dev=").len(), 1, "{}", r.serial);
    assert_eq!(r.value("pci edus", "edus"), 0);
}

/// A hostile guest (random ports, configuration registers and MMIO of every
/// size, DMA outside the buffer and outside RAM) cannot take the VMM down:
/// it runs to its end, and the guest errors are counted and logged.
#[test]
fn hostile_guest_cannot_take_the_vmm_down() {
    let r = boot(
        "chaos",
        &["--memory", "16", "--edu", "2", "--edu-dma-delay-ms", "0"],
    );
    r.assert_pass();
    assert_eq!(r.lines("chaos: survived").len(), 1);
    assert!(r.log.contains("dma_out_of_range: 4,"), "{}", r.log);
    assert_eq!(
        r.log.matches("DMA out of range, nothing copied").count(),
        4,
        "{}",
        r.log
    );
    let nothing: u64 = r
        .log
        .split("mmio; ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no access count in {}", r.log));
    assert!(nothing > 100, "only {nothing} accesses to nothing counted");
}

/// The measurement guest: 10,000 reads of the identification register,
/// each an MMIO exit through the bus to the device, all correct.
#[test]
fn mmio_loop_measurement_guest_runs() {
    let r = boot("mmio_loop", &["--memory", "16", "--edu", "1"]);
    r.assert_pass();
    assert_eq!(r.value("mmio_loop reads", "reads"), 10_000);
    assert!(r.log.contains(", 10000 mmio;"), "{}", r.log);
    eprintln!(
        "mmio_loop: {:.1} us per MMIO exit (wall, whole run)",
        r.elapsed.as_secs_f64() * 1e6 / 10_000.0
    );
}
