//! Mapping guest RAM in KVM before the guest runs (`KVM_PRE_FAULT_MEMORY`).
//!
//! KVM maps guest RAM into its stage-2 page tables lazily: the first guest
//! access to each page is a VM exit (a nested page fault on AMD, an EPT
//! violation on Intel) that KVM fixes. Without huge pages behind guest RAM
//! that is one exit per 4 KiB the guest touches: about 12,000 of edu-vmm's
//! 15,000 to 19,000 exits of a nested boot to init (docs/vmm.md, "Exits to
//! init").
//! The VMM knows which memory the guest touches first, since it put the
//! boot image there: the kernel runs from its image, unpacks the initramfs
//! and reads the boot data in low memory. [`Prefault::Boot`] maps those
//! ranges before the first `KVM_RUN`; [`Prefault::All`] maps all of low RAM
//! (every page becomes resident in the host at once); [`Prefault::None`]
//! leaves it all to the guest's faults.
//!
//! Where KVM lacks the ioctl (before Linux 6.10, or without two-dimensional
//! paging) the VMM says so once and boots without it: it only saves exits.

use kvm_bindings::{kvm_pre_fault_memory, KVMIO, KVM_CAP_PRE_FAULT_MEMORY};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use kvm_ioctls::Kvm;
use vm_memory::{
    Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    MemoryRegionAddress,
};
use vmm_sys_util::errno;
use vmm_sys_util::ioctl::ioctl_with_mut_ref;
use vmm_sys_util::ioctl_iowr_nr;

use crate::boot::{Initramfs, LoadedKernel};
use crate::memory::HIMEM_START;

ioctl_iowr_nr!(KVM_PRE_FAULT_MEMORY, KVMIO, 0xd5, kvm_pre_fault_memory);

/// Which guest RAM edu-vmm maps before the guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Prefault {
    /// Nothing: the guest faults every page in.
    None,
    /// What the boot image occupies: low memory (boot data), the kernel's
    /// image, the initramfs.
    Boot,
    /// All guest RAM below the PCI hole (where the boot images live).
    All,
}

/// Errors mapping guest RAM in advance.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A range is not guest RAM.
    #[error("{start:#x}..{end:#x} is not guest RAM")]
    NotRam {
        /// First guest-physical address of the range.
        start: u64,
        /// End of the range.
        end: u64,
    },
    /// The host could not make a range resident.
    #[error("madvise(MADV_POPULATE_WRITE) {start:#x}..{end:#x}: {source}")]
    Populate {
        /// First guest-physical address of the range.
        start: u64,
        /// End of the range.
        end: u64,
        /// madvise's error.
        source: std::io::Error,
    },
    /// KVM refused a range.
    #[error("KVM_PRE_FAULT_MEMORY {start:#x}..{end:#x}: {source}")]
    Ioctl {
        /// First guest-physical address of the range.
        start: u64,
        /// End of the range.
        end: u64,
        /// The ioctl's error.
        source: errno::Error,
    },
}

/// A guest-physical range `[start, end)`.
pub type Range = (u64, u64);

/// The ranges `policy` maps, page-aligned, sorted and merged, within RAM
/// below `ram_end` (the end of low RAM: boot images live there).
pub fn ranges(
    policy: Prefault,
    kernel: &LoadedKernel,
    initramfs: Option<Initramfs>,
    ram_end: u64,
) -> Vec<Range> {
    let mut r: Vec<Range> = match policy {
        Prefault::None => Vec::new(),
        Prefault::All => vec![(0, ram_end)],
        Prefault::Boot => {
            let mut v = vec![(0, HIMEM_START), (kernel.start, kernel.end)];
            v.extend(initramfs.map(|i| (i.addr, i.addr + i.size)));
            v
        }
    };
    const PAGE: u64 = 4096;
    for x in r.iter_mut() {
        *x = (x.0 & !(PAGE - 1), x.1.next_multiple_of(PAGE).min(ram_end));
    }
    r.retain(|x| x.0 < x.1);
    r.sort_unstable();
    let mut merged: Vec<Range> = Vec::with_capacity(r.len());
    for x in r {
        match merged.last_mut() {
            Some(last) if x.0 <= last.1 => last.1 = last.1.max(x.1),
            _ => merged.push(x),
        }
    }
    merged
}

/// Makes `ranges` of `mem` resident and writable in the host, then maps
/// them in KVM through `vcpu` (whose registers are set: KVM maps for its
/// current mode). Returns the bytes mapped, or `Ok(None)` when this KVM
/// has no `KVM_PRE_FAULT_MEMORY` (then nothing is done), and how long the
/// host took to populate and KVM to map.
pub fn map(
    kvm: &Kvm,
    vcpu: &impl AsRawFd,
    mem: &GuestMemoryMmap,
    ranges: &[Range],
) -> Result<Option<Mapped>, Error> {
    if kvm.check_extension_raw(KVM_CAP_PRE_FAULT_MEMORY.into()) <= 0 {
        return Ok(None);
    }
    let mut m = Mapped::default();
    for &(start, end) in ranges {
        let t = Instant::now();
        populate(mem, start, end)?;
        m.populate += t.elapsed();
        let t = Instant::now();
        let mut arg = kvm_pre_fault_memory {
            gpa: start,
            size: end - start,
            ..Default::default()
        };
        // KVM advances gpa and shrinks size as it goes, and stops early
        // (EINTR, EAGAIN) when a signal or a reschedule is pending.
        while arg.size > 0 {
            // SAFETY: a vCPU fd and a kvm_pre_fault_memory that lives for
            // the call, whose size the ioctl number encodes; KVM only
            // writes that struct.
            let ret = unsafe { ioctl_with_mut_ref(vcpu, KVM_PRE_FAULT_MEMORY(), &mut arg) };
            if ret < 0 {
                let e = errno::Error::last();
                if matches!(e.errno(), libc::EINTR | libc::EAGAIN) {
                    continue;
                }
                return Err(Error::Ioctl {
                    start,
                    end,
                    source: e,
                });
            }
        }
        m.map += t.elapsed();
        m.bytes += end - start;
    }
    Ok(Some(m))
}

