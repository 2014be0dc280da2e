//! PCI configuration mechanism #1 (ports 0xcf8/0xcfc) and the type-0
//! header: functions by bus:device.function, header registers by name,
//! BAR sizing and placement, the MSI capability.

use std::collections::BTreeMap;
use std::fmt;

use edu_devices::edu::regs as edu_regs;
use edu_pci::config::{
    BAR0, CACHE_LINE_SIZE, CAPABILITY_LIST, CLASS_PROG, COMMAND, COMMAND_INTX_DISABLE, COMMAND_IO,
    COMMAND_MASTER, COMMAND_MEMORY, COMMAND_SERR, DEVICE_ID, HEADER_TYPE, INTERRUPT_LINE,
    INTERRUPT_PIN, REVISION_ID, STATUS, STATUS_CAP_LIST, STATUS_INTERRUPT, SUBSYSTEM_ID,
    SUBSYSTEM_VENDOR_ID, VENDOR_ID,
};
use edu_pci::msi::{CAP_ID_MSI, CONTROL_64BIT, CONTROL_ENABLE, CONTROL_QSIZE};

use super::{bit_names, edu, size_words, Access, Decoded};
use crate::event::{Event, Layer};

/// CONFIG_ADDRESS.
pub const CONFIG_ADDRESS: u16 = 0xcf8;
/// CONFIG_DATA (the first of its four ports).
pub const CONFIG_DATA: u16 = 0xcfc;
/// PIIX reset control, a byte register inside CONFIG_ADDRESS's range.
pub const RESET_CONTROL: u16 = 0xcf9;
/// CONFIG_ADDRESS's enable bit.
const ENABLE: u32 = 1 << 31;

/// A PCI function's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus.
    pub bus: u8,
    /// Device (slot), 0..32.
    pub dev: u8,
    /// Function, 0..8.
    pub func: u8,
}

impl Bdf {
    /// `00:01.0` style.
    pub fn new(bus: u8, dev: u8, func: u8) -> Self {
        Bdf { bus, dev, func }
    }

    /// The function and register CONFIG_ADDRESS selects.
    pub fn from_config_address(v: u32) -> (Self, u8) {
        let b = Bdf::new(
            (v >> 16) as u8,
            ((v >> 11) & 0x1f) as u8,
            ((v >> 8) & 7) as u8,
        );
        (b, (v & 0xfc) as u8)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{:x}", self.bus, self.dev, self.func)
    }
}

/// One BAR as far as the decoder has seen it.
#[derive(Clone, Copy, Debug, Default)]
struct Bar {
    /// Programmed address (0: not known or not placed).
    addr: u64,
    /// Size from sizing (0: not known).
    size: u64,
    /// All ones were written and not yet replaced by an address.
    sizing: bool,
    /// An I/O BAR.
    io: bool,
}

/// What the decoder knows of one function.
#[derive(Clone, Debug, Default)]
struct Function {
    /// `edu0`, ... when the function is an edu.
    name: Option<String>,
    /// Vendor and device ID once read.
    ids: Option<(u16, u16)>,
    bars: [Bar; 6],
    /// Offset of the MSI capability, once seen (edu: 0x40).
    msi: Option<u16>,
    /// The MSI message the guest programmed: address, data, enabled.
    msi_msg: (u64, u32, bool),
    /// edu's register state (DMA and factorial), for edu functions.
    edu: edu::EduRegs,
}

/// The configuration latch and every function seen.
#[derive(Debug, Default)]
pub struct PciState {
    latch: u32,
    functions: BTreeMap<Bdf, Function>,
    edus: u32,
}

