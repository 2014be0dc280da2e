//! Exit statistics the way `perf kvm stat` reports them: per exit kind and
//! per device register, the count, the total time, the median and the 99th
//! percentile of the handling time.
//!
//! Times go into a log-linear [`Histogram`] (16 buckets per power of two,
//! so a quantile is within 1/32 of the true value) of fixed size: a guest
//! that exits forever costs counts, not memory. [`ExitStats`] is the
//! VMM's per-vCPU table, keyed by the raw access (kind, port or address)
//! so that an exit costs one hash probe; names are given to its rows when
//! the run ends. The tool builds the same [`Row`]s from events, and both
//! print them with [`render`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::decode::{describe_dev, Access, Decoder, Space};

/// Buckets below 16 ns are exact; above, 16 per power of two up to 2^40 ns.
const SUB: u32 = 16;
const SUB_BITS: u32 = 4;
const MAX_EXP: u32 = 40;
const BUCKETS: usize = (SUB + (MAX_EXP - SUB_BITS + 1) * SUB) as usize;

/// A fixed-size log-linear histogram of durations in nanoseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Box<[u32; BUCKETS]>,
    count: u64,
    total_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: Box::new([0; BUCKETS]),
            count: 0,
            total_ns: 0,
        }
    }
}

#[inline]
fn bucket(ns: u64) -> usize {
    if ns < u64::from(SUB) {
        return ns as usize;
    }
    // Longer than 2^41 ns (37 minutes) counts as the last bucket.
    let ns = ns.min((1 << (MAX_EXP + 1)) - 1);
    let e = 63 - ns.leading_zeros();
    let sub = (ns >> (e - SUB_BITS)) as u32 & (SUB - 1);
    (SUB + (e - SUB_BITS) * SUB + sub) as usize
}

/// The middle of bucket `i`.
fn bucket_value(i: usize) -> u64 {
    let i = i as u32;
    if i < SUB {
        return u64::from(i);
    }
    let e = SUB_BITS + (i - SUB) / SUB;
    let sub = u64::from((i - SUB) % SUB);
    let width = 1u64 << (e - SUB_BITS);
    ((u64::from(SUB) + sub) << (e - SUB_BITS)) + width / 2
}

impl Histogram {
    /// Adds one duration.
    #[inline]
    pub fn add(&mut self, ns: u64) {
        let b = &mut self.buckets[bucket(ns)];
        *b = b.saturating_add(1);
        self.count += 1;
        self.total_ns = self.total_ns.saturating_add(ns);
    }

    /// Adds every duration of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a = a.saturating_add(*b);
        }
        self.count += other.count;
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
    }

    /// Number of durations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their sum.
    pub fn total_ns(&self) -> u64 {
        self.total_ns
    }

    /// The `q` quantile (0.5: median), 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return bucket_value(i);
            }
        }
        bucket_value(BUCKETS - 1)
    }
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Exit kind (`pio_write`, `mmio_read`, `kvm:io`, ...).
    pub kind: String,
    /// Device (`COM1`, `PCI`, `edu0`, ...).
    pub dev: String,
    /// Register.
    pub reg: String,
    /// Number of exits.
    pub count: u64,
    /// Their total handling time.
    pub total_ns: u64,
    /// Median handling time.
    pub median_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
}

impl Row {
    /// A row from a histogram.
    pub fn new(kind: &str, dev: &str, reg: &str, h: &Histogram) -> Self {
        Row {
            kind: kind.into(),
            dev: dev.into(),
            reg: reg.into(),
            count: h.count(),
            total_ns: h.total_ns(),
            median_ns: h.quantile(0.5),
            p99_ns: h.quantile(0.99),
        }
    }
}

/// Histograms by (kind, device, register): the tool's way of building rows.
#[derive(Debug, Default)]
pub struct Tally {
    by_key: BTreeMap<(String, String, String), Histogram>,
}

