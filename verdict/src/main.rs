//! `edu-verdict`: judge a guest's console log on the host.
//!
//! ```text
//! edu-verdict selftest --log LOG --list LIST [--skip NAME]...
//! ```
//!
//! Takes the framed document `selftest` (what `frame selftest` printed in
//! the guest) out of the console log LOG, reads it as `edu-test --json selftest`'s report, and checks it
//! against LIST (the output of `edu-test selftest --list`) and the cases
//! expected to be skipped. Prints one line per finding, or one summary line;
//! exits 0 when the run is exactly as expected, 1 when it is not, 2 when the
//! files or the expectations are unusable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thiserror::Error;

use edu_verdict::frame::{self, FrameError};
use edu_verdict::selftest::{self, ExpectError, ReportError};

/// Judges guest console logs for scripts/test.
#[derive(Parser, Debug)]
#[command(name = "edu-verdict")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check an `edu-test --json selftest` report framed in a console log
    Selftest {
        /// The guest's console log
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        /// The output of `edu-test selftest --list`
        #[arg(long, value_name = "FILE")]
        list: PathBuf,
        /// A case this run must skip (repeatable); every other must pass
        #[arg(long = "skip", value_name = "NAME")]
        skips: Vec<String>,
    },
}

/// Why no verdict could be reached (exit 2).
#[derive(Debug, Error)]
enum UsageError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The expectations are wrong.
    #[error(transparent)]
    Expect(#[from] ExpectError),
}

/// Why the run fails (exit 1).
#[derive(Debug, Error)]
enum RunError {
    /// The document could not be taken out of the log.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The document is not a usable report.
    #[error(transparent)]
    Report(#[from] ReportError),
}

fn read(path: &Path) -> Result<String, UsageError> {
    let bytes = std::fs::read(path).map_err(|source| UsageError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The findings of one selftest run (empty: as expected), or why the run
/// could not be judged.
fn judge(log: &str, expected: &selftest::Expected) -> Result<Vec<String>, RunError> {
    let doc = frame::extract(log, "selftest")?;
    let report = selftest::parse(&doc.text)?;
    let found = selftest::findings(&report, doc.status, expected);
    if found.is_empty() {
        println!(
            "selftest: {} passed, {} skipped as expected",
            report.passed, report.skipped
        );
    }
    Ok(found.iter().map(ToString::to_string).collect())
}

fn main() -> ExitCode {
    let Command::Selftest { log, list, skips } = Cli::parse().command;
    let inputs = read(&log).and_then(|log| {
        let expected = selftest::Expected::new(&read(&list)?, &skips)?;
        Ok((log, expected))
    });
    let (log_text, expected) = match inputs {
        Ok(i) => i,
        Err(e) => {
            eprintln!("edu-verdict: {e}");
            return ExitCode::from(2);
        }
    };
    match judge(&log_text, &expected) {
        Ok(found) if found.is_empty() => ExitCode::SUCCESS,
        Ok(found) => {
            for f in found {
                println!("selftest: {f}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("selftest: {e} (log: {})", log.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_and_valueless_options_are_refused() {
        assert!(Cli::try_parse_from(["edu-verdict", "selftest", "--log", "l", "--list"]).is_err());
        assert!(Cli::try_parse_from([
            "edu-verdict",
            "selftest",
            "--log",
            "l",
            "--list",
            "x",
            "--bogus"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["edu-verdict", "selftest", "--list", "x"]).is_err());
    }

    #[test]
    fn a_damaged_document_is_a_failed_run_not_a_pass() {
        let expected = selftest::Expected::new("info x\n", &[]).unwrap();
        let e = judge("no frame here\n", &expected).unwrap_err();
        assert!(matches!(e, RunError::Frame(FrameError::Missing(_))));
    }
}
