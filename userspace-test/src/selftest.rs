//! The in-guest test suite of the whole ABI.
//!
//! `selftest` runs each case in a process of its own: the same binary,
//! re-executed as the hidden `selftest-case NAME` (`process.rs`). The parent
//! enforces the case's time limit and kills the case's whole process group
//! past it; a case whose process dies (a panic, also with `panic =
//! "abort"`) is a FAIL line; a device that a case left unbound or unloaded
//! is put back before the next case. Each case prints `ok   NAME`, `FAIL
//! NAME: REASON` or `skip NAME: REASON` as it finishes, and the run ends
//! with `N passed, N failed`; with `--json` those lines go to stderr and
//! stdout gets one document. The unbind cases come last.
//!
//! Every case that claims the device did something checks evidence only
//! the device produces (`evidence.rs`): its interrupt count in
//! `/proc/interrupts`, its registers through sysfs `resource0`, its data
//! surviving a rebind, the driver's lines in `/dev/kmsg`.

mod cases;
mod evidence;
mod kmod;
mod process;
mod sysfs;

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cli::{CaseOpts, SelftestArgs};
use crate::device::{DevError, Device};
use crate::output::{fields, Failure, Outcome};

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
    /// The node under test.
    pub path: String,
    /// An fd opened when the case started.
    pub dev: Device,
    pub opts: CaseOpts,
}

/// One test case.
pub struct Case {
    pub name: &'static str,
    /// One line for `--list`.
    pub about: &'static str,
    pub run: fn(&Ctx) -> CaseResult,
    /// Time limit; past it the case's processes are killed and it fails.
    pub limit: Duration,
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail(String),
    Skip(String),
}

impl From<CaseResult> for Status {
    fn from(r: CaseResult) -> Self {
        match r {
            Ok(()) => Status::Pass,
            Err(Verdict::Fail(m)) => Status::Fail(m),
            Err(Verdict::Skip(m)) => Status::Skip(m),
        }
    }
}

/// `ok   name` / `FAIL name: reason` / `skip name: reason`.
pub struct Line<'a>(pub &'a str, pub &'a Status);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Status::Pass => write!(f, "ok   {}", self.0),
            Status::Fail(r) => write!(f, "FAIL {}: {}", self.0, r),
            Status::Skip(r) => write!(f, "skip {}: {}", self.0, r),
        }
    }
}

/// One case in the JSON documents: the suite's `cases` entries, and what a
/// case's process prints for the suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseDoc {
    pub name: String,
    /// `ok`, `fail` or `skip`.
    pub result: String,
    /// Why it failed or was skipped; empty when it passed.
    pub reason: String,
    /// Wall time of the case.
    pub seconds: f64,
}

impl CaseDoc {
    pub fn new(name: &str, status: &Status, took: Duration) -> Self {
        let (result, reason) = match status {
            Status::Pass => ("ok", ""),
            Status::Fail(r) => ("fail", r.as_str()),
            Status::Skip(r) => ("skip", r.as_str()),
        };
        CaseDoc {
            name: name.to_string(),
            result: result.to_string(),
            reason: reason.to_string(),
            seconds: (took.as_secs_f64() * 1000.0).round() / 1000.0,
        }
    }

    /// The status this document reports; an unknown `result` is a failure.
    pub fn status(&self) -> Status {
        match self.result.as_str() {
            "ok" => Status::Pass,
            "skip" => Status::Skip(self.reason.clone()),
            "fail" => Status::Fail(self.reason.clone()),
            other => Status::Fail(format!("the case reported result {other:?}")),
        }
    }
}

