//! edu-test: drives the edu driver through its char device.
//!
//! Without arguments it runs the lab's flow (`lab.rs`); the subcommands
//! issue one typed ioctl each (`commands.rs`), run the in-guest test suite
//! (`selftest.rs`) or measure the driver (`bench.rs`). Every ioctl goes
//! through the safe wrapper in `device.rs`, which uses the ABI of the
//! `edu-abi` crate, the same file the kernel module compiles. With `--json`
//! every invocation prints exactly one document (`output.rs`).

mod bench;
mod cli;
mod commands;
mod device;
mod errno;
mod hardening;
mod lab;
mod marker;
mod output;
mod selftest;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::device::Device;
use crate::output::{Doc, Failure, Fields, Outcome};

/// Runs the command. Arguments are checked (and input read) before the
/// device is opened, so a usage error never touches the device.
fn run(path: &str, command: Command, json: bool) -> Result<Outcome, Failure> {
    let open = || Device::open(path);
    Ok(match command {
        Command::Selftest(args) => selftest::run(path, &args, json)?,
        Command::SelftestCase { name, opts } => selftest::run_one(path, &name, &opts, json)?,
        Command::Lab => lab::run(&open()?, json),
        Command::Worker { iters, seed } => selftest::worker(&open()?, iters, seed),
        Command::Hardening(cmd) => {
            if hardening::run(path, &cmd) {
                Outcome::ok(Fields::new())
            } else {
                Failure::Check("a hardening check failed (lines above)".into()).into()
            }
        }
        Command::Info => commands::info(&open()?, json)?,
        Command::Factorial { n } => commands::factorial(&open()?, n, json)?,
        Command::Liveness { value } => commands::liveness(&open()?, value, json)?,
        Command::Raise { value } => commands::raise(&open()?, value, json)?,
        Command::DmaWrite { range, file } => {
            let (offset, data) = commands::dma_write_input(&range, &file)?;
            commands::dma_write(&open()?, offset, &data, json)?
        }
        Command::DmaRead { range, file } => {
            let (offset, len) = commands::dma_range(range.offset, range.length, u64::MAX)
                .map_err(Failure::Usage)?;
            commands::dma_read(&open()?, offset, len, &file, json)?
        }
        Command::Bench(args) => bench::run(&open()?, &args, json)?,
    })
}

/// What a command line that clap refused would have run: whether `--json`
/// was given and the subcommand's name as typed (`lab` when there is none),
/// found without clap so that even a refused command line gets its document.
fn scan(args: &[String]) -> (bool, String) {
    let mut json = false;
    let mut command = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--device" => {
                it.next();
            }
            "--" => break,
            s if s.starts_with('-') => {}
            s if command.is_none() => command = Some(s.to_string()),
            _ => {}
        }
    }
    (json, command.unwrap_or_else(|| "lab".into()))
}

/// Prints the outcome: one JSON document with `--json`, else the failure on
/// stderr (text output was printed by the command itself).
fn finish(command: &str, outcome: Outcome, json: bool) -> ExitCode {
    if let Some(f) = &outcome.failure {
        eprintln!("edu-test: {f}");
    }
    if json {
        println!("{}", Doc::new(command, &outcome));
    }
    ExitCode::from(outcome.failure.as_ref().map_or(0, Failure::exit_status))
}

fn main() -> ExitCode {
    // Like every Unix tool: a closed pipe on stdout ends the process by
    // SIGPIPE, quietly, instead of a panic in println!.
    // SAFETY: setting a signal's disposition to the default has no
    // preconditions; no handler of ours is replaced.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let (json, command) = scan(&args);
            let usage = e.use_stderr();
            if !json {
                let _ = e.print();
                return ExitCode::from(if usage { 2 } else { 0 });
            }
            let text = e.render().to_string();
            return if usage {
                finish(
                    &command,
                    Failure::Usage(text.trim().to_string()).into(),
                    true,
                )
            } else {
                // --help or --version: the text, inside the document.
                let mut fields = Fields::new();
                fields.insert("text".into(), text.into());
                finish(&command, Outcome::ok(fields), true)
            };
        }
    };
    let command = cli.command.unwrap_or(Command::Lab);
    let name = command.name();
    let path = cli.device.unwrap_or_else(device::default_path);
    let outcome = run(&path, command, cli.json).unwrap_or_else(Outcome::from);
    let _ = std::io::stdout().flush();
    finish(name, outcome, cli.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_of(args: &[&str]) -> (bool, String) {
        let v: Vec<String> = std::iter::once("edu-test")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        scan(&v)
    }

    #[test]
    fn refused_command_lines_still_name_their_command() {
        assert_eq!(
            scan_of(&["--json", "factorial", "x"]),
            (true, "factorial".into())
        );
        assert_eq!(
            scan_of(&["--device", "raise", "raise"]),
            (false, "raise".into())
        );
        assert_eq!(
            scan_of(&["dma-read", "--offset", "9999", "--json"]).1,
            "dma-read"
        );
        assert_eq!(scan_of(&["--json"]), (true, "lab".into()));
        assert_eq!(scan_of(&["--json", "frobnicate"]).1, "frobnicate");
    }
}
