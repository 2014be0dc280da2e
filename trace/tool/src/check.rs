//! `edu-trace check`: does a traced lab run show what the lab is about?
//! Every lab command present and successful, its causal chain in order at
//! every layer the run traced, the clocks aligned without ambiguity, and
//! nothing dropped. Prints one line per finding; the caller fails on any
//! `FAIL`.

use std::fmt::Write;

use crate::lab;
use crate::report::guest_error;
use crate::run::Run;

/// The findings, and whether all passed.
pub fn check(run: &Run, require: &[String]) -> (bool, String) {
    let mut out = String::new();
    let mut ok = true;
    let mut say = |pass: bool, what: String| {
        ok &= pass;
        let _ = writeln!(out, "{} {what}", if pass { "ok  " } else { "FAIL" });
    };
    for src in require {
        say(
            run.has(src),
            format!(
                "the run has {src} events (sources: {})",
                run.sources.join(", ")
            ),
        );
    }
    for n in &run.notes {
        say(false, format!("note: {n}"));
    }
    for c in &run.clocks {
        match &c.alignment {
            Some(a) => say(
                !a.ambiguous && a.agreeing * 10 >= a.total * 9 && c.applied,
                format!("{} clock: {}", c.src, crate::align::words(a)),
            ),
            None => say(
                false,
                format!("{} clock: no causal constraints found", c.src),
            ),
        }
    }
    let commands = lab::commands(&run.events);
    let margin = guest_error(run);
    for name in lab::COMMANDS {
        let Some(c) = commands.iter().find(|c| c.name == name) else {
            say(false, format!("{name}: no begin/end markers from edu-test"));
            continue;
        };
        say(
            c.result == "ok",
            format!("{name}: edu-test says {}", c.result),
        );
        let ev = lab::window(run, c, margin);
        let chain = lab::chain(name);
        let found = lab::find_chain(ev, &chain);
        let mut layers: Vec<&str> = Vec::new();
        let mut missing = Vec::new();
        let mut required = 0;
        for (s, f) in chain.iter().zip(&found) {
            if !lab::traced(run, s) {
                continue;
            }
            required += 1;
            match f {
                Some(_) => {
                    if !layers.contains(&s.layer.name()) {
                        layers.push(s.layer.name());
                    }
                }
                None => missing.push(s.what),
            }
        }
        if missing.is_empty() {
            say(
                true,
                format!(
                    "{name}: {required} of {required} steps in order ({})",
                    layers.join(", ")
                ),
            );
        } else {
            say(
                false,
                format!(
                    "{name}: {} of {required} steps in order; missing or out of order: {}",
                    required - missing.len(),
                    missing.join("; ")
                ),
            );
        }
    }
    (ok, out)
}
