//! edu's BAR0 in words (`docs/edu-device.md`). The registers are the
//! device model's own constants, so the words cannot drift from the map.

use edu_devices::edu::regs::*;
use edu_devices::edu::state::factorial;

use super::{bit_names, size_words, Access, Decoded};

/// What the decoder remembers of one edu: enough to say what a DMA
/// command or a factorial result means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EduRegs {
    /// Last value written to DMA_SRC, DMA_DST, DMA_CNT.
    pub src: u64,
    /// See `src`.
    pub dst: u64,
    /// See `src`.
    pub cnt: u64,
    /// The last factorial operand written.
    pub operand: Option<u32>,
}

/// The register name at `offset`, if there is one.
pub fn reg_name(offset: u64) -> Option<&'static str> {
    Some(match offset {
        REG_ID => "ID",
        REG_LIVENESS => "LIVENESS",
        REG_FACTORIAL => "FACTORIAL",
        REG_STATUS => "STATUS",
        REG_IRQ_STATUS => "IRQ_STATUS",
        REG_IRQ_RAISE => "IRQ_RAISE",
        REG_IRQ_ACK => "IRQ_ACK",
        REG_DMA_SRC => "DMA_SRC",
        REG_DMA_DST => "DMA_DST",
        REG_DMA_CNT => "DMA_CNT",
        REG_DMA_CMD => "DMA_CMD",
        _ => return None,
    })
}

/// The reasons in an interrupt status value.
pub fn irq_reasons(v: u64) -> String {
    let mut parts = Vec::new();
    if v & u64::from(IRQ_FACTORIAL) != 0 {
        parts.push("factorial done".to_string());
    }
    if v & u64::from(IRQ_DMA) != 0 {
        parts.push("DMA done".to_string());
    }
    let other = v & !u64::from(IRQ_FACTORIAL | IRQ_DMA);
    if other != 0 {
        parts.push(format!("raised by software {other:#x}"));
    }
    if parts.is_empty() {
        "nothing pending".into()
    } else {
        parts.join(", ")
    }
}

/// A DMA address: inside the device's buffer or in guest RAM.
pub fn dma_addr_words(a: u64) -> String {
    if (DMA_BUF_START..DMA_BUF_START + DMA_BUF_SIZE as u64).contains(&a) {
        format!("device buffer +{:#x}", a - DMA_BUF_START)
    } else {
        format!("RAM {a:#x}")
    }
}

/// A DMA command in words, with the transfer the registers describe.
pub fn dma_cmd_words(cmd: u64, src: u64, dst: u64, cnt: u64) -> String {
    let dir = if cmd & DMA_CMD_TO_RAM != 0 {
        "device -> RAM"
    } else {
        "RAM -> device"
    };
    let irq = if cmd & DMA_CMD_IRQ != 0 {
        ", interrupt when done"
    } else {
        ""
    };
    format!(
        "{dir}: {} to {}, {}{irq}",
        dma_addr_words(src),
        dma_addr_words(dst),
        size_words(cnt)
    )
}

/// One access to edu `name`'s BAR0 at `offset`.
pub fn decode(name: &str, st: &mut EduRegs, offset: u64, a: &Access) -> Decoded {
    let Some(reg) = reg_name(offset) else {
        let mut d = Decoded::reg(name, &format!("{offset:#x}"), a, "no register here");
        if !a.write {
            d.text = format!(
                "{name} {offset:#x} -> {:#x}: no register here (reads all ones)",
                a.masked()
            );
        }
        return d;
    };
    // QEMU's memory core refuses other sizes before edu sees them.
    let wide_ok = offset >= WIDE_REGS_START && a.size == 8;
    if a.size != 4 && !wide_ok {
        return Decoded::reg(
            name,
            reg,
            a,
            format!(
                "{}-byte access: refused, edu takes 4 (or 8 from 0x80)",
                a.size
            ),
        );
    }
    let v = a.masked();
    let meaning = if a.write {
        write_words(st, offset, v)
    } else {
        read_words(st, offset, v)
    };
    Decoded::reg(name, reg, a, meaning)
}

