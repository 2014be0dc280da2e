//! One subcommand per typed ioctl: `info`, `factorial`, `liveness`,
//! `raise`, `dma-write`, `dma-read`. Each prints text itself and returns its
//! JSON fields (`output.rs` prints the document).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use edu_abi::{EduInfo, EDU_BUF_SIZE, EDU_IRQ_MODE_INTX, EDU_IRQ_MODE_MSI};
use serde::Serialize;

use crate::cli::DmaRange;
use crate::device::{factorial_u32, Device};
use crate::output::{fields, Failure, Outcome};

/// The name of an `irq_mode` value.
pub fn irq_mode_name(mode: u32) -> &'static str {
    match mode {
        EDU_IRQ_MODE_INTX => "intx",
        EDU_IRQ_MODE_MSI => "msi",
        _ => "unknown",
    }
}

/// `info`'s fields.
#[derive(Serialize)]
pub struct InfoDoc<'a> {
    pub device: &'a str,
    pub id: u32,
    pub irq: u32,
    pub irq_mode: &'static str,
    pub minor: u32,
    pub bar0_start: u64,
    pub bar0_len: u64,
    pub dma_mask: u64,
}

impl<'a> InfoDoc<'a> {
    pub fn new(path: &'a str, i: &EduInfo) -> Self {
        InfoDoc {
            device: path,
            id: i.id,
            irq: i.irq,
            irq_mode: irq_mode_name(i.irq_mode),
            minor: i.minor,
            bar0_start: i.bar0_start,
            bar0_len: i.bar0_len,
            dma_mask: i.dma_mask,
        }
    }
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

pub fn info(dev: &Device, json: bool) -> Result<Outcome, Failure> {
    let i = dev.info()?;
    if !json {
        print!("{}", info_text(dev.path(), &i));
    }
    Ok(Outcome::ok(fields(&InfoDoc::new(dev.path(), &i))))
}

/// A value the device computed, and what it should have been.
#[derive(Serialize)]
struct Checked {
    #[serde(flatten)]
    input: Input,
    result: u32,
    expected: u32,
    ok: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Input {
    N { n: u32 },
    Value { value: u32 },
}

/// Ends a command that checked `got` against `want`.
fn checked(input: Input, got: u32, want: u32, wrong: impl FnOnce() -> String) -> Outcome {
    let f = fields(&Checked {
        input,
        result: got,
        expected: want,
        ok: got == want,
    });
    if got == want {
        Outcome::ok(f)
    } else {
        Outcome::failed(f, Failure::Check(wrong()))
    }
}

pub fn factorial(dev: &Device, n: u32, json: bool) -> Result<Outcome, Failure> {
    let got = dev.factorial(n)?;
    let want = factorial_u32(n);
    if !json {
        println!("{n}! mod 2^32 = {got} ({got:#x})");
    }
    Ok(checked(Input::N { n }, got, want, || {
        format!("device computed {got:#x} for {n}!, expected {want:#x}")
    }))
}

pub fn liveness(dev: &Device, v: u32, json: bool) -> Result<Outcome, Failure> {
    let got = dev.liveness(v)?;
    if !json {
        println!("wrote {v:#010x}, read back {got:#010x}");
    }
    Ok(checked(Input::Value { value: v }, got, !v, || {
        format!(
            "read back {got:#010x}, expected NOT {v:#010x} = {:#010x}",
            !v
        )
    }))
}

#[derive(Serialize)]
struct RaiseDoc {
    value: u32,
    handler_saw: u32,
}

pub fn raise(dev: &Device, v: u32, json: bool) -> Result<Outcome, Failure> {
    let seen = dev.raise(v)?;
    if !json {
        println!("raised {v:#x}, the interrupt handler saw status {seen:#x}");
    }
    Ok(Outcome::ok(fields(&RaiseDoc {
        value: v,
        handler_saw: seen,
    })))
}

/// Resolves a DMA range against the buffer size: `(offset, len)`. `len`
/// defaults to `default_len` clipped to the end of the buffer.
pub fn dma_range(offset: u32, length: Option<u32>, default_len: u64) -> Result<(u32, u32), String> {
    if offset >= EDU_BUF_SIZE {
        return Err(format!(
            "--offset {offset} is outside the {EDU_BUF_SIZE}-byte device buffer"
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
        return Err(format!(
            "--offset {offset} + --length {len} is past the end of the {EDU_BUF_SIZE}-byte device buffer"
        ));
    }
    Ok((offset, len))
}

fn is_stdio(file: &Path) -> bool {
    file == Path::new("-")
}

/// Checks `dma-write`'s range and reads its input, before the device is
/// opened: `(offset, the bytes to send)`.
pub fn dma_write_input(range: &DmaRange, file: &Path) -> Result<(u32, Vec<u8>), Failure> {
    // The range alone first: a bad --offset or --length needs no input.
    if let Some(l) = range.length {
        dma_range(range.offset, Some(l), 0).map_err(Failure::Usage)?;
    } else {
        dma_range(range.offset, None, 1).map_err(Failure::Usage)?;
    }
    let mut data = Vec::new();
    let limit = u64::from(EDU_BUF_SIZE) + 1;
    let read = if is_stdio(file) {
        io::stdin().lock().take(limit).read_to_end(&mut data)
    } else {
        File::open(file).and_then(|f| f.take(limit).read_to_end(&mut data))
    };
    read.map_err(|e| Failure::Io(format!("{}: {e}", file.display())))?;
    let (offset, len) = dma_range(range.offset, range.length, data.len() as u64)
        .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
    if range.length.is_none() && data.len() > len as usize {
        return Err(Failure::Usage(format!(
            "{}: more than the {len} bytes that fit from offset {offset}; give --length to send a prefix",
            file.display()
        )));
    }
    if data.len() < len as usize {
        return Err(Failure::Usage(format!(
            "{}: only {} bytes, --length is {len}",
            file.display(),
            data.len()
        )));
    }
    data.truncate(len as usize);
    Ok((offset, data))
}

#[derive(Serialize)]
struct DmaDoc<'a> {
    device: &'a str,
    offset: u32,
    length: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
}

pub fn dma_write(dev: &Device, offset: u32, data: &[u8], json: bool) -> Result<Outcome, Failure> {
    dev.dma_to_device(offset, data)?;
    let len = data.len() as u32;
    if !json {
        eprintln!("{}: wrote {len} bytes at offset {offset}", dev.path());
    }
    Ok(Outcome::ok(fields(&DmaDoc {
        device: dev.path(),
        offset,
        length: len,
        hex: None,
    })))
}

/// Lower-case hex of `data`.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn dma_read(
    dev: &Device,
    offset: u32,
    len: u32,
    file: &Path,
    json: bool,
) -> Result<Outcome, Failure> {
    let mut buf = vec![0u8; len as usize];
    dev.dma_from_device(offset, &mut buf)?;
    let mut doc = DmaDoc {
        device: dev.path(),
        offset,
        length: len,
        hex: None,
    };
    if is_stdio(file) {
        if json {
            doc.hex = Some(hex(&buf));
        } else {
            let mut out = io::stdout().lock();
            out.write_all(&buf)
                .and_then(|()| out.flush())
                .map_err(|e| Failure::Io(format!("stdout: {e}")))?;
        }
    } else {
        std::fs::write(file, &buf).map_err(|e| Failure::Io(format!("{}: {e}", file.display())))?;
        if !json {
            eprintln!(
                "{}: read {len} bytes at offset {offset} into {}",
                dev.path(),
                file.display()
            );
        }
    }
    Ok(Outcome::ok(fields(&doc)))
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
            serde_json::to_string(&InfoDoc::new("/dev/edu1", &i)).unwrap(),
            r#"{"device":"/dev/edu1","id":16777453,"irq":24,"irq_mode":"msi","minor":1,"bar0_start":4271898624,"bar0_len":1048576,"dma_mask":268435455}"#
        );
        let t = info_text("/dev/edu1", &i);
        assert!(t.contains("id        0x010000ed\n"), "{t}");
        assert!(t.contains("irq       24 (msi)\n"), "{t}");
        assert_eq!(irq_mode_name(EDU_IRQ_MODE_INTX), "intx");
        assert_eq!(irq_mode_name(7), "unknown");
    }

    #[test]
    fn dma_write_refuses_bad_ranges_before_reading_input() {
        let missing = Path::new("/nonexistent/edu-test-input");
        let range = |offset, length| DmaRange { offset, length };
        for r in [range(4096, None), range(0, Some(0)), range(4000, Some(97))] {
            assert!(
                matches!(dma_write_input(&r, missing), Err(Failure::Usage(_))),
                "{r:?}"
            );
        }
        assert!(matches!(
            dma_write_input(&range(0, None), missing),
            Err(Failure::Io(m)) if m.contains("/nonexistent/edu-test-input")
        ));
    }

    #[test]
    fn checked_results_fail_with_their_fields() {
        let o = checked(Input::N { n: 3 }, 6, 6, String::new);
        assert!(o.failure.is_none());
        assert_eq!(o.fields["ok"], true);
        let o = checked(Input::Value { value: 1 }, 1, !1, || "bad".into());
        assert_eq!(o.fields["value"], 1);
        assert!(matches!(o.failure, Some(Failure::Check(m)) if m == "bad"));
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(hex(&[]), "");
    }
}
