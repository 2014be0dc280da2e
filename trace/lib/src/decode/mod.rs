//! Device accesses in a student's words.
//!
//! A [`Decoder`] follows one machine's accesses in order and names each:
//! `edu0 FACTORIAL <- 0xa: start 10!`, `CONFIG_ADDRESS <- 0x80000804:
//! 00:01.0 reg 0x04 COMMAND`, `COM1 THR <- 'a'`. It keeps the state a
//! reader of a bus analyser keeps in their head: the CONFIG_ADDRESS latch,
//! each PCI function's identity, BARs (also while they are being sized)
//! and MSI capability, each UART's divisor-latch bit, the CMOS and IOAPIC
//! index registers, and each edu's DMA and factorial registers. So it
//! must see the accesses of a machine in the order they happened; edu-vmm
//! feeds it its exits, the tool QEMU's trace.
//!
//! Modules: [`pci`] (configuration mechanism #1 and the type-0 header, BAR
//! sizing, MSI), [`edu`] (edu's BAR0), [`uart`] (8250), [`ports`] (the
//! other PC ports and fixed MMIO ranges: i8042, CMOS, PIT, PIC, LAPIC,
//! IOAPIC, HPET, ...).

pub mod edu;
pub mod pci;
pub mod ports;
pub mod uart;

use std::collections::BTreeMap;

use crate::event::{Event, Layer};

pub use pci::Bdf;

/// Port I/O or memory-mapped I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// An `in`/`out` to a port.
    Port,
    /// A load or store to a physical address no RAM backs.
    Mmio,
}

/// One access as a VMM sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Port or MMIO.
    pub space: Space,
    /// A write (`out`, store) or a read.
    pub write: bool,
    /// Port number or guest-physical address.
    pub addr: u64,
    /// 1, 2, 4 or 8 bytes.
    pub size: u8,
    /// The value written, or the value the device answered (little-endian,
    /// the low `size` bytes).
    pub value: u64,
}

impl Access {
    /// The event kind: `pio_read`, `pio_write`, `mmio_read`, `mmio_write`.
    pub fn kind(&self) -> &'static str {
        match (self.space, self.write) {
            (Space::Port, false) => "pio_read",
            (Space::Port, true) => "pio_write",
            (Space::Mmio, false) => "mmio_read",
            (Space::Mmio, true) => "mmio_write",
        }
    }

    /// `<-` for a write, `->` for a read.
    pub fn arrow(&self) -> &'static str {
        if self.write {
            "<-"
        } else {
            "->"
        }
    }

    /// The value, masked to the access size.
    pub fn masked(&self) -> u64 {
        match self.size {
            1 => self.value & 0xff,
            2 => self.value & 0xffff,
            4 => self.value & 0xffff_ffff,
            _ => self.value,
        }
    }
}

/// An access in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The device (`edu0`, `COM1`, `PCI`, `LAPIC`, ...); `unassigned` when
    /// nothing decodes the address.
    pub dev: String,
    /// The register (`FACTORIAL`, `THR`, `CONFIG_DATA`, ...), or the
    /// offset in hex when the device has none there.
    pub reg: String,
    /// The sentence: `edu0 FACTORIAL <- 0xa: start 10!`.
    pub text: String,
}

impl Decoded {
    /// A decoded access whose text is `"{dev} {reg} {arrow} {value}"` plus
    /// `": {meaning}"` when there is one.
    pub fn reg(dev: &str, reg: &str, a: &Access, meaning: impl AsRef<str>) -> Self {
        let meaning = meaning.as_ref();
        let mut text = format!("{dev} {reg} {} {:#x}", a.arrow(), a.masked());
        if !meaning.is_empty() {
            text.push_str(": ");
            text.push_str(meaning);
        }
        Decoded {
            dev: dev.to_string(),
            reg: reg.to_string(),
            text,
        }
    }
}

impl Access {
    /// The VMM-layer event of this access, as `d` decoded it (edu-vmm's
    /// recorder and the QEMU converter both make it here).
    pub fn event(&self, t_ns: u64, src: &str, vcpu: Option<u32>, d: Decoded) -> Event {
        let key = if self.space == Space::Port {
            "port"
        } else {
            "addr"
        };
        let mut e = Event::new(t_ns, Layer::Vmm, src, self.kind(), d.text)
            .with(key, self.addr)
            .with("size", self.size)
            .with("value", self.masked());
        e.vcpu = vcpu;
        e.dev = Some(d.dev);
        e.reg = Some(d.reg);
        e
    }
}

/// What a device name stands for, for tables that show where exits go.
pub fn describe_dev(dev: &str) -> &'static str {
    match dev {
        "COM1" | "COM2" | "COM3" | "COM4" => "serial port (8250 UART)",
        "PCI" => "PCI configuration ports 0xcf8/0xcfc",
        "i8042" => "keyboard controller (reset line)",
        "CMOS" => "CMOS real-time clock",
        "PIT" => "8254 timer",
        "PIC" => "8259 interrupt controller",
        "POST" => "port 0x80 (I/O delay)",
        "RESET" => "reset control 0xcf9",
        "LAPIC" => "local APIC",
        "IOAPIC" => "I/O APIC",
        "HPET" => "HPET timer",
        "ACPI" => "ACPI PM registers",
        "fw_cfg" => "QEMU firmware configuration",
        "BIOS" => "SeaBIOS debug port 0x402",
        "unassigned" => "nothing decodes it (reads all ones)",
        d if d.starts_with("edu") => "edu BAR0 (MMIO)",
        _ => "",
    }
}

