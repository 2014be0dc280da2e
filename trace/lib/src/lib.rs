//! edu-trace: one timeline of I/O virtualization.
//!
//! - [`event`]: the one event format (JSON Lines, schema [`event::SCHEMA`]);
//! - [`decode`]: device accesses in a student's words (edu, PCI
//!   configuration, UART, the other PC devices);
//! - [`recorder`]: the bounded recorder a VMM holds (`edu-vmm --trace`);
//! - [`stats`]: exit statistics (count, total, median, p99 per exit kind
//!   and device register), as edu-vmm prints them and the tool reports;
//! - [`clock`]: the clock the VMM stamps events with.
//!
//! The command-line tool (crate `edu-trace-tool`, binary `edu-trace`)
//! converts QEMU's and tracefs' output into the same events, merges and
//! aligns them, and writes the page, the Perfetto JSON and the report.
//! See `docs/trace.md`.

pub mod clock;
pub mod decode;
pub mod event;
pub mod recorder;
pub mod stats;

pub use event::{Event, Layer};
