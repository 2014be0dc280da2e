//! ACPI tables: how a Linux guest with ACPI learns the machine.
//!
//! Built with rust-vmm's `acpi_tables` crate and written into the BIOS area
//! below 1 MiB (reserved in the e820 map), where Linux also looks when the
//! boot protocol does not hand it the address:
//!
//! ```text
//! 0xe0000  RSDP -> XSDT -> FADT (FACP) -> FACS, DSDT
//!                       -> MADT (APIC)
//! ```
//!
//! The zero page (`acpi_rsdp_addr`) and PVH's `hvm_start_info.rsdp_paddr`
//! point at the RSDP ([`RSDP_ADDR`]); the 16-byte-aligned scan of
//! 0xe0000-0xfffff finds it too.
//!
//! - **FADT**: a PC-compatible machine (not "hardware reduced": the guest
//!   keeps its PIT and 8259s, as with the MP table) with the PM1a event
//!   and control blocks at [`PM1A_EVT_BLK`] and [`PM1A_CNT_BLK`] (modelled
//!   by [`crate::pm`]), SCI on IRQ 9, no SMI command port (always in ACPI
//!   mode), no PM timer, no GPE blocks, the reset register at port 0xcf9
//!   (value 6, which [`crate::bus`] already treats as a reset), the CMOS
//!   century register, and boot architecture flags that say "legacy
//!   devices, no 8042, no VGA": the keyboard controller edu-vmm decodes only
//!   takes the reset command, so Linux must not probe it.
//! - **MADT**: one local APIC per vCPU (APIC id = processor UID = index),
//!   the IOAPIC (id = vCPU count, as in the MP table; GSI base 0), the SCI's
//!   interrupt source override (ISA IRQ 9, level, active high) and LINT1 as
//!   NMI on every CPU. ISA IRQ 0 needs no override: KVM's PIT raises GSI 0,
//!   and KVM's default routing wires GSI *n* to IOAPIC pin *n*.
//! - **DSDT**: `\_S5` (sleep type [`S5_SLP_TYP`]), the PCI host bridge
//!   `\_SB.PCI0` (PNP0A03; `_CRS` with bus 0, the configuration ports, the
//!   I/O ranges around them and the 32-bit PCI window; `_PRT` with the INTA
//!   of every slot that holds a device, to the GSI [`mptable::pci_slot_gsi`]
//!   names, which is how Linux routes INTx when it uses ACPI) and COM1
//!   (PNP0501).
//!
//! The MP table stays for kernels without ACPI (or booted with `acpi=off`).

use acpi_tables::aml::{
    AddressSpace, AddressSpaceCacheable, Device, EISAName, Interrupt, Name, Package, Path,
    ResourceTemplate, Scope, IO,
};
use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace as GasSpace, GAS};
use acpi_tables::madt::{EnabledStatus, IoApic, ProcessorLocalApic};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use edu_pci::bus::{CONFIG_ADDRESS_PORT, CONFIG_IO_LEN};

use crate::bus::RESET_CONTROL_PORT;
use crate::cmos;
use crate::legacy::{SERIAL_IRQ, SERIAL_PORT, SERIAL_PORT_LEN};
use crate::memory::{APIC_ADDR, IOAPIC_ADDR, PCI_MMIO_END, PCI_MMIO_START};
use crate::mptable;

