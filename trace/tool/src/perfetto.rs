//! The Chrome trace-event JSON that Perfetto (ui.perfetto.dev) and
//! chrome://tracing open: one process for the run, one thread (track) per
//! layer, complete events (`X`) for exits with a duration, instants (`i`)
//! for the rest; each event's text, device, register and raw fields in
//! its `args`.

use edu_trace::{Event, Layer};
use serde_json::{json, Value};

/// Track id of a layer (its lane order).
fn tid(l: Layer) -> usize {
    Layer::ALL.iter().position(|x| *x == l).unwrap_or(0) + 1
}

/// The trace as a JSON value; times relative to `t0`, in microseconds.
pub fn export(events: &[Event], t0: u64, title: &str) -> Value {
    let mut out: Vec<Value> = vec![json!({
        "ph": "M", "pid": 1, "name": "process_name", "args": {"name": title}
    })];
    for l in Layer::ALL {
        out.push(json!({
            "ph": "M", "pid": 1, "tid": tid(l), "name": "thread_name", "args": {"name": l.name()}
        }));
        out.push(json!({
            "ph": "M", "pid": 1, "tid": tid(l), "name": "thread_sort_index", "args": {"sort_index": tid(l)}
        }));
    }
    for e in events {
        let ts = e.t_ns.saturating_sub(t0) as f64 / 1e3;
        let mut args = serde_json::Map::new();
        args.insert("text".into(), e.text.clone().into());
        args.insert("src".into(), e.src.clone().into());
        if let Some(v) = e.vcpu {
            args.insert("vcpu".into(), v.into());
        }
        if let Some(d) = &e.dev {
            args.insert("dev".into(), d.clone().into());
        }
        if let Some(r) = &e.reg {
            args.insert("reg".into(), r.clone().into());
        }
        for (k, v) in &e.raw {
            args.insert(format!("raw.{k}"), v.clone());
        }
        let name = match (&e.dev, &e.reg) {
            (Some(d), Some(r)) => format!("{d} {r}"),
            _ => e.kind.clone(),
        };
        let mut v = json!({
            "name": name, "cat": e.layer.name(), "pid": 1, "tid": tid(e.layer), "ts": ts, "args": args
        });
        if e.dur_ns > 0 {
            v["ph"] = "X".into();
            v["dur"] = (e.dur_ns as f64 / 1e3).into();
        } else {
            v["ph"] = "i".into();
            v["s"] = "t".into();
        }
        out.push(v);
    }
    json!({ "traceEvents": out, "displayTimeUnit": "ns" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_threads_and_exits_have_durations() {
        let mut a = Event::new(
            2_000,
            Layer::Vmm,
            "edu-vmm",
            "mmio_write",
            "edu0 FACTORIAL <- 0xa",
        );
        a.dur_ns = 500;
        a.dev = Some("edu0".into());
        a.reg = Some("FACTORIAL".into());
        let m = Event::new(1_000, Layer::Guest, "guest", "marker", "edu-test: begin X");
        let v = export(&[m, a], 1_000, "run");
        let evs = v["traceEvents"].as_array().unwrap();
        let names: Vec<&str> = evs
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["guest", "kvm", "vmm", "device", "irq", "dma", "meta"]
        );
        let last = evs.last().unwrap();
        assert_eq!(last["ph"], "X");
        assert_eq!(last["name"], "edu0 FACTORIAL");
        assert_eq!(
            (last["ts"].as_f64(), last["dur"].as_f64()),
            (Some(1.0), Some(0.5))
        );
        assert_eq!(last["tid"], 3);
        let first = &evs[evs.len() - 2];
        assert_eq!(
            (first["ph"].as_str(), first["ts"].as_f64()),
            (Some("i"), Some(0.0))
        );
    }
}
