//! Step markers for a trace: `edu-test: begin NAME` before each ioctl and
//! `edu-test: end NAME RESULT` after it, written to the guest kernel's
//! `trace_marker`, so that the guest program's steps land on the same
//! timeline as the device accesses they cause (`docs/trace.md`).
//!
//! Only when tracefs is mounted (the guest's init does it for a traced
//! run); otherwise nothing is written and nothing fails.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::OnceLock;

/// Where tracefs puts the marker file.
const TRACE_MARKER: &str = "/sys/kernel/tracing/trace_marker";

fn marker() -> Option<&'static File> {
    static FILE: OnceLock<Option<File>> = OnceLock::new();
    FILE.get_or_init(|| OpenOptions::new().write(true).open(TRACE_MARKER).ok())
        .as_ref()
}

/// Writes one marker line, if tracing is set up. One `write` per marker:
/// tracefs turns each write into one event.
pub fn mark(text: std::fmt::Arguments<'_>) {
    if let Some(mut f) = marker() {
        let _ = f.write_all(format!("edu-test: {text}").as_bytes());
    }
}
