//! Interrupts from edu through KVM, received by a guest with its own IDT,
//! local APIC (and, for INTx, IOAPIC programmed from the MP table).

mod common;

use common::{boot, parse_kv};

fn check_irq(r: &common::Run, vector: u64) {
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
    check_irq(&r, 0x41);
    assert_eq!(r.value("irq msi", "cap"), 0x40);
    assert!(r.log.contains("msi_sent: 3,"), "{}", r.log);
    assert!(r.log.contains("intx_asserts: 0,"), "{}", r.log);
}
