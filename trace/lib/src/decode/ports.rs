//! The other PC ports and fixed MMIO ranges a guest touches: i8042, CMOS
//! clock, PIT, PIC, port 0x80, ACPI PM (QEMU), fw_cfg (QEMU), the local
//! APIC (also where MSIs land), the IOAPIC and the HPET.

use super::{bit_names, Access, Decoded};

/// Local APIC (and MSI) window.
pub const LAPIC_BASE: u64 = 0xfee0_0000;
/// IOAPIC registers.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// HPET registers.
pub const HPET_BASE: u64 = 0xfed0_0000;

/// Index registers the decoder follows.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortState {
    cmos_index: u8,
    ioapic_sel: u8,
}

/// (first port, count, device, register names by offset).
const PORTS: &[(u16, u16, &str, &[&str])] = &[
    (0x20, 2, "PIC", &["MASTER_CMD", "MASTER_MASK"]),
    (0xa0, 2, "PIC", &["SLAVE_CMD", "SLAVE_MASK"]),
    (0x4d0, 2, "PIC", &["ELCR1", "ELCR2"]),
    (
        0x40,
        4,
        "PIT",
        &["COUNTER0", "COUNTER1", "COUNTER2", "MODE"],
    ),
    (0x61, 1, "PIT", &["PORT_B"]),
    (0x60, 1, "i8042", &["DATA"]),
    (0x64, 1, "i8042", &["STATUS_COMMAND"]),
    (0x80, 1, "POST", &["POST"]),
    (0x92, 1, "PORT92", &["PORT92"]),
    (0x510, 2, "fw_cfg", &["SELECTOR", "DATA"]),
    (0x514, 8, "fw_cfg", &["DMA"]),
    (
        0x600,
        4,
        "ACPI",
        &["PM1_STATUS", "PM1_STATUS", "PM1_ENABLE", "PM1_ENABLE"],
    ),
    (0x604, 2, "ACPI", &["PM1_CONTROL"]),
    (0x608, 4, "ACPI", &["PM_TIMER"]),
    (0x402, 1, "BIOS", &["DEBUG"]),
];

/// CMOS register names by index.
fn cmos_name(i: u8) -> String {
    match i {
        0x00 => "seconds".into(),
        0x02 => "minutes".into(),
        0x04 => "hours".into(),
        0x06 => "weekday".into(),
        0x07 => "day".into(),
        0x08 => "month".into(),
        0x09 => "year".into(),
        0x0a => "status A".into(),
        0x0b => "status B".into(),
        0x0c => "status C".into(),
        0x0d => "status D".into(),
        0x32 => "century".into(),
        i => format!("register {i:#04x}"),
    }
}

fn lapic_name(off: u64) -> String {
    match off {
        0x20 => "ID".into(),
        0x30 => "VERSION".into(),
        0x80 => "TPR".into(),
        0x90 => "APR".into(),
        0xa0 => "PPR".into(),
        0xb0 => "EOI".into(),
        0xd0 => "LDR".into(),
        0xe0 => "DFR".into(),
        0xf0 => "SVR".into(),
        0x100..=0x170 => "ISR".into(),
        0x180..=0x1f0 => "TMR".into(),
        0x200..=0x270 => "IRR".into(),
        0x280 => "ESR".into(),
        0x300 => "ICR_LO".into(),
        0x310 => "ICR_HI".into(),
        0x320 => "LVT_TIMER".into(),
        0x330 => "LVT_THERMAL".into(),
        0x340 => "LVT_PERF".into(),
        0x350 => "LVT_LINT0".into(),
        0x360 => "LVT_LINT1".into(),
        0x370 => "LVT_ERROR".into(),
        0x380 => "TIMER_INITIAL".into(),
        0x390 => "TIMER_CURRENT".into(),
        0x3e0 => "TIMER_DIVIDE".into(),
        o => format!("{o:#x}"),
    }
}