/// Where the RSDP goes: the start of the area Linux scans (0xe0000-0xfffff).
pub const RSDP_ADDR: u64 = 0xe_0000;
/// End (exclusive) of the area the tables may fill.
const TABLES_END: u64 = 0x10_0000;
/// PM1a event block: status (2 bytes) then enable (2 bytes).
pub const PM1A_EVT_BLK: u16 = 0x600;
/// Length of the PM1 event block.
pub const PM1_EVT_LEN: u8 = 4;
/// PM1a control block.
pub const PM1A_CNT_BLK: u16 = 0x604;
/// Length of the PM1 control block.
pub const PM1_CNT_LEN: u8 = 2;
/// ISA IRQ (and GSI) of the SCI.
pub const SCI_IRQ: u8 = 9;
/// The SLP_TYP value `\_S5` gives; with SLP_EN, written to PM1a control, it
/// powers the machine off.
pub const S5_SLP_TYP: u8 = 5;
/// Reset register value: PIIX reset control, system reset (bit 2) with a
/// full reset (bit 1).
const RESET_VALUE: u8 = 0x06;
/// IA-PC boot architecture flag: legacy (ISA/LPC) devices present: the
/// UART, the CMOS clock. Bit 1, "8042 present", is deliberately never set.
const BOOT_ARCH_LEGACY_DEVICES: u16 = 1 << 0;
/// IA-PC boot architecture flag: VGA not present.
const BOOT_ARCH_NO_VGA: u16 = 1 << 2;
/// MADT flags: PC-AT-compatible dual 8259 present (KVM's PIC).
const MADT_PCAT_COMPAT: u32 = 1;
/// Interrupt source override flags: active high (0b01), level (0b11 << 2).
const MPS_INTI_LEVEL_HIGH: u16 = 0b1101;
/// P_LVL2_LAT above 100 us: no C2.
const NO_C2: u16 = 0x0fff;
/// P_LVL3_LAT above 1000 us: no C3.
const NO_C3: u16 = 0xffff;

const OEM_ID: [u8; 6] = *b"EDU-RS";
const OEM_TABLE_ID: [u8; 8] = *b"EDU-VMM ";
const OEM_REVISION: u32 = 1;

/// Errors writing the ACPI tables.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tables do not fit below 1 MiB.
    #[error("ACPI tables of {0} bytes do not fit between {RSDP_ADDR:#x} and 1 MiB")]
    TooLarge(u64),
    /// Guest memory write failed.
    #[error("writing the ACPI tables to guest memory: {0}")]
    Write(#[from] vm_memory::GuestMemoryError),
}

/// The bytes of an `Aml` object (a table, or an AML term).
fn bytes_of(aml: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    aml.to_aml_bytes(&mut v);
    v
}

