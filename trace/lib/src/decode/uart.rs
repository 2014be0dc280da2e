//! The 8250/16550 UART (COM1-COM4): eight registers whose meaning depends
//! on the direction and on the divisor-latch access bit (LCR bit 7).

use super::{bit_names, char_words, Access, Decoded};

/// What the decoder remembers of one UART.
#[derive(Clone, Copy, Debug, Default)]
pub struct UartState {
    /// Line control register (bit 7: divisor latch access).
    lcr: u8,
}

/// The UART that owns `port`, with its base port.
pub fn com_port(port: u16) -> Option<(&'static str, u16)> {
    [
        ("COM1", 0x3f8),
        ("COM2", 0x2f8),
        ("COM3", 0x3e8),
        ("COM4", 0x2e8),
    ]
    .into_iter()
    .find(|(_, base)| (*base..base + 8).contains(&port))
}

const LSR_BITS: &[(u32, &str)] = &[
    (0, "data ready"),
    (1, "overrun"),
    (2, "parity error"),
    (3, "framing error"),
    (4, "break"),
    (5, "transmit holding register empty"),
    (6, "transmitter empty"),
    (7, "FIFO error"),
];

/// An access to register `offset` (0-7) of the UART `name`.
pub fn decode(name: &str, st: &mut UartState, offset: u16, a: &Access) -> Decoded {
    let v = a.masked();
    let dlab = st.lcr & 0x80 != 0;
    let (reg, meaning) = match (offset, a.write, dlab) {
        (0, _, true) => ("DLL", "divisor latch, low byte".to_string()),
        (1, _, true) => ("DLM", "divisor latch, high byte".to_string()),
        (0, true, false) => ("THR", format!("send {}", char_words(v as u8))),
        (0, false, false) => ("RBR", format!("received {}", char_words(v as u8))),
        (1, _, false) => (
            "IER",
            format!(
                "interrupts: {}",
                bit_names(
                    v,
                    &[
                        (0, "data received"),
                        (1, "transmitter empty"),
                        (2, "line status"),
                        (3, "modem status"),
                    ],
                )
            ),
        ),
        (2, false, _) => ("IIR", iir_words(v as u8)),
        (2, true, _) => (
            "FCR",
            if v & 1 != 0 {
                "FIFOs on".to_string()
            } else {
                "FIFOs off".to_string()
            },
        ),
        (3, _, _) => {
            if a.write {
                st.lcr = v as u8;
            }
            ("LCR", lcr_words(v as u8))
        }
        (4, _, _) => (
            "MCR",
            bit_names(
                v,
                &[
                    (0, "DTR"),
                    (1, "RTS"),
                    (2, "OUT1"),
                    (3, "OUT2 (IRQ on)"),
                    (4, "loopback"),
                ],
            ),
        ),
        (5, _, _) => ("LSR", bit_names(v, LSR_BITS)),
        (6, _, _) => ("MSR", "modem status".to_string()),
        _ => ("SCR", "scratch".to_string()),
    };
    // A transmitted character is what a reader scans for: keep it short.
    if reg == "THR" {
        return Decoded {
            dev: name.into(),
            reg: reg.into(),
            text: format!("{name} THR <- {}", char_words(v as u8)),
        };
    }
    Decoded::reg(name, reg, a, meaning)
}

fn iir_words(v: u8) -> String {
    if v & 1 != 0 {
        return "no interrupt pending".into();
    }
    match (v >> 1) & 7 {
        0 => "modem status interrupt",
        1 => "transmitter empty interrupt",
        2 => "data received interrupt",
        3 => "line status interrupt",
        6 => "character timeout interrupt",
        _ => "interrupt pending",
    }
    .into()
}

fn lcr_words(v: u8) -> String {
    let bits = 5 + (v & 3);
    let parity = if v & 8 == 0 { 'N' } else { 'P' };
    let stop = if v & 4 == 0 { 1 } else { 2 };
    let dlab = if v & 0x80 != 0 {
        ", divisor latch access"
    } else {
        ""
    };
    format!("{bits}{parity}{stop}{dlab}")
}

#[cfg(test)]
mod tests {
    use super::super::tests::acc;
    use super::super::{Decoder, Space};

    fn io(d: &mut Decoder, write: bool, port: u16, v: u64) -> String {
        d.decode(&acc(Space::Port, write, port.into(), 1, v)).text
    }

    #[test]
    fn every_uart_register_in_words() {
        let mut d = Decoder::new();
        assert_eq!(io(&mut d, true, 0x3f8, b'a'.into()), "COM1 THR <- 'a'");
        assert_eq!(
            io(&mut d, false, 0x3f8, b'x'.into()),
            "COM1 RBR -> 0x78: received 'x'"
        );
        assert_eq!(
            io(&mut d, false, 0x3fd, 0x60),
            "COM1 LSR -> 0x60: transmit holding register empty, transmitter empty"
        );
        assert_eq!(
            io(&mut d, true, 0x3f9, 0x02),
            "COM1 IER <- 0x2: interrupts: transmitter empty"
        );
        assert_eq!(
            io(&mut d, false, 0x3fa, 0xc2),
            "COM1 IIR -> 0xc2: transmitter empty interrupt"
        );
        assert_eq!(
            io(&mut d, false, 0x3fa, 0xc1),
            "COM1 IIR -> 0xc1: no interrupt pending"
        );
        assert_eq!(io(&mut d, true, 0x3fa, 0xc7), "COM1 FCR <- 0xc7: FIFOs on");
        assert_eq!(
            io(&mut d, true, 0x3fb, 0x83),
            "COM1 LCR <- 0x83: 8N1, divisor latch access"
        );
        // With the divisor latch open, offsets 0 and 1 are the divisor.
        assert_eq!(
            io(&mut d, true, 0x3f8, 0x01),
            "COM1 DLL <- 0x1: divisor latch, low byte"
        );
        assert_eq!(
            io(&mut d, true, 0x3f9, 0x00),
            "COM1 DLM <- 0x0: divisor latch, high byte"
        );
        assert_eq!(io(&mut d, true, 0x3fb, 0x03), "COM1 LCR <- 0x3: 8N1");
        assert_eq!(
            io(&mut d, true, 0x3f8, u64::from(b'\n')),
            "COM1 THR <- '\\n'"
        );
        assert_eq!(
            io(&mut d, true, 0x3fc, 0x0b),
            "COM1 MCR <- 0xb: DTR, RTS, OUT2 (IRQ on)"
        );
        assert_eq!(
            io(&mut d, false, 0x3fe, 0xb0),
            "COM1 MSR -> 0xb0: modem status"
        );
        assert_eq!(io(&mut d, true, 0x3ff, 0x55), "COM1 SCR <- 0x55: scratch");
        // COM2's state is its own.
        assert_eq!(io(&mut d, true, 0x2f8, b'b'.into()), "COM2 THR <- 'b'");
        let r = d.decode(&acc(Space::Port, true, 0x3f8, 1, 0x41));
        assert_eq!((r.dev.as_str(), r.reg.as_str()), ("COM1", "THR"));
    }
}