/// The header fields: (offset, length, name).
const HEADER: &[(u16, u16, &str)] = &[
    (VENDOR_ID as u16, 2, "VENDOR_ID"),
    (DEVICE_ID as u16, 2, "DEVICE_ID"),
    (COMMAND as u16, 2, "COMMAND"),
    (STATUS as u16, 2, "STATUS"),
    (REVISION_ID as u16, 1, "REVISION_ID"),
    (CLASS_PROG as u16, 3, "CLASS_CODE"),
    (CACHE_LINE_SIZE as u16, 1, "CACHE_LINE_SIZE"),
    (0x0d, 1, "LATENCY_TIMER"),
    (HEADER_TYPE as u16, 1, "HEADER_TYPE"),
    (0x0f, 1, "BIST"),
    (BAR0 as u16, 4, "BAR0"),
    (BAR0 as u16 + 4, 4, "BAR1"),
    (BAR0 as u16 + 8, 4, "BAR2"),
    (BAR0 as u16 + 12, 4, "BAR3"),
    (BAR0 as u16 + 16, 4, "BAR4"),
    (BAR0 as u16 + 20, 4, "BAR5"),
    (0x28, 4, "CARDBUS_CIS"),
    (SUBSYSTEM_VENDOR_ID as u16, 2, "SUBSYSTEM_VENDOR_ID"),
    (SUBSYSTEM_ID as u16, 2, "SUBSYSTEM_ID"),
    (0x30, 4, "EXPANSION_ROM"),
    (CAPABILITY_LIST as u16, 1, "CAPABILITIES_POINTER"),
    (INTERRUPT_LINE as u16, 1, "INTERRUPT_LINE"),
    (INTERRUPT_PIN as u16, 1, "INTERRUPT_PIN"),
    (0x3e, 1, "MIN_GNT"),
    (0x3f, 1, "MAX_LAT"),
];

/// The MSI capability's fields relative to its start (64-bit layout).
const MSI_FIELDS: &[(u16, u16, &str)] = &[
    (0, 1, "MSI_CAP_ID"),
    (1, 1, "MSI_NEXT"),
    (2, 2, "MSI_CONTROL"),
    (4, 4, "MSI_ADDRESS_LO"),
    (8, 4, "MSI_ADDRESS_HI"),
    (12, 2, "MSI_DATA"),
];

/// An MSI address or data register in words.
fn msi_field_words(name: &str, v: u64) -> String {
    match name {
        "MSI_DATA" => msi_words(0, v as u32)
            .split(" to ")
            .next()
            .unwrap_or_default()
            .to_string(),
        "MSI_ADDRESS_LO" => format!(
            "to {} APIC {}",
            if v & 4 != 0 { "logical" } else { "physical" },
            (v >> 12) & 0xff
        ),
        _ => String::new(),
    }
}

/// The interrupt-layer event of `dev`'s MSI (edu-vmm's recorder and the
/// QEMU converter both make it here).
pub fn msi_event(t_ns: u64, src: &str, dev: &str, address: u64, data: u32) -> Event {
    let mut e = Event::new(
        t_ns,
        Layer::Irq,
        src,
        "msi",
        format!(
            "{dev} MSI sent: address {address:#x} data {data:#x}: {}",
            msi_words(address, data)
        ),
    )
    .with("address", address)
    .with("data", data)
    .with("vector", data & 0xff)
    .with("dest", (address >> 12) & 0xff);
    e.dev = Some(dev.to_string());
    e
}

/// An x86 MSI message in words: `vector 0x21 to APIC 0 (fixed, edge)`.
pub fn msi_words(address: u64, data: u32) -> String {
    let dest = (address >> 12) & 0xff;
    let logical = address & (1 << 2) != 0;
    let mode = match (data >> 8) & 7 {
        0 => "fixed",
        1 => "lowest priority",
        2 => "SMI",
        4 => "NMI",
        5 => "INIT",
        7 => "ExtINT",
        _ => "reserved mode",
    };
    let trigger = if data & (1 << 15) != 0 {
        "level"
    } else {
        "edge"
    };
    format!(
        "vector {:#04x} to {} APIC {dest} ({mode}, {trigger})",
        data & 0xff,
        if logical { "logical" } else { "physical" }
    )
}

impl PciState {
    fn function(&mut self, bdf: Bdf) -> &mut Function {
        self.functions.entry(bdf).or_default()
    }

    fn new_edu_name(&mut self) -> String {
        let n = format!("edu{}", self.edus);
        self.edus += 1;
        n
    }

    /// See [`super::Decoder::add_edu`].
    pub fn add_edu(&mut self, bdf: Bdf, bar0: u64) -> String {
        let name = self.edu_name(bdf);
        let f = self.function(bdf);
        f.ids = Some((edu_regs::VENDOR_ID, edu_regs::DEVICE_ID));
        f.bars[0] = Bar {
            addr: bar0,
            size: edu_regs::BAR0_SIZE,
            sizing: false,
            io: false,
        };
        name
    }

