//! Loading the kernel, command line and initramfs, and the boot information
//! the kernel reads: the zero page (Linux 64-bit boot protocol) or the PVH
//! `hvm_start_info`, both of which also give the ACPI RSDP's address
//! ([`crate::acpi`]).
//!
//! linux-loader parses the images and writes the structures; this module
//! decides where things go and fills in the fields.

use std::fs::File;
use std::path::Path;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{BzImage, Cmdline, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use crate::acpi::RSDP_ADDR;
use crate::memory::{
    e820_map, low_ram_end, CMDLINE_MAX_SIZE, CMDLINE_START, HIMEM_START, PVH_INFO_START,
    PVH_MEMMAP_START, PVH_MODLIST_START, ZERO_PAGE_START,
};

/// "HdrS": the setup header magic.
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// Boot sector signature the kernel checks.
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// Boot loader type "undefined" (we have no assigned id).
const KERNEL_LOADER_OTHER: u8 = 0xff;
/// Default kernel alignment for an ELF kernel's synthesised header.
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x100_0000;
/// Offset of the 64-bit entry point in a bzImage's protected-mode part.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// `XLF_KERNEL_64`: the bzImage has the 64-bit entry point.
const XLF_KERNEL_64: u16 = 1 << 0;
/// PVH start_info magic.
const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Page size for initramfs alignment.
const PAGE_SIZE: u64 = 4096;

/// Errors loading the guest's boot images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel could not be read.
    #[error("kernel {0}: {1}")]
    KernelRead(String, #[source] std::io::Error),
    /// The kernel is neither ELF nor bzImage.
    #[error("kernel {0} is neither an ELF vmlinux nor a bzImage (no ELF magic, no \"HdrS\" setup header)")]
    KernelFormat(String),
    /// The bzImage has no 64-bit entry point.
    #[error("kernel {0} is a bzImage without a 64-bit entry point (XLF_KERNEL_64 not set)")]
    Not64Bit(String),
    /// linux-loader rejected the image.
    #[error("kernel {path} is malformed or does not fit in guest memory: {source}")]
    KernelLoad {
        /// The kernel path.
        path: String,
        /// linux-loader's reason.
        source: linux_loader::loader::Error,
    },
    /// The kernel needs more memory than the guest has.
    #[error("memory too small: the kernel needs RAM up to {need:#x} but the guest has {have:#x} below 3 GiB; raise --memory")]
    MemoryTooSmall {
        /// Highest address the kernel needs.
        need: u64,
        /// End of guest low RAM.
        have: u64,
    },
    /// The initramfs could not be read.
    #[error("initramfs {0}: {1}")]
    InitramfsRead(String, #[source] std::io::Error),
    /// The initramfs does not fit.
    #[error("memory too small: initramfs {path} ({size} bytes) does not fit between the kernel (ends {kernel_end:#x}) and {limit:#x}; raise --memory")]
    InitramfsTooLarge {
        /// The initramfs path.
        path: String,
        /// Its size.
        size: u64,
        /// Where the kernel's memory ends.
        kernel_end: u64,
        /// Highest address the initramfs may reach.
        limit: u64,
    },
    /// Writing the initramfs failed.
    #[error("writing initramfs into guest memory: {0}")]
    InitramfsWrite(#[source] vm_memory::GuestMemoryError),
    /// The command line is invalid or too long.
    #[error("kernel command line: {0}")]
    Cmdline(#[from] linux_loader::cmdline::Error),
    /// Writing the command line failed.
    #[error("writing the kernel command line: {0}")]
    CmdlineWrite(#[source] linux_loader::loader::Error),
    /// Writing boot parameters failed.
    #[error("writing boot parameters: {0}")]
    BootParams(#[from] linux_loader::configurator::Error),
}

/// How the boot vCPU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// 64-bit long mode, `rsi` = zero page (bzImage, or ELF without PVH note).
    Linux64,
    /// 32-bit protected mode, paging off, `rbx` = `hvm_start_info` (PVH).
    Pvh,
}

/// What kind of image was loaded.
#[derive(Debug, Clone, Copy)]
pub enum KernelKind {
    /// A bzImage, with its setup header.
    BzImage(setup_header),
    /// An ELF vmlinux.
    Elf,
}

/// The loaded kernel.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    /// Entry point.
    pub entry: GuestAddress,
    /// How to enter it.
    pub mode: EntryMode,
    /// Image kind.
    pub kind: KernelKind,
    /// First address of the kernel's image in guest memory.
    pub start: u64,
    /// First address after the memory the kernel will use at boot.
    pub end: u64,
}

/// Where the initramfs was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Initramfs {
    /// Guest physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}

fn is_elf(f: &mut File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut magic = [0u8; 4];
    f.seek(SeekFrom::Start(0))?;
    let n = f.read(&mut magic)?;
    Ok(n == 4 && &magic == b"\x7fELF")
}

/// The lowest physical address of an ELF64's loadable segments (for
/// Linux, the start of its image; its entry point lies further in), once
/// linux-loader has validated the file. `None` if it has none.
fn elf_load_start(f: &mut File) -> std::io::Result<Option<u64>> {
    use std::io::{Read, Seek, SeekFrom};
    const PT_LOAD: u32 = 1;
    let mut ehdr = [0u8; 64];
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut ehdr)?;
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let le16 = |b: &[u8]| u16::from_le_bytes(b.try_into().unwrap_or_default());
    let (phoff, phentsize, phnum) = (
        le64(&ehdr[32..40]),
        le16(&ehdr[54..56]),
        le16(&ehdr[56..58]),
    );
    let mut start: Option<u64> = None;
    let mut phdr = vec![0u8; usize::from(phentsize).max(56)];
    for i in 0..u64::from(phnum) {
        f.seek(SeekFrom::Start(phoff + i * u64::from(phentsize)))?;
        f.read_exact(&mut phdr)?;
        // p_type at 0, p_paddr at 24 in an Elf64_Phdr.
        if u32::from_le_bytes([phdr[0], phdr[1], phdr[2], phdr[3]]) == PT_LOAD {
            let paddr = le64(&phdr[24..32]);
            start = Some(start.map_or(paddr, |s| s.min(paddr)));
        }
    }
    Ok(start)
}

/// Loads a bzImage or an ELF vmlinux into `mem`.
pub fn load_kernel(
    mem: &GuestMemoryMmap,
    path: &Path,
    mem_size: u64,
) -> Result<LoadedKernel, Error> {
    let name = path.display().to_string();
    let mut f = File::open(path).map_err(|e| Error::KernelRead(name.clone(), e))?;
    let elf = is_elf(&mut f).map_err(|e| Error::KernelRead(name.clone(), e))?;
    let have = low_ram_end(mem_size);
    let load_err = |source| Error::KernelLoad {
        path: name.clone(),
        source,
    };
    let k = if elf {
        let r = Elf::load(mem, None, &mut f, Some(GuestAddress(HIMEM_START))).map_err(load_err)?;
        let start = elf_load_start(&mut f).map_err(|e| Error::KernelRead(name.clone(), e))?;
        let (entry, mode) = match r.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(a) => (a, EntryMode::Pvh),
            _ => (r.kernel_load, EntryMode::Linux64),
        };
        LoadedKernel {
            entry,
            mode,
            kind: KernelKind::Elf,
            start: start.unwrap_or(r.kernel_load.raw_value()),
            end: r.kernel_end,
        }
    } else {
        let r =
            BzImage::load(mem, None, &mut f, Some(GuestAddress(HIMEM_START))).map_err(
                |e| match e {
                    linux_loader::loader::Error::Bzimage(
                        linux_loader::loader::bzimage::Error::InvalidBzImage,
                    ) => Error::KernelFormat(name.clone()),
                    e => load_err(e),
                },
            )?;
        let hdr = r
            .setup_header
            .ok_or_else(|| Error::KernelFormat(name.clone()))?;
        let xloadflags = hdr.xloadflags;
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(Error::Not64Bit(name));
        }
        // The decompressor runs in place at pref_address (or the load
        // address) and needs init_size bytes from there.
        let base = hdr.pref_address.max(r.kernel_load.raw_value());
        let need = base + u64::from(hdr.init_size);
        LoadedKernel {
            entry: r.kernel_load.unchecked_add(BZIMAGE_64BIT_ENTRY_OFFSET),
            mode: EntryMode::Linux64,
            kind: KernelKind::BzImage(hdr),
            start: r.kernel_load.raw_value(),
            end: need.max(r.kernel_end),
        }
    };
    if k.end > have {
        return Err(Error::MemoryTooSmall { need: k.end, have });
    }
    Ok(k)
}

/// Places the initramfs page-aligned at the top of low RAM (below the
/// kernel's `initrd_addr_max` for a bzImage).
pub fn load_initramfs(
    mem: &GuestMemoryMmap,
    path: &Path,
    kernel: &LoadedKernel,
    mem_size: u64,
) -> Result<Initramfs, Error> {
    let name = path.display().to_string();
    let mut f = File::open(path).map_err(|e| Error::InitramfsRead(name.clone(), e))?;
    let size = f
        .metadata()
        .map_err(|e| Error::InitramfsRead(name.clone(), e))?
        .len();
    let mut limit = low_ram_end(mem_size);
    if let KernelKind::BzImage(hdr) = kernel.kind {
        let max = hdr.initrd_addr_max;
        if max != 0 {
            limit = limit.min(u64::from(max) + 1);
        }
    }
    let too_large = || Error::InitramfsTooLarge {
        path: name.clone(),
        size,
        kernel_end: kernel.end,
        limit,
    };
    let addr = limit.checked_sub(size).ok_or_else(too_large)? & !(PAGE_SIZE - 1);
    if addr < kernel.end {
        return Err(too_large());
    }
    let len = usize::try_from(size).map_err(|_| too_large())?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut f, len)
        .map_err(Error::InitramfsWrite)?;
    Ok(Initramfs { addr, size })
}