/// A table with the standard header and `body`, its length and checksum set.
fn table(signature: [u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Sdt::new(signature, 36, revision, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    t.append_slice(body);
    t.as_slice().to_vec()
}

/// `len` bytes of I/O ports at `port`, as a generic address whose
/// registers are accessed `access` at a time.
fn io_gas(port: u16, len: u8, access: AccessSize) -> GAS {
    GAS::new(GasSpace::SystemIo, len * 8, 0, access, port.into())
}

/// The DSDT's AML: `\_S5`, `\_SB.PCI0` and `\_SB.COM1`.
fn dsdt_aml(pci_slots: &[u8]) -> Vec<u8> {
    // \_S5: SLP_TYPa, SLP_TYPb, two reserved.
    let s5 = Name::new(
        Path::new("_S5_"),
        &Package::new(vec![&S5_SLP_TYP, &S5_SLP_TYP, &0u8, &0u8]),
    );

    // The PCI host bridge. Configuration mechanism #1 at 0xcf8-0xcff; the
    // I/O space around it and the 32-bit window where the VMM places BARs
    // are the bridge's windows.
    let bus = AddressSpace::<u16>::new_bus_number(0, 0);
    let config_ports = IO::new(
        CONFIG_ADDRESS_PORT,
        CONFIG_ADDRESS_PORT,
        1,
        CONFIG_IO_LEN as u8,
    );
    let io_low = AddressSpace::<u16>::new_io(0, CONFIG_ADDRESS_PORT - 1, None);
    let io_high = AddressSpace::<u16>::new_io(0xd00, 0xffff, None);
    let mmio = AddressSpace::<u32>::new_memory(
        AddressSpaceCacheable::NotCacheable,
        true,
        PCI_MMIO_START as u32,
        (PCI_MMIO_END - 1) as u32,
        None,
    );
    let crs = ResourceTemplate::new(vec![&bus, &config_ports, &io_low, &io_high, &mmio]);
    // _PRT: (address 0xSSSSFFFF = any function of slot S, pin 0 = INTA,
    // source 0 = no link device, source index = the GSI).
    let routes: Vec<[u32; 4]> = pci_slots
        .iter()
        .map(|&slot| {
            [
                u32::from(slot) << 16 | 0xffff,
                0,
                0,
                mptable::pci_slot_gsi(slot),
            ]
        })
        .collect();
    let entries: Vec<Package> = routes
        .iter()
        .map(|r| Package::new(r.iter().map(|v| v as &dyn Aml).collect()))
        .collect();
    let prt = Package::new(entries.iter().map(|p| p as &dyn Aml).collect());
    let pci0_hid = Name::new(Path::new("_HID"), &EISAName::new("PNP0A03"));
    let pci0_adr = Name::new(Path::new("_ADR"), &0u8);
    let pci0_uid = Name::new(Path::new("_UID"), &0u8);
    let pci0_bbn = Name::new(Path::new("_BBN"), &0u8);
    let pci0_crs = Name::new(Path::new("_CRS"), &crs);
    let pci0_prt = Name::new(Path::new("_PRT"), &prt);
    let pci0 = Device::new(
        Path::new("PCI0"),
        vec![
            &pci0_hid, &pci0_adr, &pci0_uid, &pci0_bbn, &pci0_crs, &pci0_prt,
        ],
    );

    // COM1: the 8250 UART on 0x3f8-0x3ff, ISA IRQ 4 (edge, active high).
    let com1_io = IO::new(SERIAL_PORT, SERIAL_PORT, 1, SERIAL_PORT_LEN as u8);
    let com1_irq = Interrupt::new(true, true, false, false, SERIAL_IRQ);
    let com1_hid = Name::new(Path::new("_HID"), &EISAName::new("PNP0501"));
    let com1_uid = Name::new(Path::new("_UID"), &1u8);
    let com1_crs = Name::new(
        Path::new("_CRS"),
        &ResourceTemplate::new(vec![&com1_io, &com1_irq]),
    );
    let com1 = Device::new(Path::new("COM1"), vec![&com1_hid, &com1_uid, &com1_crs]);

    let sb = Scope::new(Path::new("\\_SB_"), vec![&pci0, &com1]);
    let mut aml = bytes_of(&s5);
    aml.extend(bytes_of(&sb));
    aml
}

/// The MADT: local APICs, IOAPIC, the SCI's override, LINT1 NMI.
fn madt(vcpus: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(APIC_ADDR as u32).to_le_bytes());
    body.extend_from_slice(&MADT_PCAT_COMPAT.to_le_bytes());
    for cpu in 0..vcpus {
        body.extend(bytes_of(&ProcessorLocalApic::new(
            cpu,
            cpu,
            EnabledStatus::Enabled,
        )));
    }
    let ioapic_id = vcpus;
    body.extend(bytes_of(&IoApic::new(ioapic_id, IOAPIC_ADDR as u32, 0)));
    // Interrupt source override (type 2, 10 bytes): bus 0 (ISA), source
    // IRQ, GSI, flags.
    body.extend_from_slice(&[2, 10, 0, SCI_IRQ]);
    body.extend_from_slice(&u32::from(SCI_IRQ).to_le_bytes());
    body.extend_from_slice(&MPS_INTI_LEVEL_HIGH.to_le_bytes());
    // Local APIC NMI (type 4, 6 bytes): all processors (UID 0xff), flags
    // 0 (conforming), LINT1.
    body.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]);
    table(*b"APIC", 5, &body)
}