/// What [`map`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// Bytes mapped.
    pub bytes: u64,
    /// Time the host took to make them resident.
    pub populate: Duration,
    /// Time KVM took to map them.
    pub map: Duration,
}

/// `MADV_POPULATE_WRITE` on the host mapping of guest RAM `[start, end)`.
fn populate(mem: &GuestMemoryMmap, start: u64, end: u64) -> Result<(), Error> {
    let not_ram = || Error::NotRam { start, end };
    let region = mem.find_region(GuestAddress(start)).ok_or_else(not_ram)?;
    let offset = start - region.start_addr().raw_value();
    if end - start > region.len() - offset {
        return Err(not_ram());
    }
    let host = region
        .get_host_address(MemoryRegionAddress(offset))
        .map_err(|_| not_ram())?;
    // SAFETY: [host, host + end - start) lies inside one live mapping of
    // guest RAM (checked above; `start` is page-aligned, as are regions);
    // MADV_POPULATE_WRITE only faults its pages in, writing nothing.
    let ret = unsafe {
        libc::madvise(
            host.cast(),
            (end - start) as usize,
            libc::MADV_POPULATE_WRITE,
        )
    };
    if ret != 0 {
        return Err(Error::Populate {
            start,
            end,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{EntryMode, KernelKind};

    fn kernel(start: u64, end: u64) -> LoadedKernel {
        LoadedKernel {
            entry: GuestAddress(start),
            mode: EntryMode::Pvh,
            kind: KernelKind::Elf,
            start,
            end,
        }
    }

    #[test]
    fn boot_maps_low_memory_kernel_and_initramfs_page_aligned() {
        let i = Initramfs {
            addr: 0xf2c_b000,
            size: 0xd3_4567,
        };
        let r = ranges(
            Prefault::Boot,
            &kernel(0x100_0000, 0x1cb_76f8),
            Some(i),
            0x1000_0000,
        );
        assert_eq!(
            r,
            vec![
                (0, 0x10_0000),
                (0x100_0000, 0x1cb_8000),
                (0xf2c_b000, 0x1000_0000),
            ]
        );
    }

    #[test]
    fn overlapping_ranges_merge_and_nothing_passes_ram_end() {
        // A bzImage is loaded at 1 MiB, right after low memory.
        let r = ranges(
            Prefault::Boot,
            &kernel(0x10_0000, 0x300_0000),
            None,
            0x200_0000,
        );
        assert_eq!(r, vec![(0, 0x200_0000)]);
    }

    #[test]
    fn populate_makes_ram_resident_and_refuses_what_is_not_ram() {
        let mem = crate::memory::create_guest_memory(4 << 20).unwrap();
        // Pages 1 and 2 of guest RAM, as mincore(2) sees them (bit 0: resident).
        let resident = || {
            let region = mem.find_region(GuestAddress(0)).unwrap();
            let base = region.get_host_address(MemoryRegionAddress(0)).unwrap();
            let mut v = [0u8; 2];
            // SAFETY: [base + 4 KiB, base + 12 KiB) lies inside the live
            // 4 MiB mapping of `mem`, page-aligned; mincore writes one byte
            // per page into `v`, which has two.
            let ret =
                unsafe { libc::mincore(base.wrapping_add(0x1000).cast(), 0x2000, v.as_mut_ptr()) };
            assert_eq!(ret, 0, "mincore: {}", std::io::Error::last_os_error());
            v.map(|b| b & 1 == 1)
        };
        assert_eq!(resident(), [false, false], "fresh anonymous memory");
        populate(&mem, 0x1000, 0x3000).unwrap();
        assert_eq!(resident(), [true, true]);
        let e = populate(&mem, 0x3f_f000, 0x40_1000).unwrap_err();
        assert_eq!(e.to_string(), "0x3ff000..0x401000 is not guest RAM");
        assert!(matches!(
            populate(&mem, 0x1_0000_0000, 0x1_0000_1000),
            Err(Error::NotRam { .. })
        ));
    }

    #[test]
    fn all_is_ram_and_none_is_nothing() {
        let k = kernel(0x100_0000, 0x200_0000);
        assert_eq!(
            ranges(Prefault::All, &k, None, 0x1000_0000),
            vec![(0, 0x1000_0000)]
        );
        assert!(ranges(Prefault::None, &k, None, 0x1000_0000).is_empty());
    }
}
