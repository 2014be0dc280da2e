//! QEMU's `-trace` log (`-msg timestamp=on`, log backend) into events
//! (`src` `qemu`), decoded by the same [`Decoder`] as edu-vmm's exits.
//!
//! A line is `TID@SECONDS.MICROS:EVENT ARGS` (gettimeofday). Used events:
//!
//! - `memory_region_ops_read`/`_write`: every access a QEMU device model
//!   answered, with the absolute address (below 0x10000: a port) and the
//!   region name; the `vmm` layer. Writes to `apic-msi`/`kvm-apic-msi` at
//!   an MSI address are the MSI messages devices send (`irq` layer).
//! - `pci_cfg_read`/`_write`: used to name the edu functions.
//! - `pci_update_mappings_add`: BARs as QEMU maps them (`device` layer).
//! - `apic_deliver_irq` (TCG's APIC), `ioapic_set_irq`: interrupts on
//!   their way (`irq` layer).
//! - `kvm_run_exit` (QEMU on KVM): `KVM_RUN` returned to QEMU.
//!
//! QEMU 7.2's edu has no trace event of its own, so its factorial and DMA
//! completions are *derived*: an MSI that the device sends from outside a
//! vCPU while a factorial or DMA is pending reports that completion. Such
//! events carry `"derived": true`.

use std::collections::BTreeMap;

use edu_trace::decode::edu::dma_cmd_words;
use edu_trace::decode::pci::{msi_event, msi_words};
use edu_trace::decode::ports::is_msi_write;
use edu_trace::decode::{Access, Bdf, Decoder, Space};
use edu_trace::{Event, Layer};

use crate::tracefs::num;

/// One parsed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Thread id (the same number tracefs shows as the task's pid).
    pub tid: u32,
    /// Wall-clock time in nanoseconds (microsecond resolution).
    pub t_ns: u64,
    /// Trace event name.
    pub event: String,
    /// Its arguments.
    pub args: String,
}

/// Parses one line; `None` for anything else in the log.
pub fn parse_line(l: &str) -> Option<Line> {
    let (tid, rest) = l.split_once('@')?;
    let tid = tid.trim().parse().ok()?;
    let (ts, rest) = rest.split_once(':')?;
    let (sec, us) = ts.split_once('.')?;
    if us.len() != 6 {
        return None;
    }
    let t_ns = sec.parse::<u64>().ok()? * 1_000_000_000 + us.parse::<u64>().ok()? * 1000;
    let (event, args) = rest.split_once(' ').unwrap_or((rest, ""));
    if event.is_empty()
        || !event
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    Some(Line {
        tid,
        t_ns,
        event: event.to_string(),
        args: args.trim().to_string(),
    })
}

/// The value after `key ` in `args`.
fn arg<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    let mut it = args.split_whitespace();
    while let Some(t) = it.next() {
        if t == key {
            return it.next();
        }
    }
    None
}

/// `NAME BB:DD.F` as QEMU prints a PCI function.
fn dev_bdf(args: &str) -> Option<(&str, Bdf)> {
    let mut it = args.split_whitespace();
    let name = it.next()?;
    let b = it.next()?;
    let (bus, rest) = b.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    Some((
        name,
        Bdf::new(
            u8::from_str_radix(bus, 16).ok()?,
            u8::from_str_radix(dev, 16).ok()?,
            u8::from_str_radix(func, 16).ok()?,
        ),
    ))
}

/// KVM_EXIT_* names by number.
pub fn kvm_exit_name(n: u64) -> &'static str {
    match n {
        0 => "UNKNOWN",
        1 => "EXCEPTION",
        2 => "IO",
        3 => "HYPERCALL",
        4 => "DEBUG",
        5 => "HLT",
        6 => "MMIO",
        7 => "IRQ_WINDOW_OPEN",
        8 => "SHUTDOWN",
        9 => "FAIL_ENTRY",
        10 => "INTR",
        17 => "INTERNAL_ERROR",
        24 => "SYSTEM_EVENT",
        _ => "OTHER",
    }
}

/// What a pending edu operation will report when its interrupt comes.
#[derive(Clone, Copy, Debug)]
enum Pending {
    Factorial(u32),
    Dma { cmd: u64, t_start: u64 },
}

/// Converts QEMU's log. Lines that are not trace events are skipped.
pub fn convert(text: &str) -> Vec<Event> {
    let mut c = Converter::default();
    for l in text.lines().filter_map(parse_line) {
        c.line(&l);
    }
    c.out
}

