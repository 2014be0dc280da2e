//! One subcommand per typed ioctl: `info`, `factorial`, `liveness`,
//! `raise`, `dma-write`, `dma-read`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use edu_abi::{EduInfo, EDU_BUF_SIZE, EDU_IRQ_MODE_INTX, EDU_IRQ_MODE_MSI};

use crate::device::{factorial_u32, Device};
use crate::json::Json;

/// What a subcommand failed on.
#[derive(Debug)]
pub enum Failure {
    /// The device refused an operation.
    Dev(crate::device::DevError),
    /// Anything else (bad range, file I/O, wrong result), as a message.
    Other(String),
}

impl From<crate::device::DevError> for Failure {
    fn from(e: crate::device::DevError) -> Self {
        Failure::Dev(e)
    }
}

/// The name of an `irq_mode` value.
pub fn irq_mode_name(mode: u32) -> &'static str {
    match mode {
        EDU_IRQ_MODE_INTX => "intx",
        EDU_IRQ_MODE_MSI => "msi",
        _ => "unknown",
    }
}

/// `info` as JSON.
pub fn info_json(path: &str, i: &EduInfo) -> Json {
    Json::obj()
        .with("device", path)
        .with("id", i.id)
        .with("irq", i.irq)
        .with("irq_mode", irq_mode_name(i.irq_mode))
        .with("minor", i.minor)
        .with("bar0_start", i.bar0_start)
        .with("bar0_len", i.bar0_len)
        .with("dma_mask", i.dma_mask)
}

/// `info` as text, one field per line.
pub fn info_text(path: &str, i: &EduInfo) -> String {
    format!(
        "device    {path}\nid        {:#010x}\nirq       {} ({})\nminor     {}\nbar0      {:#x}, {:#x} bytes\ndma_mask  {:#010x}\n",
        i.id,
        i.irq,
        irq_mode_name(i.irq_mode),
        i.minor,
        i.bar0_start,
        i.bar0_len,
        i.dma_mask
    )
}

pub fn info(dev: &Device, json: bool) -> Result<(), Failure> {
    let i = dev.info()?;
    if json {
        println!("{}", info_json(dev.path(), &i));
    } else {
        print!("{}", info_text(dev.path(), &i));
    }
    Ok(())
}

pub fn factorial(dev: &Device, n: u32, json: bool) -> Result<(), Failure> {
    let got = dev.factorial(n)?;
    let want = factorial_u32(n);
    if json {
        println!(
            "{}",
            Json::obj()
                .with("n", n)
                .with("result", got)
                .with("expected", want)
                .with("ok", got == want)
        );
    } else {
        println!("{n}! mod 2^32 = {got} ({got:#x})");
    }
    if got != want {
        return Err(Failure::Other(format!(
            "device computed {got:#x} for {n}!, expected {want:#x}"
        )));
    }
    Ok(())
}

pub fn liveness(dev: &Device, v: u32, json: bool) -> Result<(), Failure> {
    let got = dev.liveness(v)?;
    if json {
        println!(
            "{}",
            Json::obj()
                .with("value", v)
                .with("readback", got)
                .with("ok", got == !v)
        );
    } else {
        println!("wrote {v:#010x}, read back {got:#010x}");
    }
    if got != !v {
        return Err(Failure::Other(format!(
            "read back {got:#010x}, expected NOT {v:#010x} = {:#010x}",
            !v
        )));
    }
    Ok(())
}

pub fn raise(dev: &Device, v: u32, json: bool) -> Result<(), Failure> {
    let seen = dev.raise(v)?;
    if json {
        println!("{}", Json::obj().with("value", v).with("handler_saw", seen));
    } else {
        println!("raised {v:#x}, the interrupt handler saw status {seen:#x}");
    }
    Ok(())
}

/// Resolves a DMA range against the buffer size: `(offset, len)`. `len`
/// defaults to `default_len` clipped to the end of the buffer.
pub fn dma_range(offset: u32, length: Option<u32>, default_len: u64) -> Result<(u32, u32), String> {
    if offset >= EDU_BUF_SIZE {
        return Err(format!(
            "offset {offset} is outside the {EDU_BUF_SIZE}-byte device buffer"
        ));
    }
    let room = EDU_BUF_SIZE - offset;
    let len = match length {
        Some(l) => l,
        None => default_len.min(room.into()) as u32,
    };
    if len == 0 {
        return Err("nothing to transfer (length 0)".into());
    }
    if len > room {
        return Err(format!("offset {offset} + length {len} is past the end of the {EDU_BUF_SIZE}-byte device buffer"));
    }
    Ok((offset, len))
}