fn hpet_name(off: u64) -> String {
    match off {
        0x000 => "CAPABILITIES".into(),
        0x010 => "CONFIG".into(),
        0x020 => "IRQ_STATUS".into(),
        0x0f0 => "MAIN_COUNTER".into(),
        o if o >= 0x100 => {
            let t = (o - 0x100) / 0x20;
            match (o - 0x100) % 0x20 {
                0 => format!("TIMER{t}_CONFIG"),
                8 => format!("TIMER{t}_COMPARATOR"),
                0x10 => format!("TIMER{t}_FSB"),
                _ => format!("{o:#x}"),
            }
        }
        o => format!("{o:#x}"),
    }
}

impl PortState {
    /// A port nobody else decoded.
    pub fn port(&mut self, a: &Access) -> Decoded {
        let port = a.addr as u16;
        let v = a.masked();
        if port == 0x70 || port == 0x71 {
            return self.cmos(port, a);
        }
        let Some((first, _, dev, names)) = PORTS
            .iter()
            .find(|(p, n, _, _)| (*p..p + n).contains(&port))
        else {
            let mut d = Decoded::reg("unassigned", &format!("{port:#x}"), a, "");
            d.text = format!(
                "port {port:#x} {} {:#x}: nothing decodes this port",
                a.arrow(),
                v
            );
            return d;
        };
        let reg = names
            .get(usize::from(port - first))
            .or(names.last())
            .copied()
            .unwrap_or_default();
        let meaning = match (reg, a.write) {
            ("STATUS_COMMAND", true) => match v {
                0xfe => "pulse the reset line (reboot)".into(),
                0xaa => "self test".into(),
                0xd1 => "write output port".into(),
                _ => "command".into(),
            },
            ("STATUS_COMMAND", false) => bit_names(
                v,
                &[
                    (0, "output buffer full"),
                    (1, "input buffer full"),
                    (2, "system flag"),
                ],
            ),
            ("POST", _) => "I/O delay".into(),
            ("DEBUG", true) => format!("firmware prints {}", super::char_words(v as u8)),
            ("MASTER_CMD" | "SLAVE_CMD", true) if v == 0x20 => "end of interrupt".into(),
            ("MODE", true) => format!("channel {}, mode {}", v >> 6, (v >> 1) & 7),
            _ => String::new(),
        };
        Decoded::reg(dev, reg, a, meaning)
    }

    fn cmos(&mut self, port: u16, a: &Access) -> Decoded {
        let v = a.masked() as u8;
        if port == 0x70 {
            if a.write {
                self.cmos_index = v & 0x7f;
                let nmi = if v & 0x80 != 0 { ", NMI off" } else { "" };
                return Decoded::reg("CMOS", "INDEX", a, format!("{}{nmi}", cmos_name(v & 0x7f)));
            }
            return Decoded::reg("CMOS", "INDEX", a, "");
        }
        Decoded::reg("CMOS", "DATA", a, cmos_name(self.cmos_index))
    }

    /// An MMIO access no BAR decoded.
    pub fn mmio(&mut self, a: &Access) -> Decoded {
        let v = a.masked();
        if (LAPIC_BASE..LAPIC_BASE + 0x10_0000).contains(&a.addr) {
            let off = a.addr - LAPIC_BASE;
            if a.write && is_msi_write(off) {
                let m = super::pci::msi_words(a.addr, v as u32);
                return Decoded::reg("LAPIC", "MSI", a, format!("MSI {m}"));
            }
            let reg = lapic_name(off & 0xff0);
            let meaning = if reg == "EOI" && a.write {
                "end of interrupt"
            } else {
                ""
            };
            return Decoded::reg("LAPIC", &reg, a, meaning);
        }
        if (IOAPIC_BASE..IOAPIC_BASE + 0x1000).contains(&a.addr) {
            let off = a.addr - IOAPIC_BASE;
            if off == 0 {
                if a.write {
                    self.ioapic_sel = v as u8;
                }
                return Decoded::reg("IOAPIC", "IOREGSEL", a, ioapic_reg(v as u8));
            }
            let sel = self.ioapic_sel;
            return Decoded::reg("IOAPIC", "IOWIN", a, ioapic_reg(sel));
        }
        if (HPET_BASE..HPET_BASE + 0x400).contains(&a.addr) {
            let reg = hpet_name((a.addr - HPET_BASE) & !7);
            return Decoded::reg("HPET", &reg, a, "");
        }
        let mut d = Decoded::reg("unassigned", &format!("{:#x}", a.addr), a, "");
        d.text = format!(
            "mmio {:#x} {} {:#x}: nothing decodes this address",
            a.addr,
            a.arrow(),
            v
        );
        d
    }
}

