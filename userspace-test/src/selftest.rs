//! The in-guest test suite of the whole ABI.
//!
//! Each case prints `ok   NAME`, `FAIL NAME: REASON` or `skip NAME: REASON`
//! as it finishes; the run ends with `N passed, N failed`. Cases run in
//! order, each in its own thread with a time limit, so a hung ioctl is a
//! failure of that case rather than a hung suite. The unbind cases come
//! last: they take the device away from every fd opened before them.

mod cases;
mod kmod;
mod sysfs;

use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cli::SelftestArgs;
use crate::device::{DevError, Device};
use crate::json::Json;

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Fail(String),
    Skip(String),
}

impl From<DevError> for Verdict {
    fn from(e: DevError) -> Self {
        Verdict::Fail(e.to_string())
    }
}

/// What a case returns.
pub type CaseResult = Result<(), Verdict>;

/// Fails with `msg` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(Verdict::Fail(msg()))
    }
}

/// Everything a case may use.
pub struct Ctx {
    /// The node under test; the unbind cases update it after a rebind.
    pub path: Mutex<String>,
    /// An fd opened at the start, shared by the cases.
    pub dev: Device,
    pub threads: u32,
    pub procs: u32,
    pub iters: u32,
    pub no_unbind: bool,
}

impl Ctx {
    pub fn path(&self) -> String {
        self.path.lock().unwrap().clone()
    }
}

/// One test case.
pub struct Case {
    pub name: &'static str,
    /// One line for `--list`.
    pub about: &'static str,
    pub run: fn(&Ctx) -> CaseResult,
    /// Time limit; past it the case fails and the suite goes on.
    pub limit: Duration,
}

/// The outcome of one case as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

impl Outcome {
    fn from_result(r: CaseResult) -> Self {
        match r {
            Ok(()) => Outcome::Pass,
            Err(Verdict::Fail(m)) => Outcome::Fail(m),
            Err(Verdict::Skip(m)) => Outcome::Skip(m),
        }
    }
}

/// `ok   name` / `FAIL name: reason` / `skip name: reason`.
pub struct Line<'a>(pub &'a str, pub &'a Outcome);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Outcome::Pass => write!(f, "ok   {}", self.0),
            Outcome::Fail(r) => write!(f, "FAIL {}: {}", self.0, r),
            Outcome::Skip(r) => write!(f, "skip {}: {}", self.0, r),
        }
    }
}

/// Passed, failed and skipped counts.
pub fn tally(outcomes: &[Outcome]) -> (usize, usize, usize) {
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    (
        count(|o| matches!(o, Outcome::Pass)),
        count(|o| matches!(o, Outcome::Fail(_))),
        count(|o| matches!(o, Outcome::Skip(_))),
    )
}

/// Whether `name` is selected by the `--only` patterns (`prefix*` or an
/// exact name; no pattern selects everything).
pub fn selected(name: &str, only: &[String]) -> bool {
    only.is_empty()
        || only.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        })
}

