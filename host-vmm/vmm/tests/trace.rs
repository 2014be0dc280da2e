//! The I/O trace (`--trace`) and the exit statistics through the real
//! binary: what bare-metal guests do comes out named, in order, and a
//! guest that floods the VMM with MMIO exits cannot grow the trace past
//! its caps; every access is either written or counted as dropped.

mod common;

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use common::{boot, Run};
use edu_trace::event::read_events;
use edu_trace::{Event, Layer};

fn trace_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("edu-vmm-it-{}-{name}", std::process::id()))
}

fn events(p: &PathBuf) -> Vec<Event> {
    read_events(BufReader::new(File::open(p).expect("trace file"))).expect("well-formed trace")
}

/// Port and MMIO exits the VMM counted, from its end-of-run line.
fn exits(r: &Run) -> u64 {
    let l = r
        .log
        .lines()
        .find(|l| l.contains("vm ended after"))
        .unwrap_or_else(|| panic!("no end line in:\n{}", r.log));
    let words: Vec<&str> = l.split_whitespace().collect();
    let n = |unit: &str| -> u64 {
        let i = words
            .iter()
            .position(|w| w.trim_end_matches([',', ';']) == unit)
            .unwrap_or_else(|| panic!("no {unit} in {l}"));
        words[i - 1].parse().expect("a count")
    };
    n("port") + n("mmio")
}

fn dropped(ev: &[Event]) -> (u64, &Event) {
    let d = ev
        .iter()
        .find(|e| e.kind == "dropped")
        .expect("a dropped line");
    (d.u64("count").expect("count"), d)
}

#[test]
fn a_guest_flooding_mmio_stays_within_the_event_cap() {
    let p = trace_path("flood.jsonl");
    let r = boot(
        "mmio_loop",
        &[
            "--memory",
            "16",
            "--trace",
            p.to_str().unwrap(),
            "--trace-max-events",
            "2000",
        ],
    );
    r.assert_pass();
    let ev = events(&p);
    let written = ev.iter().filter(|e| e.layer != Layer::Meta).count() as u64;
    assert_eq!(written, 2000, "exactly the cap");
    let (count, d) = dropped(&ev);
    // Every access is either in the file or counted: 10,000 MMIO reads and
    // the serial output, as the VMM counted them.
    assert_eq!(written + count, exits(&r), "{}", d.text);
    assert_eq!(d.u64("over_event_cap"), Some(count));
    assert!(d.text.contains("over the cap of 2000 events"), "{}", d.text);
    assert_eq!(ev.last().unwrap().kind, "trace_end");
    let _ = std::fs::remove_file(&p);
}

#[test]
fn the_byte_cap_bounds_the_file() {
    let p = trace_path("bytes.jsonl");
    let r = boot(
        "mmio_loop",
        &[
            "--memory",
            "16",
            "--trace",
            p.to_str().unwrap(),
            "--trace-max-bytes",
            "64K",
        ],
    );
    r.assert_pass();
    let size = std::fs::metadata(&p).unwrap().len();
    assert!(size <= 64 * 1024, "{size} bytes");
    let ev = events(&p);
    let written = ev.iter().filter(|e| e.layer != Layer::Meta).count() as u64;
    let (count, d) = dropped(&ev);
    assert!(d.u64("over_byte_cap").unwrap() > 0, "{}", d.text);
    assert_eq!(written + count, exits(&r));
    let _ = std::fs::remove_file(&p);
}

