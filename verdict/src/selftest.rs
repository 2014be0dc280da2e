//! The verdict on one `edu-test --json selftest` run.
//!
//! The report (schema 1, one JSON document on stdout):
//!
//! ```text
//! {"schema":1,"command":"selftest","passed":N,"failed":N,"skipped":N,
//!  "cases":[{"name":"...","result":"ok"|"fail"|"skip","reason":"..."}]}
//! ```
//!
//! is held against what the run had to show: every case that
//! `edu-test selftest --list` names appears exactly once; the cases the
//! test names as expected skips (the two-device cases on one device) were
//! skipped, every other case passed; the counts agree with the cases, and
//! edu-test exited 0. A case that vanishes, fails, or skips without being
//! expected to is a finding, and so is any disagreement inside the report.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use thiserror::Error;

/// The report schema this checker knows.
pub const SCHEMA: u64 = 1;

/// Why the report could not be read at all.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReportError {
    /// Standard output was not one JSON document on one line.
    #[error("edu-test's output is not one JSON document on one line ({0} lines)")]
    NotOneLine(usize),
    /// Not JSON, or not the shape schema 1 describes.
    #[error("the report is not valid: {0}")]
    Invalid(String),
    /// Another schema version.
    #[error("the report has schema {0}, this checker knows schema {SCHEMA}")]
    Schema(String),
    /// The report of another command.
    #[error("the report is of command {0:?}, expected \"selftest\"")]
    Command(String),
}

/// Why the expectations themselves are unusable (a mistake in the test).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExpectError {
    /// `--list` printed nothing.
    #[error("the list of selftest cases is empty")]
    EmptyList,
    /// A name listed twice.
    #[error("the list of selftest cases names {0:?} twice")]
    ListedTwice(String),
    /// An expected skip that is not a case.
    #[error("expected skip {0:?} is not a selftest case")]
    UnknownSkip(String),
}

/// One case's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Passed.
    Ok,
    /// Failed.
    Fail,
    /// Not run, with a reason.
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        })
    }
}

/// One entry of `cases`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CaseReport {
    /// Case name.
    pub name: String,
    /// Its result.
    pub result: Outcome,
    /// Why it failed or was skipped.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The whole report (fields beyond schema 1's are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases skipped.
    pub skipped: usize,
    /// Every case run, in order.
    pub cases: Vec<CaseReport>,
}

/// Parses edu-test's standard output: exactly one line, a schema-1
/// selftest report.
pub fn parse(stdout: &str) -> Result<Report, ReportError> {
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let [line] = lines.as_slice() else {
        return Err(ReportError::NotOneLine(lines.len()));
    };
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| ReportError::Invalid(e.to_string()))?;
    match value.get("schema") {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(SCHEMA) => {}
        Some(other) => return Err(ReportError::Schema(other.to_string())),
        None => return Err(ReportError::Schema("(none)".into())),
    }
    match value.get("command").and_then(|c| c.as_str()) {
        Some("selftest") => {}
        other => return Err(ReportError::Command(format!("{other:?}"))),
    }
    serde_json::from_value(value).map_err(|e| ReportError::Invalid(e.to_string()))
}

/// What a run must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    cases: Vec<String>,
    skips: Vec<String>,
}

impl Expected {
    /// From the output of `edu-test selftest --list` (the case name first
    /// on each line) and the names expected to be skipped.
    pub fn new(list: &str, skips: &[String]) -> Result<Self, ExpectError> {
        let mut cases: Vec<String> = Vec::new();
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if cases.iter().any(|c| c == name) {
                return Err(ExpectError::ListedTwice(name.into()));
            }
            cases.push(name.into());
        }
        if cases.is_empty() {
            return Err(ExpectError::EmptyList);
        }
        if let Some(s) = skips.iter().find(|s| !cases.contains(s)) {
            return Err(ExpectError::UnknownSkip(s.clone()));
        }
        Ok(Expected {
            cases,
            skips: skips.to_vec(),
        })
    }
}

