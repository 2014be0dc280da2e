//! edu-test: drives the edu driver through its char device.
//!
//! Without arguments it runs the lab's flow (`lab.rs`); the subcommands
//! issue one typed ioctl each (`commands.rs`), run the in-guest test suite
//! (`selftest.rs`) or measure the driver (`bench.rs`). Every ioctl goes
//! through the safe wrapper in `device.rs`, which uses the ABI of the
//! `edu-abi` crate, the same file the kernel module compiles.

mod bench;
mod cli;
mod commands;
mod device;
mod errno;
mod json;
mod lab;
mod marker;
mod selftest;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::Failure;
use crate::device::{DevError, Device};
use crate::json::Json;

/// A device error as JSON: where, which operation, which errno.
pub fn error_json(e: &DevError) -> Json {
    Json::obj()
        .with("device", e.path.as_str())
        .with("op", e.op)
        .with("errno", e.errno.0 as u32)
        .with("errno_name", e.errno.name())
        .with("message", e.errno.meaning())
}

/// Reports a failure on stderr (and as JSON on stdout with `--json`).
fn report(failure: &Failure, json: bool) {
    match failure {
        Failure::Dev(e) => {
            eprintln!("edu-test: {e}");
            if json {
                println!("{}", Json::obj().with("error", error_json(e)));
            }
        }
        Failure::Other(msg) => {
            eprintln!("edu-test: {msg}");
            if json {
                println!(
                    "{}",
                    Json::obj().with("error", Json::obj().with("message", msg.as_str()))
                );
            }
        }
    }
}

/// Runs the command. `Ok(false)`: it ran and reported a failure itself.
fn run(cli: Cli) -> Result<bool, Failure> {
    let path = cli.device.unwrap_or_else(device::default_path);
    let json = cli.json;
    let open = || Device::open(&path);
    match cli.command.unwrap_or(Command::Lab) {
        Command::Selftest(args) => return Ok(selftest::run(&path, &args, json)),
        Command::Lab => return Ok(lab::run(&open()?, json)),
        Command::Worker { iters, seed } => return Ok(selftest::worker(&open()?, iters, seed)),
        Command::Info => commands::info(&open()?, json)?,
        Command::Factorial { n } => commands::factorial(&open()?, n, json)?,
        Command::Liveness { value } => commands::liveness(&open()?, value, json)?,
        Command::Raise { value } => commands::raise(&open()?, value, json)?,
        Command::DmaWrite { range, file } => {
            commands::dma_write(&open()?, range.offset, range.length, &file, json)?
        }
        Command::DmaRead { range, file } => {
            commands::dma_read(&open()?, range.offset, range.length, &file, json)?
        }
        Command::Bench(args) => bench::run(&open()?, &args, json)?,
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(f) => {
            report(&f, json);
            ExitCode::FAILURE
        }
    }
}
