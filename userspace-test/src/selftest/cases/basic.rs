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
    let (_, minor) = sysfs::node_numbers(&ctx.path).map_err(Verdict::Fail)?;
    ensure(u64::from(i.minor) == minor, || {
        format!("minor {}, but {} is minor {minor}", i.minor, ctx.path)
    })?;
    // Cross-check with what the PCI core says about the device.
    let dir = pci_dir(ctx)?;
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
    let msi_irqs: Vec<String> = std::fs::read_dir(&msi_dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    if i.irq_mode == EDU_IRQ_MODE_MSI {
        ensure(msi_irqs.contains(&i.irq.to_string()), || {
            format!(
                "irq {} in MSI mode, but {} lists {msi_irqs:?}",
                i.irq,
                msi_dir.display()
            )
        })?;
    } else {
        ensure(msi_irqs.is_empty(), || {
            format!(
                "INTx mode, but {} lists MSI vectors {msi_irqs:?}",
                msi_dir.display()
            )
        })?;
        let irq_file = dir.join("irq");
        let sysfs_irq = std::fs::read_to_string(&irq_file).unwrap_or_default();
        ensure(sysfs_irq.trim() == i.irq.to_string(), || {
            format!(
                "irq {} in INTx mode, but {} says {:?}",
                i.irq,
                irq_file.display(),
                sysfs_irq.trim()
            )
        })?;
    }
    // The interrupt core has an edu handler on that IRQ, and the device
    // itself answers with its identification.
    Irqs::of_irq(i.irq)?;
    Regs::map(&dir)?.expect(reg::ID, 0x010000ed, "the edu identification")
}

pub(super) fn liveness(ctx: &Ctx) -> CaseResult {
    let regs = regs(ctx)?;
    // 1 first: NOT 0 is all ones, which a BAR without a device reads too.
    for v in [1, 0, 0xffff_ffff, 0x1234_5678, 0xa5a5_a5a5, 0x8000_0000] {
        let got = ctx.dev.liveness(v)?;
        ensure(got == !v, || {
            format!(
                "liveness({v:#010x}) read back {got:#010x}, expected {:#010x}",
                !v
            )
        })?;
        regs.expect(reg::LIVENESS, !v, &format!("after liveness({v:#x})"))?;
    }
    Ok(())
}

/// n! through the ioctl: the right value, one interrupt, and the device's
/// factorial register holding the result.
fn factorial_checked(ctx: &Ctx, irqs: &mut Irqs, regs: &Regs, n: u32) -> CaseResult {
    let got = ctx.dev.factorial(n)?;
    let want = factorial_u32(n);
    ensure(got == want, || {
        format!("{n}! = {got:#x}, expected {want:#x}")
    })?;
    irqs.expect(1, &format!("EDU_IOC_FACTORIAL of {n}"))?;
    regs.expect(
        reg::FACTORIAL,
        want,
        &format!("the device's result for {n}!"),
    )
}

pub(super) fn factorial_is(ctx: &Ctx, n: u32) -> CaseResult {
    factorial_checked(ctx, &mut Irqs::of(&ctx.dev)?, &regs(ctx)?, n)
}

pub(super) fn factorial_sweep(ctx: &Ctx) -> CaseResult {
    let (mut irqs, regs) = (Irqs::of(&ctx.dev)?, regs(ctx)?);
    (0..=20).try_for_each(|n| factorial_checked(ctx, &mut irqs, &regs, n))
}

pub(super) fn raise(ctx: &Ctx) -> CaseResult {
    let (mut irqs, regs) = (Irqs::of(&ctx.dev)?, regs(ctx)?);
    for v in [0x2, 0x4, 0x80, 0x200, 0x8000_0000, 0x1234_5678, 0xffff_fefe] {
        // The ABI: the call returns once the handler saw every raised bit.
        let seen = ctx.dev.raise(v)?;
        ensure(seen == v, || {
            format!("raised {v:#x}, the handler saw {seen:#x}")
        })?;
        irqs.expect(1, &format!("EDU_IOC_RAISE_IRQ of {v:#x}"))?;
        regs.expect(
            reg::IRQ_STATUS,
            0,
            &format!("every bit of {v:#x} acknowledged"),
        )?;
    }
    Ok(())
}