/// Something the run shows that it should not.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Finding {
    /// A listed case is not in the report.
    #[error("case {0} did not run (it is in --list, not in the report)")]
    Missing(String),
    /// The report has a case --list does not name.
    #[error("case {0} is in the report but not in --list")]
    Unlisted(String),
    /// A case reported more than once.
    #[error("case {0} is reported {1} times")]
    Repeated(String, usize),
    /// A case that should pass did not.
    #[error("case {name}: {result}{}", reason_suffix(.reason))]
    NotOk {
        /// Case name.
        name: String,
        /// What it reported.
        result: Outcome,
        /// Its reason.
        reason: Option<String>,
    },
    /// A case expected to skip did not.
    #[error("case {name}: {result}, expected skip here{}", reason_suffix(.reason))]
    NotSkipped {
        /// Case name.
        name: String,
        /// What it reported.
        result: Outcome,
        /// Its reason.
        reason: Option<String>,
    },
    /// A count disagrees with the cases.
    #[error("the report says {field}={said}, its cases count {counted}")]
    Count {
        /// `passed`, `failed` or `skipped`.
        field: &'static str,
        /// The count in the report.
        said: usize,
        /// The count of cases with that result.
        counted: usize,
    },
    /// The totals are not the expected ones.
    #[error("expected {want_passed} passed, 0 failed, {want_skipped} skipped; the report says {passed} passed, {failed} failed, {skipped} skipped")]
    Totals {
        /// Expected passes.
        want_passed: usize,
        /// Expected skips.
        want_skipped: usize,
        /// Reported passes.
        passed: usize,
        /// Reported failures.
        failed: usize,
        /// Reported skips.
        skipped: usize,
    },
    /// edu-test exited non-zero.
    #[error("edu-test exited with status {0}")]
    Status(i32),
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