#[derive(Default)]
struct Converter {
    decoder: Decoder,
    out: Vec<Event>,
    /// edu names by region pointer (one region per edu).
    regions: BTreeMap<String, String>,
    pending: BTreeMap<String, Pending>,
}

impl Converter {
    fn line(&mut self, l: &Line) {
        match l.event.as_str() {
            "memory_region_ops_read" | "memory_region_ops_write" => self.access(l),
            "pci_cfg_read" | "pci_cfg_write" => {
                if let Some(("edu", bdf)) = dev_bdf(&l.args) {
                    self.decoder.edu_name(bdf);
                }
            }
            "pci_update_mappings_add" | "pci_update_mappings_del" => self.mapping(l),
            "apic_deliver_irq" => {
                let v = num(arg(&l.args, "vector")).unwrap_or(0);
                let e = Event::new(
                    l.t_ns,
                    Layer::Irq,
                    "qemu",
                    "apic_deliver_irq",
                    format!(
                        "APIC delivers vector {v:#04x} to APIC {}",
                        arg(&l.args, "dest").unwrap_or("?")
                    ),
                )
                .with("vector", v)
                .with("tid", l.tid);
                self.out.push(e);
            }
            "ioapic_set_irq" => {
                // "vector: 4 level: 1": QEMU calls the input pin "vector".
                let pin = num(arg(&l.args, "vector:")).unwrap_or(0);
                let level = num(arg(&l.args, "level:")).unwrap_or(0);
                let e = Event::new(
                    l.t_ns,
                    Layer::Irq,
                    "qemu",
                    "ioapic_set_irq",
                    format!(
                        "IOAPIC pin {pin} {}",
                        if level != 0 { "raised" } else { "lowered" }
                    ),
                )
                .with("pin", pin)
                .with("level", level)
                .with("tid", l.tid);
                self.out.push(e);
            }
            "kvm_run_exit" => {
                let reason = num(arg(&l.args, "reason")).unwrap_or(0);
                let cpu =
                    arg(&l.args, "cpu_index").and_then(|s| s.trim_end_matches(',').parse().ok());
                let mut e = Event::new(
                    l.t_ns,
                    Layer::Vmm,
                    "qemu",
                    "kvm_run_exit",
                    format!(
                        "KVM_RUN returned to QEMU: KVM_EXIT_{}",
                        kvm_exit_name(reason)
                    ),
                )
                .with("reason", reason)
                .with("tid", l.tid);
                e.vcpu = cpu;
                self.out.push(e);
            }
            _ => {}
        }
    }

    fn mapping(&mut self, l: &Line) {
        let Some((name, bdf)) = dev_bdf(&l.args) else {
            return;
        };
        // "... 0,0xfeb00000+0x100000"
        let Some(spec) = l.args.split_whitespace().nth(2) else {
            return;
        };
        let Some((bar, range)) = spec.split_once(',') else {
            return;
        };
        let (addr, size) = range.split_once('+').unwrap_or((range, "0"));
        let (addr, size) = (num(Some(addr)).unwrap_or(0), num(Some(size)).unwrap_or(0));
        let add = l.event.ends_with("_add");
        let label = if name == "edu" {
            let n = self.decoder.edu_name(bdf);
            if add && bar == "0" {
                self.decoder.add_edu(bdf, addr);
            }
            n
        } else {
            name.to_string()
        };
        let e = Event::new(
            l.t_ns,
            Layer::Device,
            "qemu",
            if add { "bar_map" } else { "bar_unmap" },
            format!(
                "{bdf} {label} BAR{bar} {} {addr:#x}..{:#x}",
                if add { "mapped at" } else { "unmapped from" },
                addr.saturating_add(size).saturating_sub(1)
            ),
        )
        .with("addr", addr)
        .with("size", size)
        .with("tid", l.tid);
        self.out.push(e);
    }