    /// See [`super::Decoder::edu_name`].
    pub fn edu_name(&mut self, bdf: Bdf) -> String {
        if let Some(n) = self.functions.get(&bdf).and_then(|f| f.name.clone()) {
            return n;
        }
        let name = self.new_edu_name();
        let f = self.function(bdf);
        f.name = Some(name.clone());
        f.msi.get_or_insert(0x40);
        name
    }

    /// A port access, if it is one of the configuration ports.
    pub fn port(&mut self, a: &Access) -> Option<Decoded> {
        let port = a.addr as u16;
        if !(CONFIG_ADDRESS..CONFIG_ADDRESS + 8).contains(&port) {
            return None;
        }
        if port == RESET_CONTROL && a.size == 1 {
            let meaning = if a.write && a.value & 4 != 0 {
                "reset the machine"
            } else {
                ""
            };
            return Some(Decoded::reg("RESET", "RESET_CONTROL", a, meaning));
        }
        if port < CONFIG_DATA {
            return Some(self.address_port(a));
        }
        if self.latch & ENABLE == 0 {
            let mut d = Decoded::reg("PCI", "CONFIG_DATA", a, "");
            d.text = format!(
                "CONFIG_DATA {} {:#x}: configuration disabled (CONFIG_ADDRESS bit 31 clear)",
                a.arrow(),
                a.masked()
            );
            return Some(d);
        }
        let (bdf, reg) = Bdf::from_config_address(self.latch);
        let offset = u16::from(reg) + (port - CONFIG_DATA);
        let words = self.config_access(bdf, offset, a.size, a.write, a.masked());
        Some(Decoded {
            dev: "PCI".into(),
            reg: "CONFIG_DATA".into(),
            text: format!("CONFIG_DATA {} {:#x}: {words}", a.arrow(), a.masked()),
        })
    }

    fn address_port(&mut self, a: &Access) -> Decoded {
        let v = a.masked() as u32;
        if a.write && a.size == 4 {
            self.latch = v;
        }
        let what = if !(a.size == 4 && a.addr as u16 == CONFIG_ADDRESS) {
            if a.write {
                "not a 4-byte write to 0xcf8: the latch keeps its value".to_string()
            } else {
                "reads the latch".to_string()
            }
        } else if v & ENABLE == 0 {
            "configuration disabled".to_string()
        } else {
            let (bdf, reg) = Bdf::from_config_address(v);
            match self.field_name(bdf, u16::from(reg)) {
                Some(name) => format!("{bdf} reg {reg:#04x} {name}"),
                None => format!("{bdf} reg {reg:#04x}"),
            }
        };
        let mut d = Decoded::reg("PCI", "CONFIG_ADDRESS", a, "");
        d.text = format!("CONFIG_ADDRESS {} {:#010x}: {what}", a.arrow(), v);
        d
    }