/// Everything wrong with `report` (from a run that exited with `status`)
/// against `expected`; empty when the run is exactly as expected.
pub fn findings(report: &Report, status: i32, expected: &Expected) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &report.cases {
        *seen.entry(c.name.as_str()).or_default() += 1;
    }
    for (name, n) in &seen {
        if *n > 1 {
            out.push(Finding::Repeated((*name).into(), *n));
        }
        if !expected.cases.iter().any(|c| c == name) {
            out.push(Finding::Unlisted((*name).into()));
        }
    }
    for name in &expected.cases {
        let Some(c) = report.cases.iter().find(|c| &c.name == name) else {
            out.push(Finding::Missing(name.clone()));
            continue;
        };
        let skip = expected.skips.contains(name);
        let (name, result, reason) = (name.clone(), c.result, c.reason.clone());
        match (skip, c.result) {
            (false, Outcome::Ok) | (true, Outcome::Skip) => {}
            (false, _) => out.push(Finding::NotOk {
                name,
                result,
                reason,
            }),
            (true, _) => out.push(Finding::NotSkipped {
                name,
                result,
                reason,
            }),
        }
    }
    let counted = |o: Outcome| report.cases.iter().filter(|c| c.result == o).count();
    for (field, said, o) in [
        ("passed", report.passed, Outcome::Ok),
        ("failed", report.failed, Outcome::Fail),
        ("skipped", report.skipped, Outcome::Skip),
    ] {
        if said != counted(o) {
            out.push(Finding::Count {
                field,
                said,
                counted: counted(o),
            });
        }
    }
    let want_skipped = expected.skips.len();
    let want_passed = expected.cases.len() - want_skipped;
    if (report.passed, report.failed, report.skipped) != (want_passed, 0, want_skipped) {
        out.push(Finding::Totals {
            want_passed,
            want_skipped,
            passed: report.passed,
            failed: report.failed,
            skipped: report.skipped,
        });
    }
    if status != 0 {
        out.push(Finding::Status(status));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "info                     EDU_IOC_INFO fields\n\
                        liveness                 NOT v\n\
                        two-devices              two nodes\n\
                        two-devices-parallel     not serialized\n";

    fn skips() -> Vec<String> {
        vec!["two-devices".into(), "two-devices-parallel".into()]
    }

    fn expected() -> Expected {
        Expected::new(LIST, &skips()).unwrap()
    }

    /// A one-device run as edu-test reports it.
    const ONE_DEVICE: &str = r#"{"schema":1,"command":"selftest","passed":2,"failed":0,"skipped":2,"cases":[{"name":"info","result":"ok","reason":null},{"name":"liveness","result":"ok"},{"name":"two-devices","result":"skip","reason":"1 node(s), need 2"},{"name":"two-devices-parallel","result":"skip","reason":"1 node(s), need 2"}]}"#;

    fn report(doc: &str) -> Report {
        parse(doc).unwrap()
    }

    #[test]
    fn the_expected_run_has_no_findings() {
        assert_eq!(findings(&report(ONE_DEVICE), 0, &expected()), vec![]);
    }

    #[test]
    fn a_vanished_case_is_found() {
        let doc = ONE_DEVICE
            .replace(r#"{"name":"liveness","result":"ok"},"#, "")
            .replace(r#""passed":2"#, r#""passed":1"#);
        let f = findings(&report(&doc), 0, &expected());
        assert!(f.contains(&Finding::Missing("liveness".into())), "{f:?}");
        assert!(f.iter().any(|x| matches!(x, Finding::Totals { .. })));
    }

    #[test]
    fn a_failed_case_is_found_with_its_reason() {
        let doc = ONE_DEVICE
            .replace(
                r#"{"name":"liveness","result":"ok"}"#,
                r#"{"name":"liveness","result":"fail","reason":"read 0"}"#,
            )
            .replace(r#""passed":2,"failed":0"#, r#""passed":1,"failed":1"#);
        let f = findings(&report(&doc), 1, &expected());
        assert_eq!(f[0].to_string(), "case liveness: fail: read 0");
        assert!(f.contains(&Finding::Status(1)));
    }

    #[test]
    fn an_unexpected_skip_is_a_finding() {
        let doc = ONE_DEVICE
            .replace(
                r#"{"name":"liveness","result":"ok"}"#,
                r#"{"name":"liveness","result":"skip","reason":"not root"}"#,
            )
            .replace(
                r#""passed":2,"failed":0,"skipped":2"#,
                r#""passed":1,"failed":0,"skipped":3"#,
            );
        let f = findings(&report(&doc), 0, &expected());
        assert_eq!(f[0].to_string(), "case liveness: skip: not root");
    }

    #[test]
    fn an_expected_skip_that_ran_is_a_finding() {
        let one = Expected::new(LIST, &["two-devices".into()]).unwrap();
        let f = findings(&report(ONE_DEVICE), 0, &one);
        assert!(f.contains(&Finding::NotOk {
            name: "two-devices-parallel".into(),
            result: Outcome::Skip,
            reason: Some("1 node(s), need 2".into())
        }));
        let none = Expected::new(LIST, &[]).unwrap();
        let two = ONE_DEVICE
            .replace(
                r#""result":"skip","reason":"1 node(s), need 2""#,
                r#""result":"ok""#,
            )
            .replace(
                r#""passed":2,"failed":0,"skipped":2"#,
                r#""passed":4,"failed":0,"skipped":0"#,
            );
        assert_eq!(findings(&report(&two), 0, &none), vec![]);
        let f = findings(&report(&two), 0, &expected());
        assert!(matches!(f[0], Finding::NotSkipped { .. }), "{f:?}");
    }

    #[test]
    fn unlisted_and_repeated_cases_are_found() {
        let doc = ONE_DEVICE
            .replace(
                r#"{"name":"liveness","result":"ok"}"#,
                r#"{"name":"liveness","result":"ok"},{"name":"liveness","result":"ok"},{"name":"extra","result":"ok"}"#,
            )
            .replace(r#""passed":2"#, r#""passed":4"#);
        let f = findings(&report(&doc), 0, &expected());
        assert!(
            f.contains(&Finding::Repeated("liveness".into(), 2)),
            "{f:?}"
        );
        assert!(f.contains(&Finding::Unlisted("extra".into())), "{f:?}");
    }

    #[test]
    fn counts_that_disagree_with_the_cases_are_found() {
        let doc = ONE_DEVICE.replace(r#""skipped":2"#, r#""skipped":0"#);
        let f = findings(&report(&doc), 0, &expected());
        assert_eq!(
            f[0],
            Finding::Count {
                field: "skipped",
                said: 0,
                counted: 2
            }
        );
    }

    #[test]
    fn malformed_reports_are_refused() {
        assert_eq!(parse(""), Err(ReportError::NotOneLine(0)));
        assert_eq!(
            parse(&format!("{ONE_DEVICE}\n{ONE_DEVICE}")),
            Err(ReportError::NotOneLine(2))
        );
        assert!(matches!(
            parse(&ONE_DEVICE[..40]),
            Err(ReportError::Invalid(_))
        ));
        assert!(matches!(
            parse(&ONE_DEVICE.replace(r#""schema":1"#, r#""schema":2"#)),
            Err(ReportError::Schema(s)) if s == "2"
        ));
        assert!(matches!(
            parse(&ONE_DEVICE.replace(r#""schema":1,"#, "")),
            Err(ReportError::Schema(_))
        ));
        assert!(matches!(
            parse(&ONE_DEVICE.replace(r#""command":"selftest""#, r#""command":"bench""#)),
            Err(ReportError::Command(_))
        ));
        assert!(matches!(
            parse(&ONE_DEVICE.replace(r#""result":"ok""#, r#""result":"passed""#)),
            Err(ReportError::Invalid(_))
        ));
        assert!(matches!(
            parse(&ONE_DEVICE.replace(r#""passed":2,"#, "")),
            Err(ReportError::Invalid(e)) if e.contains("passed")
        ));
        // Today's edu-test: no schema, no command.
        let old = r#"{"cases":[],"passed":0,"failed":0,"skipped":0}"#;
        assert!(matches!(parse(old), Err(ReportError::Schema(_))));
    }

    #[test]
    fn bad_expectations_are_refused() {
        assert_eq!(Expected::new("\n\n", &[]), Err(ExpectError::EmptyList));
        assert_eq!(
            Expected::new("a x\na y\n", &[]),
            Err(ExpectError::ListedTwice("a".into()))
        );
        assert_eq!(
            Expected::new(LIST, &["two-device".into()]),
            Err(ExpectError::UnknownSkip("two-device".into()))
        );
    }
}
