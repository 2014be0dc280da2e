//! Guest physical memory: the address map and the RAM regions.
//!
//! ```text
//! 0x0000_0500  GDT (5 entries), IDT (one null entry) at 0x530
//! 0x0000_6000  PVH start_info, module list at 0x6040, memory map at 0x6100
//! 0x0000_7000  Linux zero page (boot_params)
//! 0x0000_8ff0  initial stack (grows down)
//! 0x0000_9000  PML4, PDPT at 0xa000, four page directories at 0xb000-0xefff
//! 0x0002_0000  kernel command line
//! 0x0009_fc00  MP floating pointer and configuration table (reserved)
//! 0x000e_0000  ACPI tables from the RSDP on (reserved; `acpi.rs`)
//! 0x0010_0000  kernel (bzImage protected-mode part, or ELF segments)
//!   ...        RAM up to min(size, 3 GiB); initramfs at the top of it
//! 0xc000_0000  PCI MMIO window (edu BARs), then IOAPIC 0xfec0_0000, LAPIC 0xfee0_0000
//! 0x1_0000_0000  RAM above 3 GiB continues here
//! ```

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// GDT location.
pub const GDT_START: u64 = 0x500;
/// IDT location (an empty IDT: interrupts stay off until the kernel sets one).
pub const IDT_START: u64 = 0x530;
/// PVH `hvm_start_info`.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH module list (the initramfs).
pub const PVH_MODLIST_START: u64 = 0x6040;
/// PVH memory map.
pub const PVH_MEMMAP_START: u64 = 0x6100;
/// Linux zero page.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Top-level page table.
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table.
pub const PDPTE_START: u64 = 0xa000;
/// First of four page directories (2 MiB pages, 4 GiB identity map).
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Longest command line we pass (Linux x86's COMMAND_LINE_SIZE).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// End of usable base memory (640 KiB minus the MP table's KiB).
pub const EBDA_START: u64 = 0x9_fc00;
/// Start of RAM above the legacy hole; kernels load here or above.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO hole: RAM never lives in [MMIO_GAP_START, 4 GiB).
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// Where edu BARs are placed by the VMM (the guest may move them within the hole).
pub const PCI_MMIO_START: u64 = MMIO_GAP_START;
/// End of the PCI window (the IOAPIC follows).
pub const PCI_MMIO_END: u64 = IOAPIC_ADDR;
/// IOAPIC MMIO base.
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
/// Local APIC MMIO base.
pub const APIC_ADDR: u64 = 0xfee0_0000;

// The fixed boot structures must not overlap (checked at compile time).
const _: () = assert!(GDT_START + 5 * 8 <= IDT_START);
const _: () = assert!(PVH_MEMMAP_START + 8 * 24 <= ZERO_PAGE_START);
const _: () = assert!(ZERO_PAGE_START + 4096 <= BOOT_STACK_POINTER);
const _: () = assert!(PDE_START + 4 * 4096 <= CMDLINE_START);
const _: () = assert!(CMDLINE_START + CMDLINE_MAX_SIZE as u64 <= EBDA_START);

/// Errors creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host could not map the requested RAM.
    #[error("cannot allocate {size} MiB of guest memory: {source}")]
    Mmap {
        /// Requested size in MiB.
        size: u64,
        /// Why.
        source: vm_memory::mmap::FromRangesError,
    },
}

/// RAM regions for a guest of `size` bytes: one below the MMIO hole and,
/// when needed, one above 4 GiB.
pub fn ram_regions(size: u64) -> Vec<(GuestAddress, usize)> {
    if size <= MMIO_GAP_START {
        vec![(GuestAddress(0), size as usize)]
    } else {
        vec![
            (GuestAddress(0), MMIO_GAP_START as usize),
            (GuestAddress(MMIO_GAP_END), (size - MMIO_GAP_START) as usize),
        ]
    }
}

/// End (exclusive) of the RAM below 4 GiB.
pub fn low_ram_end(size: u64) -> u64 {
    size.min(MMIO_GAP_START)
}

/// Kind of an e820 range (the values of the e820 and PVH memory maps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Kind {
    /// Usable RAM.
    Ram = 1,
    /// Reserved (MP table, legacy BIOS area).
    Reserved = 2,
}