    /// The name of the register at `offset` of `bdf`'s configuration space.
    fn field_name(&self, bdf: Bdf, offset: u16) -> Option<&'static str> {
        let msi = self.functions.get(&bdf).and_then(|f| f.msi);
        field_at(msi, offset).map(|(_, _, n)| n)
    }

    /// Describes a configuration access to `bdf` at `offset` and learns
    /// from it (IDs, BARs, capabilities).
    pub fn config_access(
        &mut self,
        bdf: Bdf,
        offset: u16,
        size: u8,
        write: bool,
        value: u64,
    ) -> String {
        // A configuration access is at most 4 bytes; a log may say more.
        let size = u16::from(size.clamp(1, 8));
        // Absent functions read all ones from their vendor ID: say so once.
        if !write && offset == 0 && value & 0xffff == 0xffff {
            return format!("{bdf} VENDOR_ID: no function here");
        }
        let edu_name = {
            let f = self.function(bdf);
            if offset == 0 && !write && size >= 2 {
                f.ids = Some((value as u16, (value >> 16) as u16));
            }
            f.ids == Some((edu_regs::VENDOR_ID, edu_regs::DEVICE_ID)) && f.name.is_none()
        };
        if edu_name {
            self.edu_name(bdf);
        }
        let label = match self.functions.get(&bdf).and_then(|f| f.name.as_deref()) {
            Some(n) => format!("{bdf} {n}"),
            None => bdf.to_string(),
        };
        let mut parts = Vec::new();
        let mut off = offset;
        while off < offset + size {
            let msi = self.functions.get(&bdf).and_then(|f| f.msi);
            let (start, len, name) = field_at(msi, off).unwrap_or((off, 1, ""));
            // The part of the access that falls on this field.
            let lo = off - offset;
            let take = (start + len).min(offset + size) - off;
            let v = (value >> (8 * lo)) & mask(take);
            let whole = start == off && take == len;
            let words = if name.is_empty() {
                format!("reg {off:#04x} {} {v:#x}", if write { "<-" } else { "->" })
            } else {
                let meaning = self.field_words(bdf, name, start, whole, write, v);
                let part = if whole {
                    String::new()
                } else {
                    format!(" (byte {})", off - start)
                };
                if meaning.is_empty() {
                    format!("{name}{part} = {v:#x}")
                } else {
                    format!("{name}{part} = {v:#x} ({meaning})")
                }
            };
            parts.push(words);
            off += take.max(1);
        }
        format!("{label} {}", parts.join(", "))
    }

    /// What a field's value means; learns BARs and capabilities.
    fn field_words(
        &mut self,
        bdf: Bdf,
        name: &str,
        start: u16,
        whole: bool,
        write: bool,
        v: u64,
    ) -> String {
        let f = self.function(bdf);
        match name {
            "VENDOR_ID" | "DEVICE_ID" if !write => {
                if f.ids == Some((edu_regs::VENDOR_ID, edu_regs::DEVICE_ID)) {
                    "edu".into()
                } else {
                    String::new()
                }
            }
            "COMMAND" => bit_names(
                v,
                &[
                    (COMMAND_IO.trailing_zeros(), "I/O"),
                    (COMMAND_MEMORY.trailing_zeros(), "memory"),
                    (COMMAND_MASTER.trailing_zeros(), "bus master"),
                    (COMMAND_SERR.trailing_zeros(), "SERR"),
                    (COMMAND_INTX_DISABLE.trailing_zeros(), "INTx disabled"),
                ],
            ),
            "STATUS" => bit_names(
                v,
                &[
                    (STATUS_INTERRUPT.trailing_zeros(), "interrupt pending"),
                    (STATUS_CAP_LIST.trailing_zeros(), "capability list"),
                ],
            ),
            "CLASS_CODE" => format!("class {:02x}, subclass {:02x}", v >> 16, (v >> 8) & 0xff),
            "HEADER_TYPE" => format!(
                "type {}{}",
                v & 0x7f,
                if v & 0x80 != 0 {
                    ", multi-function"
                } else {
                    ""
                }
            ),
            n if n.starts_with("BAR") && whole => {
                let i = usize::from((start - BAR0 as u16) / 4);
                bar_words(&mut f.bars[i], i, write, v)
            }
            "CAPABILITIES_POINTER" if !write => format!("first capability at {v:#04x}"),
            "INTERRUPT_LINE" => format!("IRQ {v}"),
            "INTERRUPT_PIN" => match v {
                0 => "no INTx pin".into(),
                1..=4 => format!("INT{}", (b'A' + v as u8 - 1) as char),
                _ => "invalid pin".into(),
            },
            "MSI_CAP_ID" if !write && v == u64::from(CAP_ID_MSI) => {
                f.msi = Some(start);
                "MSI".into()
            }
            "MSI_CONTROL" => {
                f.msi_msg.2 = v & u64::from(CONTROL_ENABLE) != 0;
                let on = if v & u64::from(CONTROL_ENABLE) != 0 {
                    "MSI enabled"
                } else {
                    "MSI disabled"
                };
                let bits = if v & u64::from(CONTROL_64BIT) != 0 {
                    ", 64-bit"
                } else {
                    ""
                };
                let q = (v & u64::from(CONTROL_QSIZE)) >> 4;
                format!("{on}{bits}, {} vector(s) enabled", 1u32 << q)
            }
            "MSI_ADDRESS_LO" | "MSI_ADDRESS_HI" | "MSI_DATA" => {
                if write {
                    let m = &mut f.msi_msg;
                    match name {
                        "MSI_ADDRESS_LO" => m.0 = (m.0 & !0xffff_ffff) | (v & 0xffff_fffc),
                        "MSI_ADDRESS_HI" => m.0 = (m.0 & 0xffff_ffff) | (v << 32),
                        _ => m.1 = v as u32,
                    }
                }
                msi_field_words(name, v)
            }
            _ => String::new(),
        }
    }

    /// The function whose programmed MSI message is (`address`, `data`):
    /// who sent a message seen on the bus.
    pub fn msi_owner(&self, address: u64, data: u32) -> Option<String> {
        self.functions
            .values()
            .find(|f| f.msi_msg.2 && f.msi_msg.0 == address && f.msi_msg.1 == data)
            .and_then(|f| f.name.clone())
    }

    /// An MMIO access, if a known BAR decodes it.
    pub fn mmio(&mut self, a: &Access) -> Option<Decoded> {
        let (name, offset) = self.edu_at(a.addr)?;
        Some(self.edu_offset(&name, offset, a))
    }

    /// The edu whose BAR0 contains `addr`, with the offset into it.
    pub fn edu_at(&self, addr: u64) -> Option<(String, u64)> {
        self.functions.values().find_map(|f| {
            let name = f.name.as_ref()?;
            let b = &f.bars[0];
            let size = if b.size == 0 {
                edu_regs::BAR0_SIZE
            } else {
                b.size
            };
            (b.addr != 0 && !b.io && (b.addr..b.addr.saturating_add(size)).contains(&addr))
                .then(|| (name.clone(), addr - b.addr))
        })
    }

    /// The register state of the edu called `name`.
    pub fn edu_regs(&self, name: &str) -> edu::EduRegs {
        self.functions
            .values()
            .find(|f| f.name.as_deref() == Some(name))
            .map(|f| f.edu)
            .unwrap_or_default()
    }

    /// An access to the edu called `name` at `offset` in its BAR0.
    pub fn edu_offset(&mut self, name: &str, offset: u64, a: &Access) -> Decoded {
        let f = self
            .functions
            .values_mut()
            .find(|f| f.name.as_deref() == Some(name));
        match f {
            Some(f) => edu::decode(name, &mut f.edu, offset, a),
            None => edu::decode(name, &mut edu::EduRegs::default(), offset, a),
        }
    }
}

