//! The clock every edu-vmm event is stamped with: CLOCK_MONOTONIC in
//! nanoseconds, the clock tracefs uses with `trace_clock=mono`, so the
//! VMM's events and KVM's land on one timeline without adjustment.

/// CLOCK_MONOTONIC now, in nanoseconds. Inlined: every exit edu-vmm
/// handles reads it twice.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists, and the call writes nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_in_nanoseconds() {
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = now_ns();
        assert!(b - a >= 2_000_000, "{a} {b}");
        assert!(b - a < 10_000_000_000, "{a} {b}");
    }
}