fn is_stdio(file: &Path) -> bool {
    file == Path::new("-")
}

pub fn dma_write(
    dev: &Device,
    offset: u32,
    length: Option<u32>,
    file: &Path,
    json: bool,
) -> Result<(), Failure> {
    let mut data = Vec::new();
    let limit = u64::from(EDU_BUF_SIZE) + 1;
    let read = if is_stdio(file) {
        io::stdin().lock().take(limit).read_to_end(&mut data)
    } else {
        File::open(file).and_then(|f| f.take(limit).read_to_end(&mut data))
    };
    read.map_err(|e| Failure::Other(format!("{}: {e}", file.display())))?;
    let (offset, len) = dma_range(offset, length, data.len() as u64).map_err(Failure::Other)?;
    if length.is_none() && data.len() > len as usize {
        return Err(Failure::Other(format!(
            "{}: more than the {len} bytes that fit from offset {offset}; give --length to send a prefix",
            file.display()
        )));
    }
    if data.len() < len as usize {
        return Err(Failure::Other(format!(
            "{}: only {} bytes, --length is {len}",
            file.display(),
            data.len()
        )));
    }
    dev.dma_to_device(offset, &data[..len as usize])?;
    if json {
        println!(
            "{}",
            Json::obj()
                .with("device", dev.path())
                .with("offset", offset)
                .with("length", len)
        );
    } else {
        eprintln!("{}: wrote {len} bytes at offset {offset}", dev.path());
    }
    Ok(())
}

/// Lower-case hex of `data`.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn dma_read(
    dev: &Device,
    offset: u32,
    length: Option<u32>,
    file: &Path,
    json: bool,
) -> Result<(), Failure> {
    let (offset, len) = dma_range(offset, length, EDU_BUF_SIZE.into()).map_err(Failure::Other)?;
    let mut buf = vec![0u8; len as usize];
    dev.dma_from_device(offset, &mut buf)?;
    let summary = Json::obj()
        .with("device", dev.path())
        .with("offset", offset)
        .with("length", len);
    if is_stdio(file) {
        if json {
            println!("{}", summary.with("hex", hex(&buf)));
        } else {
            let mut out = io::stdout().lock();
            out.write_all(&buf)
                .and_then(|()| out.flush())
                .map_err(|e| Failure::Other(format!("stdout: {e}")))?;
        }
    } else {
        std::fs::write(file, &buf)
            .map_err(|e| Failure::Other(format!("{}: {e}", file.display())))?;
        if json {
            println!("{summary}");
        } else {
            eprintln!(
                "{}: read {len} bytes at offset {offset} into {}",
                dev.path(),
                file.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dma_ranges() {
        assert_eq!(dma_range(0, None, 4096), Ok((0, 4096)));
        assert_eq!(dma_range(100, None, 10_000), Ok((100, 3996)));
        assert_eq!(dma_range(100, None, 5), Ok((100, 5)));
        assert_eq!(dma_range(4095, Some(1), 0), Ok((4095, 1)));
        assert!(dma_range(4096, None, 1).is_err());
        assert!(dma_range(4095, Some(2), 0).is_err());
        assert!(dma_range(0, Some(0), 0).is_err());
        assert!(dma_range(0, None, 0).is_err());
        assert!(dma_range(0, Some(u32::MAX), 0).is_err());
    }

    #[test]
    fn info_formats() {
        let i = EduInfo {
            id: 0x010000ed,
            irq: 24,
            irq_mode: EDU_IRQ_MODE_MSI,
            minor: 1,
            bar0_start: 0xfea0_0000,
            bar0_len: 0x10_0000,
            dma_mask: 0x0fff_ffff,
        };
        assert_eq!(
            info_json("/dev/edu1", &i).to_string(),
            r#"{"device":"/dev/edu1","id":16777453,"irq":24,"irq_mode":"msi","minor":1,"bar0_start":4271898624,"bar0_len":1048576,"dma_mask":268435455}"#
        );
        let t = info_text("/dev/edu1", &i);
        assert!(t.contains("id        0x010000ed\n"), "{t}");
        assert!(t.contains("irq       24 (msi)\n"), "{t}");
        assert_eq!(irq_mode_name(EDU_IRQ_MODE_INTX), "intx");
        assert_eq!(irq_mode_name(7), "unknown");
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(hex(&[]), "");
    }
}
