//! Putting clocks on one timeline, from causality.
//!
//! Each layer stamps events with its own clock: edu-vmm and the KVM
//! host's tracefs with CLOCK_MONOTONIC, QEMU with the wall clock, the
//! guest with its own monotonic clock. An unknown offset `d` maps one onto
//! the other (`host = other + d`). Causality bounds it: an event of the
//! other clock must fall inside a *window* of host time, for example
//!
//! - the guest's `irq_handler_entry` of edu's interrupt comes after the
//!   last thing its vCPU did in the host before (the last VM entry, or the
//!   end of the last exit the VMM handled) and before the handler's first
//!   access, its read of IRQ_STATUS, reached the host (the read's VM exit);
//! - a QEMU access on a vCPU thread happens between the `KVM_RUN` return
//!   (`kvm_userspace_exit`) and the next VM entry of that thread.
//!
//! Which window belongs to which event is not known, so each event gives
//! a *set* of possible offsets: the union over the windows. The offset is
//! where the most sets agree (a sweep over the interval ends), its error
//! half the width of that agreement; the report says how many constraints
//! agree out of how many, and whether another offset would do as well.
//!
//! The guest's clock may also run at another *rate*: nested on QEMU's
//! TCG, L2's clock gained 1.4 ms per second on L1's, while the windows are
//! tens of microseconds wide, so no single offset fitted all four of the
//! lab's interrupts. So the guest is aligned in two steps
//! ([`guest_to_host`]): a consensus over windows widened to absorb any
//! plausible drift matches each handler to its window, then a line
//! (offset and drift) is found through all the matched windows: each pair
//! of windows bounds the drift, the middle of the feasible drifts is
//! taken, and at that drift the offset's feasible range gives the offset
//! (its middle) and the error (half its width). Windows no line reaches
//! (at most three) are dropped and reported as disagreeing; then each
//! handler is matched again where the line puts it and the line refitted,
//! while more windows agree (the drift-free first guess can sit nearer a
//! neighbouring window, such as the probe's read of IRQ_STATUS).

use std::collections::BTreeMap;

use edu_trace::{Event, Layer};

/// A closed interval of offsets, nanoseconds.
pub type Span = (i64, i64);

/// The outcome of an alignment: `host = other + offset_ns + drift *
/// (other - origin_ns)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Alignment {
    /// The offset at `origin_ns`.
    pub offset_ns: i64,
    /// How much faster the host's clock runs (host ns per other ns, minus
    /// one); 0 for clocks aligned by an offset alone.
    pub drift: f64,
    /// Where on the other clock `offset_ns` holds.
    pub origin_ns: u64,
    /// Half the width of the agreeing offsets: the measured error bound.
    pub error_ns: i64,
    /// Constraints that agree on the offset.
    pub agreeing: usize,
    /// Constraints in all.
    pub total: usize,
    /// Another, disjoint range of offsets satisfied as many constraints.
    pub ambiguous: bool,
}

/// The offsets covered by the most constraint sets, with how many agree
/// and whether that maximum is reached in more than one place.
pub fn consensus(sets: &[Vec<Span>]) -> Option<Alignment> {
    let mut ends: Vec<(i64, i32)> = Vec::new();
    for set in sets {
        for (lo, hi) in normalize(set) {
            ends.push((lo, 1));
            // Closed interval: the coverage drops just after `hi`.
            ends.push((hi.saturating_add(1), -1));
        }
    }
    if ends.is_empty() {
        return None;
    }
    ends.sort();
    let (mut cover, mut best, mut best_span, mut ties) = (0i32, 0i32, (0i64, 0i64), 0usize);
    let mut i = 0;
    while i < ends.len() {
        let x = ends[i].0;
        while i < ends.len() && ends[i].0 == x {
            cover += ends[i].1;
            i += 1;
        }
        let next = ends.get(i).map_or(x, |e| e.0);
        if cover > best {
            best = cover;
            best_span = (x, next - 1);
            ties = 1;
        } else if cover == best && cover > 0 {
            if best_span.1 + 1 == x {
                best_span.1 = next - 1;
            } else {
                ties += 1;
            }
        }
    }
    let (lo, hi) = best_span;
    Some(Alignment {
        offset_ns: lo + (hi - lo) / 2,
        drift: 0.0,
        origin_ns: 0,
        error_ns: (hi - lo + 1) / 2,
        agreeing: best as usize,
        total: sets.len(),
        ambiguous: ties > 1,
    })
}

