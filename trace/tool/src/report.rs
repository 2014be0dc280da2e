//! The lab's analysis, written from the trace (Markdown): for each lab
//! command the register accesses it made, the exits they cost and how
//! long, its interrupt and its DMA, the causal chain in order across the
//! layers; then where the whole run's exits went.

use std::collections::BTreeMap;
use std::fmt::Write;

use edu_trace::decode::describe_dev;
use edu_trace::stats::{by_device, ns_words, Row};
use edu_trace::{Event, Layer};

use crate::lab::{self, Command};
use crate::run::Run;
use crate::tally::{self, Timing};

/// At most this many events are listed per command (the page has them all).
const LIST_MAX: usize = 80;

fn rel(t: u64, t0: u64) -> String {
    let d = t as i64 - t0 as i64;
    format!("{:+.3} ms", d as f64 / 1e6)
}

/// Markdown table cell text (no pipes, no newlines).
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(head.len()));
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

fn stats_table(out: &mut String, rows: &[Row], timing: Timing, limit: usize) {
    let total: u64 = rows.iter().map(|r| r.count).sum();
    let dev_rows: Vec<Vec<String>> = by_device(rows)
        .into_iter()
        .map(|(d, c, ns)| {
            vec![
                d.clone(),
                c.to_string(),
                format!("{:.1}%", 100.0 * c as f64 / total.max(1) as f64),
                if timing == Timing::None {
                    "-".into()
                } else {
                    ns_words(ns)
                },
                describe_dev(&d).to_string(),
            ]
        })
        .collect();
    table(
        out,
        &["device", "exits", "share", "total time", "what"],
        &dev_rows,
    );
    let reg_rows: Vec<Vec<String>> = rows
        .iter()
        .take(limit)
        .map(|r| {
            let t = |ns| {
                if timing == Timing::None {
                    "-".to_string()
                } else {
                    ns_words(ns)
                }
            };
            vec![
                r.kind.clone(),
                r.dev.clone(),
                r.reg.clone(),
                r.count.to_string(),
                t(r.total_ns),
                t(r.median_ns),
                t(r.p99_ns),
            ]
        })
        .collect();
    table(
        out,
        &[
            "kind", "device", "register", "exits", "total", "median", "p99",
        ],
        &reg_rows,
    );
    if rows.len() > limit {
        let rest: u64 = rows[limit..].iter().map(|r| r.count).sum();
        let _ = writeln!(out, "({} more rows: {rest} exits)\n", rows.len() - limit);
    }
}