pub(super) fn raise_einval(ctx: &Ctx) -> CaseResult {
    let mut irqs = Irqs::of(&ctx.dev)?;
    for v in [0, 0x1, 0x100, 0x101, 0x102, 0x3, 0x1234_5679, 0xffff_ffff] {
        expect_errno(ctx.dev.raise(v), libc::EINVAL, &format!("raise({v:#x})"))?;
    }
    irqs.expect(0, "the refused raises")?;
    let seen = ctx.dev.raise(0x2)?;
    ensure(seen == 0x2, || {
        format!("after the refusals, raising 0x2 gave {seen:#x}")
    })?;
    irqs.expect(1, "a raise of 0x2 after the refusals")
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
    let mut irqs = Irqs::of(&ctx.dev)?;
    let before = pattern(0xefa, BUF);
    ctx.dev.dma_to_device(0, &before)?;
    irqs.expect(1, "a 4096-byte DMA to the device")?;
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
    let kernel_addrs = [
        0xffff_ffff_8100_0000u64,
        0xffff_8880_0000_0000,
        0x8000_0000_0000_0000,
    ];
    let unmapped_ranges = [(0, 16), (0, 4096), (4000, 96)];
    for dir in [Dir::ToDevice, Dir::FromDevice] {
        for (offset, len) in unmapped_ranges {
            let what = format!("{dir:?} of {len} bytes at {offset} from an unmapped buffer");
            expect_errno(
                ctx.dev.dma_unmapped(dir, &guard, offset, len),
                libc::EFAULT,
                &what,
            )?;
        }
        for addr in kernel_addrs {
            let what = format!("{dir:?} with user_addr {addr:#x}");
            expect_errno(
                ctx.dev.dma_kernel_address(dir, addr, 0, 64),
                libc::EFAULT,
                &what,
            )?;
        }
        if dir == Dir::ToDevice {
            // The ABI: checked before the device is touched. (From the
            // device, the transfer may run before the copy out fails.)
            irqs.expect(0, "refused ioctls and DMAs to the device")?;
        }
    }
    let most = (unmapped_ranges.len() + kernel_addrs.len()) as u64;
    irqs.expect_within(0, most, "DMAs from the device into unmapped buffers")?;
    compare(
        "device buffer after the refused DMAs",
        0,
        &read_all(&ctx.dev)?,
        &before,
    )?;
    irqs.expect(1, "a 4096-byte DMA from the device")?;
    ensure(ctx.dev.factorial(12)? == factorial_u32(12), || {
        "12! after the refusals is wrong".into()
    })?;
    irqs.expect(1, "a factorial after the refusals")
}

/// The lines the driver logs for the lab's five commands, in order, as
/// `docs/ioctl-abi.md` lists them: the dump's config lines are checked
/// against sysfs `config` separately.
fn lab_lines(irq: u32, major: u64, config: &[u8]) -> Vec<String> {
    let handler =
        |status: &str| format!("irq_handler irq = {irq} dev = {major} irq_status = {status}");
    let mut lines = vec!["length 100000".to_string()];
    lines.extend(
        config
            .iter()
            .enumerate()
            // 0x06-0x07: the status register, which the device may change.
            .filter(|(off, _)| !(6..=7).contains(off))
            .map(|(off, b)| format!("config {off:x} {b:x}")),
    );
    lines.push(format!("dev->irq {irq:x}"));
    lines.push("io 0 10000ed".into());
    lines.extend([
        handler("12345678"),
        "receive a FACTORIAL interrupter!".into(),
        handler("1"),
        "computing result 375f00".into(),
        "receive a DMA write interrupter!".into(),
        handler("100"),
        "receive a DMA read interrupter!".into(),
        handler("100"),
    ]);
    lines
}

/// The first of `want` that is not in `got` in that order, if any.
fn missing_in_order<'a>(got: &[String], want: &'a [String]) -> Option<&'a String> {
    let mut rest = got.iter();
    want.iter().find(|w| !rest.any(|g| g == *w))
}

pub(super) fn lab_commands(ctx: &Ctx) -> CaseResult {
    let info = ctx.dev.info()?;
    let dir = pci_dir(ctx)?;
    let mut irqs = Irqs::of_irq(info.irq)?;
    let mut kmsg = evidence::Kmsg::from_now()?;
    for (name, req) in LAB_COMMANDS {
        ctx.dev.lab(name, req)?;
    }
    irqs.expect(
        4,
        "the lab's commands (SEND_INTERRUPT, FACTORIAL, DMA_WRITE, DMA_READ)",
    )?;
    let prefix = format!("edu {}: ", sysfs::pci_address(&dir));
    let logged: Vec<String> = kmsg
        .read_new()?
        .into_iter()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect();
    let config = std::fs::read(dir.join("config"))
        .map_err(|e| Verdict::Fail(format!("{}/config: {e}", dir.display())))?;
    let config = config
        .get(..0x40)
        .ok_or_else(|| Verdict::Fail(format!("{}/config: fewer than 64 bytes", dir.display())))?;
    let (major, _) = sysfs::node_numbers(&ctx.path).map_err(Verdict::Fail)?;
    let want = lab_lines(info.irq, major, config);
    if let Some(line) = missing_in_order(&logged, &want) {
        return Err(Verdict::Fail(format!(
            "/dev/kmsg: no line \"{prefix}{line}\" in order among the {} lines the device logged",
            logged.len()
        )));
    }
    let io_lines = logged.iter().filter(|l| l.starts_with("io ")).count();
    ensure(io_lines == 0x94 / 4 + 1, || {
        format!("/dev/kmsg: {io_lines} \"io\" lines of BAR0 registers, expected 38 (0x00-0x94)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_lines_are_found_in_order_only() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let want = s(&["a", "b", "c"]);
        assert_eq!(
            missing_in_order(&s(&["x", "a", "y", "b", "c"]), &want),
            None
        );
        assert_eq!(missing_in_order(&s(&["a", "c", "b"]), &want).unwrap(), "c");
        assert_eq!(missing_in_order(&[], &want).unwrap(), "a");
    }

    #[test]
    fn lab_lines_follow_the_report() {
        let config: Vec<u8> = (0..0x40).collect();
        let l = lab_lines(24, 245, &config);
        assert_eq!(l[0], "length 100000");
        assert_eq!(l[1], "config 0 0");
        assert!(!l.contains(&"config 6 6".to_string()));
        assert!(l.contains(&"config 3f 3f".to_string()));
        assert!(l.contains(&"dev->irq 18".to_string()));
        assert_eq!(
            l.last().unwrap(),
            "irq_handler irq = 24 dev = 245 irq_status = 100"
        );
    }
}
