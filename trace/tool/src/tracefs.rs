//! tracefs text (`/sys/kernel/tracing/trace`) into events: KVM's
//! tracepoints from the KVM host (`src` `kvm`) and the guest's interrupt
//! handlers and markers (`src` `guest`).
//!
//! A line is `TASK-PID [CPU] FLAGS SECONDS.MICROS: EVENT: PAYLOAD`; the
//! times are on the tracefs clock the collector chose (`mono` for KVM, so
//! that they match edu-vmm's CLOCK_MONOTONIC).

use edu_trace::{Event, Layer};

/// One parsed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Task name (`vcpu0`, `CPU 0/KVM`, `edu-test`).
    pub comm: String,
    /// Thread id.
    pub pid: u32,
    /// CPU the event was recorded on.
    pub cpu: u32,
    /// Time in nanoseconds (microsecond resolution).
    pub t_ns: u64,
    /// Event name (`kvm_exit`, `irq_handler_entry`, `tracing_mark_write`).
    pub event: String,
    /// The rest.
    pub payload: String,
}

/// Parses one line; `None` for comments and anything else.
pub fn parse_line(l: &str) -> Option<Line> {
    let l = l.trim_end();
    if l.trim_start().starts_with('#') {
        return None;
    }
    let open = l.find(" [")?;
    let close = open + l[open..].find(']')?;
    let task = l[..open].trim();
    let dash = task.rfind('-')?;
    let comm = task[..dash].to_string();
    let pid = task[dash + 1..].parse().ok()?;
    let cpu = l[open + 2..close].trim().parse().ok()?;
    let mut rest = l[close + 1..].trim_start();
    // Optional flags column (`d..1.`): the timestamp is the first token
    // that ends with ':' and parses as a number.
    let mut t_ns = None;
    for _ in 0..2 {
        let (tok, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if let Some(ts) = tok.strip_suffix(':').and_then(parse_seconds) {
            t_ns = Some(ts);
            rest = after.trim_start();
            break;
        }
        rest = after.trim_start();
    }
    let t_ns = t_ns?;
    let (event, payload) = rest.split_once(':')?;
    Some(Line {
        comm,
        pid,
        cpu,
        t_ns,
        event: event.trim().to_string(),
        payload: payload.trim().to_string(),
    })
}

/// `12.345678` (or `12.345678901`) seconds into nanoseconds.
fn parse_seconds(s: &str) -> Option<u64> {
    let (sec, frac) = s.split_once('.')?;
    let sec: u64 = sec.parse().ok()?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u64 = format!("{frac:0<9}").parse().ok()?;
    Some(sec * 1_000_000_000 + frac)
}

/// The value after `key ` (up to the next space or separator).
fn field<'a>(payload: &'a str, key: &str) -> Option<&'a str> {
    let mut it = payload.split([' ', ',']).filter(|s| !s.is_empty());
    while let Some(tok) = it.next() {
        if tok == key {
            return it.next();
        }
        if let Some(v) = tok.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
    }
    None
}

/// A number as the kernel's and QEMU's trace lines print it: `0x` hex or
/// decimal, with a trailing `,` or `)` of the format around it.
pub(crate) fn num(s: Option<&str>) -> Option<u64> {
    let s = s?.trim_end_matches([',', ')']);
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// What an exit reason means, for a student (SVM and VMX names).
pub fn exit_reason_words(reason: &str) -> &'static str {
    match reason {
        "npf" => "nested page fault: a guest-physical address with no RAM mapped (MMIO) or not mapped yet",
        "EPT_VIOLATION" => "EPT violation: a guest-physical page not mapped yet",
        "EPT_MISCONFIG" => "EPT misconfiguration: KVM's marker for an MMIO page (reserved bits set)",
        "io" | "IO_INSTRUCTION" => "an IN/OUT instruction",
        "hlt" | "HLT" => "HLT: the guest is idle",
        "intr" | "interrupt" | "EXTERNAL_INTERRUPT" => {
            "a host interrupt arrived while the guest ran"
        }
        "write_cr0" | "write_cr3" | "write_cr4" | "read_cr0" | "read_cr3" | "read_cr4"
        | "CR_ACCESS" => "a control register access",
        "vintr" | "INTERRUPT_WINDOW" => "the guest can take an interrupt now",
        "msr" | "MSR_READ" | "MSR_WRITE" => "RDMSR/WRMSR (x2APIC registers, timers)",
        "cpuid" | "CPUID" => "CPUID",
        "pause" | "PAUSE_INSTRUCTION" => "PAUSE in a spin loop",
        "write_cr8" | "read_cr8" => "task priority register",
        "nmi" | "EXCEPTION_NMI" => "an NMI or exception",
        "avic_unaccelerated_access" | "APIC_ACCESS" => "a local APIC access KVM emulates",
        _ => "",
    }
}