/// All ones in the low `bytes` bytes.
fn mask(bytes: u16) -> u64 {
    if bytes >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * bytes)) - 1
    }
}

/// The header or MSI field that contains `offset`.
fn field_at(msi: Option<u16>, offset: u16) -> Option<(u16, u16, &'static str)> {
    let header = HEADER
        .iter()
        .find(|(s, l, _)| (*s..s + l).contains(&offset))
        .copied();
    header.or_else(|| {
        let base = msi?;
        MSI_FIELDS
            .iter()
            .find(|(s, l, _)| (base + s..base + s + l).contains(&offset))
            .map(|(s, l, n)| (base + s, *l, *n))
    })
}

/// A 4-byte BAR access in words; learns the BAR's size and address.
fn bar_words(bar: &mut Bar, index: usize, write: bool, v: u64) -> String {
    let v = v as u32;
    bar.io = v & 1 != 0 && !(write && v == u32::MAX);
    let mask = if bar.io { !3u32 } else { !0xfu32 };
    let kind = || {
        if bar.io {
            "I/O".to_string()
        } else {
            format!(
                "{}-bit{} memory",
                if (v >> 1) & 3 == 2 { 64 } else { 32 },
                if v & 8 != 0 { " prefetchable" } else { "" }
            )
        }
    };
    if write {
        if v == u32::MAX {
            bar.sizing = true;
            return format!("BAR{index} sizing: all ones written, the read-back gives the size");
        }
        bar.sizing = false;
        bar.addr = u64::from(v & mask);
        return format!("BAR{index} placed at {:#x}", bar.addr);
    }
    if v == 0 && (bar.sizing || bar.addr == 0) {
        return "not implemented".into();
    }
    if bar.sizing {
        let size = u64::from((!(v & mask)).wrapping_add(1));
        bar.size = size;
        return format!("BAR{index} size {}, {}", size_words(size), kind());
    }
    bar.addr = u64::from(v & mask);
    format!("{} at {:#x}", kind(), bar.addr)
}

