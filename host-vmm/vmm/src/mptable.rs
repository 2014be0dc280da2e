//! The Intel MultiProcessor Specification 1.4 table.
//!
//! Without ACPI, Linux learns the CPUs, the IOAPIC and how interrupts are
//! wired from this table. Besides the ISA interrupts 0-15 (pin = IRQ, as
//! KVM's default routing has them), it has one entry per PCI slot's INTA
//! (level-triggered, active low), so a PCI device's INTx reaches the IOAPIC
//! pin [`pci_slot_gsi`] names with no ACPI `_PRT`.
//!
//! The table is built as bytes (little endian, packed, as the specification
//! lays it out) rather than as `#[repr(C)]` structures, so no unsafe code is
//! needed to write it.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::memory::{APIC_ADDR, EBDA_START, IOAPIC_ADDR};

/// The table lives in the last KiB of base memory, reserved in the e820 map.
const MP_TABLE_MAX: usize = 0x400;

/// Version of the local APICs KVM emulates.
const APIC_VERSION: u8 = 0x14;
/// Version of KVM's IOAPIC.
const IOAPIC_VERSION: u8 = 0x11;
/// Bus id of the PCI bus.
pub const BUS_PCI: u8 = 0;
/// Bus id of the ISA bus.
pub const BUS_ISA: u8 = 1;
/// Number of ISA interrupts described.
const ISA_IRQS: u8 = 16;
/// First IOAPIC pin used by PCI INTx (KVM's IOAPIC has 24 pins).
const PCI_GSI_BASE: u32 = 16;
/// Number of IOAPIC pins shared by the PCI slots.
const PCI_GSI_COUNT: u32 = 8;

/// Interrupt flags: polarity and trigger conform to the bus (ISA: edge, high).
const IRQFLAG_CONFORM: u16 = 0;
/// Interrupt flags: active low, level triggered (PCI INTx).
const IRQFLAG_LEVEL_LOW: u16 = 0b11 | (0b11 << 2);

/// Errors writing the MP table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The table does not fit in the KiB reserved for it.
    #[error("MP table of {0} bytes does not fit in the KiB reserved for it")]
    TooLarge(usize),
    /// Guest memory write failed.
    #[error("writing the MP table to guest memory: {0}")]
    Write(#[from] vm_memory::GuestMemoryError),
}

/// IOAPIC pin (= GSI under KVM's default routing) of a PCI slot's INTA.
pub fn pci_slot_gsi(slot: u8) -> u32 {
    PCI_GSI_BASE + u32::from(slot.saturating_sub(1)) % PCI_GSI_COUNT
}

/// Two's-complement checksum: the byte that makes the sum of `bytes` zero.
fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

fn io_interrupt(t: &mut Vec<u8>, irqflag: u16, bus: u8, bus_irq: u8, ioapic: u8, pin: u8) {
    t.push(3); // entry type: I/O interrupt assignment
    t.push(0); // interrupt type: INT (vectored)
    t.extend_from_slice(&irqflag.to_le_bytes());
    t.extend_from_slice(&[bus, bus_irq, ioapic, pin]);
}

fn local_interrupt(t: &mut Vec<u8>, irqtype: u8, lint: u8) {
    t.push(4); // entry type: local interrupt assignment
    t.push(irqtype);
    t.extend_from_slice(&IRQFLAG_CONFORM.to_le_bytes());
    t.extend_from_slice(&[BUS_ISA, 0, 0xff, lint]); // all local APICs
}

