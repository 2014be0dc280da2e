//! Verdicts on guest console logs, for `scripts/test`.
//!
//! A guest prints what the host must judge as framed documents ([`frame`]);
//! [`selftest`] holds edu-test's selftest report against the cases the run
//! had to show.

pub mod frame;
pub mod selftest;
