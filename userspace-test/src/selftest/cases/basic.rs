//! Cases of one command each: info, liveness, factorial, raise, unknown
//! numbers, bad addresses and the lab commands.

use super::*;

pub(super) fn info(ctx: &Ctx) -> CaseResult {
    let i = ctx.dev.info()?;
    ensure(i.id == 0x010000ed, || {
        format!("id {:#010x}, expected 0x010000ed", i.id)
    })?;
    ensure(i.dma_mask == 0x0fff_ffff, || {
        format!("dma_mask {:#x}, expected 0x0fffffff", i.dma_mask)
    })?;
    ensure(i.bar0_len == 1 << 20, || {
        format!("bar0_len {:#x}, expected 1 MiB", i.bar0_len)
    })?;
    ensure(i.bar0_start != 0 && i.bar0_start % i.bar0_len == 0, || {
        format!(
            "bar0_start {:#x} is not a naturally aligned BAR",
            i.bar0_start
        )
    })?;
    ensure(
        matches!(i.irq_mode, EDU_IRQ_MODE_INTX | EDU_IRQ_MODE_MSI),
        || format!("irq_mode {}", i.irq_mode),
    )?;
    ensure(i.irq != 0, || "irq 0".into())?;
    let path = ctx.path();
    let (_, minor) = sysfs::node_numbers(&path).map_err(Verdict::Fail)?;
    ensure(u64::from(i.minor) == minor, || {
        format!("minor {}, but {path} is minor {minor}", i.minor)
    })?;
    // Cross-check with what the PCI core says about the device.
    let dir = sysfs::pci_dir_of(&path).map_err(Verdict::Fail)?;
    let resource = std::fs::read_to_string(dir.join("resource")).unwrap_or_default();
    let start = resource
        .split_whitespace()
        .next()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
    ensure(start == Some(i.bar0_start), || {
        format!(
            "bar0_start {:#x}, sysfs resource says {start:?}",
            i.bar0_start
        )
    })?;
    let msi_dir = dir.join("msi_irqs");
    let msi_enabled = std::fs::read_dir(&msi_dir)
        .map(|d| d.count() > 0)
        .unwrap_or(false);
    ensure(msi_enabled == (i.irq_mode == EDU_IRQ_MODE_MSI), || {
        format!(
            "irq_mode {}, but {} says MSI is {}",
            i.irq_mode,
            msi_dir.display(),
            if msi_enabled { "on" } else { "off" }
        )
    })
}

pub(super) fn liveness(ctx: &Ctx) -> CaseResult {
    for v in [0, 1, 0xffff_ffff, 0x1234_5678, 0xa5a5_a5a5, 0x8000_0000] {
        let got = ctx.dev.liveness(v)?;
        ensure(got == !v, || {
            format!(
                "liveness({v:#010x}) read back {got:#010x}, expected {:#010x}",
                !v
            )
        })?;
    }
    Ok(())
}

pub(super) fn factorial_is(ctx: &Ctx, n: u32) -> CaseResult {
    let got = ctx.dev.factorial(n)?;
    let want = factorial_u32(n);
    ensure(got == want, || {
        format!("{n}! = {got:#x}, expected {want:#x}")
    })
}

pub(super) fn factorial_sweep(ctx: &Ctx) -> CaseResult {
    (0..=20).try_for_each(|n| factorial_is(ctx, n))
}

pub(super) fn raise(ctx: &Ctx) -> CaseResult {
    // A factorial first: its completion bit must not leak into the raise.
    factorial_is(ctx, 5)?;
    for v in [0x2, 0x4, 0x80, 0x200, 0x8000_0000, 0x1234_5678, 0xffff_fefe] {
        let seen = ctx.dev.raise(v)?;
        ensure(seen == v, || {
            format!("raised {v:#x}, the handler saw {seen:#x}")
        })?;
    }
    Ok(())
}