/// Writes the NUL-terminated command line at [`CMDLINE_START`].
pub fn load_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> Result<usize, Error> {
    let c = Cmdline::try_from(cmdline, CMDLINE_MAX_SIZE)?;
    linux_loader::loader::load_cmdline(mem, GuestAddress(CMDLINE_START), &c)
        .map_err(Error::CmdlineWrite)?;
    Ok(cmdline.len())
}

/// Fills and writes the zero page for the 64-bit boot protocol.
pub fn write_zero_page(
    mem: &GuestMemoryMmap,
    kernel: &LoadedKernel,
    cmdline_len: usize,
    initramfs: Option<Initramfs>,
    mem_size: u64,
) -> Result<(), Error> {
    let mut params = boot_params::default();
    if let KernelKind::BzImage(hdr) = kernel.kind {
        params.hdr = hdr;
    } else {
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    }
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some(i) = initramfs {
        params.hdr.ramdisk_image = i.addr as u32;
        params.hdr.ramdisk_size = i.size as u32;
    }
    let map = e820_map(mem_size);
    for (slot, e) in params.e820_table.iter_mut().zip(map.iter()) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind as u32,
        };
    }
    params.e820_entries = map.len() as u8;
    params.acpi_rsdp_addr = RSDP_ADDR;
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_START)),
        mem,
    )?;
    Ok(())
}

