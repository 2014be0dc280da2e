//! DMA through the ioctls, and read/write/lseek on the node. Each transfer
//! must show up as the device's DMA interrupt.

use super::*;

pub(super) fn dma_einval(ctx: &Ctx) -> CaseResult {
    let mut irqs = Irqs::of(&ctx.dev)?;
    let before = pattern(0xe1, BUF);
    ctx.dev.dma_to_device(0, &before)?;
    irqs.expect(1, "a 4096-byte DMA to the device")?;
    let big = pattern(3, BUF + 1);
    let ranges: [(u32, usize); 8] = [
        (0, 0),
        (4096, 0),
        (4096, 1),
        (4095, 2),
        (0, BUF + 1),
        (1, BUF),
        (u32::MAX, 2),
        (0xffff_f001, BUF),
    ];
    for (offset, len) in ranges {
        let what = |d: &str| format!("{d} offset {offset:#x} len {len}");
        expect_errno(
            ctx.dev.dma_to_device(offset, &big[..len]),
            libc::EINVAL,
            &what("DMA to device"),
        )?;
        let mut buf = vec![0x5a; len];
        expect_errno(
            ctx.dev.dma_from_device(offset, &mut buf),
            libc::EINVAL,
            &what("DMA from device"),
        )?;
        ensure(buf.iter().all(|&b| b == 0x5a), || {
            format!(
                "{} wrote to the user buffer",
                what("refused DMA from device")
            )
        })?;
    }
    irqs.expect(0, "the refused DMAs")?;
    compare(
        "device buffer after the refused DMAs",
        0,
        &read_all(&ctx.dev)?,
        &before,
    )?;
    irqs.expect(1, "a 4096-byte DMA from the device")
}

pub(super) fn dma_4096(ctx: &Ctx) -> CaseResult {
    let mut irqs = Irqs::of(&ctx.dev)?;
    let patterns = [
        pattern(1, BUF),
        vec![0; BUF],
        vec![0xff; BUF],
        (0..BUF).map(|i| i as u8).collect(),
        pattern(2, BUF),
    ];
    for (k, data) in patterns.iter().enumerate() {
        ctx.dev.dma_to_device(0, data)?;
        compare(&format!("pattern {k}"), 0, &read_all(&ctx.dev)?, data)?;
        irqs.expect(2, &format!("a 4096-byte round trip of pattern {k}"))?;
    }
    Ok(())
}

pub(super) fn dma_1byte(ctx: &Ctx) -> CaseResult {
    let mut irqs = Irqs::of(&ctx.dev)?;
    let mut model = pattern(0x1b, BUF);
    ctx.dev.dma_to_device(0, &model)?;
    irqs.expect(1, "a 4096-byte DMA to the device")?;
    for (k, offset) in [0u32, 1, 7, 8, 2047, 2048, 4094, 4095]
        .into_iter()
        .enumerate()
    {
        let byte = !model[offset as usize] ^ (k as u8);
        ctx.dev.dma_to_device(offset, &[byte])?;
        model[offset as usize] = byte;
        let mut got = [0u8];
        ctx.dev.dma_from_device(offset, &mut got)?;
        ensure(got[0] == byte, || {
            format!(
                "1 byte at {offset}: read {:#04x}, wrote {byte:#04x}",
                got[0]
            )
        })?;
        irqs.expect(
            2 * dma_irqs(offset as usize, 1),
            &format!("a 1-byte round trip at {offset}"),
        )?;
    }
    compare(
        "whole buffer after the 1-byte writes",
        0,
        &read_all(&ctx.dev)?,
        &model,
    )?;
    irqs.expect(1, "a 4096-byte DMA from the device")
}

pub(super) fn dma_ranges(ctx: &Ctx) -> CaseResult {
    let mut irqs = Irqs::of(&ctx.dev)?;
    let mut model = pattern(0xd0, BUF);
    ctx.dev.dma_to_device(0, &model)?;
    irqs.expect(1, "a 4096-byte DMA to the device")?;
    let ranges: [(usize, usize); 9] = [
        (1, 4095),
        (0, 2048),
        (2048, 2048),
        (100, 300),
        (4032, 64),
        (13, 77),
        (4095, 1),
        (511, 2),
        (3000, 1096),
    ];
    for (k, (offset, len)) in ranges.into_iter().enumerate() {
        let data = pattern(0x100 + k as u32, len);
        ctx.dev.dma_to_device(offset as u32, &data)?;
        model[offset..offset + len].copy_from_slice(&data);
        let mut got = vec![0; len];
        ctx.dev.dma_from_device(offset as u32, &mut got)?;
        compare(&format!("range {offset}+{len}"), offset, &got, &data)?;
        irqs.expect(
            2 * dma_irqs(offset, len),
            &format!("a round trip of {len} bytes at {offset}"),
        )?;
    }
    compare(
        "whole buffer after the range writes",
        0,
        &read_all(&ctx.dev)?,
        &model,
    )?;
    irqs.expect(1, "a 4096-byte DMA from the device")
}

fn expect_usize(r: Result<usize, DevError>, want: usize, what: &str) -> CaseResult {
    let got = r?;
    ensure(got == want, || {
        format!("{what} returned {got}, expected {want}")
    })
}