/// A KVM host's tracefs line as an event (`src` `kvm`).
pub fn kvm_event(l: &Line) -> Event {
    let p = &l.payload;
    let (layer, text) = match l.event.as_str() {
        "kvm_exit" => {
            let reason = field(p, "reason").unwrap_or("?");
            let rip = field(p, "rip").unwrap_or("?");
            let words = exit_reason_words(reason);
            let mut t = format!("VM exit: {reason}");
            if !words.is_empty() {
                t += &format!(" ({words})");
            }
            t += &format!(" at rip {rip}");
            if reason == "npf" {
                if let Some(gpa) = num(field(p, "info2")) {
                    t += &format!(", guest-physical {gpa:#x}");
                }
            }
            if reason == "io" {
                if let Some(info) = num(field(p, "info1")) {
                    let dir = if info & 1 != 0 { "IN" } else { "OUT" };
                    t += &format!(", {dir} port {:#x}", info >> 16);
                }
            }
            (Layer::Kvm, t)
        }
        "kvm_entry" => (
            Layer::Kvm,
            format!("VM entry at rip {}", field(p, "rip").unwrap_or("?")),
        ),
        "kvm_mmio" => {
            // "mmio write len 4 gpa 0x... val 0x..."
            let kind = p.split_whitespace().nth(1).unwrap_or("?");
            (
                Layer::Kvm,
                format!(
                    "KVM: MMIO {kind} of {} bytes at {} value {}: goes to the VMM",
                    field(p, "len").unwrap_or("?"),
                    field(p, "gpa").unwrap_or("?"),
                    field(p, "val").unwrap_or("?")
                ),
            )
        }
        "kvm_pio" => {
            let kind = p.split_whitespace().next().unwrap_or("pio");
            (
                Layer::Kvm,
                format!(
                    "KVM: {} port {} size {} value {}",
                    kind.replace('_', " "),
                    field(p, "at").unwrap_or("?"),
                    field(p, "size").unwrap_or("?"),
                    field(p, "val").unwrap_or("?")
                ),
            )
        }
        "kvm_userspace_exit" => {
            // 7.3 prints `KVM_EXIT_MMIO`, older kernels `MMIO`.
            let r = field(p, "reason").unwrap_or("?");
            let r = r.strip_prefix("KVM_EXIT_").unwrap_or(r);
            (
                Layer::Kvm,
                format!("KVM_RUN returns to the VMM: KVM_EXIT_{r}"),
            )
        }
        "kvm_page_fault" => (
            Layer::Kvm,
            format!(
                "nested page fault at guest-physical {} (error {})",
                field(p, "address").unwrap_or("?"),
                field(p, "error_code").unwrap_or("?")
            ),
        ),
        "kvm_emulate_insn" => (Layer::Kvm, format!("KVM emulates the instruction {p}")),
        "kvm_msi_set_irq" => (Layer::Irq, format!("KVM delivers an MSI: {p}")),
        "kvm_set_irq" => (
            Layer::Irq,
            format!(
                "KVM sets GSI {} to level {}",
                field(p, "gsi").unwrap_or("?"),
                field(p, "level").unwrap_or("?")
            ),
        ),
        "kvm_ioapic_set_irq" => (Layer::Irq, format!("IOAPIC routes {p}")),
        "kvm_apic_accept_irq" => (Layer::Irq, format!("local APIC accepts {p}")),
        "kvm_inj_virq" => (Layer::Irq, format!("KVM injects {p} into the guest")),
        "kvm_eoi" => (Layer::Irq, format!("guest EOI: {p}")),
        _ => (Layer::Kvm, format!("{}: {p}", l.event)),
    };
    let mut e = Event::new(l.t_ns, layer, "kvm", &l.event, text)
        .with("comm", l.comm.clone())
        .with("pid", l.pid)
        .with("payload", p.clone());
    e.vcpu = field(p, "vcpu")
        .and_then(|v| v.parse().ok())
        .or_else(|| vcpu_of(&l.comm));
    for key in [
        "reason", "gpa", "val", "at", "vec", "gsi", "address", "info1", "info2",
    ] {
        if let Some(v) = field(p, key) {
            match num(Some(v)) {
                Some(n) => e.raw.insert(key.into(), n.into()),
                None => e.raw.insert(key.into(), v.into()),
            };
        }
    }
    if l.event == "kvm_inj_virq" {
        // "IRQ 0x22" / "Soft/INTn 0x80".
        if let Some(v) = p.split_whitespace().nth(1).and_then(|v| num(Some(v))) {
            e.raw.insert("vec".into(), v.into());
        }
    }
    e
}