/// The FADT, pointing at the FACS and the DSDT.
fn fadt(facs: u64, dsdt: u64) -> Vec<u8> {
    let mut f = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .firmware_ctrl_64(facs)
        .dsdt_64(dsdt)
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .flag(Flags::ResetRegSup);
    f.sci_int = u16::from(SCI_IRQ).into();
    f.pm1a_evt_blk = u32::from(PM1A_EVT_BLK).into();
    f.pm1a_cnt_blk = u32::from(PM1A_CNT_BLK).into();
    f.pm1_evt_len = PM1_EVT_LEN;
    f.pm1_cnt_len = PM1_CNT_LEN;
    // Status and enable are two 16-bit registers; control is one.
    f.x_pm1a_evt_blk = io_gas(PM1A_EVT_BLK, PM1_EVT_LEN, AccessSize::WordAccess);
    f.x_pm1a_cnt_blk = io_gas(PM1A_CNT_BLK, PM1_CNT_LEN, AccessSize::WordAccess);
    f.p_lvl2_lat = NO_C2.into();
    f.p_lvl3_lat = NO_C3.into();
    f.century = cmos::REG_CENTURY;
    f.iapc_boot_arch = (BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_NO_VGA).into();
    f.reset_reg = io_gas(RESET_CONTROL_PORT, 1, AccessSize::ByteAccess);
    f.reset_value = RESET_VALUE;
    bytes_of(&f.finalize())
}

/// The tables and where each goes, for a machine with `vcpus` vCPUs and
/// devices in `pci_slots`; the RSDP is the first, at [`RSDP_ADDR`].
pub fn build(vcpus: u8, pci_slots: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut placed: Vec<(u64, Vec<u8>)> = Vec::new();
    // Tables after the RSDP, 16-byte aligned (the FACS needs 64).
    let mut next = RSDP_ADDR + Rsdp::len() as u64;
    let mut place = |bytes: Vec<u8>, align: u64| {
        let addr = next.next_multiple_of(align);
        next = addr + bytes.len() as u64;
        placed.push((addr, bytes));
        addr
    };
    let facs = place(bytes_of(&FACS::new()), 64);
    let dsdt = place(table(*b"DSDT", 2, &dsdt_aml(pci_slots)), 16);
    let madt = place(madt(vcpus), 16);
    let fadt = place(fadt(facs, dsdt), 16);
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt);
    xsdt.add_entry(madt);
    let xsdt = place(bytes_of(&xsdt), 16);
    placed.insert(0, (RSDP_ADDR, bytes_of(&Rsdp::new(OEM_ID, xsdt))));
    placed
}

