//! Architectural vCPU state at boot: CPUID, MSRs, local APIC LINT pins,
//! the GDT and identity page tables in guest memory, and the registers for
//! the 64-bit and PVH entry modes.

use kvm_bindings::{
    kvm_fpu, kvm_lapic_state, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, CpuId, Msrs,
};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::boot::EntryMode;
use crate::memory::{
    BOOT_STACK_POINTER, GDT_START, IDT_START, PDE_START, PDPTE_START, PML4_START, PVH_INFO_START,
    ZERO_PAGE_START,
};

// Control register and EFER bits.
const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

// MSR numbers.
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// MISC_ENABLE: fast string operations on.
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// MTRR default type: enabled, write-back.
const MTRR_ENABLE_WB: u64 = (1 << 11) | 6;

// Local APIC registers and delivery modes.
const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0b100;
const APIC_MODE_EXTINT: u32 = 0b111;

/// GDT selectors (index * 8).
pub const SEL_CODE64: u16 = 0x08;
/// Flat data segment.
pub const SEL_DATA: u16 = 0x10;
/// Task state segment (KVM needs a usable TR).
pub const SEL_TSS: u16 = 0x18;
/// Flat 32-bit code segment (PVH entry).
pub const SEL_CODE32: u16 = 0x20;

// CPUID bits.
const CPUID_1_ECX_HYPERVISOR: u32 = 1 << 31;
const CPUID_1_EDX_HTT: u32 = 1 << 28;

/// Errors setting up a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A KVM vCPU ioctl failed.
    #[error("{0}: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// KVM accepted only some boot MSRs.
    #[error("KVM accepted {set} of {total} boot MSRs (first refused: {first:#x})")]
    Msrs {
        /// Number set.
        set: usize,
        /// Number requested.
        total: usize,
        /// The first MSR KVM refused.
        first: u32,
    },
    /// Building the MSR list failed.
    #[error("building the MSR list: {0}")]
    MsrList(vmm_sys_util::fam::Error),
    /// Writing the GDT or page tables failed.
    #[error("writing boot GDT or page tables: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// A GDT entry from flags, base and limit (the usual packing).
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0x0000_f0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// The boot GDT: null, 64-bit code, data, TSS, 32-bit code.
pub const GDT: [u64; 5] = [
    0,
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
    gdt_entry(0xc09b, 0, 0xfffff),
];

/// Decodes a GDT entry into the segment KVM wants.
pub fn segment_from_gdt(entry: u64, selector: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let limit_raw = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let g = ((entry >> 55) & 1) as u8;
    kvm_segment {
        base,
        limit: if g == 1 {
            (limit_raw << 12) | 0xfff
        } else {
            limit_raw
        },
        selector,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: if (entry >> 47) & 1 == 0 { 1 } else { 0 },
        padding: 0,
    }
}

/// Writes the GDT, an empty IDT and the identity page tables (4 GiB in
/// 2 MiB pages, so the test guests reach the PCI window too).
pub fn write_boot_tables(mem: &GuestMemoryMmap) -> Result<(), Error> {
    for (i, e) in GDT.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(GDT_START + 8 * i as u64))?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_START))?;
    // PML4[0] -> PDPT; PDPT[0..4] -> four page directories.
    mem.write_obj(PDPTE_START | 0x3, GuestAddress(PML4_START))?;
    for pd in 0..4u64 {
        let pd_addr = PDE_START + pd * 0x1000;
        mem.write_obj(pd_addr | 0x3, GuestAddress(PDPTE_START + pd * 8))?;
        for i in 0..512u64 {
            let phys = (pd << 30) | (i << 21);
            // Present, writable, 2 MiB page.
            mem.write_obj(phys | 0x83, GuestAddress(pd_addr + i * 8))?;
        }
    }
    Ok(())
}

