//! Register scripts for the edu device.
//!
//! A register script is a small line-based text program (reads and writes of
//! BAR0 and configuration space with explicit sizes, waits on status bits,
//! sleeps, DMA through a buffer the runner provides). Running one produces a
//! deterministic transcript. The same script runs
//!
//! - inside a Linux guest on QEMU's `-device edu` ([`sysfs`], the
//!   `edu-regscript guest` command), whose transcripts are recorded as
//!   golden files, and
//! - against our edu model in `cargo test` ([`model`]), whose transcripts must
//!   equal the golden files.
//!
//! The format is documented in `docs/regscript.md`.

pub mod corpus;
pub mod exec;
pub mod frame;
pub mod model;
pub mod script;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod sysfs;