    fn access(&mut self, l: &Line) {
        let write = l.event.ends_with("_write");
        let a = &l.args;
        let (Some(addr), Some(value), Some(size)) = (
            num(arg(a, "addr")),
            num(arg(a, "value")),
            num(arg(a, "size")),
        ) else {
            return;
        };
        let region = a
            .split_once("name '")
            .and_then(|(_, r)| r.strip_suffix('\''))
            .unwrap_or("");
        let cpu: i64 = arg(a, "cpu").and_then(|c| c.parse().ok()).unwrap_or(-1);
        let mr = arg(a, "mr").unwrap_or("").to_string();
        let access = Access {
            space: if addr < 0x1_0000 {
                Space::Port
            } else {
                Space::Mmio
            },
            write,
            addr,
            size: size as u8,
            value,
        };
        if write && region.ends_with("apic-msi") && is_msi_write(addr & 0xfffff) {
            self.msi(l, cpu, addr, value as u32, region);
            return;
        }
        let mut edu = None;
        let d = if region == "edu-mmio" {
            let name = self.edu_for_region(&mr, addr);
            let off = self
                .decoder
                .edu_at(addr)
                .map_or(addr & 0xfffff, |(_, off)| off);
            let d = self.decoder.edu_access(&name, off, &access);
            edu = Some((name, off));
            d
        } else {
            self.decoder.decode(&access)
        };
        let e = access
            .event(l.t_ns, "qemu", u32::try_from(cpu).ok(), d)
            .with("region", region)
            .with("tid", l.tid);
        self.out.push(e);
        if let Some((name, off)) = edu {
            self.note_edu_write(&name, off, &access, l.t_ns);
        }
    }

    /// The edu a region pointer belongs to: the one whose BAR holds the
    /// address, else a new name in order of first access.
    fn edu_for_region(&mut self, mr: &str, addr: u64) -> String {
        if let Some((name, _)) = self.decoder.edu_at(addr) {
            self.regions.insert(mr.to_string(), name.clone());
            return name;
        }
        if let Some(n) = self.regions.get(mr) {
            return n.clone();
        }
        let n = format!("edu{}", self.regions.len());
        self.regions.insert(mr.to_string(), n.clone());
        n
    }

    /// Remembers a started factorial or DMA, and emits the DMA start.
    fn note_edu_write(&mut self, name: &str, off: u64, a: &Access, t_ns: u64) {
        use edu_trace::decode::edu::reg_name;
        if !a.write {
            return;
        }
        match reg_name(off) {
            Some("FACTORIAL") => {
                self.pending
                    .insert(name.into(), Pending::Factorial(a.masked() as u32));
            }
            Some("DMA_CMD") if a.value & 1 != 0 => {
                let regs = self.dma_regs(name);
                let mut e = Event::new(
                    t_ns,
                    Layer::Dma,
                    "qemu",
                    "dma_start",
                    format!(
                        "{name} DMA start {} (derived from the command write)",
                        dma_cmd_words(a.value, regs.0, regs.1, regs.2)
                    ),
                )
                .with("src", regs.0)
                .with("dst", regs.1)
                .with("cnt", regs.2)
                .with("cmd", a.value)
                .with("derived", true);
                e.dev = Some(name.into());
                self.out.push(e);
                self.pending.insert(
                    name.into(),
                    Pending::Dma {
                        cmd: a.value,
                        t_start: t_ns,
                    },
                );
            }
            _ => {}
        }
    }

    /// The DMA registers the decoder saw written for `name`.
    fn dma_regs(&self, name: &str) -> (u64, u64, u64) {
        let regs = self.decoder.edu_regs(name);
        (regs.src, regs.dst, regs.cnt)
    }

    fn msi(&mut self, l: &Line, cpu: i64, addr: u64, data: u32, region: &str) {
        // Under TCG QEMU's IOAPIC also delivers by writing messages here:
        // only the message an edu was programmed with is that edu's MSI.
        let Some(name) = self.decoder.msi_owner(addr, data) else {
            let mut e = Event::new(
                l.t_ns,
                Layer::Irq,
                "qemu",
                "apic_message",
                format!(
                    "interrupt message to the local APIC (IOAPIC or another device): {}",
                    msi_words(addr, data)
                ),
            )
            .with("address", addr)
            .with("data", data)
            .with("vector", data & 0xff)
            .with("tid", l.tid);
            e.vcpu = u32::try_from(cpu).ok();
            self.out.push(e);
            return;
        };
        // Sent from outside a vCPU: the device finished something.
        if cpu < 0 {
            if let Some(p) = self.pending.remove(&name) {
                self.out.push(derived_completion(
                    &name,
                    p,
                    l.t_ns,
                    self.decoder.edu_regs(&name),
                ));
            }
        }
        let mut e = msi_event(l.t_ns, "qemu", &name, addr, data)
            .with("region", region)
            .with("tid", l.tid);
        e.vcpu = u32::try_from(cpu).ok();
        self.out.push(e);
    }
}

