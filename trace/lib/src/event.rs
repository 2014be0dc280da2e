//! The one event format: JSON Lines, one [`Event`] per line.
//!
//! Every producer writes it: edu-vmm's recorder directly, and the tool's
//! converters for QEMU's trace log, tracefs text (KVM's and the guest's
//! events) and the guest's markers. A file starts with a `meta`
//! `trace_start` event that names the schema, the source and its clock;
//! a recorder that hit a cap ends it with a `meta` `dropped` event.
//!
//! ```text
//! {"t_ns":8123456789,"dur_ns":5321,"layer":"vmm","src":"edu-vmm","vcpu":0,"kind":"mmio_write",
//!  "dev":"edu0","reg":"FACTORIAL","raw":{"addr":3221225480,"size":4,"value":10},
//!  "text":"edu0 FACTORIAL <- 0xa: start 10!"}
//! ```

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Version of the format; bumped when a field changes meaning.
pub const SCHEMA: u32 = 1;

/// Where an event happened: one lane of the timeline each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The guest: its program's steps (markers) and its kernel's interrupt
    /// handlers.
    Guest,
    /// The hypervisor kernel: KVM's exits, entries and emulation.
    Kvm,
    /// The VMM's user space: each port or MMIO exit it handled, decoded by
    /// the device that took it.
    Vmm,
    /// A device's own work off the vCPU: a factorial finishing, a BAR
    /// being mapped, the interrupt status changing.
    Device,
    /// Interrupts on their way: MSI messages, INTx levels, injection.
    Irq,
    /// DMA transfers: start and completion.
    Dma,
    /// About the trace itself: its start, clock, dropped events.
    Meta,
}

impl Layer {
    /// Every layer, in lane order.
    pub const ALL: [Layer; 7] = [
        Layer::Guest,
        Layer::Kvm,
        Layer::Vmm,
        Layer::Device,
        Layer::Irq,
        Layer::Dma,
        Layer::Meta,
    ];

    /// The name used in the files.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Guest => "guest",
            Layer::Kvm => "kvm",
            Layer::Vmm => "vmm",
            Layer::Device => "device",
            Layer::Irq => "irq",
            Layer::Dma => "dma",
            Layer::Meta => "meta",
        }
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Time in nanoseconds on the file's clock (after merging: on the
    /// reference clock of the run).
    pub t_ns: u64,
    /// How long it took (an exit's handling time), 0 for an instant.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dur_ns: u64,
    /// The lane.
    pub layer: Layer,
    /// Who produced it: `edu-vmm`, `qemu`, `kvm` (tracefs of the KVM host),
    /// `guest` (the guest's tracefs).
    pub src: String,
    /// The vCPU, where one is involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<u32>,
    /// What happened: `pio_write`, `mmio_read`, `msi`, `dma_done`,
    /// `kvm_exit`, `irq_handler_entry`, `marker`, ...
    pub kind: String,
    /// The device involved (`edu0`, `COM1`, `PCI`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// The device register (`FACTORIAL`, `THR`, `CONFIG_ADDRESS`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reg: Option<String>,
    /// The producer's own fields, unchanged (numbers as numbers).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub raw: Map<String, Value>,
    /// The event in words.
    pub text: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `v` as a JSON string: runs of plain bytes copied at once.
fn json_str(s: &mut String, v: &str) {
    s.push('"');
    let mut start = 0;
    for (i, b) in v.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        s.push_str(&v[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            s.push_str("\\u00");
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        } else {
            s.push_str(esc);
        }
        start = i + 1;
    }
    s.push_str(&v[start..]);
    s.push('"');
}

/// `n` in decimal.
fn push_u64(s: &mut String, n: u64) {
    use std::fmt::Write;
    let _ = write!(s, "{n}");
}

impl Event {
    /// An instant event with no device, register or raw fields.
    pub fn new(t_ns: u64, layer: Layer, src: &str, kind: &str, text: impl Into<String>) -> Self {
        Event {
            t_ns,
            dur_ns: 0,
            layer,
            src: src.to_string(),
            vcpu: None,
            kind: kind.to_string(),
            dev: None,
            reg: None,
            raw: Map::new(),
            text: text.into(),
        }
    }

