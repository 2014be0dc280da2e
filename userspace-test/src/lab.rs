//! The lab's test program: the five argument-less commands in order. Their
//! results go to the kernel log (see `dmesg`); here each is ok or an errno.

use crate::device::{DevError, Device, LAB_COMMANDS};
use crate::json::Json;

/// Runs the flow and reports each command. Returns whether all succeeded.
pub fn run(dev: &Device, json: bool) -> bool {
    let results: Vec<(&str, Result<(), DevError>)> = LAB_COMMANDS
        .iter()
        .map(|&(name, req)| (name, dev.lab(name, req)))
        .collect();
    let all_ok = results.iter().all(|r| r.1.is_ok());
    if json {
        let items = results
            .iter()
            .map(|(name, r)| {
                let o = Json::obj().with("command", *name).with("ok", r.is_ok());
                match r {
                    Ok(()) => o,
                    Err(e) => o.with("error", crate::error_json(e)),
                }
            })
            .collect::<Vec<_>>();
        println!(
            "{}",
            Json::obj()
                .with("device", dev.path())
                .with("ok", all_ok)
                .with("results", items)
        );
    } else {
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
    all_ok
}