fn kvm_table(out: &mut String, events: &[Event]) {
    let rows: Vec<Vec<String>> = tally::kvm_rows(events)
        .iter()
        .map(|r| {
            vec![
                r.kind.clone(),
                crate::tracefs::exit_reason_words(&r.kind).to_string(),
                r.count.to_string(),
                ns_words(r.total_ns),
                ns_words(r.median_ns),
                ns_words(r.p99_ns),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(
            out,
            &["exit reason", "meaning", "exits", "total", "median", "p99"],
            &rows,
        );
    }
}

/// The report for `run`.
pub fn render(run: &Run) -> String {
    let mut o = String::new();
    let t0 = run.t0();
    let _ = writeln!(
        o,
        "# I/O virtualization, traced: the lab flow on {}\n",
        run.vmm_name()
    );
    let _ = writeln!(
        o,
        "Written by `edu-trace` from the events of one real run (`scripts/run --report`). \
         The guest ran the lab's flow: `insmod edu.ko`, `mknod /dev/edu`, `edu-test` \
         (PRINT_EDUINFO, SEND_INTERRUPT, FACTORIAL, DMA_WRITE, DMA_READ). \
         Times are on the VMM's clock; `+x ms` is from the start of the command.\n"
    );
    let _ = writeln!(
        o,
        "Files: [timeline.html](timeline.html) (the timeline: open it in a browser), \
         [perfetto.json](perfetto.json) (ui.perfetto.dev, chrome://tracing), \
         [events.jsonl](events.jsonl) (every event, one JSON per line).\n"
    );
    let layers: Vec<String> = tally::per_layer(&run.events)
        .iter()
        .filter(|(l, _)| *l != Layer::Meta)
        .map(|(l, n)| format!("{} {n}", l.name()))
        .collect();
    let _ = writeln!(
        o,
        "Sources: {}. Events per layer: {}.\n",
        run.sources.join(", "),
        layers.join(", ")
    );
    for n in &run.notes {
        let _ = writeln!(o, "- Note: {n}");
    }
    o.push_str("\n## Clocks\n\n");
    for c in &run.clocks {
        let m = c
            .alignment
            .as_ref()
            .map_or("no constraints found".to_string(), crate::align::words);
        let _ = writeln!(
            o,
            "- **{}**: {}. Measured: {m}{}.",
            c.src,
            c.method,
            if c.applied { "" } else { " (not applied)" }
        );
    }
    if run.clocks.is_empty() {
        o.push_str("- Only the VMM's clock: nothing to align.\n");
    }
    let commands = lab::commands(&run.events);
    o.push_str("\n## The lab flow at a glance\n\n");
    let margin = guest_error(run);
    let summary: Vec<Vec<String>> = commands
        .iter()
        .filter(|c| lab::COMMANDS.contains(&c.name.as_str()))
        .map(|c| summary_row(run, c, margin))
        .collect();
    table(
        &mut o,
        &["command", "result", "took", "exits", "interrupt", "DMA"],
        &summary,
    );
    for c in commands
        .iter()
        .filter(|c| lab::COMMANDS.contains(&c.name.as_str()))
    {
        command_section(&mut o, run, c, margin);
    }
    o.push_str("## Where the exits go (the whole run)\n\n");
    let (rows, timing) = tally::access_rows(&run.events, &run.events);
    let _ = writeln!(
        o,
        "Every port and MMIO access the VMM handled, boot included ({}).\n",
        timing.words()
    );
    stats_table(&mut o, &rows, timing, 30);
    if run.has("kvm") {
        let kvm: Vec<&Event> = run.events.iter().filter(|e| e.src == "kvm").collect();
        let span = kvm.last().map_or(0, |l| l.t_ns) - kvm.first().map_or(0, |f| f.t_ns);
        o.push_str("### KVM's exits by reason, like `perf kvm stat`\n\n");
        let _ = writeln!(
            o,
            "Each exit from VM exit to the next VM entry of its vCPU, over the {} KVM \
             recorded (nested: the lab flow, from the guest's EDU-RS-TRACE-ON to -OFF).\n",
            ns_words(span)
        );
        kvm_table(&mut o, &run.events);
    }
    let _ = writeln!(
        o,
        "\nWhole run: {} from the first to the last event.",
        ns_words(run.events.last().map_or(0, |e| e.t_ns.saturating_sub(t0)))
    );
    o
}

/// The guest clock's error bound (widens command windows).
pub fn guest_error(run: &Run) -> u64 {
    run.clocks
        .iter()
        .find(|c| c.src == "guest")
        .and_then(|c| c.alignment.as_ref())
        .map_or(0, |a| a.error_ns.unsigned_abs())
}

fn exits_words(ev: &[Event]) -> String {
    let mut m: BTreeMap<&str, usize> = BTreeMap::new();
    for e in ev.iter().filter(|e| e.is_access()) {
        *m.entry(e.kind.as_str()).or_default() += 1;
    }
    let total: usize = m.values().sum();
    let parts: Vec<String> = m.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("{total} ({})", parts.join(", "))
}

fn interrupt_words(ev: &[Event]) -> String {
    let sent: Vec<&Event> = ev
        .iter()
        .filter(|e| e.layer == Layer::Irq && (e.kind == "msi" || e.kind == "intx"))
        .collect();
    let mut parts = Vec::new();
    for e in sent.iter().filter(|e| e.kind == "msi") {
        parts.push(format!(
            "MSI vector {:#04x} to APIC {}",
            e.u64("vector").unwrap_or(0),
            e.u64("dest").unwrap_or(0)
        ));
    }
    for e in sent.iter().filter(|e| e.kind == "intx") {
        if e.raw.get("level") == Some(&true.into()) {
            parts.push(format!("INTx on GSI {}", e.u64("gsi").unwrap_or(0)));
        }
    }
    parts.dedup();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn dma_words(ev: &[Event]) -> String {
    let done: Vec<String> = ev
        .iter()
        .filter(|e| e.kind == "dma_done")
        .map(|e| {
            let text = e.text.split_once(": ").map_or(e.text.as_str(), |x| x.1);
            format!(
                "{} after {}",
                text.trim_end_matches(" (derived from the interrupt)"),
                ns_words(e.u64("waited_ns").unwrap_or(0))
            )
        })
        .collect();
    if done.is_empty() {
        "-".into()
    } else {
        done.join("; ")
    }
}

fn summary_row(run: &Run, c: &Command, margin: u64) -> Vec<String> {
    let ev = lab::window(run, c, margin);
    vec![
        c.name.clone(),
        c.result.clone(),
        ns_words(run.events[c.end].t_ns - run.events[c.begin].t_ns),
        exits_words(ev),
        interrupt_words(ev),
        dma_words(ev),
    ]
}

fn command_section(o: &mut String, run: &Run, c: &Command, margin: u64) {
    let ev = lab::window(run, c, margin);
    let begin = run.events[c.begin].t_ns;
    let _ = writeln!(o, "## {}\n", c.name);
    let _ = writeln!(
        o,
        "edu-test's ioctl returned **{}** after {} (guest markers).\n",
        c.result,
        ns_words(run.events[c.end].t_ns - begin)
    );
    // Registers, in words.
    let mut regs: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for e in ev.iter().filter(|e| e.is_access()) {
        let dev = e.dev.clone().unwrap_or_default();
        let reg = e.reg.clone().unwrap_or_default();
        // Offsets without a register (the lab's dump reads them all) in one row.
        let reg = if dev.starts_with("edu") && reg.starts_with("0x") {
            "(offsets without a register)".to_string()
        } else {
            reg
        };
        let k = (dev, reg);
        let slot = regs.entry(k).or_default();
        if e.is_write() {
            slot.1 += 1;
        } else {
            slot.0 += 1;
        }
    }
    let reg_rows: Vec<Vec<String>> = regs
        .iter()
        .map(|((d, r), (rd, wr))| vec![d.clone(), r.clone(), rd.to_string(), wr.to_string()])
        .collect();
    let _ = writeln!(o, "Register accesses, {} exits:\n", exits_words(ev));
    table(o, &["device", "register", "reads", "writes"], &reg_rows);
    let (rows, timing) = tally::access_rows(ev, &run.events);
    let total: u64 = rows.iter().map(|r| r.total_ns).sum();
    if timing != Timing::None {
        let _ = writeln!(
            o,
            "They cost {} in all ({}).",
            ns_words(total),
            timing.words()
        );
    }
    if run.has("kvm") {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for e in ev.iter().filter(|e| e.kind == "kvm_exit") {
            *m.entry(e.str("reason").unwrap_or("?").into()).or_default() += 1;
        }
        let parts: Vec<String> = m.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let _ = writeln!(
            o,
            "KVM saw {} VM exits in this stretch: {}.",
            m.values().sum::<usize>(),
            parts.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "\nInterrupt: {}. DMA: {}.\n",
        interrupt_words(ev),
        dma_words(ev)
    );
    // The causal chain, found in order.
    let chain = lab::chain(&c.name);
    let found = lab::find_chain(ev, &chain);
    let mut rows = Vec::new();
    for (s, f) in chain.iter().zip(&found) {
        match f {
            Some(i) => rows.push(vec![
                rel(ev[*i].t_ns, begin),
                ev[*i].layer.name().to_string(),
                s.what.to_string(),
                ev[*i].text.clone(),
            ]),
            None if lab::traced(run, s) => rows.push(vec![
                "MISSING".into(),
                s.layer.name().into(),
                s.what.into(),
                String::new(),
            ]),
            None => {}
        }
    }
    o.push_str("The causal chain, in order across the layers:\n\n");
    table(o, &["time", "layer", "step", "event"], &rows);
    // Everything, for the curious.
    let _ = writeln!(
        o,
        "<details><summary>All {} events of {} in order</summary>\n",
        ev.len(),
        c.name
    );
    let all: Vec<Vec<String>> = ev
        .iter()
        .take(LIST_MAX)
        .map(|e| {
            vec![
                rel(e.t_ns, begin),
                e.layer.name().to_string(),
                e.text.clone(),
                if e.dur_ns > 0 {
                    ns_words(e.dur_ns)
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    table(o, &["time", "layer", "event", "took"], &all);
    if ev.len() > LIST_MAX {
        let _ = writeln!(o, "({} more: see timeline.html)\n", ev.len() - LIST_MAX);
    }
    o.push_str("</details>\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_escape_cells() {
        let mut o = String::new();
        table(&mut o, &["a", "b"], &[vec!["x|y".into(), "1\n2".into()]]);
        assert_eq!(o, "| a | b |\n| --- | --- |\n| x\\|y | 1 2 |\n\n");
        assert_eq!(rel(1_500_000, 1_000_000), "+0.500 ms");
    }
}