pub(super) fn raise_einval(ctx: &Ctx) -> CaseResult {
    for v in [0, 0x1, 0x100, 0x101, 0x102, 0x3, 0x1234_5679, 0xffff_ffff] {
        expect_errno(ctx.dev.raise(v), libc::EINVAL, &format!("raise({v:#x})"))?;
    }
    let seen = ctx.dev.raise(0x2)?;
    ensure(seen == 0x2, || {
        format!("after the refusals, raising 0x2 gave {seen:#x}")
    })
}

pub(super) fn unknown_ioctl(ctx: &Ctx) -> CaseResult {
    let other_magic = (EDU_IOC_INFO & !0xff00) | (u32::from(b'x') << 8);
    let requests: [(&str, u32); 10] = [
        ("_IO('k', 0x7f)", io(0x7f)),
        ("_IO('k', 0x19)", io(0x19)),
        ("_IO('k', 0x1f)", io(0x1f)),
        ("_IO('k', 0x26)", io(0x26)),
        ("_IO('k', 0x20)", io(0x20)),
        ("_IOR('k', 0x20, 32 bytes)", ior::<[u8; 32]>(0x20)),
        ("_IOW('k', 0x20, struct edu_info)", iow::<EduInfo>(0x20)),
        ("_IOR('k', 0x21, u32)", ior::<u32>(0x21)),
        ("EDU_IOC_INFO with magic 'x'", other_magic),
        ("TCGETS", 0x5401),
    ];
    let guard = GuardPages::new().map_err(|e| Verdict::Fail(format!("mmap: {e}")))?;
    for (name, req) in requests {
        expect_errno(
            ctx.dev.ioctl_unmapped("ioctl", req, &guard),
            libc::ENOTTY,
            name,
        )?;
    }
    Ok(())
}

pub(super) fn efault(ctx: &Ctx) -> CaseResult {
    let guard = GuardPages::new().map_err(|e| Verdict::Fail(format!("mmap: {e}")))?;
    let typed = [
        ("EDU_IOC_INFO", EDU_IOC_INFO),
        ("EDU_IOC_FACTORIAL", EDU_IOC_FACTORIAL),
        ("EDU_IOC_LIVENESS", EDU_IOC_LIVENESS),
        ("EDU_IOC_RAISE_IRQ", EDU_IOC_RAISE_IRQ),
        ("EDU_IOC_DMA_TO_DEVICE", EDU_IOC_DMA_TO_DEVICE),
        ("EDU_IOC_DMA_FROM_DEVICE", EDU_IOC_DMA_FROM_DEVICE),
    ];
    for (name, req) in typed {
        expect_errno(
            ctx.dev.ioctl_unmapped(name, req, &guard),
            libc::EFAULT,
            &format!("{name} with an unmapped argument"),
        )?;
    }
    let before = pattern(0xefa, BUF);
    ctx.dev.dma_to_device(0, &before)?;
    for dir in [Dir::ToDevice, Dir::FromDevice] {
        for (offset, len) in [(0, 16), (0, 4096), (4000, 96)] {
            let what = format!("{dir:?} of {len} bytes at {offset} from an unmapped buffer");
            expect_errno(
                ctx.dev.dma_unmapped(dir, &guard, offset, len),
                libc::EFAULT,
                &what,
            )?;
        }
        for addr in [
            0xffff_ffff_8100_0000u64,
            0xffff_8880_0000_0000,
            0x8000_0000_0000_0000,
        ] {
            let what = format!("{dir:?} with user_addr {addr:#x}");
            expect_errno(
                ctx.dev.dma_kernel_address(dir, addr, 0, 64),
                libc::EFAULT,
                &what,
            )?;
        }
    }
    compare(
        "device buffer after the refused DMAs",
        0,
        &read_all(&ctx.dev)?,
        &before,
    )?;
    factorial_is(ctx, 12)
}

pub(super) fn lab_commands(ctx: &Ctx) -> CaseResult {
    for (name, req) in LAB_COMMANDS {
        ctx.dev.lab(name, req)?;
    }
    Ok(())
}