impl Tally {
    /// Adds one exit.
    pub fn add(&mut self, kind: &str, dev: &str, reg: &str, ns: u64) {
        self.by_key
            .entry((kind.into(), dev.into(), reg.into()))
            .or_default()
            .add(ns);
    }

    /// Merges a histogram of exits into the key's.
    pub fn merge(&mut self, kind: &str, dev: &str, reg: &str, h: &Histogram) {
        self.by_key
            .entry((kind.into(), dev.into(), reg.into()))
            .or_default()
            .merge(h);
    }

    /// The rows, most frequent first.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .by_key
            .iter()
            .map(|((k, d, r), h)| Row::new(k, d, r, h))
            .collect();
        sort_rows(&mut rows);
        rows
    }
}

fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.kind, &a.dev, &a.reg).cmp(&(&b.kind, &b.dev, &b.reg)))
    });
}

/// Keys beyond this many distinct accesses are counted under "other", so a
/// guest touching every port cannot grow the table.
pub const MAX_KEYS: usize = 256;
const SLOTS: usize = 2 * MAX_KEYS;

/// Kinds of exit the VMM times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Port read.
    PioRead = 0,
    /// Port write.
    PioWrite = 1,
    /// MMIO read.
    MmioRead = 2,
    /// MMIO write.
    MmioWrite = 3,
}

impl ExitKind {
    fn from_bits(b: u64) -> Self {
        match b {
            0 => ExitKind::PioRead,
            1 => ExitKind::PioWrite,
            2 => ExitKind::MmioRead,
            _ => ExitKind::MmioWrite,
        }
    }

    /// The kind of an access.
    pub fn of(space: Space, write: bool) -> Self {
        match (space, write) {
            (Space::Port, false) => ExitKind::PioRead,
            (Space::Port, true) => ExitKind::PioWrite,
            (Space::Mmio, false) => ExitKind::MmioRead,
            (Space::Mmio, true) => ExitKind::MmioWrite,
        }
    }
}

/// One vCPU's exit times, keyed by kind and port or address.
#[derive(Debug)]
pub struct ExitStats {
    keys: Box<[u64; SLOTS]>,
    hists: Box<[Option<Box<Histogram>>; SLOTS]>,
    used: usize,
    /// The slot of the last key: a guest often repeats an access.
    last: usize,
    other: Histogram,
}

impl Default for ExitStats {
    fn default() -> Self {
        ExitStats {
            keys: Box::new([u64::MAX; SLOTS]),
            hists: Box::new(std::array::from_fn(|_| None)),
            used: 0,
            last: 0,
            other: Histogram::default(),
        }
    }
}

impl ExitStats {
    /// The histogram of `key`, created on first use; `None` once the
    /// table holds [`MAX_KEYS`] keys and `key` is not one of them.
    #[inline]
    fn slot(&mut self, key: u64) -> Option<&mut Histogram> {
        let last = self.last % SLOTS;
        if self.keys[last] == key {
            return self.hists[last].as_deref_mut();
        }
        self.probe(key)
    }