fn ioapic_reg(sel: u8) -> String {
    match sel {
        0 => "ID".into(),
        1 => "VERSION".into(),
        2 => "ARBITRATION".into(),
        s if s >= 0x10 => format!(
            "redirection entry {} {}",
            (s - 0x10) / 2,
            if s % 2 == 0 { "low" } else { "high" }
        ),
        s => format!("register {s:#x}"),
    }
}

/// Whether a write at `off` into the local APIC's MMIO window is an MSI
/// message rather than a register: what QEMU's APIC does, a write to
/// index 0 or above the 4 KiB page is a message.
pub fn is_msi_write(off: u64) -> bool {
    off > 0xfff || (off >> 4) & 0xff == 0
}

#[cfg(test)]
mod tests {
    use super::super::tests::acc;
    use super::super::{Decoder, Space};

    fn pio(d: &mut Decoder, write: bool, port: u16, v: u64) -> String {
        d.decode(&acc(Space::Port, write, port.into(), 1, v)).text
    }
    fn mmio(d: &mut Decoder, write: bool, addr: u64, v: u64) -> String {
        d.decode(&acc(Space::Mmio, write, addr, 4, v)).text
    }

    #[test]
    fn legacy_ports_in_words() {
        let mut d = Decoder::new();
        assert_eq!(
            pio(&mut d, true, 0x64, 0xfe),
            "i8042 STATUS_COMMAND <- 0xfe: pulse the reset line (reboot)"
        );
        assert_eq!(
            pio(&mut d, true, 0x70, 0x8a),
            "CMOS INDEX <- 0x8a: status A, NMI off"
        );
        assert_eq!(
            pio(&mut d, false, 0x71, 0x26),
            "CMOS DATA -> 0x26: status A"
        );
        assert_eq!(pio(&mut d, true, 0x80, 0), "POST POST <- 0x0: I/O delay");
        assert_eq!(
            pio(&mut d, true, 0x20, 0x20),
            "PIC MASTER_CMD <- 0x20: end of interrupt"
        );
        assert_eq!(
            pio(&mut d, true, 0x43, 0x34),
            "PIT MODE <- 0x34: channel 0, mode 2"
        );
        assert_eq!(pio(&mut d, false, 0x61, 0x20), "PIT PORT_B -> 0x20");
        assert_eq!(
            pio(&mut d, true, 0x402, 0x53),
            "BIOS DEBUG <- 0x53: firmware prints 'S'"
        );
        let pm = d.decode(&acc(Space::Port, false, 0x608, 4, 0x1234));
        assert_eq!(pm.text, "ACPI PM_TIMER -> 0x1234");
    }

    #[test]
    fn apics_hpet_and_msi() {
        let mut d = Decoder::new();
        assert_eq!(
            mmio(&mut d, true, 0xfee0_00b0, 0),
            "LAPIC EOI <- 0x0: end of interrupt"
        );
        assert_eq!(
            mmio(&mut d, false, 0xfee0_0390, 7),
            "LAPIC TIMER_CURRENT -> 0x7"
        );
        assert_eq!(
            mmio(&mut d, true, 0xfee0_1000, 0x22),
            "LAPIC MSI <- 0x22: MSI vector 0x22 to physical APIC 1 (fixed, edge)"
        );
        assert_eq!(
            mmio(&mut d, true, 0xfec0_0000, 0x12),
            "IOAPIC IOREGSEL <- 0x12: redirection entry 1 low"
        );
        assert_eq!(
            mmio(&mut d, true, 0xfec0_0010, 0x10022),
            "IOAPIC IOWIN <- 0x10022: redirection entry 1 low"
        );
        assert_eq!(
            mmio(&mut d, false, 0xfed0_00f0, 5),
            "HPET MAIN_COUNTER -> 0x5"
        );
        assert_eq!(
            mmio(&mut d, false, 0xfed0_0128, 5),
            "HPET TIMER1_COMPARATOR -> 0x5"
        );
    }
}
