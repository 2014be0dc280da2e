//! Interrupts from edu through KVM, received by a guest with its own IDT,
//! local APIC (and, for INTx, IOAPIC programmed from the MP table).

mod common;

use common::{boot, parse_kv};

fn check_irq(r: &common::Run, vector: u64, partial: (u64, u64)) {
    r.assert_pass();
    for (what, status, n) in [
        ("irq fact", 1, 1),
        ("irq raise", 0x1234_0000, 2),
        ("irq dma", 0x100, 3),
    ] {
        let l = r.lines(what);
        assert_eq!(l.len(), 1, "{}", r.serial);
        assert_eq!(parse_kv(l[0], "count"), Some(n), "{what}: {}", l[0]);
        assert_eq!(parse_kv(l[0], "vector"), Some(vector), "{what}: {}", l[0]);
        assert_eq!(parse_kv(l[0], "status"), Some(status), "{what}: {}", l[0]);
    }
    // A raise of 0x6 acked one bit per interrupt: (count, last status).
    let l = r.lines("irq partial");
    assert_eq!(l.len(), 1, "{}", r.serial);
    assert_eq!(parse_kv(l[0], "count"), Some(partial.0), "{}", l[0]);
    assert_eq!(parse_kv(l[0], "status"), Some(partial.1), "{}", l[0]);
    assert_eq!(r.lines("irq no repeat after ack").len(), 1);
}

/// MSI: the guest programs the capability; each interrupt is one
/// KVM_SIGNAL_MSI with its vector.
#[test]
fn msi_interrupts_arrive_once_per_event() {
    let r = boot(
        "irq_msi",
        &["--memory", "16", "--edu", "1", "--edu-dma-delay-ms", "1"],
    );
    // One message per raise: the bit left set after a partial ack does not
    // send another.
    check_irq(&r, 0x41, (4, 0x6));
    assert_eq!(r.value("irq msi", "cap"), 0x40);
    assert!(r.log.contains("msi_sent: 4,"), "{}", r.log);
    assert!(r.log.contains("intx_asserts: 0,"), "{}", r.log);
}

/// INTx: the guest routes its slot's INTA through the IOAPIC pin the MP
/// table names; the line is level (re-delivered after a partial ack) and
/// an acked interrupt is not delivered again.
#[test]
fn intx_interrupts_are_level_and_routed_by_the_mp_table() {
    let r = boot(
        "irq_intx",
        &["--memory", "16", "--edu", "1", "--edu-dma-delay-ms", "1"],
    );
    // The partial ack of 0x6 leaves 0x4 asserted: a second interrupt.
    check_irq(&r, 0x42, (5, 0x4));
    assert_eq!(r.value("irq intx", "pin"), 16);
    assert!(r.log.contains("msi_sent: 0,"), "{}", r.log);
}

/// INTx with two devices: the first device's interrupts still arrive on
/// its own pin while the second sits idle on the next one.
#[test]
fn intx_with_two_devices_uses_the_first_slots_pin() {
    let r = boot(
        "irq_intx",
        &["--memory", "16", "--edu", "2", "--edu-dma-delay-ms", "1"],
    );
    check_irq(&r, 0x42, (5, 0x4));
    assert_eq!(r.value("irq intx", "pin"), 16);
}