/// Builds the floating pointer followed by the configuration table for a
/// table placed at `base`, with `vcpus` CPUs and PCI devices in `pci_slots`.
pub fn build(base: u64, vcpus: u8, pci_slots: &[u8]) -> Vec<u8> {
    let ioapic_id = vcpus;
    let table_addr = base + 16;

    let mut t = Vec::new();
    // Configuration table header; length, count and checksum patched below.
    t.extend_from_slice(b"PCMP");
    t.extend_from_slice(&0u16.to_le_bytes()); // base table length
    t.push(4); // specification revision 1.4
    t.push(0); // checksum
    t.extend_from_slice(b"EDU-RS  "); // OEM id
    t.extend_from_slice(b"EDU-VMM     "); // product id
    t.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    t.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    t.extend_from_slice(&0u16.to_le_bytes()); // entry count
    t.extend_from_slice(&(APIC_ADDR as u32).to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes()); // extended table length/checksum
    let mut count: u16 = 0;

    for cpu in 0..vcpus {
        t.push(0); // entry type: processor
        t.push(cpu); // local APIC id
        t.push(APIC_VERSION);
        t.push(if cpu == 0 { 0b11 } else { 0b01 }); // enabled, bootstrap
        t.extend_from_slice(&0x600u32.to_le_bytes()); // signature: family 6
        t.extend_from_slice(&0x201u32.to_le_bytes()); // features: FPU, APIC
        t.extend_from_slice(&[0; 8]);
        count += 1;
    }
    for (id, name) in [(BUS_PCI, b"PCI   "), (BUS_ISA, b"ISA   ")] {
        t.push(1); // entry type: bus
        t.push(id);
        t.extend_from_slice(name);
        count += 1;
    }
    t.push(2); // entry type: IOAPIC
    t.push(ioapic_id);
    t.push(IOAPIC_VERSION);
    t.push(1); // enabled
    t.extend_from_slice(&(IOAPIC_ADDR as u32).to_le_bytes());
    count += 1;
    for irq in 0..ISA_IRQS {
        io_interrupt(&mut t, IRQFLAG_CONFORM, BUS_ISA, irq, ioapic_id, irq);
        count += 1;
    }
    for &slot in pci_slots {
        // Source bus IRQ for PCI: device number in bits 6:2, pin (INTA=0) in 1:0.
        let pin = pci_slot_gsi(slot) as u8;
        io_interrupt(
            &mut t,
            IRQFLAG_LEVEL_LOW,
            BUS_PCI,
            slot << 2,
            ioapic_id,
            pin,
        );
        count += 1;
    }
    local_interrupt(&mut t, 3, 0); // LINT0: ExtINT (the 8259)
    local_interrupt(&mut t, 1, 1); // LINT1: NMI
    count += 2;

    let len = t.len() as u16;
    t[4..6].copy_from_slice(&len.to_le_bytes());
    t[34..36].copy_from_slice(&count.to_le_bytes());
    t[7] = checksum(&t);

    let mut fp = Vec::with_capacity(16 + t.len());
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&(table_addr as u32).to_le_bytes());
    fp.push(1); // length in 16-byte units
    fp.push(4); // specification revision 1.4
    fp.push(0); // checksum
    fp.extend_from_slice(&[0; 5]); // feature bytes: 0 = configuration table present
    fp[10] = checksum(&fp);
    fp.extend_from_slice(&t);
    fp
}

/// Writes the MP table into the reserved KiB below 640 KiB.
pub fn setup(mem: &GuestMemoryMmap, vcpus: u8, pci_slots: &[u8]) -> Result<(), Error> {
    let bytes = build(EBDA_START, vcpus, pci_slots);
    // The reserved KiB ends at 640 KiB; the legacy hole above is not RAM.
    if bytes.len() > MP_TABLE_MAX {
        return Err(Error::TooLarge(bytes.len()));
    }
    mem.write_slice(&bytes, GuestAddress(EBDA_START))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn checksums_are_valid() {
        let b = build(EBDA_START, 2, &[1, 2]);
        assert_eq!(&b[0..4], b"_MP_");
        assert_eq!(sum(&b[0..16]), 0);
        let len = u16::from_le_bytes([b[20], b[21]]) as usize;
        assert_eq!(&b[16..20], b"PCMP");
        assert_eq!(len, b.len() - 16);
        assert_eq!(sum(&b[16..]), 0);
        let ptr = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        assert_eq!(u64::from(ptr), EBDA_START + 16);
    }

    #[test]
    fn entries_describe_cpus_ioapic_and_pci_slots() {
        let b = build(EBDA_START, 3, &[1, 2]);
        let t = &b[16..];
        let count = u16::from_le_bytes([t[34], t[35]]);
        // 3 CPUs + 2 buses + IOAPIC + 16 ISA + 2 PCI + 2 local.
        assert_eq!(count, 3 + 2 + 1 + 16 + 2 + 2);
        let mut off = 44;
        let (mut cpus, mut pci) = (0, Vec::new());
        for _ in 0..count {
            match t[off] {
                0 => {
                    cpus += 1;
                    off += 20;
                }
                3 => {
                    if t[off + 4] == BUS_PCI {
                        let flags = u16::from_le_bytes([t[off + 2], t[off + 3]]);
                        assert_eq!(flags, IRQFLAG_LEVEL_LOW);
                        assert_eq!(t[off + 6], 3, "IOAPIC id follows the CPUs");
                        pci.push((t[off + 5] >> 2, t[off + 7]));
                    }
                    off += 8;
                }
                _ => off += 8,
            }
        }
        assert_eq!(off, t.len());
        assert_eq!(cpus, 3);
        assert_eq!(pci, vec![(1, 16), (2, 17)]);
    }

    #[test]
    fn slot_gsis_wrap_within_the_ioapic() {
        assert_eq!(pci_slot_gsi(1), 16);
        assert_eq!(pci_slot_gsi(8), 23);
        assert_eq!(pci_slot_gsi(9), 16);
    }

    #[test]
    fn largest_table_fits() {
        let slots: Vec<u8> = (1..=crate::config::MAX_EDU_DEVICES).collect();
        let b = build(EBDA_START, crate::config::MAX_VCPUS, &slots);
        assert!(b.len() <= MP_TABLE_MAX, "{} bytes", b.len());
        let m = crate::memory::create_guest_memory(16 << 20).unwrap();
        setup(&m, crate::config::MAX_VCPUS, &slots).unwrap();
    }
}
