//! The lab's test program: the five argument-less commands in order. Their
//! results go to the kernel log (see `dmesg`); here each is ok or an errno.

use serde::Serialize;

use crate::device::{DevError, Device, LAB_COMMANDS};
use crate::output::{fields, ErrorDoc, Failure, Outcome};

#[derive(Serialize)]
struct LabResult {
    command: &'static str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDoc>,
}

#[derive(Serialize)]
struct LabDoc<'a> {
    device: &'a str,
    ok: bool,
    results: Vec<LabResult>,
}

/// Runs the flow and reports each command.
pub fn run(dev: &Device, json: bool) -> Outcome {
    let results: Vec<(&str, Result<(), DevError>)> = LAB_COMMANDS
        .iter()
        .map(|&(name, req)| (name, dev.lab(name, req)))
        .collect();
    let failed = results.iter().filter(|r| r.1.is_err()).count();
    if !json {
        for (name, r) in &results {
            match r {
                Ok(()) => println!("ok   {name}"),
                Err(e) => println!("FAIL {name}: {}", e.errno),
            }
        }
        println!(
            "{}: the driver logged each command's result to the kernel log (dmesg)",
            dev.path()
        );
    }
    let doc = LabDoc {
        device: dev.path(),
        ok: failed == 0,
        results: results
            .iter()
            .map(|(name, r)| LabResult {
                command: name,
                ok: r.is_ok(),
                error: r.as_ref().err().map(ErrorDoc::from),
            })
            .collect(),
    };
    let f = fields(&doc);
    if failed == 0 {
        Outcome::ok(f)
    } else {
        Outcome::failed(
            f,
            Failure::Check(format!("{failed} of {} lab commands failed", results.len())),
        )
    }
}