/// Adjusts KVM's supported CPUID for vCPU `id` of `count`.
pub fn adjust_cpuid(cpuid: &mut CpuId, id: u8, count: u8) {
    for e in cpuid.as_mut_slice().iter_mut() {
        match e.function {
            1 => {
                // Initial APIC id in bits 31:24, logical processor count in 23:16.
                e.ebx = (e.ebx & 0x0000_ffff) | (u32::from(id) << 24) | (u32::from(count) << 16);
                e.ecx |= CPUID_1_ECX_HYPERVISOR;
                if count > 1 {
                    e.edx |= CPUID_1_EDX_HTT;
                }
            }
            0xb | 0x1f => {
                // x2APIC id of this CPU.
                e.edx = u32::from(id);
            }
            _ => {}
        }
    }
}

/// The MSRs Linux expects in a known state at boot.
pub fn boot_msrs() -> Vec<kvm_msr_entry> {
    [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB),
    ]
    .iter()
    .map(|&(index, data)| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    })
    .collect()
}

fn lapic_reg(l: &kvm_lapic_state, off: usize) -> u32 {
    let b = &l.regs[off..off + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

fn set_lapic_reg(l: &mut kvm_lapic_state, off: usize, v: u32) {
    for (d, s) in l.regs[off..off + 4].iter_mut().zip(v.to_le_bytes()) {
        *d = s as _;
    }
}

/// Sets the delivery mode (bits 10:8) of a LVT register value.
pub fn lvt_with_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// Configures one vCPU's CPUID, MSRs, FPU and LAPIC LINT pins.
pub fn configure_common(vcpu: &VcpuFd, cpuid: &CpuId) -> Result<(), Error> {
    vcpu.set_cpuid2(cpuid)
        .map_err(|e| Error::Kvm("KVM_SET_CPUID2", e))?;
    let entries = boot_msrs();
    let msrs = Msrs::from_entries(&entries).map_err(Error::MsrList)?;
    let set = vcpu
        .set_msrs(&msrs)
        .map_err(|e| Error::Kvm("KVM_SET_MSRS", e))?;
    if set != entries.len() {
        return Err(Error::Msrs {
            set,
            total: entries.len(),
            first: entries.get(set).map_or(0, |e| e.index),
        });
    }
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu)
        .map_err(|e| Error::Kvm("KVM_SET_FPU", e))?;
    let mut lapic = vcpu
        .get_lapic()
        .map_err(|e| Error::Kvm("KVM_GET_LAPIC", e))?;
    let lint0 = lvt_with_mode(lapic_reg(&lapic, APIC_LVT0), APIC_MODE_EXTINT);
    let lint1 = lvt_with_mode(lapic_reg(&lapic, APIC_LVT1), APIC_MODE_NMI);
    set_lapic_reg(&mut lapic, APIC_LVT0, lint0);
    set_lapic_reg(&mut lapic, APIC_LVT1, lint1);
    vcpu.set_lapic(&lapic)
        .map_err(|e| Error::Kvm("KVM_SET_LAPIC", e))?;
    Ok(())
}

/// Special registers for entry: long mode with paging, or flat 32-bit.
pub fn boot_sregs(mut sregs: kvm_sregs, mode: EntryMode) -> kvm_sregs {
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (GDT.len() * 8 - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 7;
    let data = segment_from_gdt(GDT[2], SEL_DATA);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment_from_gdt(GDT[3], SEL_TSS);
    match mode {
        EntryMode::Linux64 => {
            sregs.cs = segment_from_gdt(GDT[1], SEL_CODE64);
            sregs.cr3 = PML4_START;
            sregs.cr4 |= X86_CR4_PAE;
            sregs.cr0 |= X86_CR0_PE | X86_CR0_PG | X86_CR0_ET;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
        EntryMode::Pvh => {
            sregs.cs = segment_from_gdt(GDT[4], SEL_CODE32);
            sregs.cr0 = (sregs.cr0 & !X86_CR0_PG) | X86_CR0_PE | X86_CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
    }
    sregs
}

/// General registers for entry.
pub fn boot_regs(entry: u64, mode: EntryMode) -> kvm_regs {
    let mut r = kvm_regs {
        rflags: 0x2,
        rip: entry,
        ..Default::default()
    };
    match mode {
        EntryMode::Linux64 => {
            r.rsp = BOOT_STACK_POINTER;
            r.rbp = BOOT_STACK_POINTER;
            r.rsi = ZERO_PAGE_START;
        }
        EntryMode::Pvh => r.rbx = PVH_INFO_START,
    }
    r
}

/// Sets the boot vCPU's registers for the kernel entry.
pub fn configure_boot_vcpu(vcpu: &VcpuFd, entry: u64, mode: EntryMode) -> Result<(), Error> {
    let sregs = vcpu
        .get_sregs()
        .map_err(|e| Error::Kvm("KVM_GET_SREGS", e))?;
    vcpu.set_sregs(&boot_sregs(sregs, mode))
        .map_err(|e| Error::Kvm("KVM_SET_SREGS", e))?;
    vcpu.set_regs(&boot_regs(entry, mode))
        .map_err(|e| Error::Kvm("KVM_SET_REGS", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    #[test]
    fn gdt_entries_decode_to_flat_segments() {
        let cs = segment_from_gdt(GDT[1], SEL_CODE64);
        assert_eq!(
            (cs.base, cs.limit, cs.l, cs.db, cs.present),
            (0, 0xffff_ffff, 1, 0, 1)
        );
        assert_eq!(cs.type_, 0xb);
        let cs32 = segment_from_gdt(GDT[4], SEL_CODE32);
        assert_eq!((cs32.l, cs32.db, cs32.g), (0, 1, 1));
        let ds = segment_from_gdt(GDT[2], SEL_DATA);
        assert_eq!((ds.type_, ds.s, ds.unusable), (3, 1, 0));
        assert_eq!(segment_from_gdt(0, 0).unusable, 1);
    }

    #[test]
    fn page_tables_identity_map_4g() {
        let m = crate::memory::create_guest_memory(16 << 20).unwrap();
        write_boot_tables(&m).unwrap();
        let pml4: u64 = m.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4 & !0xfff, PDPTE_START);
        // 0xfee00000 is in PD 3, entry 0x1f7.
        let pd3: u64 = m.read_obj(GuestAddress(PDPTE_START + 24)).unwrap();
        let e: u64 = m
            .read_obj(GuestAddress((pd3 & !0xfff) + 0x1f7 * 8))
            .unwrap();
        assert_eq!(e, 0xfee0_0000 | 0x83);
    }

    #[test]
    fn cpuid_gets_apic_id_and_hypervisor_bit() {
        let mut c = CpuId::from_entries(&[
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0xff00_0800,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                edx: 9,
                ..Default::default()
            },
        ])
        .unwrap();
        adjust_cpuid(&mut c, 3, 4);
        let s = c.as_slice();
        assert_eq!(s[0].ebx >> 24, 3);
        assert_eq!((s[0].ebx >> 16) & 0xff, 4);
        assert_eq!(s[0].ebx & 0xffff, 0x0800);
        assert_ne!(s[0].ecx & CPUID_1_ECX_HYPERVISOR, 0);
        assert_ne!(s[0].edx & CPUID_1_EDX_HTT, 0);
        assert_eq!(s[1].edx, 3);
    }

    #[test]
    fn long_mode_and_pvh_register_sets() {
        let s = boot_sregs(kvm_sregs::default(), EntryMode::Linux64);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_ne!(s.cr0 & X86_CR0_PG, 0);
        assert_eq!(s.cr3, PML4_START);
        let p = boot_sregs(kvm_sregs::default(), EntryMode::Pvh);
        assert_eq!(
            (p.cr0 & X86_CR0_PG, p.efer, p.cs.selector),
            (0, 0, SEL_CODE32)
        );
        assert_eq!(boot_regs(0x1000, EntryMode::Linux64).rsi, ZERO_PAGE_START);
        assert_eq!(boot_regs(0x1000, EntryMode::Pvh).rbx, PVH_INFO_START);
    }

    #[test]
    fn lvt_mode_bits() {
        assert_eq!(lvt_with_mode(0x0001_0000, APIC_MODE_EXTINT), 0x0001_0700);
        assert_eq!(lvt_with_mode(0x0001_0700, APIC_MODE_NMI), 0x0001_0400);
    }
}
