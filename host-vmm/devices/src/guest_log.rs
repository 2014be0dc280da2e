//! The one rate limit for log lines a guest can cause.
//!
//! A guest decides how often a device model or the VMM fails on its behalf:
//! an out-of-range DMA, an MSI that KVM cannot deliver, a console byte that
//! cannot be written. Logging every one would let it write tens of
//! thousands of lines a second, often while a device lock is held. So every
//! such line goes through [`log`]: the owner of each kind of event keeps
//! its exact count (printed when the VM ends), and the log gets the first
//! [`ALWAYS_LOGGED`] events of the kind, then only those whose number is a
//! power of two (#32, #64, ...), each with its kind and number. 20,000
//! events make 26 lines.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many events of a kind are all logged before the thinning starts.
pub const ALWAYS_LOGGED: u64 = 16;

/// Whether the `n`-th event of a kind (counting from 1) is logged.
pub fn is_logged(n: u64) -> bool {
    n <= ALWAYS_LOGGED || n.is_power_of_two()
}

/// Logs the `n`-th event of the kind `kind` at `level`, if [`is_logged`]
/// says so, as `message (kind #n)`.
pub fn log(n: u64, level: log::Level, kind: &str, message: fmt::Arguments<'_>) {
    if is_logged(n) {
        let thinning = if n == ALWAYS_LOGGED {
            "; from now on only #32, #64, ... are logged"
        } else {
            ""
        };
        log::log!(level, "{message} ({kind} #{n}{thinning})");
    }
}

/// The count of one kind of guest-caused event, for owners that count
/// outside a lock (edu counts under its own lock, in [`crate::EduStats`]).
#[derive(Debug)]
pub struct GuestEvents {
    kind: &'static str,
    count: AtomicU64,
}

impl GuestEvents {
    /// No events yet of the kind `kind` (which names them in the log).
    pub const fn new(kind: &'static str) -> Self {
        GuestEvents {
            kind,
            count: AtomicU64::new(0),
        }
    }

    /// Counts one event and logs it through [`log`].
    pub fn record(&self, level: log::Level, message: fmt::Arguments<'_>) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        log(n, level, self.kind, message);
    }

    /// Events so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sixteen_then_powers_of_two() {
        let logged: Vec<u64> = (1..=20_000).filter(|&n| is_logged(n)).collect();
        let mut want: Vec<u64> = (1..=16).collect();
        want.extend((5..=14).map(|e| 1u64 << e));
        assert_eq!(logged, want);
        assert_eq!(logged.len(), 26);
        assert!(is_logged(1 << 40) && !is_logged((1 << 40) + 1));
    }

    #[test]
    fn events_are_counted_exactly_from_several_threads() {
        let events = std::sync::Arc::new(GuestEvents::new("test event"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let e = events.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        e.record(log::Level::Trace, format_args!("something failed"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(events.count(), 4000);
    }
}