/// Fills and writes the PVH start_info, module list and memory map.
pub fn write_pvh_start_info(
    mem: &GuestMemoryMmap,
    initramfs: Option<Initramfs>,
    mem_size: u64,
) -> Result<(), Error> {
    let map: Vec<hvm_memmap_table_entry> = e820_map(mem_size)
        .iter()
        .map(|e| hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind as u32,
            reserved: 0,
        })
        .collect();
    let mut info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        rsdp_paddr: RSDP_ADDR,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    let mut bp;
    if let Some(i) = initramfs {
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST_START;
        bp = BootParams::new(&info, GuestAddress(PVH_INFO_START));
        bp.set_modules(
            &[hvm_modlist_entry {
                paddr: i.addr,
                size: i.size,
                ..Default::default()
            }],
            GuestAddress(PVH_MODLIST_START),
        );
    } else {
        bp = BootParams::new(&info, GuestAddress(PVH_INFO_START));
    }
    bp.set_sections(&map, GuestAddress(PVH_MEMMAP_START));
    PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&bp, mem)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::create_guest_memory;
    use std::io::Write;

    fn tmp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("edu-vmm-boot-{}-{name}", std::process::id()));
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    /// A minimal bzImage: one setup sector plus the boot sector, then a payload.
    fn fake_bzimage(xloadflags: u16, init_size: u32) -> Vec<u8> {
        let mut v = vec![0u8; 2 * 512 + 4096];
        v[0x1f1] = 1; // setup_sects
        v[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        v[0x202..0x206].copy_from_slice(b"HdrS");
        v[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes()); // version
        v[0x211] = 1; // loadflags: LOADED_HIGH
        v[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
        v[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes()); // initrd_addr_max
        v[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        v[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes()); // pref_address
        v[0x260..0x264].copy_from_slice(&init_size.to_le_bytes());
        v
    }

    /// A minimal ELF64 vmlinux: two loadable segments, at 16 MiB and right
    /// after, and an entry point inside the first (as Linux's is).
    fn fake_vmlinux() -> Vec<u8> {
        let mut v = vec![0u8; 0x1000 + 0x3000];
        v[0..4].copy_from_slice(b"\x7fELF");
        v[4] = 2; // ELFCLASS64
        v[5] = 1; // ELFDATA2LSB
        v[6] = 1; // EV_CURRENT
        v[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        v[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        v[24..32].copy_from_slice(&0x100_1800u64.to_le_bytes()); // e_entry
        v[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        v[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        v[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        v[56..58].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
                                                        // (file offset, physical address, size), listed highest first.
        for (i, (off, paddr, size)) in [
            (0x3000u64, 0x100_2000u64, 0x1000u64),
            (0x1000, 0x100_0000, 0x2000),
        ]
        .into_iter()
        .enumerate()
        {
            let h = 64 + i * 56;
            v[h..h + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            v[h + 8..h + 16].copy_from_slice(&off.to_le_bytes());
            v[h + 16..h + 24].copy_from_slice(&(0xffff_ffff_8000_0000 | paddr).to_le_bytes());
            v[h + 24..h + 32].copy_from_slice(&paddr.to_le_bytes());
            v[h + 32..h + 40].copy_from_slice(&size.to_le_bytes()); // p_filesz
            v[h + 40..h + 48].copy_from_slice(&size.to_le_bytes()); // p_memsz
        }
        v
    }

    #[test]
    fn vmlinux_image_starts_at_its_lowest_segment_not_its_entry() {
        let m = create_guest_memory(32 << 20).unwrap();
        let k = load_kernel(&m, &tmp("vmlinux", &fake_vmlinux()), 32 << 20).unwrap();
        assert_eq!(k.entry, GuestAddress(0x100_1800));
        assert_eq!(k.mode, EntryMode::Linux64);
        assert_eq!((k.start, k.end), (0x100_0000, 0x100_3000));
    }

    #[test]
    fn garbage_kernel_is_rejected_by_name() {
        let m = create_guest_memory(32 << 20).unwrap();
        let p = tmp("garbage", &[0x55; 8192]);
        let e = load_kernel(&m, &p, 32 << 20).unwrap_err();
        assert!(matches!(e, Error::KernelFormat(_)), "{e}");
        assert!(e.to_string().contains("garbage"));
    }

    #[test]
    fn bzimage_loads_with_64bit_entry() {
        let m = create_guest_memory(32 << 20).unwrap();
        let p = tmp("bz", &fake_bzimage(XLF_KERNEL_64, 0x40_0000));
        let k = load_kernel(&m, &p, 32 << 20).unwrap();
        assert_eq!(k.entry, GuestAddress(0x10_0200));
        assert_eq!(k.mode, EntryMode::Linux64);
        assert_eq!((k.start, k.end), (0x10_0000, 0x140_0000));
    }

    #[test]
    fn bzimage_without_64bit_entry_is_refused() {
        let m = create_guest_memory(32 << 20).unwrap();
        let p = tmp("bz32", &fake_bzimage(0, 0x40_0000));
        assert!(matches!(
            load_kernel(&m, &p, 32 << 20),
            Err(Error::Not64Bit(_))
        ));
    }

    #[test]
    fn memory_too_small_for_the_decompressor() {
        let m = create_guest_memory(16 << 20).unwrap();
        let p = tmp("bzbig", &fake_bzimage(XLF_KERNEL_64, 0x100_0000));
        let e = load_kernel(&m, &p, 16 << 20).unwrap_err();
        assert!(matches!(e, Error::MemoryTooSmall { .. }), "{e}");
        assert!(e.to_string().contains("--memory"));
    }

    #[test]
    fn initramfs_goes_to_the_top_and_zero_page_points_at_it() {
        let size = 32u64 << 20;
        let m = create_guest_memory(size).unwrap();
        let k = load_kernel(
            &m,
            &tmp("bz2", &fake_bzimage(XLF_KERNEL_64, 0x40_0000)),
            size,
        )
        .unwrap();
        let i = load_initramfs(&m, &tmp("initrd", &[7u8; 5000]), &k, size).unwrap();
        assert_eq!(i.size, 5000);
        assert_eq!(i.addr % PAGE_SIZE, 0);
        assert!(i.addr + i.size <= size && i.addr + i.size + PAGE_SIZE > size);
        assert_eq!(m.read_obj::<u8>(GuestAddress(i.addr + 4999)).unwrap(), 7);
        let n = load_cmdline(&m, "console=ttyS0").unwrap();
        write_zero_page(&m, &k, n, Some(i), size).unwrap();
        let p: boot_params = m.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap();
        let (img, rsz, cmd) = (p.hdr.ramdisk_image, p.hdr.ramdisk_size, p.hdr.cmd_line_ptr);
        assert_eq!((u64::from(img), u64::from(rsz)), (i.addr, i.size));
        assert_eq!(u64::from(cmd), CMDLINE_START);
        assert_eq!(p.e820_entries, 3);
        let rsdp = p.acpi_rsdp_addr;
        assert_eq!(rsdp, RSDP_ADDR);
        let mut buf = [0u8; 14];
        m.read_slice(&mut buf, GuestAddress(CMDLINE_START)).unwrap();
        assert_eq!(&buf, b"console=ttyS0\0");
    }

    #[test]
    fn initramfs_that_does_not_fit_is_refused() {
        let size = 32u64 << 20;
        let m = create_guest_memory(size).unwrap();
        let k = load_kernel(
            &m,
            &tmp("bz3", &fake_bzimage(XLF_KERNEL_64, 0x40_0000)),
            size,
        )
        .unwrap();
        let big = tmp("bigrd", &vec![0u8; 20 << 20]);
        assert!(matches!(
            load_initramfs(&m, &big, &k, size),
            Err(Error::InitramfsTooLarge { .. })
        ));
    }

    #[test]
    fn pvh_start_info_has_magic_memmap_and_module() {
        let size = 32u64 << 20;
        let m = create_guest_memory(size).unwrap();
        let i = Initramfs {
            addr: 0x100_0000,
            size: 123,
        };
        write_pvh_start_info(&m, Some(i), size).unwrap();
        let s: hvm_start_info = m.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        assert_eq!(s.magic, XEN_HVM_START_MAGIC_VALUE);
        assert_eq!(s.memmap_entries, 3);
        assert_eq!(s.nr_modules, 1);
        assert_eq!(s.rsdp_paddr, RSDP_ADDR);
        let md: hvm_modlist_entry = m.read_obj(GuestAddress(PVH_MODLIST_START)).unwrap();
        assert_eq!((md.paddr, md.size), (0x100_0000, 123));
    }
}