    /// Sets a raw field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.raw.insert(key.to_string(), value.into());
        self
    }

    /// A raw field as an unsigned number.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.raw.get(key).and_then(Value::as_u64)
    }

    /// A raw field as a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.raw.get(key).and_then(Value::as_str)
    }

    /// The `trace_start` event that opens a file from `src`, whose times
    /// are on `clock` (for example `CLOCK_MONOTONIC`).
    pub fn trace_start(t_ns: u64, src: &str, clock: &str) -> Self {
        Event::new(
            t_ns,
            Layer::Meta,
            src,
            "trace_start",
            format!("{src} trace, schema {SCHEMA}, clock {clock}"),
        )
        .with("schema", SCHEMA)
        .with("clock", clock)
    }

    /// Whether this is a register access handled by a VMM (a port or MMIO
    /// exit).
    pub fn is_access(&self) -> bool {
        self.layer == Layer::Vmm
            && matches!(
                self.kind.as_str(),
                "pio_read" | "pio_write" | "mmio_read" | "mmio_write"
            )
    }

    /// Whether it is a write access.
    pub fn is_write(&self) -> bool {
        self.kind.ends_with("_write")
    }

    /// One JSON line (without the newline), the fields in declaration
    /// order, written directly: a recorder writes one per exit, and serde's
    /// generic map serialisation cost three times as much.
    pub fn to_line(&self) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(96 + self.text.len() + 24 * self.raw.len());
        s.push_str("{\"t_ns\":");
        push_u64(&mut s, self.t_ns);
        if self.dur_ns != 0 {
            s.push_str(",\"dur_ns\":");
            push_u64(&mut s, self.dur_ns);
        }
        s.push_str(",\"layer\":\"");
        s.push_str(self.layer.name());
        s.push_str("\",\"src\":");
        json_str(&mut s, &self.src);
        if let Some(v) = self.vcpu {
            s.push_str(",\"vcpu\":");
            push_u64(&mut s, v.into());
        }
        s.push_str(",\"kind\":");
        json_str(&mut s, &self.kind);
        for (key, v) in [(",\"dev\":", &self.dev), (",\"reg\":", &self.reg)] {
            if let Some(v) = v {
                s.push_str(key);
                json_str(&mut s, v);
            }
        }
        if !self.raw.is_empty() {
            s.push_str(",\"raw\":{");
            for (i, (k, v)) in self.raw.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                json_str(&mut s, k);
                s.push(':');
                match v {
                    Value::String(t) => json_str(&mut s, t),
                    Value::Number(n) if n.is_u64() => push_u64(&mut s, n.as_u64().unwrap_or(0)),
                    // Numbers, booleans, null: serde_json's own text.
                    v => {
                        let _ = write!(s, "{v}");
                    }
                }
            }
            s.push('}');
        }
        s.push_str(",\"text\":");
        json_str(&mut s, &self.text);
        s.push('}');
        s
    }
}

/// Errors reading an event file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("reading line {line}: {source}")]
    Io {
        /// 1-based line number.
        line: usize,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not an event.
    #[error("line {line} is not an event: {source}")]
    Json {
        /// 1-based line number.
        line: usize,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// The file's schema is not one this build understands.
    #[error("schema {found} is not supported (this build reads schema {SCHEMA})")]
    Schema {
        /// The schema the file declares.
        found: u64,
    },
}

/// Reads a JSON Lines event file. Blank lines are skipped; a `trace_start`
/// with another schema is refused.
pub fn read_events(r: impl BufRead) -> Result<Vec<Event>, ReadError> {
    let mut out = Vec::new();
    for (i, line) in r.lines().enumerate() {
        let line = line.map_err(|source| ReadError::Io {
            line: i + 1,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let ev: Event = serde_json::from_str(&line).map_err(|source| ReadError::Json {
            line: i + 1,
            source,
        })?;
        if ev.kind == "trace_start" {
            let found = ev.u64("schema").unwrap_or(0);
            if found != u64::from(SCHEMA) {
                return Err(ReadError::Schema { found });
            }
        }
        out.push(ev);
    }
    Ok(out)
}

/// Writes events as JSON Lines.
pub fn write_events<'a>(
    mut w: impl Write,
    events: impl IntoIterator<Item = &'a Event>,
) -> std::io::Result<()> {
    for e in events {
        writeln!(w, "{}", e.to_line())?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_line() {
        let mut e = Event::new(
            12,
            Layer::Vmm,
            "edu-vmm",
            "mmio_write",
            "edu0 FACTORIAL <- 0xa",
        )
        .with("addr", 0xc000_0008u64)
        .with("size", 4)
        .with("value", 10);
        e.vcpu = Some(0);
        e.dur_ns = 5;
        e.dev = Some("edu0".into());
        e.reg = Some("FACTORIAL".into());
        let line = e.to_line();
        assert!(line.contains(r#""layer":"vmm""#), "{line}");
        assert!(
            line.contains(r#""raw":{"addr":3221225480,"size":4,"value":10}"#),
            "{line}"
        );
        let back = read_events(line.as_bytes()).unwrap();
        assert_eq!(back, vec![e.clone()]);
        assert!(e.is_access() && e.is_write());
        assert_eq!(e.u64("addr"), Some(0xc000_0008));
    }

    #[test]
    fn lines_are_what_serde_writes() {
        let mut e = Event::new(
            u64::MAX,
            Layer::Irq,
            "a\"b",
            "k\\",
            "tab\there\u{1}\n\"q\" é",
        )
        .with("n", 3)
        .with("neg", -4)
        .with("f", 1.5)
        .with("b", true)
        .with("s", "x\"y")
        .with("z", Value::Null);
        e.vcpu = Some(2);
        e.dur_ns = 9;
        e.dev = Some("edu0".into());
        assert_eq!(e.to_line(), serde_json::to_string(&e).unwrap());
        let back: Event = serde_json::from_str(&e.to_line()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn instants_omit_empty_fields() {
        let line = Event::new(1, Layer::Guest, "guest", "marker", "x").to_line();
        assert_eq!(
            line,
            r#"{"t_ns":1,"layer":"guest","src":"guest","kind":"marker","text":"x"}"#
        );
        assert!(!Event::new(1, Layer::Irq, "kvm", "msi", "").is_access());
    }

    #[test]
    fn errors_name_the_line_and_the_schema() {
        let good = Event::trace_start(0, "edu-vmm", "CLOCK_MONOTONIC").to_line();
        let text = format!("{good}\n\nnot json\n");
        let e = read_events(text.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("line 3 is not an event"), "{e}");
        let future = good.replace(r#""schema":1"#, r#""schema":99"#);
        let e = read_events(future.as_bytes()).unwrap_err();
        assert!(matches!(e, ReadError::Schema { found: 99 }), "{e}");
    }
}
