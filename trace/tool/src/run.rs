//! A traced run: the directory `scripts/run-guest --trace DIR` fills, its
//! sources converted, aligned on one clock and merged.
//!
//! Inputs (whichever the VMM had):
//!
//! | file | what | clock |
//! |---|---|---|
//! | `vmm.jsonl` | edu-vmm's own events (`--trace`) | CLOCK_MONOTONIC of the VMM's host |
//! | `qemu.log` | QEMU's trace log | wall clock of QEMU's host |
//! | `kvm.trace` | the KVM host's tracefs (`kvm:*`) | tracefs `mono`, or `tai` (wall) for QEMU |
//! | `console.log` | the console, with the guest's tracefs as a `guest` block | the guest's monotonic clock |
//! | `run.json` | what run-guest knew: VMM, nested or direct, command | |
//!
//! The VMM's events are the reference; KVM's are checked against them
//! (and moved by what the check measures), then the guest's are aligned
//! to both ([`crate::align`]). The merged timeline is `events.jsonl`.

use std::fs;
use std::path::{Path, PathBuf};

use edu_trace::event::read_events;
use edu_trace::{Event, Layer};
use serde_json::Value;

use crate::align::{self, Alignment};
use crate::{console, qemu, tracefs};

/// Errors loading a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// The VMM's event file is malformed.
    #[error("{0}: {1}")]
    Events(PathBuf, #[source] edu_trace::event::ReadError),
    /// Neither a VMM trace nor a QEMU log.
    #[error("{0} has neither vmm.jsonl (edu-vmm --trace) nor qemu.log (QEMU -trace): nothing to build from")]
    NoVmm(PathBuf),
}

/// How one clock was put on the reference.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Which source (`kvm`, `guest`).
    pub src: String,
    /// How (`same clock (CLOCK_MONOTONIC), checked`, `causal windows`).
    pub method: String,
    /// The measurement, if there were constraints.
    pub alignment: Option<Alignment>,
    /// Whether the offset was applied.
    pub applied: bool,
}

/// A loaded, aligned, merged run.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// run.json, if present.
    pub meta: Value,
    /// Every event, on the reference clock, in time order.
    pub events: Vec<Event>,
    /// Sources present: `edu-vmm` or `qemu`, `kvm`, `guest`.
    pub sources: Vec<String>,
    /// How each clock was aligned.
    pub clocks: Vec<Clock>,
    /// Things a reader must know (overwritten ring buffers, dropped events).
    pub notes: Vec<String>,
}

fn read(p: &Path) -> Result<String, Error> {
    fs::read_to_string(p).map_err(|e| Error::Io(p.into(), e))
}

impl Run {
    /// The VMM's name as the report shows it.
    pub fn vmm_name(&self) -> String {
        let vmm =
            self.meta["vmm"]
                .as_str()
                .unwrap_or(if self.has("qemu") { "qemu" } else { "edu-vmm" });
        match self.meta["placement"].as_str() {
            Some(p) => format!("{vmm} ({p})"),
            None => vmm.to_string(),
        }
    }

    /// Whether events of source `src` are present.
    pub fn has(&self, src: &str) -> bool {
        self.sources.iter().any(|s| s == src)
    }

    /// The first event's time: the origin of relative times.
    pub fn t0(&self) -> u64 {
        t0(&self.events)
    }

    /// Loads `dir`: converts, aligns and merges what is there.
    pub fn load(dir: &Path) -> Result<Run, Error> {
        let mut run = Run::default();
        let p = dir.join("run.json");
        if p.exists() {
            run.meta = serde_json::from_str(&read(&p)?).unwrap_or(Value::Null);
        }
        // The VMM's events: the reference clock.
        let vmm_path = dir.join("vmm.jsonl");
        let qemu_path = dir.join("qemu.log");
        let mut host = if vmm_path.exists() {
            run.sources.push("edu-vmm".into());
            let f = fs::File::open(&vmm_path).map_err(|e| Error::Io(vmm_path.clone(), e))?;
            read_events(std::io::BufReader::new(f))
                .map_err(|e| Error::Events(vmm_path.clone(), e))?
        } else if qemu_path.exists() {
            run.sources.push("qemu".into());
            qemu::convert(&read(&qemu_path)?)
        } else {
            return Err(Error::NoVmm(dir.into()));
        };
        for e in host.iter().filter(|e| e.kind == "dropped") {
            run.notes.push(format!("the VMM's recorder: {}", e.text));
        }
        // KVM's events, checked against the VMM's.
        let kvm_path = dir.join("kvm.trace");
        if kvm_path.exists() {
            let text = read(&kvm_path)?;
            if let Some((kept, written)) = tracefs::entries(&text) {
                if written > kept {
                    run.notes.push(format!(
                        "KVM's ring buffer kept {kept} of {written} events: the oldest {} were overwritten",
                        written - kept
                    ));
                }
            }
            let mut kvm = tracefs::convert(&text, tracefs::kvm_event);
            if !kvm.is_empty() {
                run.sources.push("kvm".into());
                run.clocks.push(align_kvm(&host, &mut kvm, &run.meta));
                host.append(&mut kvm);
                host.sort_by_key(|e| e.t_ns);
            }
        }
        // The guest's events, aligned to everything on the host.
        let console_path = dir.join("console.log");
        if console_path.exists() {
            let console_text = read(&console_path)?;
            match console::extract(&console_text, "guest") {
                Ok(text) => {
                    let gp = dir.join("guest.trace");
                    fs::write(&gp, &text).map_err(|e| Error::Io(gp, e))?;
                    if let Some((kept, written)) = tracefs::entries(&text) {
                        if written > kept {
                            run.notes.push(format!(
                                "the guest's ring buffer kept {kept} of {written} events"
                            ));
                        }
                    }
                    let mut guest = tracefs::convert(&text, tracefs::guest_event);
                    if !guest.is_empty() {
                        run.sources.push("guest".into());
                        let switches = console::clock_switches(&console_text);
                        run.notes.extend(clock_switch_notes(&switches, &guest));
                        let a = align::guest_to_host(&host, &guest);
                        if let Some(a) = &a {
                            for e in guest.iter_mut() {
                                e.t_ns = a.map(e.t_ns);
                            }
                        }
                        run.clocks.push(Clock {
                            src: "guest".into(),
                            method: "causal windows: each edu interrupt handler starts after its vCPU's last VM entry (or exit) and before its read of IRQ_STATUS".into(),
                            applied: a.is_some(),
                            alignment: a,
                        });
                        host.append(&mut guest);
                    }
                }
                Err(console::Error::Missing(_)) => {}
                Err(e) => run.notes.push(format!("guest events lost: {e}")),
            }
        }
        host.sort_by_key(|e| e.t_ns);
        run.events = host;
        Ok(run)
    }
}

