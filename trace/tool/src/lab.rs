//! The lab flow in a merged timeline: each command's interval (from the
//! markers edu-test and the guest's init write to the guest's
//! `trace_marker`: `edu-test: begin NAME`, `edu-test: end NAME RESULT`)
//! and the causal chain each command must show, layer by layer.

use edu_trace::{Event, Layer};

use crate::run::Run;

/// The lab's commands, in the order the lab's program runs them.
pub const COMMANDS: [&str; 5] = [
    "PRINT_EDUINFO_CMD",
    "SEND_INTERRUPT_CMD",
    "FACTORIAL_CMD",
    "DMA_WRITE_CMD",
    "DMA_READ_CMD",
];

/// One command's stretch of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Its name (`FACTORIAL_CMD`, or any ioctl name edu-test marked).
    pub name: String,
    /// Index of the begin marker in the run's events.
    pub begin: usize,
    /// Index of the end marker.
    pub end: usize,
    /// What edu-test said at the end (`ok`, `ETIMEDOUT`, ...).
    pub result: String,
}

/// Every marked step of the guest program, in order.
pub fn commands(events: &[Event]) -> Vec<Command> {
    let mut out = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.layer != Layer::Guest || e.kind != "marker" {
            continue;
        }
        // `WHO: begin NAME` / `WHO: end NAME RESULT` (edu-test, init).
        let Some((_, rest)) = e.text.split_once(": ") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        match (w.next(), w.next()) {
            (Some("begin"), Some(name)) => open.push((name.to_string(), i)),
            (Some("end"), Some(name)) => {
                if let Some(pos) = open.iter().rposition(|(n, _)| n == name) {
                    let (n, begin) = open.remove(pos);
                    out.push(Command {
                        name: n,
                        begin,
                        end: i,
                        result: w.next().unwrap_or("?").to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    out.sort_by_key(|c| c.begin);
    out
}

/// A step of a causal chain.
pub struct Step {
    /// What it is, in words.
    pub what: &'static str,
    /// The layer it belongs to: required when the run traced that layer.
    pub layer: Layer,
    /// Needed only when this source traced the run (`kvm`), if any.
    pub needs_src: Option<&'static str>,
    /// Whether an event is this step.
    pub is: fn(&Event) -> bool,
}

fn edu_access(e: &Event, write: bool, reg: &str) -> bool {
    e.is_access()
        && e.is_write() == write
        && e.reg.as_deref() == Some(reg)
        && e.dev.as_deref().is_some_and(|d| d.starts_with("edu"))
}

fn interrupt_sent(e: &Event) -> bool {
    e.layer == Layer::Irq
        && (e.kind == "msi" || (e.kind == "intx" && e.raw.get("level") == Some(&true.into())))
}

fn kvm_delivers(e: &Event) -> bool {
    e.src == "kvm" && matches!(e.kind.as_str(), "kvm_msi_set_irq" | "kvm_set_irq")
}

fn kvm_injects(e: &Event) -> bool {
    e.src == "kvm" && e.kind == "kvm_inj_virq"
}

fn mmio_exit(e: &Event) -> bool {
    e.src == "kvm"
        && e.kind == "kvm_exit"
        && matches!(
            e.str("reason"),
            Some("npf" | "EPT_VIOLATION" | "EPT_MISCONFIG")
        )
}

fn handler_entry(e: &Event) -> bool {
    e.layer == Layer::Guest && e.kind == "irq_handler_entry" && e.str("name") == Some("edu")
}

fn handler_exit(e: &Event) -> bool {
    e.layer == Layer::Guest && e.kind == "irq_handler_exit"
}

macro_rules! step {
    ($what:expr, $layer:ident, $src:expr, $is:expr) => {
        Step {
            what: $what,
            layer: Layer::$layer,
            needs_src: $src,
            is: $is,
        }
    };
}

/// The interrupt's way from the device to the guest's handler and back.
fn interrupt_chain() -> Vec<Step> {
    vec![
        step!(
            "the device sends its interrupt (MSI or INTx)",
            Irq,
            None,
            interrupt_sent
        ),
        step!(
            "KVM delivers it to the local APIC",
            Irq,
            Some("kvm"),
            kvm_delivers
        ),
        step!(
            "KVM injects the vector at VM entry",
            Irq,
            Some("kvm"),
            kvm_injects
        ),
        step!("the guest's edu handler starts", Guest, None, handler_entry),
        step!("the handler reads IRQ_STATUS", Vmm, None, |e| edu_access(
            e,
            false,
            "IRQ_STATUS"
        )),
        step!("the handler acknowledges (IRQ_ACK)", Vmm, None, |e| {
            edu_access(e, true, "IRQ_ACK")
        }),
        step!("the guest's handler returns", Guest, None, handler_exit),
    ]
}

/// The chain a lab command must show, in order.
pub fn chain(command: &str) -> Vec<Step> {
    let mut v = match command {
        "PRINT_EDUINFO_CMD" => vec![
            step!(
                "configuration space read through 0xcf8/0xcfc",
                Vmm,
                None,
                |e| { e.is_access() && e.reg.as_deref() == Some("CONFIG_DATA") }
            ),
            step!("the MMIO read's VM exit", Kvm, Some("kvm"), mmio_exit),
            step!("edu's ID register read", Vmm, None, |e| edu_access(
                e, false, "ID"
            )),
        ],
        "SEND_INTERRUPT_CMD" => vec![
            step!("the store's VM exit (MMIO)", Kvm, Some("kvm"), mmio_exit),
            step!("the driver writes IRQ_RAISE", Vmm, None, |e| edu_access(
                e,
                true,
                "IRQ_RAISE"
            )),
        ],
        // The driver enabled "interrupt when done" in STATUS once, at
        // probe; a factorial starts with the operand's write.
        "FACTORIAL_CMD" => vec![
            step!("the store's VM exit (MMIO)", Kvm, Some("kvm"), mmio_exit),
            step!("the driver writes FACTORIAL", Vmm, None, |e| edu_access(
                e,
                true,
                "FACTORIAL"
            )),
            step!("the device finishes the factorial", Device, None, |e| e
                .kind
                == "factorial_done"),
        ],
        "DMA_WRITE_CMD" | "DMA_READ_CMD" => vec![
            step!("the driver writes DMA_SRC", Vmm, None, |e| edu_access(
                e, true, "DMA_SRC"
            )),
            step!("the driver writes DMA_DST", Vmm, None, |e| edu_access(
                e, true, "DMA_DST"
            )),
            step!("the driver writes DMA_CNT", Vmm, None, |e| edu_access(
                e, true, "DMA_CNT"
            )),
            step!(
                "the command store's VM exit (MMIO)",
                Kvm,
                Some("kvm"),
                mmio_exit
            ),
            step!("the driver writes DMA_CMD (start)", Vmm, None, |e| {
                edu_access(e, true, "DMA_CMD")
            }),
            step!("the transfer starts", Dma, None, |e| e.kind == "dma_start"),
            step!("the transfer completes", Dma, None, |e| e.kind
                == "dma_done"),
        ],
        _ => Vec::new(),
    };
    if command != "PRINT_EDUINFO_CMD" {
        v.extend(interrupt_chain());
    }
    if command == "FACTORIAL_CMD" {
        v.push(step!(
            "the driver reads the result from FACTORIAL",
            Vmm,
            None,
            |e| { edu_access(e, false, "FACTORIAL") }
        ));
    }
    v
}

/// Whether the run traced `step`'s layer (so the step is required).
pub fn traced(run: &Run, step: &Step) -> bool {
    match step.needs_src {
        Some(src) => run.has(src),
        None => match step.layer {
            Layer::Guest => run.has("guest"),
            _ => true,
        },
    }
}

/// The events of `c`'s stretch (from its begin marker to its end marker,
/// widened by `margin_ns` for the alignment's error).
pub fn window<'a>(run: &'a Run, c: &Command, margin_ns: u64) -> &'a [Event] {
    let lo = run.events[c.begin].t_ns.saturating_sub(margin_ns);
    let hi = run.events[c.end].t_ns.saturating_add(margin_ns);
    let a = run.events.partition_point(|e| e.t_ns < lo);
    let b = run.events.partition_point(|e| e.t_ns <= hi);
    &run.events[a..b]
}

/// The steps of `chain` found in order in `events`: for each step, the
/// index (into `events`) of the first matching event after the previous
/// step's, or `None` (the search for later steps goes on from the last
/// step found).
pub fn find_chain(events: &[Event], chain: &[Step]) -> Vec<Option<usize>> {
    let mut from = 0;
    chain
        .iter()
        .map(|s| {
            let i = events[from..]
                .iter()
                .position(|e| (s.is)(e))
                .map(|i| i + from);
            if let Some(i) = i {
                from = i + 1;
            }
            i
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(t: u64, text: &str) -> Event {
        Event::new(t, Layer::Guest, "guest", "marker", text)
    }

    #[test]
    fn commands_from_markers() {
        let ev = vec![
            marker(1, "edu-test: begin PRINT_EDUINFO_CMD"),
            marker(2, "something else"),
            marker(3, "edu-test: end PRINT_EDUINFO_CMD ok"),
            marker(4, "edu-test: begin FACTORIAL_CMD"),
            marker(5, "edu-test: end FACTORIAL_CMD ETIMEDOUT"),
            marker(6, "edu-test: begin DMA_READ_CMD"),
        ];
        let c = commands(&ev);
        assert_eq!(c.len(), 2, "an unfinished command is not listed");
        assert_eq!(
            (c[0].name.as_str(), c[0].begin, c[0].end),
            ("PRINT_EDUINFO_CMD", 0, 2)
        );
        assert_eq!(
            (c[1].name.as_str(), c[1].result.as_str()),
            ("FACTORIAL_CMD", "ETIMEDOUT")
        );
    }

    #[test]
    fn chains_are_found_in_order_only() {
        let mut w = Event::new(10, Layer::Vmm, "edu-vmm", "mmio_write", "");
        w.dev = Some("edu0".into());
        w.reg = Some("IRQ_RAISE".into());
        let msi = Event::new(11, Layer::Irq, "edu-vmm", "msi", "");
        let mut entry = Event::new(12, Layer::Guest, "guest", "irq_handler_entry", "");
        entry.raw.insert("name".into(), "edu".into());
        let chain = chain("SEND_INTERRUPT_CMD");
        let found = find_chain(&[w.clone(), msi.clone(), entry.clone()], &chain);
        assert_eq!(found[1], Some(0), "IRQ_RAISE");
        assert_eq!(found[2], Some(1), "msi");
        assert_eq!(found[5], Some(2), "handler entry");
        assert_eq!(found[6], None, "no status read");
        // The MSI before the write does not count as its interrupt.
        let found = find_chain(&[msi, w, entry], &chain);
        assert_eq!(found[2], None);
    }

    /// The driver enables "interrupt when done" once, at probe (`STATUS`
    /// is not written per factorial): a factorial is its FACTORIAL write,
    /// the device's completion, the interrupt and the result read.
    #[test]
    fn factorial_chain_is_what_the_driver_does() {
        let edu = |t, kind: &str, reg: &str| {
            let mut e = Event::new(t, Layer::Vmm, "edu-vmm", kind, "");
            e.dev = Some("edu0".into());
            e.reg = Some(reg.into());
            e
        };
        let mut entry = Event::new(4, Layer::Guest, "guest", "irq_handler_entry", "");
        entry.raw.insert("name".into(), "edu".into());
        let events = [
            edu(1, "mmio_write", "FACTORIAL"),
            Event::new(2, Layer::Device, "edu-vmm", "factorial_done", ""),
            Event::new(3, Layer::Irq, "edu-vmm", "msi", ""),
            entry,
            edu(5, "mmio_read", "IRQ_STATUS"),
            edu(6, "mmio_write", "IRQ_ACK"),
            Event::new(7, Layer::Guest, "guest", "irq_handler_exit", ""),
            edu(8, "mmio_read", "FACTORIAL"),
        ];
        let chain = chain("FACTORIAL_CMD");
        let found = find_chain(&events, &chain);
        for (s, f) in chain.iter().zip(&found) {
            if s.needs_src.is_none() {
                assert!(f.is_some(), "step not found: {}", s.what);
            }
        }
    }
}