pub(super) fn rw_roundtrip(ctx: &Ctx) -> CaseResult {
    let dev = Device::open(&ctx.path)?;
    let mut irqs = Irqs::of(&dev)?;
    let p = pattern(0x77, BUF);
    ensure(dev.seek(SeekFrom::Current(0))? == 0, || {
        "a fresh fd is not at position 0".into()
    })?;
    expect_usize(dev.write(&p), BUF, "write of 4096 bytes at 0")?;
    irqs.expect(1, "write() of 4096 bytes")?;
    ensure(dev.seek(SeekFrom::Current(0))? == BUF as u64, || {
        "write did not advance the position to 4096".into()
    })?;
    compare("DMA read after write()", 0, &read_all(&dev)?, &p)?;
    dev.seek(SeekFrom::Start(0))?;
    let mut got = vec![0; BUF];
    expect_usize(dev.read(&mut got), BUF, "read of 4096 bytes at 0")?;
    compare("read() after write()", 0, &got, &p)?;
    irqs.expect(2, "a DMA ioctl and a read() of 4096 bytes")?;
    let q = pattern(0x78, BUF);
    dev.dma_to_device(0, &q)?;
    dev.seek(SeekFrom::Start(1000))?;
    let mut part = vec![0; 500];
    expect_usize(dev.read(&mut part), 500, "read of 500 bytes at 1000")?;
    compare("read() after a DMA ioctl", 1000, &part, &q[1000..1500])?;
    irqs.expect(2, "a DMA ioctl and a read() of 500 bytes")?;
    ensure(dev.seek(SeekFrom::Current(0))? == 1500, || {
        "read did not advance the position to 1500".into()
    })
}

pub(super) fn rw_end(ctx: &Ctx) -> CaseResult {
    let dev = Device::open(&ctx.path)?;
    let mut irqs = Irqs::of(&dev)?;
    let p = pattern(0xe4, BUF);
    dev.dma_to_device(0, &p)?;
    irqs.expect(1, "a 4096-byte DMA to the device")?;
    ensure(dev.seek(SeekFrom::Start(BUF as u64))? == BUF as u64, || {
        "lseek to 4096 failed".into()
    })?;
    let mut buf = vec![0; 200];
    expect_usize(dev.read(&mut buf), 0, "read at the end")?;
    expect_errno(dev.write(&[1]), libc::ENOSPC, "write at the end")?;
    expect_usize(dev.read_at(&mut buf, BUF as u64), 0, "pread at 4096")?;
    expect_errno(
        dev.write_at(&[1, 2], BUF as u64),
        libc::ENOSPC,
        "pwrite at 4096",
    )?;
    irqs.expect(0, "reads and writes at the end of the buffer")?;

    let tail = pattern(0xe5, 200);
    dev.seek(SeekFrom::Start(4000))?;
    expect_usize(dev.write(&tail), 96, "write of 200 bytes at 4000")?;
    ensure(dev.seek(SeekFrom::Current(0))? == BUF as u64, || {
        "partial write did not stop at 4096".into()
    })?;
    dev.seek(SeekFrom::Start(4000))?;
    expect_usize(dev.read(&mut buf), 96, "read of 200 bytes at 4000")?;
    compare("partial read", 4000, &buf[..96], &tail[..96])?;
    irqs.expect(2, "a partial write() and read() at 4000")?;
    expect_usize(
        dev.read_at(&mut buf[..10], 4095),
        1,
        "pread of 10 bytes at 4095",
    )?;
    ensure(buf[0] == tail[95], || {
        "pread at 4095 returned the wrong byte".into()
    })?;
    expect_usize(
        dev.write_at(&tail[..10], 4090),
        6,
        "pwrite of 10 bytes at 4090",
    )?;
    irqs.expect(
        dma_irqs(4095, 1) + dma_irqs(4090, 6),
        "pread at 4095 and pwrite at 4090",
    )?;
    let mut want = p.clone();
    want[4000..].copy_from_slice(&tail[..96]);
    want[4090..].copy_from_slice(&tail[..6]);
    compare(
        "buffer after the partial writes",
        0,
        &read_all(&dev)?,
        &want,
    )?;
    irqs.expect(1, "a 4096-byte DMA from the device")
}

pub(super) fn rw_seek(ctx: &Ctx) -> CaseResult {
    let dev = Device::open(&ctx.path)?;
    let mut irqs = Irqs::of(&dev)?;
    let p = pattern(0x5e, BUF);
    dev.dma_to_device(0, &p)?;
    irqs.expect(1, "a 4096-byte DMA to the device")?;
    let steps: [(SeekFrom, u64); 5] = [
        (SeekFrom::Start(100), 100),
        (SeekFrom::Current(50), 150),
        (SeekFrom::Current(-150), 0),
        (SeekFrom::End(0), BUF as u64),
        (SeekFrom::End(-16), BUF as u64 - 16),
    ];
    for (pos, want) in steps {
        let got = dev.seek(pos)?;
        ensure(got == want, || {
            format!("lseek {pos:?} gave {got}, expected {want}")
        })?;
    }
    let mut buf = [0u8; 16];
    expect_usize(dev.read(&mut buf), 16, "read of 16 bytes at END-16")?;
    compare("read at END-16", BUF - 16, &buf, &p[BUF - 16..])?;
    irqs.expect(1, "lseeks and a read of 16 bytes at END-16")?;
    dev.seek(SeekFrom::Start(10))?;
    expect_errno(
        dev.seek(SeekFrom::Current(-11)),
        libc::EINVAL,
        "lseek to -1",
    )?;
    ensure(dev.seek(SeekFrom::Current(0))? == 10, || {
        "a refused lseek moved the position".into()
    })?;
    expect_usize(dev.read_at(&mut buf, 2000), 16, "pread at 2000")?;
    compare("pread at 2000", 2000, &buf, &p[2000..2016])?;
    expect_usize(dev.write_at(&buf, 3000), 16, "pwrite at 3000")?;
    irqs.expect(2, "a pread and a pwrite of 16 bytes")?;
    ensure(dev.seek(SeekFrom::Current(0))? == 10, || {
        "pread/pwrite moved the file position".into()
    })
}