fn write_words(st: &mut EduRegs, offset: u64, v: u64) -> String {
    match offset {
        REG_ID => "read-only, ignored".into(),
        REG_LIVENESS => format!("reads back as {:#x}", !(v as u32)),
        REG_FACTORIAL => {
            st.operand = Some(v as u32);
            format!("start {v}!")
        }
        REG_STATUS => {
            if v & u64::from(STATUS_IRQFACT) != 0 {
                "interrupt when the factorial is done".into()
            } else {
                "no interrupt when the factorial is done".into()
            }
        }
        REG_IRQ_RAISE => format!("raise an interrupt ({})", irq_reasons(v)),
        REG_IRQ_ACK => format!("acknowledge {}", irq_reasons(v)),
        REG_DMA_SRC => {
            st.src = v;
            format!("source {}", dma_addr_words(v))
        }
        REG_DMA_DST => {
            st.dst = v;
            format!("destination {}", dma_addr_words(v))
        }
        REG_DMA_CNT => {
            st.cnt = v;
            size_words(v)
        }
        REG_DMA_CMD => {
            if v & DMA_CMD_RUN == 0 {
                "no start bit: ignored".into()
            } else {
                format!("start DMA {}", dma_cmd_words(v, st.src, st.dst, st.cnt))
            }
        }
        _ => String::new(),
    }
}