/// Writes the tables into guest memory.
pub fn setup(mem: &GuestMemoryMmap, vcpus: u8, pci_slots: &[u8]) -> Result<(), Error> {
    let tables = build(vcpus, pci_slots);
    let end = tables
        .iter()
        .map(|(a, b)| a + b.len() as u64)
        .max()
        .unwrap_or(RSDP_ADDR);
    if end > TABLES_END {
        return Err(Error::TooLarge(end - RSDP_ADDR));
    }
    for (addr, bytes) in &tables {
        mem.write_slice(bytes, GuestAddress(*addr))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// The placed tables by signature ("RSD " for the RSDP), each checked:
    /// length field, checksum, inside the area, not overlapping the next.
    fn tables(vcpus: u8, slots: &[u8]) -> BTreeMap<String, (u64, Vec<u8>)> {
        let placed = build(vcpus, slots);
        assert_eq!(placed[0].0, RSDP_ADDR);
        let mut spans: Vec<(u64, u64)> = Vec::new();
        let mut by_sig = BTreeMap::new();
        for (addr, b) in placed {
            let sig = String::from_utf8(b[..4].to_vec()).unwrap();
            if sig == "RSD " {
                assert_eq!(b.len(), 36);
                assert_eq!(u32_at(&b, 20), 36, "RSDP length");
                assert_eq!(sum(&b[..20]), 0, "RSDP checksum");
                assert_eq!(sum(&b), 0, "RSDP extended checksum");
            } else if sig == "FACS" {
                // No checksum in the FACS; 64-byte alignment.
                assert_eq!(u32_at(&b, 4) as usize, b.len(), "FACS length");
                assert_eq!(addr % 64, 0, "FACS alignment");
            } else {
                assert_eq!(u32_at(&b, 4) as usize, b.len(), "{sig} length");
                assert_eq!(sum(&b), 0, "{sig} checksum");
                assert_eq!(addr % 16, 0, "{sig} alignment");
            }
            spans.push((addr, addr + b.len() as u64));
            assert!(by_sig.insert(sig, (addr, b)).is_none(), "one table each");
        }
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "tables overlap: {spans:x?}");
        }
        assert!(spans.last().unwrap().1 <= TABLES_END);
        by_sig
    }

    #[test]
    fn rsdp_xsdt_fadt_point_at_each_other() {
        let t = tables(2, &[1, 2]);
        assert_eq!(
            t.keys().collect::<Vec<_>>(),
            ["APIC", "DSDT", "FACP", "FACS", "RSD ", "XSDT"]
        );
        let rsdp = &t["RSD "].1;
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(rsdp[15], 2, "revision 2: the XSDT is used");
        assert_eq!(u64_at(rsdp, 24), t["XSDT"].0);
        let xsdt = &t["XSDT"].1;
        let entries: Vec<u64> = (36..xsdt.len())
            .step_by(8)
            .map(|o| u64_at(xsdt, o))
            .collect();
        assert_eq!(entries, [t["FACP"].0, t["APIC"].0]);
        let fadt = &t["FACP"].1;
        assert_eq!(fadt.len(), 276, "ACPI 6 FADT");
        assert_eq!(u64_at(fadt, 132), t["FACS"].0, "X_FIRMWARE_CTRL");
        assert_eq!(u64_at(fadt, 140), t["DSDT"].0, "X_DSDT");
        assert_eq!(t["FACS"].1.len(), 64);
    }

    /// A generic address structure at `off`: (space, bit width, access
    /// size, address).
    fn gas(b: &[u8], off: usize) -> (u8, u8, u8, u64) {
        (b[off], b[off + 1], b[off + 3], u64_at(b, off + 4))
    }

    #[test]
    fn fadt_is_a_pc_with_pm1a_s5_reset_and_no_8042() {
        let t = tables(1, &[]);
        let f = &t["FACP"].1;
        let flags = u32_at(f, 112);
        assert_eq!(flags & (1 << 20), 0, "not hardware reduced");
        assert_ne!(flags & (1 << 10), 0, "reset register supported");
        assert_ne!(flags & (1 << 4), 0, "no fixed power button");
        assert_eq!(u16_at(f, 46), 9, "SCI_INT");
        assert_eq!(u32_at(f, 48), 0, "no SMI_CMD: always in ACPI mode");
        assert_eq!(u32_at(f, 56), 0x600, "PM1a_EVT_BLK");
        assert_eq!(u32_at(f, 64), 0x604, "PM1a_CNT_BLK");
        assert_eq!((f[88], f[89]), (4, 2), "PM1_EVT_LEN, PM1_CNT_LEN");
        assert_eq!((u32_at(f, 76), f[91]), (0, 0), "no PM timer");
        assert_eq!((f[92], f[93]), (0, 0), "no GPE blocks");
        assert_eq!(
            gas(f, 148),
            (1, 32, 2, 0x600),
            "X_PM1a_EVT_BLK, word access"
        );
        assert_eq!(
            gas(f, 172),
            (1, 16, 2, 0x604),
            "X_PM1a_CNT_BLK, word access"
        );
        assert_eq!(f[108], 0x32, "CMOS century register");
        let arch = u16_at(f, 109);
        assert_eq!(arch & 0b10, 0, "no 8042: Linux must not probe it");
        assert_eq!(arch & 0b1000, 0, "MSI is supported");
        assert_eq!(arch, 0b101, "legacy devices, no VGA");
        assert_eq!(gas(f, 116), (1, 8, 1, 0xcf9), "RESET_REG");
        assert_eq!(f[128], 6, "RESET_VALUE");
    }

    #[test]
    fn madt_has_every_cpu_the_ioapic_the_sci_override_and_lint1_nmi() {
        let t = tables(3, &[1]);
        let m = &t["APIC"].1;
        assert_eq!(u32_at(m, 36), 0xfee0_0000);
        assert_eq!(u32_at(m, 40), 1, "PCAT_COMPAT: 8259s present");
        let mut off = 44;
        let (mut cpus, mut rest) = (Vec::new(), Vec::new());
        while off < m.len() {
            let (kind, len) = (m[off], usize::from(m[off + 1]));
            let e = &m[off..off + len];
            match kind {
                0 => cpus.push((e[2], e[3], u32_at(e, 4))),
                _ => rest.push(e.to_vec()),
            }
            off += len;
        }
        assert_eq!(off, m.len(), "entries end at the table's length");
        assert_eq!(
            cpus,
            [(0, 0, 1), (1, 1, 1), (2, 2, 1)],
            "(uid, apic id, enabled)"
        );
        let mut ioapic = vec![1, 12, 3, 0];
        ioapic.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
        ioapic.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            rest,
            [
                ioapic,
                vec![2, 10, 0, 9, 9, 0, 0, 0, 0b1101, 0],
                vec![4, 6, 0xff, 0, 0, 1],
            ],
            "IOAPIC id 3 (after the CPUs, as in the MP table); IRQ 9 level high; LINT1 NMI"
        );
    }

    /// What the DSDT's objects decode to.
    #[derive(Debug, Clone, PartialEq)]
    enum Obj {
        Int(u64),
        Buf(Vec<u8>),
        Pkg(Vec<Obj>),
    }

    /// An AML reader for the terms `dsdt_aml` writes (Scope, Device, Name,
    /// Package, Buffer, integers), following the ACPI 6 grammar; any other
    /// opcode fails the test.
    struct Aml<'a> {
        b: &'a [u8],
        pos: usize,
    }

    impl Aml<'_> {
        fn byte(&mut self) -> u8 {
            let v = self.b[self.pos];
            self.pos += 1;
            v
        }

        fn le(&mut self, n: usize) -> u64 {
            let mut v = 0u64;
            for i in 0..n {
                v |= u64::from(self.byte()) << (8 * i);
            }
            v
        }

        /// PkgLength: returns where the package ends.
        fn pkg_end(&mut self) -> usize {
            let start = self.pos;
            let lead = self.byte();
            let follow = usize::from(lead >> 6);
            let mut len = if follow == 0 {
                usize::from(lead & 0x3f)
            } else {
                usize::from(lead & 0x0f)
            };
            for i in 0..follow {
                len |= usize::from(self.byte()) << (4 + 8 * i);
            }
            start + len
        }

        fn name_seg(&mut self) -> String {
            let s = String::from_utf8(self.b[self.pos..self.pos + 4].to_vec()).unwrap();
            self.pos += 4;
            s
        }

        /// A NameString relative to `scope` ("\\" is the root).
        fn name(&mut self, scope: &str) -> String {
            let mut path = if self.b[self.pos] == b'\\' {
                self.pos += 1;
                String::new()
            } else {
                scope.trim_end_matches('\\').to_string()
            };
            let segs = match self.b[self.pos] {
                0x2e => {
                    self.pos += 1;
                    2
                }
                0x2f => {
                    self.pos += 1;
                    usize::from(self.byte())
                }
                _ => 1,
            };
            for _ in 0..segs {
                path.push('\\');
                let seg = self.name_seg();
                path.push_str(&seg);
            }
            path
        }

        fn data(&mut self) -> Obj {
            match self.byte() {
                0x00 => Obj::Int(0),
                0x01 => Obj::Int(1),
                0x0a => Obj::Int(self.le(1)),
                0x0b => Obj::Int(self.le(2)),
                0x0c => Obj::Int(self.le(4)),
                0x0e => Obj::Int(self.le(8)),
                0x11 => {
                    let end = self.pkg_end();
                    let Obj::Int(size) = self.data() else {
                        panic!("buffer size is not an integer")
                    };
                    let v = self.b[self.pos..end].to_vec();
                    assert_eq!(v.len() as u64, size, "buffer size");
                    self.pos = end;
                    Obj::Buf(v)
                }
                0x12 => {
                    let end = self.pkg_end();
                    let n = usize::from(self.byte());
                    let mut v = Vec::new();
                    while self.pos < end {
                        v.push(self.data());
                    }
                    assert_eq!(self.pos, end, "package length");
                    assert_eq!(v.len(), n, "package element count");
                    Obj::Pkg(v)
                }
                op => panic!("unexpected data opcode {op:#x} at {}", self.pos - 1),
            }
        }

        /// Terms up to `end` in `scope`, named objects into `out`.
        fn terms(&mut self, end: usize, scope: &str, out: &mut BTreeMap<String, Obj>) {
            while self.pos < end {
                match self.byte() {
                    0x08 => {
                        let n = self.name(scope);
                        let v = self.data();
                        assert!(out.insert(n, v).is_none(), "a name defined twice");
                    }
                    0x10 => {
                        let e = self.pkg_end();
                        let s = self.name(scope);
                        self.terms(e, &s, out);
                    }
                    0x5b if self.b[self.pos] == 0x82 => {
                        self.pos += 1;
                        let e = self.pkg_end();
                        let d = self.name(scope);
                        self.terms(e, &d, out);
                    }
                    op => panic!("unexpected opcode {op:#x} at {}", self.pos - 1),
                }
            }
            assert_eq!(self.pos, end, "a term ran past its package");
        }
    }

    fn dsdt_objects(slots: &[u8]) -> BTreeMap<String, Obj> {
        let t = tables(1, slots);
        let dsdt = &t["DSDT"].1;
        assert_eq!(dsdt[8], 2, "revision 2: 64-bit integers");
        let mut out = BTreeMap::new();
        let mut r = Aml { b: dsdt, pos: 36 };
        r.terms(dsdt.len(), "\\", &mut out);
        out
    }

    /// Resource descriptors of a `_CRS` buffer, as (tag, payload); checks
    /// the end tag closes it.
    fn resources(buf: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut v = Vec::new();
        let mut i = 0;
        loop {
            let tag = buf[i];
            if tag & 0x80 != 0 {
                let len = usize::from(u16_at(buf, i + 1));
                v.push((tag, buf[i + 3..i + 3 + len].to_vec()));
                i += 3 + len;
            } else if tag == 0x79 {
                assert_eq!(i + 2, buf.len(), "end tag is last");
                return v;
            } else {
                let len = usize::from(tag & 7);
                v.push((tag >> 3, buf[i + 1..i + 1 + len].to_vec()));
                i += 1 + len;
            }
        }
    }

    /// (type, min, max, length) of a Word or DWord address space descriptor.
    fn address_space(tag: u8, p: &[u8]) -> (u8, u64, u64, u64) {
        let n = if tag == 0x88 { 2 } else { 4 };
        let f = |k: usize| {
            let o = 3 + k * n;
            if n == 2 {
                u64::from(u16_at(p, o))
            } else {
                u64::from(u32_at(p, o))
            }
        };
        (p[0], f(1), f(2), f(4))
    }

    fn eisa(id: &str) -> u64 {
        let c = |i: usize| u32::from(id.as_bytes()[i] - 0x40);
        let hex = u32::from_str_radix(&id[3..], 16).unwrap();
        u64::from((c(0) << 26 | c(1) << 21 | c(2) << 16 | hex).swap_bytes())
    }

    #[test]
    fn dsdt_has_s5_the_pci_host_bridge_and_com1() {
        let o = dsdt_objects(&[1, 2, 3]);
        let int = |v: u64| Obj::Int(v);
        assert_eq!(o["\\_S5_"], Obj::Pkg(vec![int(5), int(5), int(0), int(0)]));
        assert_eq!(o["\\_SB_\\PCI0\\_HID"], int(eisa("PNP0A03")));
        assert_eq!(o["\\_SB_\\PCI0\\_UID"], int(0));
        assert_eq!(o["\\_SB_\\PCI0\\_BBN"], int(0));
        assert_eq!(o["\\_SB_\\COM1\\_HID"], int(eisa("PNP0501")));
        assert_eq!(eisa("PNP0A03"), 0x030a_d041, "the well-known encoding");

        let Obj::Buf(crs) = &o["\\_SB_\\PCI0\\_CRS"] else {
            panic!("_CRS is not a buffer")
        };
        let r = resources(crs);
        assert_eq!(r.len(), 5);
        assert_eq!(address_space(r[0].0, &r[0].1), (2, 0, 0, 1), "bus 0");
        assert_eq!(
            r[1],
            (0x08, vec![1, 0xf8, 0x0c, 0xf8, 0x0c, 1, 8]),
            "IO 0xcf8, 8 ports"
        );
        assert_eq!(
            address_space(r[2].0, &r[2].1),
            (1, 0, 0xcf7, 0xcf8),
            "I/O below"
        );
        assert_eq!(
            address_space(r[3].0, &r[3].1),
            (1, 0xd00, 0xffff, 0xf300),
            "I/O above"
        );
        assert_eq!(
            address_space(r[4].0, &r[4].1),
            (0, 0xc000_0000, 0xfebf_ffff, 0xfec0_0000 - 0xc000_0000),
            "the PCI window, up to the IOAPIC"
        );
        for (tag, p) in [&r[0], &r[2], &r[3], &r[4]] {
            assert!(matches!(tag, 0x87 | 0x88), "word/dword address space");
            assert_eq!(p[1] & 1, 0, "the bridge produces the window");
        }

        let route = |slot: u64, gsi: u64| {
            Obj::Pkg(vec![int(slot << 16 | 0xffff), int(0), int(0), int(gsi)])
        };
        assert_eq!(
            o["\\_SB_\\PCI0\\_PRT"],
            Obj::Pkg(vec![route(1, 16), route(2, 17), route(3, 18)]),
            "INTA of each slot to the MP table's GSI"
        );

        let Obj::Buf(com1) = &o["\\_SB_\\COM1\\_CRS"] else {
            panic!("COM1 _CRS is not a buffer")
        };
        let r = resources(com1);
        assert_eq!(r[0], (0x08, vec![1, 0xf8, 0x03, 0xf8, 0x03, 1, 8]));
        assert_eq!(
            r[1],
            (0x89, vec![0b0011, 1, 4, 0, 0, 0]),
            "IRQ 4, edge, high"
        );
        assert_eq!(o.len(), 10, "nothing else: {:?}", o.keys());
    }

    #[test]
    fn prt_follows_the_slots() {
        let o = dsdt_objects(&[]);
        assert_eq!(o["\\_SB_\\PCI0\\_PRT"], Obj::Pkg(vec![]));
        let slots: Vec<u8> = (1..=crate::config::MAX_EDU_DEVICES).collect();
        let Obj::Pkg(p) = &dsdt_objects(&slots)["\\_SB_\\PCI0\\_PRT"] else {
            panic!("_PRT is not a package")
        };
        assert_eq!(p.len(), slots.len());
    }

    #[test]
    fn largest_machine_fits_and_is_written() {
        let slots: Vec<u8> = (1..=crate::config::MAX_EDU_DEVICES).collect();
        tables(crate::config::MAX_VCPUS, &slots);
        let m = crate::memory::create_guest_memory(16 << 20).unwrap();
        setup(&m, crate::config::MAX_VCPUS, &slots).unwrap();
        let mut sig = [0u8; 8];
        m.read_slice(&mut sig, GuestAddress(RSDP_ADDR)).unwrap();
        assert_eq!(&sig, b"RSD PTR ");
    }
}
