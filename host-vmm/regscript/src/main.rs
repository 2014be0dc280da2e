//! `edu-regscript`: run register scripts on an edu device.
//!
//! In a Linux guest with QEMU's edu (no driver bound), as root:
//!   edu-regscript guest [--list FILE] SCRIPT...   script k on the k-th edu
//!                                                 device, framed for the host
//!   edu-regscript run [--device SYSFS_DIR] SCRIPT plain transcript
//! On the host:
//!   edu-regscript model [--clock manual|thread] SCRIPT...
//!                                                 plain transcript from our model
//!   edu-regscript extract LOG DIR [--note TEXT]   console log -> DIR/NAME.golden
//!   edu-regscript compare LOG DIR [--timing-sensitive skip]
//!                                                 console log vs DIR/NAME.golden
//!
//! See docs/regscript.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use edu_regscript::corpus::{self, golden_text, parse_transcript};
use edu_regscript::exec;
use edu_regscript::frame;
use edu_regscript::model::ModelTarget;

const USAGE: &str = "usage:
  edu-regscript guest [--list FILE] SCRIPT...    (in the guest) script k on the k-th edu device
  edu-regscript run [--device SYSFS_DIR] SCRIPT  (in the guest) plain transcript
  edu-regscript model [--clock manual|thread] SCRIPT...
                                                 transcript from our edu model
  edu-regscript extract LOG DIR [--note TEXT]... console log -> DIR/NAME.golden
  edu-regscript compare LOG DIR [--timing-sensitive skip]
                                                 console log vs DIR/NAME.golden";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("guest") => guest(&args[1..]),
        Some("run") => run_one(&args[1..]),
        Some("model") => model(&args[1..]),
        Some("extract") => extract(&args[1..]),
        Some("compare") => compare(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(true)
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(msg) => {
            eprintln!("edu-regscript: {msg}");
            ExitCode::from(2)
        }
    }
}

fn load(path: &str) -> Result<corpus::Entry, String> {
    corpus::load_script(Path::new(path)).map_err(|e| e.to_string())
}

/// Positional arguments and `--name value` options.
type Parsed = (Vec<String>, Vec<(String, String)>);

/// Positional arguments (plus, with `--list FILE`, one a line from FILE)
/// and the other `--name value` options.
fn script_args(args: &[String]) -> Result<Parsed, String> {
    let mut paths = Vec::new();
    let mut opts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(opt) = a.strip_prefix("--") {
            let v = it.next().ok_or(format!("--{opt} needs a value"))?;
            if opt == "list" {
                let text = std::fs::read_to_string(v).map_err(|e| format!("{v}: {e}"))?;
                paths.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            } else {
                opts.push((opt.to_string(), v.clone()));
            }
        } else {
            paths.push(a.clone());
        }
    }
    Ok((paths, opts))
}