#[test]
fn enumeration_factorial_and_dma_come_out_in_words() {
    let p = trace_path("pci.jsonl");
    let json = trace_path("pci-stats.json");
    let r = boot(
        "pci",
        &[
            "--memory",
            "16",
            "--trace",
            p.to_str().unwrap(),
            "--stats-json",
            json.to_str().unwrap(),
        ],
    );
    r.assert_pass();
    // The writer ran under its own filter, which let it write the trace.
    assert!(
        r.log
            .lines()
            .any(|l| l.contains("seccomp filters installed") && l.contains("trace writer, main")),
        "{}",
        r.log
    );
    let ev = events(&p);
    assert!(dropped_none(&ev));
    let texts: Vec<&str> = ev.iter().map(|e| e.text.as_str()).collect();
    let has = |needle: &str| {
        assert!(
            texts.iter().any(|t| t.contains(needle)),
            "no event with {needle:?}"
        )
    };
    has("CONFIG_ADDRESS <- 0x80000800: 00:01.0 reg 0x00 VENDOR_ID");
    has("00:01.0 edu0 VENDOR_ID = 0x1234 (edu), DEVICE_ID = 0x11e8 (edu)");
    has("edu0 BAR0 = 0xffffffff (BAR0 sizing");
    has("BAR0 size 1 MiB, 32-bit memory");
    has("BAR0 placed at 0xe0000000");
    has("edu0 ID -> 0x10000ed: edu version 1.0");
    has("edu0 FACTORIAL <- 0xa: start 10!");
    has("edu0 factorial done: 10! = 3628800");
    has("edu0 DMA done after");
    has("COM1 THR <- 'P'");
    // The DMA's start and end on the DMA lane, each after its command. In
    // time, not in the file: the command's access is recorded when its
    // handling ends, after the start it caused, and a writer batch may end
    // between the two (the file is in order within each batch; readers
    // sort).
    let at = |k: &str| ev.iter().find(|e| e.kind == k).unwrap();
    let cmd = ev
        .iter()
        .find(|e| e.reg.as_deref() == Some("DMA_CMD") && e.is_write())
        .unwrap();
    assert!(cmd.t_ns < at("dma_start").t_ns && at("dma_start").t_ns < at("dma_done").t_ns);
    assert_eq!(at("dma_done").layer, Layer::Dma);
    // One vCPU's exits are sequential: in order, each after the previous
    // one ended, each with its handling time. (Across producers the file
    // is in order within each writer batch; readers sort.)
    let handled: Vec<&Event> = ev.iter().filter(|e| e.is_access()).collect();
    assert!(handled
        .windows(2)
        .all(|w| w[0].t_ns + w[0].dur_ns <= w[1].t_ns));
    assert!(handled.iter().all(|e| e.dur_ns > 0));
    // The statistics at the end: in the log and as JSON, adding up.
    assert!(r.log.contains("exit statistics"), "{}", r.log);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = s["accesses"].as_array().unwrap();
    let total: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, exits(&r));
    let fact = rows
        .iter()
        .find(|r| r["dev"] == "edu0" && r["reg"] == "FACTORIAL" && r["kind"] == "mmio_write")
        .expect("a FACTORIAL row");
    assert!(fact["count"].as_u64().unwrap() >= 1 && fact["median_ns"].as_u64().unwrap() > 0);
    let _ = std::fs::remove_file(&p);
    let _ = std::fs::remove_file(&json);
}

fn dropped_none(ev: &[Event]) -> bool {
    ev.iter().all(|e| e.kind != "dropped")
}

#[test]
fn msi_is_recorded_with_its_vector() {
    let p = trace_path("msi.jsonl");
    let r = boot(
        "irq_msi",
        &["--memory", "16", "--trace", p.to_str().unwrap()],
    );
    r.assert_pass();
    let ev = events(&p);
    let msis: Vec<&Event> = ev.iter().filter(|e| e.kind == "msi").collect();
    // Every message the device counted (factorial, raises, DMA), on the
    // vector the guest programmed.
    let sent = r
        .log
        .split("msi_sent: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse::<usize>().ok())
        .expect("the device's msi_sent counter");
    assert!(sent >= 3);
    assert_eq!(msis.len(), sent, "{msis:#?}");
    assert!(msis
        .iter()
        .all(|m| m.u64("vector") == Some(0x41) && m.layer == Layer::Irq));
    assert!(
        msis[0]
            .text
            .starts_with("edu0 MSI sent: address 0xfee00000"),
        "{}",
        msis[0].text
    );
    let status: Vec<u64> = ev
        .iter()
        .filter(|e| e.kind == "irq_status")
        .map(|e| e.u64("new").unwrap())
        .collect();
    assert!(status.contains(&1) && status.contains(&0x100), "{status:?}");
    let _ = std::fs::remove_file(&p);
}
