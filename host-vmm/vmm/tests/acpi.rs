//! The ACPI tables as a guest finds them, and the power-off they describe:
//! the `acpi` guest locates the RSDP the two ways Linux does, checks every
//! checksum, prints what the FADT, MADT and DSDT say, and then writes
//! `\_S5`'s sleep type with SLP_EN to the FADT's PM1a control port, which
//! must end edu-vmm with status 0 as a power-off.

mod common;

use common::{boot, parse_kv};

#[test]
fn guest_finds_the_acpi_tables_and_s5_powers_off() {
    let r = boot("acpi", &["--memory", "32", "--vcpus", "2", "--edu", "2"]);
    // The guest printed PASS, then did the S5 write; it prints FAIL and
    // resets if it is still running after it.
    r.assert_pass();
    assert!(r.log.contains("guest power-off (ACPI S5)"), "{}", r.log);
    assert!(!r.log.contains("guest reset"), "{}", r.log);

    // The RSDP: the zero page points at it, and the scan finds it there.
    assert_eq!(r.value("zeropage rsdp", "rsdp"), 0xe_0000);
    assert_eq!(r.value("rsdp addr", "addr"), 0xe_0000);
    assert_eq!(r.value("rsdp addr", "revision"), 2);

    // Every table the XSDT lists, each checksum verified by the guest.
    let tables: Vec<&str> = r
        .lines("table ")
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(tables, ["XSDT", "FACP", "APIC", "DSDT"], "{}", r.serial);

    let fadt = r.lines("fadt ")[0];
    assert_eq!(parse_kv(fadt, "sci"), Some(9));
    assert_eq!(parse_kv(fadt, "pm1a_cnt"), Some(0x604));
    assert_eq!(parse_kv(fadt, "pm1a_cnt32"), Some(0x604));
    assert_eq!(
        parse_kv(fadt, "boot_arch"),
        Some(0b101),
        "legacy devices, no 8042, no VGA"
    );
    let flags = parse_kv(fadt, "flags").unwrap();
    assert_eq!(flags & 1 << 20, 0, "not hardware reduced");
    assert_eq!(parse_kv(fadt, "reset"), Some(0xcf9));
    assert_eq!(parse_kv(fadt, "reset_value"), Some(6));
    assert_eq!(r.value("s5 ", "slp_typ"), 5);

    let madt = r.lines("madt lapic")[0];
    assert_eq!(parse_kv(madt, "lapic"), Some(0xfee0_0000));
    assert_eq!(parse_kv(madt, "flags"), Some(1), "PC-AT compatible");
    assert_eq!(parse_kv(madt, "cpus"), Some(2));
    assert_eq!(parse_kv(madt, "ioapics"), Some(1));
    assert_eq!(parse_kv(madt, "isos"), Some(1));
    assert_eq!(parse_kv(madt, "nmis"), Some(1));
    let ioapic = r.lines("madt-ioapic")[0];
    assert_eq!(
        parse_kv(ioapic, "id"),
        Some(2),
        "after the CPUs, as in the MP table"
    );
    assert_eq!(parse_kv(ioapic, "addr"), Some(0xfec0_0000));
    assert_eq!(parse_kv(ioapic, "gsi_base"), Some(0));
    let iso = r.lines("madt-iso")[0];
    assert_eq!(
        (
            parse_kv(iso, "irq"),
            parse_kv(iso, "gsi"),
            parse_kv(iso, "flags")
        ),
        (Some(9), Some(9), Some(0b1101)),
        "the SCI, level triggered, active high"
    );
}