    /// [`ExitStats::slot`] when `key` is not the last one: out of line, so
    /// that the repeated access stays a few instructions.
    #[inline(never)]
    fn probe(&mut self, key: u64) -> Option<&mut Histogram> {
        // Fibonacci hashing; linear probing in a table kept half empty.
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 55) as usize % SLOTS;
        loop {
            let k = self.keys[i];
            if k == key {
                self.last = i;
                return self.hists[i].as_deref_mut();
            }
            if k == u64::MAX {
                if self.used == MAX_KEYS {
                    return None;
                }
                self.keys[i] = key;
                self.hists[i] = Some(Box::default());
                self.used += 1;
                self.last = i;
                return self.hists[i].as_deref_mut();
            }
            i = (i + 1) % SLOTS;
        }
    }

    /// Adds one exit of `ns` nanoseconds.
    #[inline]
    pub fn add(&mut self, kind: ExitKind, addr: u64, ns: u64) {
        let key = (kind as u64) << 62 | (addr & ((1 << 62) - 1));
        match self.slot(key) {
            Some(h) => h.add(ns),
            None => self.other.add(ns),
        }
    }

    /// Adds another vCPU's table.
    pub fn merge(&mut self, other: &ExitStats) {
        for (k, h) in other.entries() {
            match self.slot(k) {
                Some(mine) => mine.merge(h),
                None => self.other.merge(h),
            }
        }
        self.other.merge(&other.other);
    }

    fn entries(&self) -> impl Iterator<Item = (u64, &Histogram)> {
        self.keys
            .iter()
            .zip(self.hists.iter())
            .filter_map(|(k, h)| Some((*k, h.as_deref()?)))
    }

    /// Total exits counted.
    pub fn count(&self) -> u64 {
        self.entries().map(|(_, h)| h.count()).sum::<u64>() + self.other.count()
    }

    /// The rows, named by `decoder` (which must know the machine's BARs),
    /// most frequent first. Accesses to the same device register are one
    /// row (the 16 ports of COM1 are 8 registers).
    pub fn rows(&self, decoder: &mut Decoder) -> Vec<Row> {
        let mut tally = Tally::default();
        for (k, h) in self.entries() {
            let kind = ExitKind::from_bits(k >> 62);
            let (space, write) = match kind {
                ExitKind::PioRead => (Space::Port, false),
                ExitKind::PioWrite => (Space::Port, true),
                ExitKind::MmioRead => (Space::Mmio, false),
                ExitKind::MmioWrite => (Space::Mmio, true),
            };
            let a = Access {
                space,
                write,
                addr: k & ((1 << 62) - 1),
                size: 4,
                value: 0,
            };
            let d = decoder.decode(&a);
            tally.merge(a.kind(), &d.dev, &d.reg, h);
        }
        if self.other.count() > 0 {
            tally.merge("other", "(table full)", "", &self.other);
        }
        tally.rows()
    }
}

