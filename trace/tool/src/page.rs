//! The timeline page: `page.html` (inline CSS and JavaScript, no network)
//! with the run's events embedded as JSON. Lanes: guest, KVM, VMM,
//! device, interrupts, DMA. The page reports what it drew in
//! `document.title` and in `#status`'s data attributes, which the browser
//! test reads.

use std::collections::HashMap;

use edu_trace::{Event, Layer};
use serde_json::{json, Value};

use crate::lab;

const TEMPLATE: &str = include_str!("page.html");

/// The lanes, in order (meta events are not drawn).
pub const LANES: [Layer; 6] = [
    Layer::Guest,
    Layer::Kvm,
    Layer::Vmm,
    Layer::Device,
    Layer::Irq,
    Layer::Dma,
];

/// Interns strings into a table.
#[derive(Default)]
struct Strings {
    index: HashMap<String, usize>,
    list: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> usize {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), self.list.len() - 1);
        self.list.len() - 1
    }
}

/// The drawn events: every event of a lane.
pub fn drawn(events: &[Event]) -> impl Iterator<Item = &Event> {
    events.iter().filter(|e| LANES.contains(&e.layer))
}

/// How many events the page shows in view: all of them, or those of the
/// command `cmd` when the page opens at `#cmd=NAME` (an event is in view
/// when it reaches into the command's stretch between its markers).
pub fn in_view(events: &[Event], cmd: Option<&str>) -> Option<usize> {
    let Some(name) = cmd else {
        return Some(drawn(events).count());
    };
    let c = lab::commands(events).into_iter().find(|c| c.name == name)?;
    let (t0, t1) = (events[c.begin].t_ns, events[c.end].t_ns);
    Some(
        drawn(events)
            .filter(|e| e.t_ns + e.dur_ns >= t0 && e.t_ns <= t1)
            .count(),
    )
}

/// The page's data: times relative to `t0`.
pub fn data(events: &[Event], t0: u64, title: &str) -> Value {
    let mut s = Strings::default();
    s.id("");
    let lane = |l: Layer| LANES.iter().position(|x| *x == l).unwrap_or(0);
    let rows: Vec<Value> = drawn(events)
        .map(|e| {
            json!([
                e.t_ns.saturating_sub(t0),
                e.dur_ns,
                lane(e.layer),
                e.vcpu.map_or(-1, i64::from),
                s.id(&e.src),
                s.id(&e.kind),
                s.id(e.dev.as_deref().unwrap_or("")),
                s.id(e.reg.as_deref().unwrap_or("")),
                e.text,
                if e.raw.is_empty() {
                    Value::Null
                } else {
                    Value::Object(e.raw.clone())
                },
            ])
        })
        .collect();
    let commands: Vec<Value> = lab::commands(events)
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "t0": events[c.begin].t_ns.saturating_sub(t0),
                "t1": events[c.end].t_ns.saturating_sub(t0),
            })
        })
        .collect();
    json!({
        "title": title,
        "layers": LANES.iter().map(|l| l.name()).collect::<Vec<_>>(),
        "strings": s.list,
        "commands": commands,
        "events": rows,
    })
}

/// The page for `events`.
pub fn render(events: &[Event], t0: u64, title: &str) -> String {
    // `<` escaped so that no text can close the script element.
    let data = data(events, t0, title).to_string().replace('<', "\\u003c");
    TEMPLATE.replacen("/*DATA*/", &data, 1).replacen(
        "<title>edu-trace</title>",
        &format!("<title>{}</title>", html_escape(title)),
        1,
    )
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_embedded_and_cannot_close_the_script() {
        let mut e = Event::new(1_500, Layer::Vmm, "edu-vmm", "mmio_write", "</script><b>");
        e.dev = Some("edu0".into());
        let m = Event::new(1_000, Layer::Meta, "edu-vmm", "trace_start", "x");
        let page = render(&[m, e], 1_000, "run <1>");
        assert!(page.contains("<title>run &lt;1&gt;</title>"));
        assert!(!page.contains("</script><b>"));
        assert!(page.contains("\\u003c/script>\\u003cb>"));
        let start = page.find("type=\"application/json\">").unwrap() + 24;
        let end = page[start..].find("</script>").unwrap() + start;
        let v: Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(
            v["events"].as_array().unwrap().len(),
            1,
            "meta is not drawn"
        );
        assert_eq!(v["events"][0][0], 500);
        assert_eq!(v["layers"][2], "vmm");
        let s = v["strings"].as_array().unwrap();
        assert_eq!(s[v["events"][0][6].as_u64().unwrap() as usize], "edu0");
    }
}