fn print_transcript(lines: &[String]) {
    for l in lines {
        println!("{l}");
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn guest(args: &[String]) -> Result<bool, String> {
    use edu_regscript::sysfs::{find_edu_devices, SysfsTarget};
    let (paths, opts) = script_args(args)?;
    if let Some((o, _)) = opts.first() {
        return Err(format!("guest: unknown option --{o}"));
    }
    let root = Path::new("/sys/bus/pci/devices");
    let devices = find_edu_devices(root).map_err(|e| e.to_string())?;
    if devices.len() < paths.len() {
        return Err(format!(
            "{} scripts but {} edu devices: each script needs a fresh device",
            paths.len(),
            devices.len()
        ));
    }
    let mut all_ok = true;
    for (path, dev) in paths.iter().zip(&devices) {
        let name = Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.clone());
        let text = match load(path) {
            Ok(entry) => match SysfsTarget::open(dev) {
                Ok(mut t) => match exec::run(&entry.script, &mut t) {
                    Ok(lines) => frame::frame(&name, &lines),
                    Err((partial, e)) => frame::frame_failure(&name, &partial, &e.to_string()),
                },
                Err(e) => frame::frame_failure(&name, &[], &e.to_string()),
            },
            Err(e) => frame::frame_failure(&name, &[], &e),
        };
        all_ok &= !text.contains("@@regscript fail ");
        print!("{text}");
    }
    Ok(all_ok)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn run_one(args: &[String]) -> Result<bool, String> {
    use edu_regscript::sysfs::{find_edu_devices, SysfsTarget};
    let (paths, opts) = script_args(args)?;
    let [path] = paths.as_slice() else {
        return Err("run: give exactly one script".into());
    };
    let dev = match opts.as_slice() {
        [(o, d)] if o == "device" => PathBuf::from(d),
        [] => find_edu_devices(Path::new("/sys/bus/pci/devices"))
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or("no edu device")?,
        _ => return Err("run: only --device is known".into()),
    };
    let entry = load(path)?;
    let mut t = SysfsTarget::open(&dev).map_err(|e| e.to_string())?;
    match exec::run(&entry.script, &mut t) {
        Ok(lines) => {
            print_transcript(&lines);
            Ok(true)
        }
        Err((partial, e)) => {
            print_transcript(&partial);
            Err(e.to_string())
        }
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn guest(_: &[String]) -> Result<bool, String> {
    Err("the guest runner needs Linux on x86_64".into())
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn run_one(_: &[String]) -> Result<bool, String> {
    Err("the guest runner needs Linux on x86_64".into())
}

fn model(args: &[String]) -> Result<bool, String> {
    use edu_devices::edu::{EduClock, EduConfig, RejectedRead};
    let (paths, opts) = script_args(args)?;
    let mut config = EduConfig {
        clock: EduClock::Manual,
        rejected_read: RejectedRead::Zero,
        ..EduConfig::default()
    };
    for (o, v) in &opts {
        match (o.as_str(), v.as_str()) {
            ("clock", "manual") => config.clock = EduClock::Manual,
            ("clock", "thread") => config.clock = EduClock::Thread,
            _ => return Err(format!("model: unknown option --{o} {v}")),
        }
    }
    for path in &paths {
        let entry = load(path)?;
        let mut t = ModelTarget::with_config(config).map_err(|e| e.to_string())?;
        match exec::run(&entry.script, &mut t) {
            Ok(lines) => print_transcript(&lines),
            Err((partial, e)) => {
                print_transcript(&partial);
                return Err(format!("{path}: {e}"));
            }
        }
    }
    Ok(true)
}

fn read_log(path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Scripts in `dir` that run on QEMU (no `# model-only:` header) but are
/// missing from the console log.
fn missing_from_log(
    dir: &str,
    found: &std::collections::BTreeMap<String, Result<Vec<String>, frame::FrameError>>,
    skip_timing: bool,
) -> Result<Vec<String>, String> {
    let entries = corpus::load_dir(Path::new(dir)).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .filter(|e| e.script.model_only.is_none() && !found.contains_key(&e.name))
        .filter(|e| !(skip_timing && e.script.timing_sensitive.is_some()))
        .map(|e| e.name)
        .collect())
}

fn extract(args: &[String]) -> Result<bool, String> {
    let (pos, opts) = script_args(args)?;
    let [log, dir] = pos.as_slice() else {
        return Err("extract LOG DIR [--note TEXT]...".into());
    };
    let notes: Vec<String> = opts
        .into_iter()
        .filter(|(o, _)| o == "note")
        .map(|(_, v)| v)
        .collect();
    let found = frame::extract(&read_log(log)?);
    let missing = missing_from_log(dir, &found, false)?;
    let mut ok = missing.is_empty();
    for name in missing {
        eprintln!("NOT recorded: {name}: not in the console log");
    }
    for (name, result) in found {
        match result {
            Ok(lines) => {
                let path = Path::new(dir).join(format!("{name}.{}", corpus::GOLDEN_EXT));
                std::fs::write(&path, golden_text(&notes, &lines))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                println!("recorded {} ({} lines)", path.display(), lines.len());
            }
            Err(e) => {
                eprintln!("NOT recorded: {e}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

fn compare(args: &[String]) -> Result<bool, String> {
    let (pos, opts) = script_args(args)?;
    let [log, dir] = pos.as_slice() else {
        return Err("compare LOG DIR [--timing-sensitive skip]".into());
    };
    let skip_timing = match opts.as_slice() {
        [] => false,
        [(o, v)] if o == "timing-sensitive" && v == "skip" => true,
        _ => return Err("compare: only --timing-sensitive skip is known".into()),
    };
    let found = frame::extract(&read_log(log)?);
    let missing = missing_from_log(dir, &found, skip_timing)?;
    let mut ok = missing.is_empty();
    for name in missing {
        println!("FAIL {name}: not in the console log");
    }
    let total = found.len();
    let mut passed = 0;
    for (name, result) in found {
        let golden = Path::new(dir).join(format!("{name}.{}", corpus::GOLDEN_EXT));
        let lines = match result {
            Ok(lines) => lines,
            Err(e) => {
                println!("FAIL {name}: {e}");
                ok = false;
                continue;
            }
        };
        let expected = match std::fs::read_to_string(&golden) {
            Ok(t) => parse_transcript(&t),
            Err(e) => {
                println!("FAIL {name}: {}: {e}", golden.display());
                ok = false;
                continue;
            }
        };
        let numbered: Vec<(usize, String)> = lines.into_iter().map(|l| (0, l)).collect();
        match corpus::compare(&expected, &numbered) {
            None => {
                println!("ok   {name}");
                passed += 1;
            }
            Some(m) => {
                println!(
                    "FAIL {name}: QEMU no longer reproduces {}: transcript line {}\n  golden: {}\n  qemu:   {}",
                    golden.display(),
                    m.index + 1,
                    m.expected.unwrap_or_else(|| "<end>".into()),
                    m.got.unwrap_or_else(|| "<end>".into())
                );
                ok = false;
            }
        }
    }
    println!("regscript: {passed} passed, {} failed", total - passed);
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("regscript-main-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn arguments_options_and_list_files() {
        let d = temp("args");
        let list = d.join("batch");
        std::fs::write(&list, "/a.regs\n\n  /b.regs \n").unwrap();
        let (paths, opts) = script_args(&s(&[
            "x.regs",
            "--list",
            list.to_str().unwrap(),
            "--note",
            "hi",
        ]))
        .unwrap();
        assert_eq!(paths, s(&["x.regs", "/a.regs", "/b.regs"]));
        assert_eq!(opts, vec![("note".to_string(), "hi".to_string())]);
        assert!(script_args(&s(&["--note"])).is_err());
        assert!(script_args(&s(&["--list", "/nonexistent/list"])).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A corpus of two QEMU scripts and one model-only script, a console
    /// log, and extract then compare over it.
    #[test]
    fn extract_then_compare_a_console_log() {
        let d = temp("extract");
        let dir = d.to_str().unwrap().to_string();
        std::fs::write(d.join("a.regs"), "echo a\n").unwrap();
        std::fs::write(d.join("b.regs"), "echo b\n").unwrap();
        std::fs::write(d.join("m.regs"), "# model-only: why\necho m\n").unwrap();
        let log = d.join("console.log");
        let both = format!(
            "boot noise\r\n{}{}",
            frame::frame("a", &s(&["echo a"])),
            frame::frame("b", &s(&["echo b"]))
        );
        std::fs::write(&log, &both).unwrap();
        let log = log.to_str().unwrap().to_string();
        assert_eq!(
            extract(&s(&[&log, &dir, "--note", "from a test"])),
            Ok(true)
        );
        let golden = std::fs::read_to_string(d.join("a.golden")).unwrap();
        assert_eq!(golden, "# from a test\necho a\n");
        assert!(!d.join("m.golden").exists());
        assert_eq!(compare(&s(&[&log, &dir])), Ok(true));

        // QEMU answering differently, a script missing, a script failing.
        std::fs::write(&log, frame::frame("a", &s(&["echo A"]))).unwrap();
        assert_eq!(compare(&s(&[&log, &dir])), Ok(false));
        assert_eq!(extract(&s(&[&log, &dir])), Ok(false));
        std::fs::write(
            &log,
            format!(
                "{}{}",
                frame::frame("a", &s(&["echo a"])),
                frame::frame_failure("b", &[], "boom")
            ),
        )
        .unwrap();
        assert_eq!(compare(&s(&[&log, &dir])), Ok(false));
        assert!(compare(&s(&[&log])).is_err());
        // A timing-sensitive script may be left out only when asked.
        std::fs::write(d.join("t.regs"), "# timing-sensitive: slow\necho t\n").unwrap();
        std::fs::write(d.join("t.golden"), "echo t\n").unwrap();
        std::fs::write(&log, &both).unwrap();
        // (The failed extract above still recorded the intact "echo A".)
        std::fs::write(d.join("a.golden"), "echo a\n").unwrap();
        assert_eq!(compare(&s(&[&log, &dir])), Ok(false));
        let skip = ["--timing-sensitive", "skip"];
        assert_eq!(compare(&s(&[&log, &dir, skip[0], skip[1]])), Ok(true));
        assert!(compare(&s(&[&log, &dir, "--bogus", "x"])).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn model_command_runs_scripts() {
        let d = temp("model");
        let p = d.join("x.regs");
        std::fs::write(&p, "read bar0 4 0\n").unwrap();
        assert_eq!(model(&s(&[p.to_str().unwrap()])), Ok(true));
        std::fs::write(&p, "write cfg 4 0 @undefined\n").unwrap();
        assert!(model(&s(&[p.to_str().unwrap()])).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