/// `1.23 ms` style.
pub fn ns_words(ns: u64) -> String {
    let f = ns as f64;
    if ns >= 1_000_000_000 {
        format!("{:.2} s", f / 1e9)
    } else if ns >= 1_000_000 {
        format!("{:.2} ms", f / 1e6)
    } else if ns >= 1_000 {
        format!("{:.1} us", f / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// Per-device totals: (device, exits, total ns), most exits first.
pub fn by_device(rows: &[Row]) -> Vec<(String, u64, u64)> {
    let mut m: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in rows {
        let e = m.entry(&r.dev).or_default();
        e.0 += r.count;
        e.1 += r.total_ns;
    }
    let mut v: Vec<(String, u64, u64)> =
        m.into_iter().map(|(d, (c, t))| (d.into(), c, t)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The two tables as text: where the exits go (per device), then per
/// register, at most `limit` register rows.
pub fn render(title: &str, rows: &[Row], limit: usize) -> String {
    let total: u64 = rows.iter().map(|r| r.count).sum();
    let mut s = format!("{title}: {total} exits\n");
    s += &format!(
        "  {:<12} {:>8} {:>6} {:>11}  {}\n",
        "device", "exits", "share", "total", "what"
    );
    for (dev, count, ns) in by_device(rows) {
        s += &format!(
            "  {:<12} {:>8} {:>5.1}% {:>11}  {}\n",
            dev,
            count,
            100.0 * count as f64 / total.max(1) as f64,
            ns_words(ns),
            describe_dev(&dev)
        );
    }
    s += &format!(
        "  {:<10} {:<10} {:<16} {:>8} {:>11} {:>10} {:>10}\n",
        "kind", "device", "register", "exits", "total", "median", "p99"
    );
    for r in rows.iter().take(limit) {
        s += &format!(
            "  {:<10} {:<10} {:<16} {:>8} {:>11} {:>10} {:>10}\n",
            r.kind,
            r.dev,
            r.reg,
            r.count,
            ns_words(r.total_ns),
            ns_words(r.median_ns),
            ns_words(r.p99_ns)
        );
    }
    if rows.len() > limit {
        let rest: u64 = rows[limit..].iter().map(|r| r.count).sum();
        s += &format!("  ... {} more rows, {rest} exits\n", rows.len() - limit);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Bdf;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for ns in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            100,
            1000,
            12345,
            1 << 30,
            1 << 40,
        ] {
            let b = bucket(ns);
            assert!(b >= last, "{ns}");
            last = b;
            let v = bucket_value(b);
            assert!(
                v.abs_diff(ns) as f64 <= ns as f64 / 32.0 + 1.0,
                "{ns} -> {v}"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        for ns in 1..=1000u64 {
            h.add(ns * 1000);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.total_ns(), 500_500_000);
        let med = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((med - 500_000.0).abs() < 500_000.0 / 30.0, "{med}");
        assert!((p99 - 990_000.0).abs() < 990_000.0 / 30.0, "{p99}");
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn exit_table_names_rows_and_stays_bounded() {
        let mut s = ExitStats::default();
        for _ in 0..10 {
            s.add(ExitKind::PioWrite, 0x3f8, 2000);
            s.add(ExitKind::PioRead, 0x3fd, 1000);
        }
        s.add(ExitKind::MmioWrite, 0xc000_0008, 50_000);
        // A guest touching thousands of ports fills the table, then "other".
        for p in 0..2000u64 {
            s.add(ExitKind::PioRead, 0x1000 + p, 10);
        }
        assert_eq!(s.count(), 2021);
        let mut d = Decoder::new();
        d.add_edu(Bdf::new(0, 1, 0), 0xc000_0000);
        let rows = s.rows(&mut d);
        let thr = rows.iter().find(|r| r.reg == "THR").unwrap();
        assert_eq!(
            (thr.kind.as_str(), thr.dev.as_str(), thr.count),
            ("pio_write", "COM1", 10)
        );
        assert_eq!(thr.total_ns, 20_000);
        let fact = rows.iter().find(|r| r.reg == "FACTORIAL").unwrap();
        assert_eq!((fact.dev.as_str(), fact.count), ("edu0", 1));
        let other = rows.iter().find(|r| r.kind == "other").unwrap();
        assert_eq!(other.count, 2000 - (MAX_KEYS as u64 - 3));
        let text = render("edu-vmm exits", &rows, 5);
        assert!(text.starts_with("edu-vmm exits: 2021 exits\n"), "{text}");
        assert!(text.contains("COM1"), "{text}");
        assert!(text.contains("more rows"), "{text}");
    }

    #[test]
    fn merged_tables_add_up() {
        let mut a = ExitStats::default();
        let mut b = ExitStats::default();
        a.add(ExitKind::PioWrite, 0x3f8, 100);
        b.add(ExitKind::PioWrite, 0x3f8, 300);
        b.add(ExitKind::MmioRead, 0xc000_0000, 7);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        let rows = a.rows(&mut Decoder::new());
        let thr = rows.iter().find(|r| r.reg == "THR").unwrap();
        assert_eq!((thr.count, thr.total_ns), (2, 400));
    }

    #[test]
    fn tally_groups_by_key() {
        let mut t = Tally::default();
        t.add("mmio_write", "edu0", "FACTORIAL", 10);
        t.add("mmio_write", "edu0", "FACTORIAL", 30);
        t.add("pio_write", "COM1", "THR", 5);
        let rows = t.rows();
        assert_eq!(rows[0].count, 2);
        assert_eq!(rows[0].total_ns, 40);
        assert_eq!(by_device(&rows)[0], ("edu0".to_string(), 2, 40));
        assert_eq!(ns_words(1_500_000), "1.50 ms");
        assert_eq!(ns_words(999), "999 ns");
    }
}
