//! edu-test's command-line conventions, on the host (no device needed):
//! with `--json` every invocation prints exactly one JSON document, on
//! success and on every failure; usage errors exit 2 before the device is
//! opened; a closed stdout ends the process quietly.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A node that does not exist: opening it fails with ENOENT, so a command
/// that gets as far as opening the device says so.
const MISSING: &str = "/nonexistent/edu-test-node";

fn edu_test(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edu-test"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Most commands exit without reading their input: EPIPE is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// The one JSON document on stdout; fails the test unless there is exactly
/// one line and it is a document of `command`.
fn one_document(out: &Output, command: &str, what: &str) -> Value {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: stdout is {stdout:?}");
    let doc: Value =
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{what}: {e}: {}", lines[0]));
    assert_eq!(doc["schema"], 1, "{what}: {doc}");
    assert_eq!(doc["command"], command, "{what}: {doc}");
    doc
}

#[test]
fn every_command_reports_a_missing_node_in_one_document() {
    let cases: [(&[&str], &str); 11] = [
        (&[], "lab"),
        (&["lab"], "lab"),
        (&["info"], "info"),
        (&["factorial", "5"], "factorial"),
        (&["liveness", "1"], "liveness"),
        (&["raise", "2"], "raise"),
        (&["dma-write", "--offset", "8"], "dma-write"),
        (&["dma-read", "--length", "4"], "dma-read"),
        (&["bench", "--iters", "1"], "bench"),
        (&["worker", "--iters", "1"], "worker"),
        (&["selftest", "--only", "info"], "selftest"),
    ];
    for (args, command) in cases {
        let mut all = vec!["--json", "--device", MISSING];
        all.extend_from_slice(args);
        let out = edu_test(&all, b"some bytes");
        let doc = one_document(&out, command, &format!("{args:?}"));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {doc}");
        if command == "selftest" {
            // The suite's own document, with the failed open as its case.
            assert_eq!(doc["failed"], 1, "{doc}");
            assert_eq!(doc["cases"][0]["name"], "open", "{doc}");
            assert!(doc["cases"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("ENOENT"));
        } else {
            assert_eq!(doc["error"]["kind"], "device", "{args:?}: {doc}");
            assert_eq!(doc["error"]["errno_name"], "ENOENT", "{args:?}: {doc}");
            assert_eq!(doc["error"]["device"], MISSING, "{args:?}: {doc}");
        }
    }
}

#[test]
fn a_case_run_alone_reports_itself() {
    let out = edu_test(
        &["--json", "--device", MISSING, "selftest-case", "info"],
        b"",
    );
    let doc = one_document(&out, "selftest-case", "selftest-case info");
    assert_eq!(doc["name"], "info");
    assert_eq!(doc["result"], "fail");
    assert!(doc["reason"].as_str().unwrap().contains("ENOENT"), "{doc}");
}

#[test]
fn usage_errors_exit_2_before_the_device_is_opened() {
    // Each would fail with ENOENT (exit 1, kind "device") if it opened the
    // missing node first.
    let cases: [(&[&str], &str); 14] = [
        (&["factorial", "x"], "factorial"),
        (&["raise", "0x100000000"], "raise"),
        (&["liveness", "-1"], "liveness"),
        (&["dma-read", "--offset", "4096"], "dma-read"),
        (
            &["dma-read", "--offset", "4000", "--length", "0x61"],
            "dma-read",
        ),
        (&["dma-write", "--length", "0"], "dma-write"),
        (&["dma-write", "--length", "99"], "dma-write"),
        (&["dma-write", "--offset", "4095"], "dma-write"),
        (&["bench", "--tsc-mhz", "0"], "bench"),
        (&["bench", "--threads", "0"], "bench"),
        (&["selftest", "--only", "nope"], "selftest"),
        (&["selftest", "--threads", "0x101"], "selftest"),
        (&["selftest-case", "nope"], "selftest-case"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, command) in cases {
        let mut all = vec!["--device", MISSING, "--json"];
        all.extend_from_slice(args);
        // 10 bytes of input: too few for --length 99, too many for 4095.
        let out = edu_test(&all, b"0123456789");
        let doc = one_document(&out, command, &format!("{args:?}"));
        assert_eq!(doc["error"]["kind"], "usage", "{args:?}: {doc}");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {doc}");
        // Without --json: the message on stderr, nothing on stdout.
        let mut plain = vec!["--device", MISSING];
        plain.extend_from_slice(args);
        let text = edu_test(&plain, b"0123456789");
        assert_eq!(text.status.code(), Some(2), "{args:?}");
        assert!(text.stdout.is_empty(), "{args:?}");
        assert!(!text.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn help_with_json_is_a_document_too() {
    let out = edu_test(&["--json", "factorial", "--help"], b"");
    let doc = one_document(&out, "factorial", "--help");
    assert!(doc["text"].as_str().unwrap().contains("Usage"), "{doc}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_closed_stdout_ends_the_process_quietly() {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just created by pipe() and are owned here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let out = Command::new(env!("CARGO_BIN_EXE_edu-test"))
        .args(["selftest", "--list"])
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
