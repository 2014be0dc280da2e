//! A minimal logger: `edu-vmm: [+SECONDS LEVEL] message` on standard error.
//!
//! Hand-written rather than env_logger: ten lines, no regex engine in a
//! static binary, and the elapsed time since start is what we want to see.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

struct Logger {
    start: Instant,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let t = self.start.elapsed().as_secs_f64();
            let _ = writeln!(
                std::io::stderr().lock(),
                "edu-vmm: [{t:8.3} {:5}] {}",
                r.level(),
                r.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the logger at `level` (later calls only change the level).
pub fn init(level: log::LevelFilter) {
    let l = LOGGER.get_or_init(|| Logger {
        start: Instant::now(),
    });
    let _ = log::set_logger(l);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_filters_records() {
        init(log::LevelFilter::Warn);
        assert!(log::log_enabled!(log::Level::Warn));
        assert!(!log::log_enabled!(log::Level::Info));
        init(log::LevelFilter::Info);
        assert!(log::log_enabled!(log::Level::Info));
    }
}
