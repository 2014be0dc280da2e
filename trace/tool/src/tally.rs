//! Exit statistics from a timeline: the accesses the VMM handled per
//! device register, and KVM's exits per reason, timed like `perf kvm
//! stat` (count, total, median, p99; [`edu_trace::stats`]).

use std::collections::BTreeMap;

use edu_trace::stats::{Row, Tally};
use edu_trace::{Event, Layer};

/// How the access rows were timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// From KVM's exit to the next VM entry of the vCPU: the whole exit.
    RoundTrip,
    /// The VMM's own handling time (edu-vmm, without KVM's events).
    Vmm,
    /// Not timed (QEMU under TCG has no exits).
    None,
}

impl Timing {
    /// For table titles.
    pub fn words(self) -> &'static str {
        match self {
            Timing::RoundTrip => "time = VM exit to VM entry (KVM's events)",
            Timing::Vmm => "time = the VMM's own handling (edu-vmm)",
            Timing::None => "not timed: QEMU's TCG emulates devices without exits",
        }
    }
}

/// KVM's exit-to-entry intervals per vCPU, sorted: (exit, entry, reason).
pub fn round_trips(events: &[Event]) -> BTreeMap<u32, Vec<(u64, u64, String)>> {
    let mut open: BTreeMap<u64, (u64, String, Option<u32>)> = BTreeMap::new();
    let mut out: BTreeMap<u32, Vec<(u64, u64, String)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.src == "kvm") {
        let Some(pid) = e.u64("pid") else { continue };
        match e.kind.as_str() {
            "kvm_exit" => {
                let reason = e.str("reason").unwrap_or("?").to_string();
                open.insert(pid, (e.t_ns, reason, e.vcpu));
            }
            "kvm_entry" => {
                if let Some((t, reason, vcpu)) = open.remove(&pid) {
                    out.entry(vcpu.or(e.vcpu).unwrap_or(0))
                        .or_default()
                        .push((t, e.t_ns, reason));
                }
            }
            _ => {}
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|r| r.0);
    }
    out
}

/// KVM's exits per reason with their round-trip times.
pub fn kvm_rows(events: &[Event]) -> Vec<Row> {
    let mut t = Tally::default();
    for trips in round_trips(events).values() {
        for (a, b, reason) in trips {
            t.add(reason, "", "", b.saturating_sub(*a));
        }
    }
    t.rows()
}

/// The VMM's accesses per (kind, device, register), all timed by one
/// measure: KVM's round trip when every access has one (KVM recorded the
/// whole stretch), else the VMM's own handling time, else none.
pub fn access_rows(events: &[Event], all: &[Event]) -> (Vec<Row>, Timing) {
    let trips = round_trips(all);
    let trip = |e: &Event| {
        let v = trips.get(&e.vcpu?)?;
        let i = v.partition_point(|(a, _, _)| *a <= e.t_ns);
        let (a, b, _) = v.get(i.checked_sub(1)?)?;
        (*b >= e.t_ns).then(|| b - a)
    };
    let accesses: Vec<&Event> = events.iter().filter(|e| e.is_access()).collect();
    let timing = if !accesses.is_empty() && accesses.iter().all(|e| trip(e).is_some()) {
        Timing::RoundTrip
    } else if accesses.iter().any(|e| e.dur_ns > 0) {
        Timing::Vmm
    } else {
        Timing::None
    };
    let mut t = Tally::default();
    for e in accesses {
        let ns = match timing {
            Timing::RoundTrip => trip(e).unwrap_or(0),
            Timing::Vmm => e.dur_ns,
            Timing::None => 0,
        };
        t.add(
            &e.kind,
            e.dev.as_deref().unwrap_or("?"),
            e.reg.as_deref().unwrap_or("?"),
            ns,
        );
    }
    (t.rows(), timing)
}

/// Events per layer.
pub fn per_layer(events: &[Event]) -> Vec<(Layer, usize)> {
    Layer::ALL
        .iter()
        .map(|l| (*l, events.iter().filter(|e| e.layer == *l).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kvm(t: u64, kind: &str, reason: Option<&str>) -> Event {
        let mut e = Event::new(t, Layer::Kvm, "kvm", kind, "").with("pid", 85);
        if let Some(r) = reason {
            e = e.with("reason", r);
        }
        e.vcpu = Some(0);
        e
    }

    #[test]
    fn accesses_take_the_round_trip_of_their_exit() {
        let mut a = Event::new(150, Layer::Vmm, "edu-vmm", "mmio_write", "");
        a.vcpu = Some(0);
        a.dur_ns = 20;
        a.dev = Some("edu0".into());
        a.reg = Some("FACTORIAL".into());
        let all = vec![
            kvm(100, "kvm_exit", Some("npf")),
            a.clone(),
            kvm(400, "kvm_entry", None),
            kvm(500, "kvm_exit", Some("hlt")),
            kvm(1500, "kvm_entry", None),
        ];
        let (rows, timing) = access_rows(&all, &all);
        assert_eq!(timing, Timing::RoundTrip);
        assert_eq!((rows[0].reg.as_str(), rows[0].total_ns), ("FACTORIAL", 300));
        // One access KVM did not record: the table falls back to one
        // measure for all, the VMM's.
        let mut early = a.clone();
        early.t_ns = 10;
        let mixed: Vec<Event> = std::iter::once(early).chain(all.iter().cloned()).collect();
        let (rows, timing) = access_rows(&mixed, &mixed);
        assert_eq!((timing, rows[0].total_ns), (Timing::Vmm, 40));
        let k = kvm_rows(&all);
        let hlt = k.iter().find(|r| r.kind == "hlt").unwrap();
        assert_eq!(hlt.total_ns, 1000);
        // Without KVM's events, the VMM's own time.
        let (rows, timing) = access_rows(&[a.clone()], &[a]);
        assert_eq!((timing, rows[0].total_ns), (Timing::Vmm, 20));
        assert_eq!(per_layer(&all), vec![(Layer::Kvm, 4), (Layer::Vmm, 1)]);
    }
}