/// Passed, failed and skipped counts.
pub fn tally(statuses: &[Status]) -> (usize, usize, usize) {
    let count = |f: fn(&Status) -> bool| statuses.iter().filter(|o| f(o)).count();
    (
        count(|o| matches!(o, Status::Pass)),
        count(|o| matches!(o, Status::Fail(_))),
        count(|o| matches!(o, Status::Skip(_))),
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

#[derive(Serialize)]
struct Listed {
    name: &'static str,
    about: &'static str,
}

#[derive(Serialize)]
struct ListDoc {
    list: Vec<Listed>,
}

#[derive(Serialize)]
struct SuiteDoc {
    passed: usize,
    failed: usize,
    skipped: usize,
    seconds: f64,
    cases: Vec<CaseDoc>,
}

/// `edu-test selftest`: runs the chosen cases against `path`, each in its
/// own process.
pub fn run(path: &str, args: &SelftestArgs, json: bool) -> Result<Outcome, Failure> {
    let all = cases::all();
    if let Some(bad) = args.only.iter().find(|p| {
        !all.iter()
            .any(|c| selected(c.name, std::slice::from_ref(p)))
    }) {
        return Err(Failure::Usage(format!(
            "selftest: no case matches --only {bad:?} (see --list)"
        )));
    }
    let chosen: Vec<&Case> = all
        .iter()
        .filter(|c| selected(c.name, &args.only))
        .collect();
    if args.list {
        if !json {
            for c in &chosen {
                println!("{:<24} {}", c.name, c.about);
            }
        }
        let list = chosen
            .iter()
            .map(|c| Listed {
                name: c.name,
                about: c.about,
            })
            .collect();
        return Ok(Outcome::ok(fields(&ListDoc { list })));
    }
    let start = Instant::now();
    let print = |doc: &CaseDoc| {
        let line = Line(&doc.name, &doc.status());
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let mut docs = Vec::new();
    if let Err(e) = Device::open(path) {
        let doc = CaseDoc::new("open", &Status::Fail(e.to_string()), Duration::ZERO);
        print(&doc);
        docs.push(doc);
    } else {
        let budget = Duration::from_secs(args.budget.into());
        let home = sysfs::Home::find(path);
        let mut node = path.to_string();
        for case in chosen {
            let t = Instant::now();
            let left = budget.saturating_sub(start.elapsed());
            let mut status = if left.is_zero() {
                Status::Fail(format!(
                    "not run: the suite's --budget of {} s is spent",
                    args.budget
                ))
            } else {
                process::run_case(&node, case.name, &args.opts, case.limit.min(left))
            };
            if let Some(home) = &home {
                status = put_back(home.restore(), status);
                node = home.node(&node);
            }
            let doc = CaseDoc::new(case.name, &status, t.elapsed());
            print(&doc);
            docs.push(doc);
        }
    }
    let statuses: Vec<Status> = docs.iter().map(CaseDoc::status).collect();
    let (passed, failed, skipped) = tally(&statuses);
    if !json {
        println!("{passed} passed, {failed} failed");
    }
    let suite = fields(&SuiteDoc {
        passed,
        failed,
        skipped,
        seconds: (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        cases: docs,
    });
    Ok(if failed == 0 {
        Outcome::ok(suite)
    } else {
        Outcome::failed(
            suite,
            Failure::Check(format!("{failed} of {} cases failed", statuses.len())),
        )
    })
}

/// The case's status after the suite checked the device is still bound
/// (`restored`: what [`sysfs::Home::restore`] had to do). A case must clean
/// up after itself: one that did not fails, whatever it reported.
fn put_back(restored: Result<Option<String>, String>, status: Status) -> Status {
    let (done, problem) = match restored {
        Ok(None) => return status,
        Ok(Some(done)) => (done, String::new()),
        Err(e) => (
            String::from("tried to put it back"),
            format!(", and failed: {e}"),
        ),
    };
    let what = format!("the case left the device unbound; the suite {done}{problem}");
    match status {
        Status::Fail(m) => Status::Fail(format!("{m}; {what}")),
        Status::Pass | Status::Skip(_) => Status::Fail(what),
    }
}

/// `edu-test selftest-case NAME`: runs one case in this process and reports
/// it (as the document the suite reads, with `--json`).
pub fn run_one(path: &str, name: &str, opts: &CaseOpts, json: bool) -> Result<Outcome, Failure> {
    let case = cases::all()
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            Failure::Usage(format!(
                "selftest-case: no case {name:?} (see selftest --list)"
            ))
        })?;
    let t = Instant::now();
    let status = match Device::open(path) {
        Ok(dev) => Status::from((case.run)(&Ctx {
            path: path.to_string(),
            dev,
            opts: opts.clone(),
        })),
        Err(e) => Status::Fail(e.to_string()),
    };
    if !json {
        println!("{}", Line(name, &status));
    }
    Ok(Outcome::ok(fields(&CaseDoc::new(
        name,
        &status,
        t.elapsed(),
    ))))
}

/// The multi-process case's child: `iters` factorials, each checked.
pub fn worker(dev: &Device, iters: u32, seed: u32) -> Outcome {
    match cases::factorial_loop(dev, iters, seed) {
        Ok(()) => Outcome::ok(Default::default()),
        Err(msg) => Failure::Check(format!("worker {seed}: {msg}")).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_promised_format() {
        assert_eq!(Line("info", &Status::Pass).to_string(), "ok   info");
        assert_eq!(
            Line("raise", &Status::Fail("EINVAL".into())).to_string(),
            "FAIL raise: EINVAL"
        );
        assert_eq!(
            Line("two-devices", &Status::Skip("one".into())).to_string(),
            "skip two-devices: one"
        );
    }

    #[test]
    fn skips_are_not_passes() {
        let o = [
            Status::Pass,
            Status::Skip("x".into()),
            Status::Fail("y".into()),
            Status::Pass,
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
        // The unbind cases must come last: they take the device away.
        let first_unbind = all
            .iter()
            .position(|c| c.name.starts_with("unbind"))
            .unwrap();
        assert!(all[first_unbind..]
            .iter()
            .all(|c| c.name.starts_with("unbind")));
    }

    #[test]
    fn case_documents_round_trip() {
        for s in [
            Status::Pass,
            Status::Fail("a \"b\"".into()),
            Status::Skip("c".into()),
        ] {
            let doc = CaseDoc::new("x", &s, Duration::from_millis(1234));
            let back: CaseDoc =
                serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
            assert_eq!(back.status(), s);
            assert_eq!(back.seconds, 1.234);
        }
        let odd = CaseDoc {
            result: "maybe".into(),
            ..CaseDoc::new("x", &Status::Pass, Duration::ZERO)
        };
        assert!(matches!(odd.status(), Status::Fail(_)));
    }

    #[test]
    fn a_case_that_left_the_device_unbound_fails() {
        let what = |s: Status| match s {
            Status::Fail(m) => m,
            other => panic!("{other:?}"),
        };
        let rebound = || Ok(Some("bound it again".to_string()));
        assert_eq!(put_back(Ok(None), Status::Pass), Status::Pass);
        assert!(what(put_back(rebound(), Status::Pass)).contains("left the device unbound"));
        assert!(what(put_back(rebound(), Status::Fail("boom".into()))).starts_with("boom; "));
        assert!(what(put_back(Err("EPERM".into()), Status::Skip("s".into()))).ends_with("EPERM"));
    }
}