/// Follows one machine's accesses and names each; see the module
/// documentation.
#[derive(Debug, Default)]
pub struct Decoder {
    pci: pci::PciState,
    uarts: BTreeMap<u16, uart::UartState>,
    ports: ports::PortState,
}

impl Decoder {
    /// A decoder that knows nothing yet: it learns PCI functions and BARs
    /// from the configuration accesses it sees.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the decoder about an edu at `bdf` whose BAR0 the VMM placed
    /// at `bar0` (a VMM, like firmware, programs BARs without the guest's
    /// configuration accesses). Returns its name, `edu0` for the first.
    pub fn add_edu(&mut self, bdf: Bdf, bar0: u64) -> String {
        self.pci.add_edu(bdf, bar0)
    }

    /// The edu at `bdf` by name, learning it if it is new (QEMU names the
    /// device in its configuration events).
    pub fn edu_name(&mut self, bdf: Bdf) -> String {
        self.pci.edu_name(bdf)
    }

    /// Names one access and updates what the decoder knows.
    pub fn decode(&mut self, a: &Access) -> Decoded {
        match a.space {
            Space::Port => self.port(a),
            Space::Mmio => self.mmio(a),
        }
    }

    fn port(&mut self, a: &Access) -> Decoded {
        let port = a.addr as u16;
        if let Some(d) = self.pci.port(a) {
            return d;
        }
        if let Some((name, base)) = uart::com_port(port) {
            let st = self.uarts.entry(base).or_default();
            return uart::decode(name, st, port - base, a);
        }
        self.ports.port(a)
    }

    fn mmio(&mut self, a: &Access) -> Decoded {
        if let Some(d) = self.pci.mmio(a) {
            return d;
        }
        self.ports.mmio(a)
    }

    /// An access to an edu's BAR0 by offset (QEMU reports MMIO by region
    /// and offset).
    pub fn edu_access(&mut self, name: &str, offset: u64, a: &Access) -> Decoded {
        self.pci.edu_offset(name, offset, a)
    }

    /// The edu whose BAR0 contains `addr`, with the offset.
    pub fn edu_at(&self, addr: u64) -> Option<(String, u64)> {
        self.pci.edu_at(addr)
    }

    /// The device whose programmed MSI message is (`address`, `data`).
    pub fn msi_owner(&self, address: u64, data: u32) -> Option<String> {
        self.pci.msi_owner(address, data)
    }

    /// What the decoder saw written to the edu `name`'s DMA and factorial
    /// registers.
    pub fn edu_regs(&self, name: &str) -> edu::EduRegs {
        self.pci.edu_regs(name)
    }
}

/// `'a'` for a printable byte, `'\n'` and friends for the usual controls,
/// else the hex value.
pub fn char_words(b: u8) -> String {
    match b {
        b'\n' => "'\\n'".into(),
        b'\r' => "'\\r'".into(),
        b'\t' => "'\\t'".into(),
        0x1b => "ESC".into(),
        0x20..=0x7e => format!("'{}'", b as char),
        _ => format!("{b:#04x}"),
    }
}

/// The names of the set bits of `v` in `bits` (bit, name), comma-separated,
/// or `none` when none is set.
pub fn bit_names(v: u64, bits: &[(u32, &str)]) -> String {
    let names: Vec<&str> = bits
        .iter()
        .filter(|(b, _)| v & (1 << b) != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A byte count as `4 KiB`, `1 MiB`, `12 bytes`.
pub fn size_words(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (u, name) in UNITS {
        if n >= u && n % u == 0 {
            return format!("{} {name}", n / u);
        }
    }
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn acc(space: Space, write: bool, addr: u64, size: u8, value: u64) -> Access {
        Access {
            space,
            write,
            addr,
            size,
            value,
        }
    }

    #[test]
    fn helpers_speak_plainly() {
        assert_eq!(char_words(b'a'), "'a'");
        assert_eq!(char_words(b'\n'), "'\\n'");
        assert_eq!(char_words(0), "0x00");
        assert_eq!(bit_names(0b101, &[(0, "a"), (1, "b"), (2, "c")]), "a, c");
        assert_eq!(bit_names(0, &[(0, "a")]), "none");
        assert_eq!(size_words(1 << 20), "1 MiB");
        assert_eq!(size_words(4096), "4 KiB");
        assert_eq!(size_words(4), "4 bytes");
        assert_eq!(size_words(1), "1 byte");
    }

    #[test]
    fn kinds_and_masks() {
        let a = acc(Space::Port, true, 0x3f8, 1, 0x161);
        assert_eq!(a.kind(), "pio_write");
        assert_eq!(a.masked(), 0x61);
        assert_eq!(acc(Space::Mmio, false, 0, 8, u64::MAX).masked(), u64::MAX);
        assert_eq!(acc(Space::Mmio, false, 0, 4, 0).kind(), "mmio_read");
    }

    #[test]
    fn nothing_there_is_unassigned() {
        let mut d = Decoder::new();
        let r = d.decode(&acc(Space::Mmio, false, 0xd000_0000, 4, 0xffff_ffff));
        assert_eq!(r.dev, "unassigned");
        assert_eq!(
            r.text,
            "mmio 0xd0000000 -> 0xffffffff: nothing decodes this address"
        );
        let r = d.decode(&acc(Space::Port, true, 0x1234, 2, 7));
        assert_eq!(r.text, "port 0x1234 <- 0x7: nothing decodes this port");
    }
}