/// The vCPU index in a thread name: edu-vmm's `vcpu0`, QEMU's `CPU 0/KVM`.
pub fn vcpu_of(comm: &str) -> Option<u32> {
    if let Some(n) = comm.strip_prefix("vcpu") {
        return n.parse().ok();
    }
    comm.strip_prefix("CPU ")?.split('/').next()?.parse().ok()
}

/// A guest's tracefs line as an event (`src` `guest`): its interrupt
/// handlers and the markers its programs write to `trace_marker`.
pub fn guest_event(l: &Line) -> Event {
    let p = &l.payload;
    let (kind, text) = match l.event.as_str() {
        "irq_handler_entry" => (
            "irq_handler_entry",
            format!(
                "guest IRQ {} handler ({}) starts",
                field(p, "irq").unwrap_or("?"),
                field(p, "name").unwrap_or("?")
            ),
        ),
        "irq_handler_exit" => (
            "irq_handler_exit",
            format!(
                "guest IRQ {} handler returns {}",
                field(p, "irq").unwrap_or("?"),
                field(p, "ret").unwrap_or("?")
            ),
        ),
        "tracing_mark_write" => ("marker", p.clone()),
        _ => (l.event.as_str(), format!("{}: {p}", l.event)),
    };
    let mut e = Event::new(l.t_ns, Layer::Guest, "guest", kind, text)
        .with("comm", l.comm.clone())
        .with("pid", l.pid)
        .with("cpu", l.cpu);
    if let Some(n) = num(field(p, "irq")) {
        e.raw.insert("irq".into(), n.into());
    }
    if let Some(n) = field(p, "name") {
        e.raw.insert("name".into(), n.into());
    }
    e.vcpu = Some(l.cpu);
    e
}

/// Every event line of a tracefs text, converted by `f`.
pub fn convert(text: &str, f: fn(&Line) -> Event) -> Vec<Event> {
    text.lines().filter_map(parse_line).map(|l| f(&l)).collect()
}