fn read_words(st: &mut EduRegs, offset: u64, v: u64) -> String {
    match offset {
        REG_ID => format!(
            "edu version {}.{}{}",
            v >> 24,
            (v >> 16) & 0xff,
            if v & 0xff == 0xed { "" } else { " (bad magic)" }
        ),
        REG_LIVENESS => "NOT of the last value written".into(),
        REG_FACTORIAL => match st.operand {
            Some(n) if u64::from(factorial(n)) == v => format!("{n}! = {v}"),
            Some(n) if u64::from(n) == v => format!("operand {n} (still computing)"),
            _ => String::new(),
        },
        REG_STATUS => {
            let state = if v & u64::from(STATUS_COMPUTING) != 0 {
                "computing"
            } else {
                "idle"
            };
            if v & u64::from(STATUS_IRQFACT) != 0 {
                format!("{state}, interrupt when done")
            } else {
                state.into()
            }
        }
        REG_IRQ_STATUS => irq_reasons(v),
        REG_DMA_CMD => {
            let run = if v & DMA_CMD_RUN != 0 {
                "transfer running"
            } else {
                "no transfer running"
            };
            format!(
                "{run} ({})",
                bit_names(v, &[(1, "device -> RAM"), (2, "interrupt when done")])
            )
        }
        REG_IRQ_RAISE | REG_IRQ_ACK => "write-only (reads all ones)".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::acc;
    use super::super::{Decoder, Space};
    use super::*;

    fn edu(d: &mut Decoder, write: bool, off: u64, size: u8, v: u64) -> String {
        d.decode(&acc(Space::Mmio, write, 0xc000_0000 + off, size, v))
            .text
    }

    #[test]
    fn every_register_in_words() {
        let mut d = Decoder::new();
        d.add_edu(super::super::Bdf::new(0, 1, 0), 0xc000_0000);
        let w = |d: &mut Decoder, off, v| edu(d, true, off, 4, v);
        let r = |d: &mut Decoder, off, v| edu(d, false, off, 4, v);
        assert_eq!(
            r(&mut d, REG_ID, 0x0100_00ed),
            "edu0 ID -> 0x10000ed: edu version 1.0"
        );
        assert_eq!(w(&mut d, REG_ID, 1), "edu0 ID <- 0x1: read-only, ignored");
        assert_eq!(
            w(&mut d, REG_LIVENESS, 0x1234_5678),
            "edu0 LIVENESS <- 0x12345678: reads back as 0xedcba987"
        );
        assert_eq!(
            r(&mut d, REG_LIVENESS, 0xedcb_a987),
            "edu0 LIVENESS -> 0xedcba987: NOT of the last value written"
        );
        assert_eq!(
            w(&mut d, REG_STATUS, 0x80),
            "edu0 STATUS <- 0x80: interrupt when the factorial is done"
        );
        assert_eq!(
            w(&mut d, REG_FACTORIAL, 10),
            "edu0 FACTORIAL <- 0xa: start 10!"
        );
        assert_eq!(
            r(&mut d, REG_STATUS, 0x81),
            "edu0 STATUS -> 0x81: computing, interrupt when done"
        );
        assert_eq!(
            r(&mut d, REG_FACTORIAL, 10),
            "edu0 FACTORIAL -> 0xa: operand 10 (still computing)"
        );
        assert_eq!(
            r(&mut d, REG_FACTORIAL, 0x375f00),
            "edu0 FACTORIAL -> 0x375f00: 10! = 3628800"
        );
        assert_eq!(
            r(&mut d, REG_IRQ_STATUS, 1),
            "edu0 IRQ_STATUS -> 0x1: factorial done"
        );
        assert_eq!(
            w(&mut d, REG_IRQ_ACK, 1),
            "edu0 IRQ_ACK <- 0x1: acknowledge factorial done"
        );
        assert_eq!(
            w(&mut d, REG_IRQ_RAISE, 0x1234_5678),
            "edu0 IRQ_RAISE <- 0x12345678: raise an interrupt (raised by software 0x12345678)"
        );
        assert_eq!(
            r(&mut d, REG_IRQ_RAISE, 0xffff_ffff),
            "edu0 IRQ_RAISE -> 0xffffffff: write-only (reads all ones)"
        );
        assert_eq!(
            w(&mut d, REG_DMA_SRC, 0x0123_4000),
            "edu0 DMA_SRC <- 0x1234000: source RAM 0x1234000"
        );
        assert_eq!(
            w(&mut d, REG_DMA_DST, 0x40000),
            "edu0 DMA_DST <- 0x40000: destination device buffer +0x0"
        );
        assert_eq!(w(&mut d, REG_DMA_CNT, 4), "edu0 DMA_CNT <- 0x4: 4 bytes");
        assert_eq!(
            w(&mut d, REG_DMA_CMD, 5),
            "edu0 DMA_CMD <- 0x5: start DMA RAM -> device: RAM 0x1234000 to device buffer +0x0, 4 bytes, interrupt when done"
        );
        assert_eq!(
            r(&mut d, REG_DMA_CMD, 5),
            "edu0 DMA_CMD -> 0x5: transfer running (interrupt when done)"
        );
        assert_eq!(
            r(&mut d, REG_IRQ_STATUS, 0x100),
            "edu0 IRQ_STATUS -> 0x100: DMA done"
        );
        assert_eq!(
            w(&mut d, REG_DMA_CMD, 2),
            "edu0 DMA_CMD <- 0x2: no start bit: ignored"
        );
        assert_eq!(
            r(&mut d, REG_IRQ_STATUS, 0),
            "edu0 IRQ_STATUS -> 0x0: nothing pending"
        );
        // Not registers: the lab's dump reads all ones there.
        assert_eq!(
            r(&mut d, 0x84, 0xffff_ffff),
            "edu0 0x84 -> 0xffffffff: no register here (reads all ones)"
        );
        // Sizes QEMU refuses.
        assert_eq!(
            edu(&mut d, false, REG_FACTORIAL, 2, 0),
            "edu0 FACTORIAL -> 0x0: 2-byte access: refused, edu takes 4 (or 8 from 0x80)"
        );
        assert_eq!(
            edu(&mut d, true, REG_DMA_CNT, 8, 4096),
            "edu0 DMA_CNT <- 0x1000: 4 KiB"
        );
        let dec = d.decode(&acc(Space::Mmio, true, 0xc000_0008, 4, 3));
        assert_eq!((dec.dev.as_str(), dec.reg.as_str()), ("edu0", "FACTORIAL"));
    }

    #[test]
    fn dma_in_the_other_direction() {
        assert_eq!(
            dma_cmd_words(7, 0x40000, 0x2000, 4096),
            "device -> RAM: device buffer +0x0 to RAM 0x2000, 4 KiB, interrupt when done"
        );
        assert_eq!(irq_reasons(0x101), "factorial done, DMA done");
    }
}