/// One range of the guest's physical memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What lives there.
    pub kind: E820Kind,
}

/// The memory map given to the guest, in address order.
pub fn e820_map(size: u64) -> Vec<E820Entry> {
    let mut v = vec![
        E820Entry {
            addr: 0,
            size: EBDA_START,
            kind: E820Kind::Ram,
        },
        E820Entry {
            addr: EBDA_START,
            size: HIMEM_START - EBDA_START,
            kind: E820Kind::Reserved,
        },
        E820Entry {
            addr: HIMEM_START,
            size: low_ram_end(size) - HIMEM_START,
            kind: E820Kind::Ram,
        },
    ];
    if size > MMIO_GAP_START {
        v.push(E820Entry {
            addr: MMIO_GAP_END,
            size: size - MMIO_GAP_START,
            kind: E820Kind::Ram,
        });
    }
    v
}

/// Allocates guest RAM of `size` bytes.
pub fn create_guest_memory(size: u64) -> Result<GuestMemoryMmap, Error> {
    GuestMemoryMmap::from_ranges(&ram_regions(size)).map_err(|source| Error::Mmap {
        size: size >> 20,
        source,
    })
}

/// Asks the host to back guest RAM with transparent huge pages
/// (`MADV_HUGEPAGE`, as QEMU does): KVM then maps the guest 2 MiB at a time
/// where the host page is huge, so a guest touching fresh memory takes one
/// fault per 2 MiB instead of one per 4 KiB, which nested costs an exit each.
/// Whether a huge page is there is up to the host; without transparent
/// huge pages (the kernel's EINVAL) this says so and changes nothing.
pub fn advise_huge_pages(mem: &GuestMemoryMmap) -> Result<(), std::io::Error> {
    for region in mem.iter() {
        // SAFETY: the range is one live anonymous mapping owned by `mem`;
        // MADV_HUGEPAGE only sets a flag on its VMA and moves no data.
        let rc = unsafe {
            libc::madvise(
                region.as_ptr().cast(),
                region.len() as usize,
                libc::MADV_HUGEPAGE,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryBackend;

    #[test]
    fn small_guest_has_one_region() {
        let r = ram_regions(64 << 20);
        assert_eq!(r, vec![(GuestAddress(0), 64 << 20)]);
        let m = create_guest_memory(64 << 20).unwrap();
        assert_eq!(m.num_regions(), 1);
    }

    #[test]
    fn large_guest_skips_the_mmio_hole() {
        let size = 4u64 << 30;
        let r = ram_regions(size);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].0, GuestAddress(MMIO_GAP_END));
        assert_eq!(r[0].1 as u64 + r[1].1 as u64, size);
        let e = e820_map(size);
        assert_eq!(e.len(), 4);
        let ram: u64 = e
            .iter()
            .filter(|x| x.kind == E820Kind::Ram)
            .map(|x| x.size)
            .sum();
        assert_eq!(ram, size - (HIMEM_START - EBDA_START));
    }

    /// The `THPeligible` field of the smaps entry that contains `addr`.
    fn thp_eligible(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("THPeligible:") {
                    return Some(v.trim().to_string());
                }
            }
        }
        None
    }

    #[test]
    fn guest_ram_is_advised_for_huge_pages() {
        let thp = std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled");
        let m = create_guest_memory(64 << 20).unwrap();
        let addr = m.iter().next().unwrap().as_ptr() as usize;
        match advise_huge_pages(&m) {
            Ok(()) => {
                // With THP in `madvise` or `always` mode the advised VMA is
                // eligible; in `never` mode nothing is.
                let mode = std::fs::read_to_string(thp).unwrap_or_default();
                if !mode.contains("[never]") {
                    assert_eq!(thp_eligible(addr).as_deref(), Some("1"));
                }
            }
            Err(e) => {
                assert!(!thp.exists(), "THP is there but madvise failed: {e}");
                assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
            }
        }
    }

    #[test]
    fn e820_is_sorted_and_disjoint() {
        let e = e820_map(256 << 20);
        for w in e.windows(2) {
            assert!(w[0].addr + w[0].size <= w[1].addr);
        }
        assert_eq!(e[2].addr + e[2].size, 256 << 20);
    }
}