/// A note for each clocksource switch of the guest while it traced: its
/// clock changed rate there, so no one line maps all its events (printk's
/// clock and the trace's `mono` agree to well under a millisecond here).
fn clock_switch_notes(switches: &[(u64, String)], guest: &[Event]) -> Vec<String> {
    let (Some(first), Some(last)) = (guest.first(), guest.last()) else {
        return Vec::new();
    };
    switches
        .iter()
        .filter(|(t, _)| (first.t_ns..=last.t_ns).contains(t))
        .map(|(t, name)| {
            format!(
                "the guest's clock changed rate while it traced: at {:.6} s it switched to clocksource {name}",
                *t as f64 / 1e9
            )
        })
        .collect()
}

/// Moves every event by `offset` nanoseconds (never below 0).
pub fn shift(events: &mut [Event], offset: i64) {
    for e in events {
        e.t_ns = (e.t_ns as i64).saturating_add(offset).max(0) as u64;
    }
}

/// KVM's events onto the VMM's clock. edu-vmm and tracefs `mono` share
/// CLOCK_MONOTONIC, and QEMU's wall clock is tracefs `tai` (the L1 kernel
/// has no TAI offset): the prior is 0 and the check measures what is left.
fn align_kvm(vmm: &[Event], kvm: &mut [Event], meta: &Value) -> Clock {
    let clock = meta["kvm_clock"].as_str().unwrap_or("mono");
    // Measured as "VMM = KVM + d": each VMM access inside KVM's window.
    let a = align::vmm_to_kvm(vmm, kvm, 0, 2_000_000);
    // host = kvm - d when the VMM is the reference.
    let applied = a.as_ref().is_some_and(|a| a.agreeing * 2 > a.total);
    if let (Some(a), true) = (&a, applied) {
        shift(kvm, -a.offset_ns);
    }
    Clock {
        src: "kvm".into(),
        method: format!(
            "same clock by construction (tracefs {clock}); checked: each access the VMM handled lies between its thread's KVM_RUN return and next VM entry"
        ),
        alignment: a.map(|mut a| {
            a.offset_ns = -a.offset_ns;
            a
        }),
        applied,
    }
}

/// The time of the first event that is not metadata (0 for none).
pub fn t0(events: &[Event]) -> u64 {
    events
        .iter()
        .find(|e| e.layer != Layer::Meta)
        .map_or(0, |e| e.t_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_a_vmm_trace_is_refused() {
        let d = std::env::temp_dir().join(format!("edu-trace-empty-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let e = Run::load(&d).unwrap_err();
        assert!(e.to_string().contains("neither vmm.jsonl"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn shifting_never_goes_negative() {
        let mut v = vec![Event::new(10, Layer::Guest, "guest", "marker", "")];
        shift(&mut v, -100);
        assert_eq!(v[0].t_ns, 0);
        shift(&mut v, 5);
        assert_eq!(v[0].t_ns, 5);
    }

    #[test]
    fn a_clocksource_switch_while_tracing_is_noted() {
        let guest: Vec<Event> = [1_120_000_000, 1_900_000_000]
            .map(|t| Event::new(t, Layer::Guest, "guest", "marker", ""))
            .into();
        let switches = [
            (484_583_000, "tsc-early".to_string()),
            (1_683_974_000, "tsc".to_string()),
        ];
        let notes = clock_switch_notes(&switches, &guest);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("at 1.683974 s it switched to clocksource tsc"));
        assert!(clock_switch_notes(&switches[..1], &guest).is_empty());
    }
}