#[cfg(test)]
mod tests {
    use super::super::tests::acc;
    use super::super::{Decoder, Space};
    use super::*;

    fn out(d: &mut Decoder, port: u16, size: u8, v: u64) -> String {
        d.decode(&acc(Space::Port, true, port.into(), size, v)).text
    }
    fn inp(d: &mut Decoder, port: u16, size: u8, v: u64) -> String {
        d.decode(&acc(Space::Port, false, port.into(), size, v))
            .text
    }

    #[test]
    fn config_address_names_function_and_register() {
        let mut d = Decoder::new();
        assert_eq!(
            out(&mut d, 0xcf8, 4, 0x8000_0804),
            "CONFIG_ADDRESS <- 0x80000804: 00:01.0 reg 0x04 COMMAND"
        );
        assert_eq!(
            out(&mut d, 0xcf8, 4, 0x8001_1a10),
            "CONFIG_ADDRESS <- 0x80011a10: 01:03.2 reg 0x10 BAR0"
        );
        assert_eq!(
            out(&mut d, 0xcf8, 4, 0x8000_c068),
            "CONFIG_ADDRESS <- 0x8000c068: 00:18.0 reg 0x68"
        );
        assert_eq!(
            out(&mut d, 0xcf8, 4, 0),
            "CONFIG_ADDRESS <- 0x00000000: configuration disabled"
        );
        assert_eq!(
            inp(&mut d, 0xcfc, 4, 0xffff_ffff),
            "CONFIG_DATA -> 0xffffffff: configuration disabled (CONFIG_ADDRESS bit 31 clear)"
        );
        assert_eq!(
            out(&mut d, 0xcfa, 2, 1),
            "CONFIG_ADDRESS <- 0x00000001: not a 4-byte write to 0xcf8: the latch keeps its value"
        );
        let r = d.decode(&acc(Space::Port, true, 0xcf9, 1, 6));
        assert_eq!(r.text, "RESET RESET_CONTROL <- 0x6: reset the machine");
        assert_eq!((r.dev.as_str(), r.reg.as_str()), ("RESET", "RESET_CONTROL"));
    }