fn derived_completion(
    name: &str,
    p: Pending,
    t_ns: u64,
    regs: edu_trace::decode::edu::EduRegs,
) -> Event {
    let mut e = match p {
        Pending::Factorial(n) => Event::new(
            t_ns,
            Layer::Device,
            "qemu",
            "factorial_done",
            format!(
                "{name} factorial done: {n}! = {} (derived from the interrupt)",
                edu_devices::edu::state::factorial(n)
            ),
        )
        .with("n", n),
        Pending::Dma { cmd, t_start } => {
            let to_ram = cmd & edu_devices::edu::regs::DMA_CMD_TO_RAM != 0;
            Event::new(
                t_ns,
                Layer::Dma,
                "qemu",
                "dma_done",
                format!(
                    "{name} DMA done after {:.1} ms: {} (derived from the interrupt)",
                    t_ns.saturating_sub(t_start) as f64 / 1e6,
                    dma_cmd_words(cmd, regs.src, regs.dst, regs.cnt)
                ),
            )
            .with("to_ram", to_ram)
            .with("cnt", regs.cnt)
            .with("waited_ns", t_ns.saturating_sub(t_start))
        }
    };
    e.raw.insert("derived".into(), true.into());
    e.dev = Some(name.into());
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
19412@1796160277.117231:pci_cfg_read edu 00:02.0 @0x0 -> 0x11e81234
19412@1796160277.174738:pci_update_mappings_add edu 00:02.0 0,0xfeb00000+0x100000
19412@1796160277.179000:memory_region_ops_write cpu 0 mr 0x5400 addr 0xcf8 value 0x80001044 size 4 name 'pci-conf-idx'
19412@1796160277.179001:memory_region_ops_write cpu 0 mr 0x5401 addr 0xcfc value 0xfee00000 size 4 name 'pci-conf-data'
19412@1796160277.180000:memory_region_ops_write cpu 0 mr 0x5400 addr 0xcf8 value 0x8000104c size 4 name 'pci-conf-idx'
19412@1796160277.180001:memory_region_ops_write cpu 0 mr 0x5401 addr 0xcfc value 0x22 size 2 name 'pci-conf-data'
19412@1796160277.180002:memory_region_ops_write cpu 0 mr 0x5400 addr 0xcf8 value 0x80001040 size 4 name 'pci-conf-idx'
19412@1796160277.180003:memory_region_ops_write cpu 0 mr 0x5401 addr 0xcfe value 0x81 size 2 name 'pci-conf-data'
19420@1796160277.190000:memory_region_ops_write cpu -1 mr 0x5700 addr 0xfee00000 value 0x31 size 4 name 'apic-msi'
19412@1796160277.200000:memory_region_ops_write cpu 0 mr 0x5500 addr 0x3f8 value 0x61 size 1 name 'serial'
19412@1796160277.200100:memory_region_ops_write cpu 0 mr 0x5600 addr 0xfeb00020 value 0x80 size 4 name 'edu-mmio'
19412@1796160277.200200:memory_region_ops_write cpu 0 mr 0x5600 addr 0xfeb00008 value 0xa size 4 name 'edu-mmio'
19420@1796160277.200300:memory_region_ops_write cpu -1 mr 0x5700 addr 0xfee00000 value 0x22 size 4 name 'apic-msi'
19420@1796160277.200301:apic_deliver_irq dest 0 dest_mode 0 delivery_mode 0 vector 34 trigger_mode 0
19412@1796160277.200400:memory_region_ops_read cpu 0 mr 0x5600 addr 0xfeb00024 value 0x1 size 4 name 'edu-mmio'
19412@1796160277.200450:memory_region_ops_write cpu 0 mr 0x5700 addr 0xfee000b0 value 0x0 size 4 name 'apic-msi'
19412@1796160277.300000:memory_region_ops_write cpu 0 mr 0x5600 addr 0xfeb00080 value 0x1000 size 4 name 'edu-mmio'
19412@1796160277.300001:memory_region_ops_write cpu 0 mr 0x5600 addr 0xfeb00088 value 0x40000 size 4 name 'edu-mmio'
19412@1796160277.300002:memory_region_ops_write cpu 0 mr 0x5600 addr 0xfeb00090 value 0x4 size 4 name 'edu-mmio'
19412@1796160277.300003:memory_region_ops_write cpu 0 mr 0x5600 addr 0xfeb00098 value 0x5 size 4 name 'edu-mmio'
19408@1796160277.400003:memory_region_ops_write cpu -1 mr 0x5700 addr 0xfee00000 value 0x22 size 4 name 'apic-msi'
garbage line qemu-system-x86_64: terminating on signal 15
19412@1796160277.500000:kvm_run_exit cpu_index 0, reason 6
";

    #[test]
    fn converts_accesses_interrupts_and_derives_completions() {
        let ev = convert(LOG);
        let texts: Vec<&str> = ev.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts[..8],
            [
                "00:02.0 edu0 BAR0 mapped at 0xfeb00000..0xfebfffff",
                "CONFIG_ADDRESS <- 0x80001044: 00:02.0 reg 0x44 MSI_ADDRESS_LO",
                "CONFIG_DATA <- 0xfee00000: 00:02.0 edu0 MSI_ADDRESS_LO = 0xfee00000 (to physical APIC 0)",
                "CONFIG_ADDRESS <- 0x8000104c: 00:02.0 reg 0x4c MSI_DATA",
                "CONFIG_DATA <- 0x22: 00:02.0 edu0 MSI_DATA = 0x22 (vector 0x22)",
                "CONFIG_ADDRESS <- 0x80001040: 00:02.0 reg 0x40 MSI_CAP_ID",
                "CONFIG_DATA <- 0x81: 00:02.0 edu0 MSI_CONTROL = 0x81 (MSI enabled, 64-bit, 1 vector(s) enabled)",
                "interrupt message to the local APIC (IOAPIC or another device): vector 0x31 to physical APIC 0 (fixed, edge)",
            ]
        );
        assert_eq!(
            texts[8..],
            [
                "COM1 THR <- 'a'",
                "edu0 STATUS <- 0x80: interrupt when the factorial is done",
                "edu0 FACTORIAL <- 0xa: start 10!",
                "edu0 factorial done: 10! = 3628800 (derived from the interrupt)",
                "edu0 MSI sent: address 0xfee00000 data 0x22: vector 0x22 to physical APIC 0 (fixed, edge)",
                "APIC delivers vector 0x22 to APIC 0",
                "edu0 IRQ_STATUS -> 0x1: factorial done",
                "LAPIC EOI <- 0x0: end of interrupt",
                "edu0 DMA_SRC <- 0x1000: source RAM 0x1000",
                "edu0 DMA_DST <- 0x40000: destination device buffer +0x0",
                "edu0 DMA_CNT <- 0x4: 4 bytes",
                "edu0 DMA_CMD <- 0x5: start DMA RAM -> device: RAM 0x1000 to device buffer +0x0, 4 bytes, interrupt when done",
                "edu0 DMA start RAM -> device: RAM 0x1000 to device buffer +0x0, 4 bytes, interrupt when done (derived from the command write)",
                "edu0 DMA done after 100.0 ms: RAM -> device: RAM 0x1000 to device buffer +0x0, 4 bytes, interrupt when done (derived from the interrupt)",
                "edu0 MSI sent: address 0xfee00000 data 0x22: vector 0x22 to physical APIC 0 (fixed, edge)",
                "KVM_RUN returned to QEMU: KVM_EXIT_MMIO",
            ]
        );
        let find = |k: &str| ev.iter().find(|e| e.kind == k).unwrap();
        let fact = ev
            .iter()
            .find(|e| e.reg.as_deref() == Some("FACTORIAL"))
            .unwrap();
        assert_eq!(
            (fact.layer, fact.src.as_str(), fact.vcpu),
            (Layer::Vmm, "qemu", Some(0))
        );
        assert_eq!(fact.t_ns, 1_796_160_277_200_200_000);
        assert_eq!(fact.dev.as_deref(), Some("edu0"));
        assert_eq!(fact.u64("tid"), Some(19412));
        assert_eq!(
            find("factorial_done").raw.get("derived"),
            Some(&true.into())
        );
        let msi = find("msi");
        assert_eq!(
            (msi.layer, msi.vcpu),
            (Layer::Irq, None),
            "sent from the edu thread"
        );
        let thr = ev.iter().find(|e| e.reg.as_deref() == Some("THR")).unwrap();
        assert_eq!(thr.u64("port"), Some(0x3f8));
    }

    #[test]
    fn rejects_what_is_not_a_trace_line() {
        assert!(parse_line("qemu-system-x86_64: terminating").is_none());
        assert!(
            parse_line("12@3.4:x y").is_none(),
            "microseconds have 6 digits"
        );
        let l = parse_line("12@3.000004:kvm_run_exit cpu_index 0, reason 2").unwrap();
        assert_eq!(
            (l.tid, l.t_ns, l.event.as_str()),
            (12, 3_000_004_000, "kvm_run_exit")
        );
    }
}