/// Sorted, overlapping spans merged.
fn normalize(set: &[Span]) -> Vec<Span> {
    let mut v: Vec<Span> = set.iter().copied().filter(|(a, b)| a <= b).collect();
    v.sort();
    let mut out: Vec<Span> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn end_of(e: &Event) -> u64 {
    e.t_ns + e.dur_ns
}

/// Is `e` the edu interrupt handler's start in the guest?
fn is_edu_entry(e: &Event) -> bool {
    e.layer == Layer::Guest && e.kind == "irq_handler_entry" && e.str("name") == Some("edu")
}

/// Is `e` a read of an edu's interrupt status by the VMM?
fn is_status_read(e: &Event) -> bool {
    e.is_access()
        && !e.is_write()
        && e.reg.as_deref() == Some("IRQ_STATUS")
        && e.dev.as_deref().is_some_and(|d| d.starts_with("edu"))
}

/// Host windows in which a guest handler of edu's interrupt can start,
/// one per read of IRQ_STATUS: from the last host event of that vCPU
/// before the read (a VM entry, the end of an exit) to the read's VM exit
/// (or, without KVM's events, the read itself).
pub fn handler_windows(host: &[Event]) -> Vec<(Option<u32>, u64, u64)> {
    let mut by_vcpu: BTreeMap<Option<u32>, Vec<&Event>> = BTreeMap::new();
    for e in host
        .iter()
        .filter(|e| e.layer != Layer::Meta && e.layer != Layer::Guest)
    {
        by_vcpu.entry(e.vcpu).or_default().push(e);
    }
    let mut out = Vec::new();
    for r in host.iter().filter(|e| is_status_read(e)) {
        let Some(mine) = by_vcpu.get(&r.vcpu) else {
            continue;
        };
        // The read's own VM exit, if KVM's events are there: the last
        // exit of this vCPU shortly before the VMM saw the read.
        let exit = mine
            .iter()
            .filter(|e| e.kind == "kvm_exit" && e.t_ns <= r.t_ns && r.t_ns - e.t_ns < 1_000_000)
            .map(|e| e.t_ns)
            .max();
        let end = exit.unwrap_or(r.t_ns);
        let start = mine
            .iter()
            .filter(|e| end_of(e) < end && (e.kind == "kvm_entry" || e.layer == Layer::Vmm))
            .map(|e| end_of(e))
            .max();
        if let Some(start) = start {
            out.push((r.vcpu, start, end));
        }
    }
    out
}

impl Alignment {
    /// A time of the other clock on the host's.
    pub fn map(&self, t: u64) -> u64 {
        let d = (t as f64 - self.origin_ns as f64) * self.drift;
        (t as i64 + self.offset_ns + d.round() as i64).max(0) as u64
    }
}

/// Drift the coarse step tolerates: 5,000 ppm (nested TCG showed 1,400).
const MAX_DRIFT: f64 = 5e-3;

/// Aligns the guest's clock to the host's: each edu handler start must
/// fall in a [`handler_windows`] window of its vCPU; see the module
/// documentation for the two steps.
pub fn guest_to_host(host: &[Event], guest: &[Event]) -> Option<Alignment> {
    let windows = handler_windows(host);
    let entries: Vec<&Event> = guest.iter().filter(|e| is_edu_entry(e)).collect();
    let (first, last) = (entries.first()?.t_ns, entries.last()?.t_ns);
    let slack = ((last - first) as f64 * MAX_DRIFT) as i64 + 1;
    let mine = |g: &Event, v: Option<u32>| v.is_none() || g.vcpu.is_none() || v == g.vcpu;
    // 1. Which window is whose: a consensus tolerant of drift.
    let sets: Vec<Vec<Span>> = entries
        .iter()
        .map(|g| {
            windows
                .iter()
                .filter(|(v, _, _)| mine(g, *v))
                .map(|(_, lo, hi)| {
                    let t = g.t_ns as i64;
                    (*lo as i64 - t - slack, *hi as i64 - t + slack)
                })
                .collect()
        })
        .collect();
    let coarse = consensus(&sets)?;
    // 2. A line through the matched windows; then each handler matched
    // again to the window nearest where that line (drift included) puts
    // it, and refitted, while that makes more windows agree: the
    // drift-free guess can sit nearer a neighbouring window.
    let mut guess = coarse.clone();
    let mut best: Option<Alignment> = None;
    for _ in 0..4 {
        let pairs: Vec<(u64, u64, u64)> = entries
            .iter()
            .filter_map(|g| {
                let at = guess.map(g.t_ns) as i64;
                windows
                    .iter()
                    .filter(|(v, lo, hi)| {
                        mine(g, *v) && *lo as i64 - slack <= at && at <= *hi as i64 + slack
                    })
                    .min_by_key(|(_, lo, hi)| ((*lo + *hi) as i64 / 2 - at).abs())
                    .map(|(_, lo, hi)| (g.t_ns, *lo, *hi))
            })
            .collect();
        let Some(fitted) = fit_dropping(&pairs, first, entries.len(), coarse.ambiguous) else {
            break;
        };
        if best.as_ref().is_some_and(|b| b.agreeing >= fitted.agreeing) {
            break;
        }
        guess = fitted.clone();
        best = Some(fitted);
    }
    best
}

/// The line through all `pairs` (guest time, window), or through as many
/// as possible: up to three that no line reaches are dropped. `total` and
/// `ambiguous` are the caller's, for the report.
fn fit_dropping(
    pairs: &[(u64, u64, u64)],
    origin: u64,
    total: usize,
    ambiguous: bool,
) -> Option<Alignment> {
    let n = pairs.len();
    for k in 0..=3.min(n.saturating_sub(1)) {
        for keep in drop_k(n, k) {
            let chosen: Vec<(u64, u64, u64)> = keep.iter().map(|&i| pairs[i]).collect();
            if let Some((offset_ns, drift, error_ns)) = fit_line(&chosen, origin) {
                return Some(Alignment {
                    offset_ns,
                    drift,
                    origin_ns: origin,
                    error_ns,
                    agreeing: chosen.len(),
                    total,
                    ambiguous,
                });
            }
        }
    }
    None
}

/// The index sets of `0..n` without `k` of them.
fn drop_k(n: usize, k: usize) -> Vec<Vec<usize>> {
    fn rec(start: usize, n: usize, k: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k == 0 {
            out.push((0..n).filter(|i| !cur.contains(i)).collect());
            return;
        }
        for i in start..n {
            cur.push(i);
            rec(i + 1, n, k - 1, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    rec(0, n, k, &mut Vec::new(), &mut out);
    out
}

/// A line `offset + drift * (t - origin)` that maps each guest time `t`
/// into its window `[lo, hi]`, if there is one with |drift| within
/// [`MAX_DRIFT`]: the middle of the feasible drifts, then the middle of the
/// feasible offsets at that drift, whose half-width is the error.
fn fit_line(pairs: &[(u64, u64, u64)], origin: u64) -> Option<(i64, f64, i64)> {
    let (t0, lo0, _) = *pairs.first()?;
    let base = lo0 as i64 - t0 as i64;
    // offset - base must lie in [a_i - drift * x_i, b_i - drift * x_i].
    let c: Vec<(f64, f64, f64)> = pairs
        .iter()
        .map(|(t, lo, hi)| {
            let x = *t as f64 - origin as f64;
            let a = (*lo as i64 - *t as i64 - base) as f64;
            let b = (*hi as i64 - *t as i64 - base) as f64;
            (x, a, b)
        })
        .collect();
    let (mut dlo, mut dhi) = (-MAX_DRIFT, MAX_DRIFT);
    for (xi, ai, _) in &c {
        for (xj, _, bj) in &c {
            // a_i - d x_i <= b_j - d x_j, that is d (x_j - x_i) <= b_j - a_i.
            let dx = xj - xi;
            if dx > 0.0 {
                dhi = dhi.min((bj - ai) / dx);
            } else if dx < 0.0 {
                dlo = dlo.max((bj - ai) / dx);
            } else if ai > bj {
                return None;
            }
        }
    }
    if dlo > dhi {
        return None;
    }
    let d = (dlo + dhi) / 2.0;
    let olo = c.iter().map(|(x, a, _)| a - d * x).fold(f64::MIN, f64::max);
    let ohi = c.iter().map(|(x, _, b)| b - d * x).fold(f64::MAX, f64::min);
    if olo > ohi + 1.0 {
        return None;
    }
    let o = (olo + ohi) / 2.0;
    Some((
        base + o.round() as i64,
        d,
        ((ohi - olo).max(0.0) / 2.0).ceil() as i64,
    ))
}

/// The thread of a host event: tracefs' pid, QEMU's tid, or for edu-vmm
/// (which names its threads `vcpuN`) the pid of `vcpuN` in KVM's events.
fn thread_of(e: &Event, vcpu_pids: &BTreeMap<u32, u64>) -> Option<u64> {
    e.u64("pid")
        .or_else(|| e.u64("tid"))
        .or_else(|| vcpu_pids.get(&e.vcpu?).copied())
}

/// Checks (or finds) the offset between a VMM's events and KVM's: each
/// port or MMIO access the VMM handled happened while its vCPU thread was
/// out of KVM_RUN, between `kvm_userspace_exit` and the next `kvm_entry`.
/// Only windows within `radius_ns` of `prior_ns` are considered (the
/// clocks are the same, or nearly, by construction).
pub fn vmm_to_kvm(
    vmm: &[Event],
    kvm: &[Event],
    prior_ns: i64,
    radius_ns: i64,
) -> Option<Alignment> {
    let vcpu_pids: BTreeMap<u32, u64> = kvm
        .iter()
        .filter_map(|e| Some((crate::tracefs::vcpu_of(e.str("comm")?)?, e.u64("pid")?)))
        .collect();
    // Per thread: [userspace exit, next entry] intervals, sorted.
    let mut windows: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    let mut open: BTreeMap<u64, u64> = BTreeMap::new();
    for e in kvm {
        let Some(pid) = e.u64("pid") else { continue };
        match e.kind.as_str() {
            "kvm_userspace_exit" => {
                open.insert(pid, e.t_ns);
            }
            "kvm_entry" => {
                if let Some(t) = open.remove(&pid) {
                    windows.entry(pid).or_default().push((t, e.t_ns));
                }
            }
            _ => {}
        }
    }
    let sets: Vec<Vec<Span>> = vmm
        .iter()
        .filter(|e| e.is_access())
        .filter_map(|a| {
            let w = windows.get(&thread_of(a, &vcpu_pids)?)?;
            let center = a.t_ns as i64 + prior_ns;
            // KVM may have recorded only part of the run (the lab flow):
            // accesses outside what it recorded of this thread say nothing.
            let (first, last) = (w.first()?.0 as i64, w.last()?.1 as i64);
            if center < first || center > last {
                return None;
            }
            let first = w.partition_point(|(_, hi)| (*hi as i64) < center - radius_ns);
            let spans: Vec<Span> = w[first..]
                .iter()
                .take_while(|(lo, _)| (*lo as i64) <= center + radius_ns)
                .map(|(lo, hi)| (*lo as i64 - a.t_ns as i64, *hi as i64 - end_of(a) as i64))
                .collect();
            Some(spans)
        })
        .collect();
    consensus(&sets)
}

/// `offset +1.234 ms, drift +1400 ppm, error +/- 5.0 us, 12 of 12 ...`.
pub fn words(a: &Alignment) -> String {
    let drift = if a.drift == 0.0 {
        String::new()
    } else {
        format!(", drift {:+.0} ppm", a.drift * 1e6)
    };
    format!(
        "offset {:+.3} ms{drift}, error +/- {}, {} of {} causal constraints agree{}",
        a.offset_ns as f64 / 1e6,
        edu_trace::stats::ns_words(a.error_ns.unsigned_abs()),
        a.agreeing,
        a.total,
        if a.ambiguous {
            " (AMBIGUOUS: another offset fits as well)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, layer: Layer, kind: &str) -> Event {
        let mut e = Event::new(t, layer, "x", kind, "");
        e.vcpu = Some(0);
        e
    }

    fn status_read(t: u64) -> Event {
        let mut e = ev(t, Layer::Vmm, "mmio_read");
        e.dev = Some("edu0".into());
        e.reg = Some("IRQ_STATUS".into());
        e
    }

    #[test]
    fn consensus_finds_the_common_offset_and_its_width() {
        let sets = vec![
            vec![(0, 100), (1000, 1100)],
            vec![(50, 60)],
            vec![(40, 70), (5000, 6000)],
        ];
        let a = consensus(&sets).unwrap();
        assert_eq!(
            (a.offset_ns, a.error_ns, a.agreeing, a.total),
            (55, 5, 3, 3)
        );
        assert!(!a.ambiguous);
        // One bad constraint does not move it.
        let mut bad = sets.clone();
        bad.push(vec![(9000, 9001)]);
        let a = consensus(&bad).unwrap();
        assert_eq!((a.offset_ns, a.agreeing, a.total), (55, 3, 4));
        // Two places fit equally well.
        let a = consensus(&[vec![(0, 10), (100, 110)]]).unwrap();
        assert!(a.ambiguous);
        assert_eq!(consensus(&[]), None);
    }

    #[test]
    fn guest_clock_found_from_interrupt_handlers() {
        // Host: three interrupts; the handler's status read follows each.
        let mut host = Vec::new();
        for (i, base) in [1_000_000u64, 5_000_000, 105_000_000]
            .into_iter()
            .enumerate()
        {
            let mut w = ev(base, Layer::Vmm, "mmio_write");
            w.dur_ns = 1000;
            host.push(w);
            host.push(status_read(base + 50_000 + i as u64 * 1000));
        }
        // Guest clock is host - 777 ms; handlers start 30 us after the
        // write's exit ended.
        let guest: Vec<Event> = [1_000_000u64, 5_000_000, 105_000_000]
            .iter()
            .map(|b| {
                let mut g = ev(
                    b + 1_000_000_000 + 31_000 - 777_000_000,
                    Layer::Guest,
                    "irq_handler_entry",
                );
                g.raw.insert("name".into(), "edu".into());
                g
            })
            .collect();
        let a = guest_to_host(&host, &guest).unwrap();
        let truth = 777_000_000i64 - 1_000_000_000;
        for g in &guest {
            let want = (g.t_ns as i64 + truth) as u64;
            assert!(a.map(g.t_ns).abs_diff(want) <= a.error_ns as u64, "{a:?}");
        }
        assert_eq!((a.agreeing, a.total), (3, 3));
        // Half a window and a little: the fit goes through window middles.
        assert!(a.error_ns <= 30_000, "{a:?}");
        assert!(words(&a).contains("3 of 3 causal constraints agree"));
    }

    #[test]
    fn a_guest_clock_that_runs_fast_is_fitted_with_its_drift() {
        // What nested TCG did: the guest's clock gains 1,400 ppm; each
        // handler starts 40 us into a 50 us window.
        let drift = 1400e-6;
        let mut host = Vec::new();
        let mut guest = Vec::new();
        for (i, base) in [
            10_000_000u64,
            13_000_000,
            125_000_000,
            242_000_000,
            400_000_000,
        ]
        .into_iter()
        .enumerate()
        {
            let mut w = ev(base, Layer::Vmm, "mmio_write");
            w.dur_ns = 1000;
            host.push(w);
            host.push(status_read(base + 51_000 + i as u64));
            let truth = base + 41_000;
            let g_t = 5_000_000_000 + ((truth as f64) * (1.0 + drift)) as u64;
            let mut g = ev(g_t, Layer::Guest, "irq_handler_entry");
            g.raw.insert("name".into(), "edu".into());
            guest.push((g, truth));
        }
        let gs: Vec<Event> = guest.iter().map(|(g, _)| g.clone()).collect();
        let a = guest_to_host(&host, &gs).unwrap();
        assert_eq!((a.agreeing, a.total), (5, 5), "{a:?}");
        assert!((a.drift + drift).abs() < 1e-4, "{a:?}");
        for (g, truth) in &guest {
            assert!(a.map(g.t_ns).abs_diff(*truth) <= a.error_ns as u64, "{a:?}");
        }
        assert!(a.error_ns <= 50_000, "{a:?}");
        assert!(words(&a).contains("drift -"), "{}", words(&a));
        // One offset alone would not do: most windows are missed.
        let single = consensus(
            &gs.iter()
                .map(|g| {
                    handler_windows(&host)
                        .iter()
                        .map(|(_, lo, hi)| (*lo as i64 - g.t_ns as i64, *hi as i64 - g.t_ns as i64))
                        .collect()
                })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(single.agreeing < 5, "{single:?}");
    }

    #[test]
    fn vmm_accesses_fall_between_kvm_exit_and_entry() {
        let mut kvm = Vec::new();
        let mut vmm = Vec::new();
        for i in 0..20u64 {
            let t = i * 100_000;
            let mut ue = Event::new(t, Layer::Kvm, "kvm", "kvm_userspace_exit", "")
                .with("pid", 85)
                .with("comm", "vcpu0");
            ue.vcpu = Some(0);
            let en = Event::new(t + 10_000, Layer::Kvm, "kvm", "kvm_entry", "")
                .with("pid", 85)
                .with("comm", "vcpu0");
            kvm.push(ue);
            kvm.push(en);
            let mut a = Event::new(t + 2_000 + i * 100, Layer::Vmm, "edu-vmm", "pio_write", "");
            a.vcpu = Some(0);
            a.dur_ns = 3_000;
            vmm.push(a);
        }
        // Accesses long before KVM recorded anything are no constraint.
        let mut early = Event::new(5, Layer::Vmm, "edu-vmm", "pio_write", "");
        early.vcpu = Some(0);
        vmm.insert(0, early);
        vmm[0].t_ns = 0;
        kvm.iter_mut().for_each(|e| e.t_ns += 50_000_000);
        vmm[1..].iter_mut().for_each(|e| e.t_ns += 50_000_000);
        let a = vmm_to_kvm(&vmm, &kvm, 0, 1_000_000).unwrap();
        assert_eq!((a.agreeing, a.total), (20, 20));
        assert!(a.offset_ns.abs() <= a.error_ns, "{a:?}");
        assert!(a.error_ns < 5_000, "{a:?}");
    }

    /// Host events with one handler window per `(start, read)`, in us.
    fn windows_at(w: &[(u64, u64)]) -> Vec<Event> {
        let mut host = Vec::new();
        for (lo, hi) in w {
            host.push(ev(lo * 1000, Layer::Vmm, "mmio_write"));
            host.push(status_read(hi * 1000));
        }
        host
    }

    fn handlers_at(t_us: &[u64]) -> Vec<Event> {
        t_us.iter()
            .map(|t| {
                let mut g = ev(t * 1000, Layer::Guest, "irq_handler_entry");
                g.raw.insert("name".into(), "edu".into());
                g
            })
            .collect()
    }

    #[test]
    fn a_window_next_to_the_right_one_does_not_steal_its_handler() {
        // A QEMU TCG lab run (trace-qemu): five IRQ_STATUS reads, the first
        // the probe's (nothing pending) 0.6 ms before the first interrupt's;
        // four handlers; the guest clock loses 1,930 ppm. The drift-free
        // first guess lies between the probe's window and the right one,
        // a hair nearer the probe's: the line must still take all four.
        let host = windows_at(&[
            (1_000_000, 1_000_007),
            (1_000_602, 1_000_668),
            (1_001_309, 1_001_321),
            (1_102_281, 1_102_338),
            (1_204_088, 1_204_120),
        ]);
        let guest = handlers_at(&[5_000_000, 5_000_695, 5_101_887, 5_203_876]);
        let a = guest_to_host(&host, &guest).unwrap();
        assert_eq!((a.agreeing, a.total), (4, 4), "{}", words(&a));
        assert!((a.drift * 1e6 + 1930.0).abs() < 150.0, "{}", words(&a));
        let into = |g: u64, lo: u64, hi: u64| (lo * 1000..=hi * 1000).contains(&a.map(g * 1000));
        assert!(into(5_000_000, 1_000_602, 1_000_668), "{}", words(&a));
        assert!(into(5_203_876, 1_204_088, 1_204_120), "{}", words(&a));
    }
}