    #[test]
    fn enumeration_bar_sizing_and_msi_of_an_edu() {
        let mut d = Decoder::new();
        out(&mut d, 0xcf8, 4, 0x8000_0800);
        assert_eq!(
            inp(&mut d, 0xcfc, 4, 0x11e8_1234),
            "CONFIG_DATA -> 0x11e81234: 00:01.0 edu0 VENDOR_ID = 0x1234 (edu), DEVICE_ID = 0x11e8 (edu)"
        );
        out(&mut d, 0xcf8, 4, 0x8000_0808);
        assert_eq!(
            inp(&mut d, 0xcfc, 4, 0x00ff_0010),
            "CONFIG_DATA -> 0xff0010: 00:01.0 edu0 REVISION_ID = 0x10, CLASS_CODE = 0xff00 (class 00, subclass ff)"
        );
        out(&mut d, 0xcf8, 4, 0x8000_0810);
        assert_eq!(
            out(&mut d, 0xcfc, 4, 0xffff_ffff),
            "CONFIG_DATA <- 0xffffffff: 00:01.0 edu0 BAR0 = 0xffffffff (BAR0 sizing: all ones written, the read-back gives the size)"
        );
        assert_eq!(
            inp(&mut d, 0xcfc, 4, 0xfff0_0000),
            "CONFIG_DATA -> 0xfff00000: 00:01.0 edu0 BAR0 = 0xfff00000 (BAR0 size 1 MiB, 32-bit memory)"
        );
        assert_eq!(
            out(&mut d, 0xcfc, 4, 0xfea0_0000),
            "CONFIG_DATA <- 0xfea00000: 00:01.0 edu0 BAR0 = 0xfea00000 (BAR0 placed at 0xfea00000)"
        );
        // The BAR now decodes MMIO.
        assert_eq!(d.edu_at(0xfea0_0008), Some(("edu0".into(), 8)));
        assert_eq!(d.edu_at(0xfeb0_0000), None);
        out(&mut d, 0xcf8, 4, 0x8000_0804);
        assert_eq!(
            out(&mut d, 0xcfc, 2, 0x0406),
            "CONFIG_DATA <- 0x406: 00:01.0 edu0 COMMAND = 0x406 (memory, bus master, INTx disabled)"
        );
        // A byte access in the middle of a field, through the port offset.
        assert_eq!(
            inp(&mut d, 0xcfe, 1, 0x10),
            "CONFIG_DATA -> 0x10: 00:01.0 edu0 STATUS (byte 0) = 0x10 (capability list)"
        );
        out(&mut d, 0xcf8, 4, 0x8000_0840);
        assert_eq!(
            inp(&mut d, 0xcfc, 2, 0x0005),
            "CONFIG_DATA -> 0x5: 00:01.0 edu0 MSI_CAP_ID = 0x5 (MSI), MSI_NEXT = 0x0"
        );
        out(&mut d, 0xcf8, 4, 0x8000_0844);
        assert_eq!(
            out(&mut d, 0xcfc, 4, 0xfee0_1000),
            "CONFIG_DATA <- 0xfee01000: 00:01.0 edu0 MSI_ADDRESS_LO = 0xfee01000 (to physical APIC 1)"
        );
        out(&mut d, 0xcf8, 4, 0x8000_084c);
        assert_eq!(
            out(&mut d, 0xcfc, 2, 0x0022),
            "CONFIG_DATA <- 0x22: 00:01.0 edu0 MSI_DATA = 0x22 (vector 0x22)"
        );
        out(&mut d, 0xcf8, 4, 0x8000_0840);
        assert_eq!(
            out(&mut d, 0xcfe, 2, 0x0081),
            "CONFIG_DATA <- 0x81: 00:01.0 edu0 MSI_CONTROL = 0x81 (MSI enabled, 64-bit, 1 vector(s) enabled)"
        );
        assert_eq!(d.msi_owner(0xfee0_1000, 0x22), Some("edu0".into()));
        assert_eq!(d.msi_owner(0xfee0_1000, 0x23), None, "another vector");
        out(&mut d, 0xcf8, 4, 0x8000_083c);
        assert_eq!(
            inp(&mut d, 0xcfc, 4, 0x0000_010b),
            "CONFIG_DATA -> 0x10b: 00:01.0 edu0 INTERRUPT_LINE = 0xb (IRQ 11), INTERRUPT_PIN = 0x1 (INTA), MIN_GNT = 0x0, MAX_LAT = 0x0"
        );
    }

    #[test]
    fn absent_functions_and_unnamed_registers() {
        let mut d = Decoder::new();
        out(&mut d, 0xcf8, 4, 0x8000_f800);
        assert_eq!(
            inp(&mut d, 0xcfc, 4, 0xffff_ffff),
            "CONFIG_DATA -> 0xffffffff: 00:1f.0 VENDOR_ID: no function here"
        );
        out(&mut d, 0xcf8, 4, 0x8000_0060);
        assert_eq!(
            inp(&mut d, 0xcfc, 1, 0x42),
            "CONFIG_DATA -> 0x42: 00:00.0 reg 0x60 -> 0x42"
        );
        // A VMM that placed the BAR itself tells the decoder.
        assert_eq!(d.add_edu(Bdf::new(0, 2, 0), 0xc000_0000), "edu0");
        assert_eq!(d.add_edu(Bdf::new(0, 3, 0), 0xc010_0000), "edu1");
        assert_eq!(d.edu_at(0xc010_0004), Some(("edu1".into(), 4)));
        assert_eq!(d.edu_name(Bdf::new(0, 2, 0)), "edu0");
    }

    #[test]
    fn msi_messages_in_words() {
        assert_eq!(
            msi_words(0xfee0_1000, 0x0022),
            "vector 0x22 to physical APIC 1 (fixed, edge)"
        );
        assert_eq!(
            msi_words(0xfee0_0004, 0xc141),
            "vector 0x41 to logical APIC 0 (lowest priority, level)"
        );
    }
}