/// The `entries-in-buffer/entries-written` header: (kept, written). More
/// written than kept means the ring buffer overwrote the oldest events.
pub fn entries(text: &str) -> Option<(u64, u64)> {
    let l = text
        .lines()
        .find(|l| l.contains("entries-in-buffer/entries-written:"))?;
    let v = l.split(':').nth(1)?.split_whitespace().next()?;
    let (a, b) = v.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KVM: &str = "\
# tracer: nop
#
# entries-in-buffer/entries-written: 6/9   #P:1
#
           vcpu0-85      [000] d..1.  1234.000010: kvm_exit: vcpu 0 reason npf rip 0xffffffffa0001234 info1 0x0000000100000006 info2 0x00000000c0000008 intr_info 0x00000000 error_code 0x00000000 requests 0x0000000000000000
           vcpu0-85      [000] ...1.  1234.000012: kvm_page_fault: vcpu 0 rip 0xffffffffa0001234 address 0x00000000c0000008 error_code 0x100000006
           vcpu0-85      [000] ...1.  1234.000015: kvm_mmio: mmio write len 4 gpa 0xc0000008 val 0xa
           vcpu0-85      [000] ...1.  1234.000016: kvm_userspace_exit: reason KVM_EXIT_MMIO (6)
       edu-worker-87     [000] ...1.  1234.000100: kvm_msi_set_irq: dst 0 vec 34 (Fixed|physical|edge)
           vcpu0-85      [000] d..1.  1234.000120: kvm_inj_virq: IRQ 0x22
           vcpu0-85      [000] d..1.  1234.000121: kvm_entry: vcpu 0, rip 0xffffffff81000000 intr_info 0x00000000 error_code 0x00000000
       CPU 0/KVM-99      [000] d..1.  1234.000200: kvm_exit: vcpu 0 reason io rip 0xffffffff81001111 info1 0x03f80200 info2 0x0 intr_info 0x00000000 error_code 0x00000000 requests 0x0000000000000000
";

    #[test]
    fn parses_lines_with_and_without_flags() {
        let l = parse_line("  edu-test-120 [000] ..... 55.250001: tracing_mark_write: edu-test: begin FACTORIAL_CMD").unwrap();
        assert_eq!((l.comm.as_str(), l.pid, l.cpu), ("edu-test", 120, 0));
        assert_eq!(l.t_ns, 55_250_001_000);
        assert_eq!(l.event, "tracing_mark_write");
        assert_eq!(l.payload, "edu-test: begin FACTORIAL_CMD");
        let l =
            parse_line("<idle>-0 [001] 7.000000001: irq_handler_entry: irq=24 name=edu").unwrap();
        assert_eq!(
            (l.comm.as_str(), l.cpu, l.t_ns),
            ("<idle>", 1, 7_000_000_001)
        );
        assert!(parse_line("# tracer: nop").is_none());
        assert!(parse_line("garbage").is_none());
        assert_eq!(entries(KVM), Some((6, 9)));
    }

    #[test]
    fn kvm_events_in_words() {
        let ev = convert(KVM, kvm_event);
        assert_eq!(ev.len(), 8);
        assert_eq!(
            ev[0].text,
            "VM exit: npf (nested page fault: a guest-physical address with no RAM mapped (MMIO) or not mapped yet) at rip 0xffffffffa0001234, guest-physical 0xc0000008"
        );
        assert_eq!(
            (ev[0].layer, ev[0].vcpu, ev[0].t_ns),
            (Layer::Kvm, Some(0), 1_234_000_010_000)
        );
        assert_eq!(ev[0].str("reason"), Some("npf"));
        assert_eq!(
            ev[2].text,
            "KVM: MMIO write of 4 bytes at 0xc0000008 value 0xa: goes to the VMM"
        );
        assert_eq!(ev[3].text, "KVM_RUN returns to the VMM: KVM_EXIT_MMIO");
        assert_eq!(ev[4].layer, Layer::Irq);
        assert_eq!(ev[4].u64("vec"), Some(34));
        assert_eq!(ev[5].text, "KVM injects IRQ 0x22 into the guest");
        assert_eq!(ev[5].u64("vec"), Some(0x22));
        assert_eq!(ev[6].text, "VM entry at rip 0xffffffff81000000");
        assert_eq!(
            ev[7].text,
            "VM exit: io (an IN/OUT instruction) at rip 0xffffffff81001111, OUT port 0x3f8"
        );
        assert_eq!(vcpu_of("CPU 1/KVM"), Some(1));
        assert_eq!(vcpu_of("vcpu3"), Some(3));
        assert_eq!(vcpu_of("edu-worker"), None);
    }

    #[test]
    fn guest_events_in_words() {
        let text = "\
          <idle>-0       [000] d.h1.   10.000100: irq_handler_entry: irq=24 name=edu
          <idle>-0       [000] d.h1.   10.000150: irq_handler_exit: irq=24 ret=handled
        edu-test-77      [000] .....   10.000010: tracing_mark_write: edu-test: begin FACTORIAL_CMD
";
        let ev = convert(text, guest_event);
        assert_eq!(ev[0].text, "guest IRQ 24 handler (edu) starts");
        assert_eq!(ev[0].str("name"), Some("edu"));
        assert_eq!(ev[1].text, "guest IRQ 24 handler returns handled");
        assert_eq!(
            (ev[2].kind.as_str(), ev[2].text.as_str()),
            ("marker", "edu-test: begin FACTORIAL_CMD")
        );
        assert!(ev
            .iter()
            .all(|e| e.layer == Layer::Guest && e.src == "guest"));
    }
}
