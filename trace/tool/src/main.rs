//! `edu-trace`: one timeline of I/O virtualization from edu-vmm's, QEMU's,
//! KVM's and the guest's events (`docs/trace.md`).
//!
//! ```text
//! edu-trace build DIR        # a run directory -> events.jsonl, timeline.html,
//!                            # perfetto.json, stats.json, report.md
//! edu-trace check DIR        # the lab flow's causal chains, at every layer
//! edu-trace convert qemu|kvm|guest FILE
//! edu-trace stats|page|perfetto EVENTS.jsonl
//! ```

mod align;
mod check;
mod console;
mod lab;
mod page;
mod perfetto;
mod qemu;
mod report;
mod run;
mod tally;
mod tracefs;

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use edu_trace::event::{read_events, write_events};
use edu_trace::stats::render;
use edu_trace::Event;

/// Convert, merge, align, count and show I/O virtualization traces.
#[derive(Debug, Parser)]
#[command(name = "edu-trace", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// QEMU's `-trace` log (`-msg timestamp=on`).
    Qemu,
    /// A KVM host's tracefs text (kvm:* events).
    Kvm,
    /// A guest's tracefs text (irq handlers, trace_marker).
    Guest,
    /// A console log with a guest trace block.
    Console,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything from a run directory (`scripts/run-guest --trace DIR`):
    /// events.jsonl, timeline.html, perfetto.json, stats.json, report.md.
    Build {
        /// The run directory.
        dir: PathBuf,
    },
    /// Checks a traced lab run: each command's causal chain in order at
    /// every traced layer, clocks aligned, nothing dropped.
    Check {
        /// The run directory (after `build`, or raw).
        dir: PathBuf,
        /// Sources that must be present (e.g. `guest,kvm`).
        #[arg(long, value_delimiter = ',')]
        require: Vec<String>,
    },
    /// Converts one source into events (JSON Lines on standard output).
    Convert {
        /// What the file is.
        format: Format,
        /// The file.
        file: PathBuf,
    },
    /// The exit statistics of an events file.
    Stats {
        /// Events (JSON Lines).
        events: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// The timeline page of an events file.
    Page {
        /// Events (JSON Lines).
        events: PathBuf,
        /// Output HTML file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// How many events the run's page shows in view: all, or those of one
    /// command (`--cmd FACTORIAL_CMD`, the view of `timeline.html#cmd=...`).
    InView {
        /// The run directory (after `build`).
        dir: PathBuf,
        /// A command marked by edu-test or init.
        #[arg(long)]
        cmd: Option<String>,
    },
    /// The Chrome trace-event (Perfetto) JSON of an events file.
    Perfetto {
        /// Events (JSON Lines).
        events: PathBuf,
        /// Output JSON file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn read_text(p: &Path) -> Result<String, String> {
    fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn load_events(p: &Path) -> Result<Vec<Event>, String> {
    let f = fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut v = read_events(BufReader::new(f)).map_err(|e| format!("{}: {e}", p.display()))?;
    v.sort_by_key(|e| e.t_ns);
    Ok(v)
}

fn write(p: &Path, content: &[u8]) -> Result<(), String> {
    fs::write(p, content).map_err(|e| format!("{}: {e}", p.display()))
}

fn build(dir: &Path) -> Result<run::Run, String> {
    let run = run::Run::load(dir).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    write_events(&mut buf, &run.events).map_err(|e| e.to_string())?;
    write(&dir.join("events.jsonl"), &buf)?;
    let title = format!("edu-trace: {}", run.vmm_name());
    let t0 = run.t0();
    write(
        &dir.join("timeline.html"),
        page::render(&run.events, t0, &title).as_bytes(),
    )?;
    write(
        &dir.join("perfetto.json"),
        perfetto::export(&run.events, t0, &title)
            .to_string()
            .as_bytes(),
    )?;
    let (rows, timing) = tally::access_rows(&run.events, &run.events);
    let stats = serde_json::json!({
        "vmm": run.vmm_name(),
        "timing": timing.words(),
        "accesses": rows,
        "kvm_exits": tally::kvm_rows(&run.events),
    });
    write(&dir.join("stats.json"), stats.to_string().as_bytes())?;
    write(&dir.join("report.md"), report::render(&run).as_bytes())?;
    Ok(run)
}

fn main_result(cli: Cli) -> Result<bool, String> {
    match cli.command {
        Command::Build { dir } => {
            let run = build(&dir)?;
            println!(
                "{}: {} events from {}; wrote events.jsonl, timeline.html, perfetto.json, stats.json, report.md",
                dir.display(),
                run.events.len(),
                run.sources.join(", ")
            );
            for n in &run.notes {
                println!("note: {n}");
            }
        }
        Command::Check { dir, require } => {
            let run = run::Run::load(&dir).map_err(|e| e.to_string())?;
            let (ok, text) = check::check(&run, &require);
            print!("{text}");
            return Ok(ok);
        }
        Command::Convert { format, file } => {
            let text = read_text(&file)?;
            let events = match format {
                Format::Qemu => qemu::convert(&text),
                Format::Kvm => tracefs::convert(&text, tracefs::kvm_event),
                Format::Guest => tracefs::convert(&text, tracefs::guest_event),
                Format::Console => {
                    let t = console::extract(&text, "guest").map_err(|e| e.to_string())?;
                    tracefs::convert(&t, tracefs::guest_event)
                }
            };
            write_events(std::io::stdout().lock(), &events).map_err(|e| e.to_string())?;
        }
        Command::Stats { events, json } => {
            let ev = load_events(&events)?;
            let (rows, timing) = tally::access_rows(&ev, &ev);
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "timing": timing.words(), "accesses": rows })
                );
            } else {
                print!(
                    "{}",
                    render(
                        &format!("{} ({})", events.display(), timing.words()),
                        &rows,
                        40
                    )
                );
            }
        }
        Command::Page { events, output } => {
            let ev = load_events(&events)?;
            let title = format!("edu-trace: {}", events.display());
            write(&output, page::render(&ev, run::t0(&ev), &title).as_bytes())?;
            println!(
                "{}: {} events drawn",
                output.display(),
                page::drawn(&ev).count()
            );
        }
        Command::InView { dir, cmd } => {
            let ev = load_events(&dir.join("events.jsonl"))?;
            match page::in_view(&ev, cmd.as_deref()) {
                Some(n) => println!("{n}"),
                None => {
                    return Err(format!(
                        "{}: no command {cmd:?} in the trace",
                        dir.display()
                    ))
                }
            }
        }
        Command::Perfetto { events, output } => {
            let ev = load_events(&events)?;
            let title = events.display().to_string();
            write(
                &output,
                perfetto::export(&ev, run::t0(&ev), &title)
                    .to_string()
                    .as_bytes(),
            )?;
        }
    }
    Ok(true)
}

fn main() -> ExitCode {
    match main_result(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("edu-trace: {e}");
            ExitCode::FAILURE
        }
    }
}