/// Runs one case in its own thread, within its time limit.
fn run_case(ctx: &Arc<Ctx>, case: &Case) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let ctx2 = Arc::clone(ctx);
    let run = case.run;
    let spawned = std::thread::Builder::new()
        .name(case.name.into())
        .spawn(move || {
            let _ = tx.send(run(&ctx2));
        });
    if let Err(e) = spawned {
        return Outcome::Fail(format!("cannot start the case's thread: {e}"));
    }
    match rx.recv_timeout(case.limit) {
        Ok(r) => Outcome::from_result(r),
        Err(mpsc::RecvTimeoutError::Timeout) => Outcome::Fail(format!(
            "no answer within {} s (a hung ioctl?)",
            case.limit.as_secs()
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Outcome::Fail("the case panicked".into()),
    }
}

/// Runs the suite against `path`. Returns whether nothing failed.
pub fn run(path: &str, args: &SelftestArgs, json: bool) -> bool {
    let all = cases::all();
    if let Some(bad) = args.only.iter().find(|p| {
        !all.iter()
            .any(|c| selected(c.name, std::slice::from_ref(p)))
    }) {
        eprintln!("edu-test: selftest: no case matches {bad:?} (see --list)");
        return false;
    }
    let chosen: Vec<&Case> = all
        .iter()
        .filter(|c| selected(c.name, &args.only))
        .collect();
    if args.list {
        for c in &chosen {
            println!("{:<24} {}", c.name, c.about);
        }
        return true;
    }
    let dev = match Device::open(path) {
        Ok(d) => d,
        Err(e) => {
            let outcomes = [Outcome::Fail(e.to_string())];
            report(&[("open", outcomes[0].clone())], json);
            return false;
        }
    };
    let ctx = Arc::new(Ctx {
        path: Mutex::new(path.to_string()),
        dev,
        threads: args.threads,
        procs: args.procs,
        iters: args.iters,
        no_unbind: args.no_unbind,
    });
    let mut results = Vec::new();
    for case in chosen {
        let outcome = run_case(&ctx, case);
        if !json {
            println!("{}", Line(case.name, &outcome));
        }
        results.push((case.name, outcome));
    }
    report(&results, json)
}

/// Prints the summary (text) or everything (JSON). Returns whether nothing
/// failed.
fn report(results: &[(&str, Outcome)], json: bool) -> bool {
    let outcomes: Vec<Outcome> = results.iter().map(|r| r.1.clone()).collect();
    let (passed, failed, skipped) = tally(&outcomes);
    if json {
        let cases = results
            .iter()
            .map(|(name, o)| {
                let (result, reason) = match o {
                    Outcome::Pass => ("ok", None),
                    Outcome::Fail(r) => ("fail", Some(r.as_str())),
                    Outcome::Skip(r) => ("skip", Some(r.as_str())),
                };
                Json::obj()
                    .with("name", *name)
                    .with("result", result)
                    .with("reason", reason)
            })
            .collect::<Vec<_>>();
        let j = Json::obj()
            .with("cases", cases)
            .with("passed", passed)
            .with("failed", failed)
            .with("skipped", skipped);
        println!("{j}");
    } else {
        if results.len() == 1 && results[0].0 == "open" {
            println!("{}", Line(results[0].0, &results[0].1));
        }
        println!("{passed} passed, {failed} failed");
    }
    failed == 0
}

/// The multi-process case's child: `iters` factorials, each checked.
pub fn worker(dev: &Device, iters: u32, seed: u32) -> bool {
    match cases::factorial_loop(dev, iters, seed) {
        Ok(()) => true,
        Err(msg) => {
            eprintln!("edu-test worker {seed}: {msg}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_promised_format() {
        assert_eq!(Line("info", &Outcome::Pass).to_string(), "ok   info");
        assert_eq!(
            Line("raise", &Outcome::Fail("EINVAL".into())).to_string(),
            "FAIL raise: EINVAL"
        );
        assert_eq!(
            Line("two-devices", &Outcome::Skip("one".into())).to_string(),
            "skip two-devices: one"
        );
    }

    #[test]
    fn skips_are_not_passes() {
        let o = [
            Outcome::Pass,
            Outcome::Skip("x".into()),
            Outcome::Fail("y".into()),
            Outcome::Pass,
        ];
        assert_eq!(tally(&o), (2, 1, 1));
    }

    #[test]
    fn only_patterns() {
        let only = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selected("info", &[]));
        assert!(selected("info", &only(&["info"])));
        assert!(!selected("info-x", &only(&["info"])));
        assert!(selected("dma-einval", &only(&["dma-*"])));
        assert!(!selected("rw-end", &only(&["dma-*", "info"])));
    }

    #[test]
    fn case_names_are_unique_and_listed_once() {
        let all = cases::all();
        for (i, a) in all.iter().enumerate() {
            assert!(!a.name.contains(' '), "{}", a.name);
            assert!(all[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
        // The unbind cases must come last: they invalidate earlier fds.
        let first_unbind = all
            .iter()
            .position(|c| c.name.starts_with("unbind"))
            .unwrap();
        assert!(all[first_unbind..]
            .iter()
            .all(|c| c.name.starts_with("unbind")));
    }

    #[test]
    fn a_failing_or_hanging_case_is_reported() {
        fn fails(_: &Ctx) -> CaseResult {
            Err(Verdict::Fail("boom".into()))
        }
        fn hangs(_: &Ctx) -> CaseResult {
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        }
        let ctx = Arc::new(Ctx {
            path: Mutex::new("/dev/null".into()),
            dev: Device::open("/dev/null").unwrap(),
            threads: 1,
            procs: 1,
            iters: 1,
            no_unbind: true,
        });
        let case = Case {
            name: "f",
            about: "",
            run: fails,
            limit: Duration::from_secs(5),
        };
        assert_eq!(run_case(&ctx, &case), Outcome::Fail("boom".into()));
        let case = Case {
            name: "h",
            about: "",
            run: hangs,
            limit: Duration::from_millis(50),
        };
        assert!(matches!(run_case(&ctx, &case), Outcome::Fail(m) if m.contains("no answer")));
    }
}
