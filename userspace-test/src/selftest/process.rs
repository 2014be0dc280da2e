//! One case in a process of its own: `edu-test --json --device NODE
//! selftest-case NAME ...`, in a new process group. The suite waits for its
//! verdict (one JSON line on its stdout) at most for the case's time limit,
//! then kills the whole group, which also ends any worker the case started.
//! A case that dies without a verdict (a panic, a signal) fails, with the
//! last lines of its stderr as the reason.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::{CaseDoc, Status};
use crate::cli::CaseOpts;

/// Bytes of a case's stderr kept for its failure reason.
const STDERR_KEPT: usize = 4096;

/// The command line that runs case `name` against `node`.
fn case_command(node: &str, name: &str, opts: &CaseOpts) -> Result<Command, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find edu-test's own executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--json", "--device", node, "selftest-case", name]);
    cmd.args(["--threads", &opts.threads.to_string()]);
    cmd.args(["--procs", &opts.procs.to_string()]);
    cmd.args(["--iters", &opts.iters.to_string()]);
    if opts.no_unbind {
        cmd.arg("--no-unbind");
    }
    Ok(cmd)
}

/// Runs case `name` in a child process within `limit`.
pub fn run_case(node: &str, name: &str, opts: &CaseOpts, limit: Duration) -> Status {
    match case_command(node, name, opts) {
        Ok(cmd) => run_limited(cmd, limit),
        Err(e) => Status::Fail(e),
    }
}

/// Reads `r` to its end, keeping the last `keep` bytes.
fn read_tail(mut r: impl Read, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = r.read(&mut chunk) {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > 2 * keep {
            kept.drain(..kept.len() - keep);
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    kept
}

/// Runs `cmd` (a case's command line, or any program printing a
/// [`CaseDoc`] line) in its own process group; kills the group after
/// `limit` or once the program ended.
pub fn run_limited(mut cmd: Command, limit: Duration) -> Status {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Status::Fail(format!("cannot start the case's process: {e}")),
    };
    let group = child.id() as libc::pid_t;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("both were piped above");
    };
    let out = thread::spawn(move || read_tail(stdout, 1 << 16));
    let err = thread::spawn(move || read_tail(stderr, STDERR_KEPT));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let waited = rx.recv_timeout(limit);
    // Where a hung case's threads wait, while they still do.
    let stuck = if waited.is_err() {
        format!("; its threads: {}", tasks(group))
    } else {
        String::new()
    };
    // SAFETY: kill(2) with a negative pid signals the process group the
    // child leads (it was created with process_group(0)); no memory is
    // involved. After a normal exit this ends what the case left behind.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let timed_out = waited.is_err();
    let status = waited
        .or_else(|_| rx.recv().map_err(|_| ()))
        .ok()
        .and_then(Result::ok);
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let tail = stderr_tail(&err);
    if timed_out {
        return Status::Fail(format!(
            "no verdict within {:.0} s: killed its processes (a hung ioctl?){stuck}{tail}",
            limit.as_secs_f64()
        ));
    }
    match verdict(&out) {
        Some(doc) => doc.status(),
        None => Status::Fail(format!(
            "the case's process ended without a verdict: {}{tail}",
            describe(status)
        )),
    }
}

/// Each thread of process `pid` as `TID STATE SYSCALL@WCHAN` (from
/// `/proc/PID/task`): the state letter, the system call it is in (`-` if
/// none) and the kernel function it sleeps in.
fn tasks(pid: libc::pid_t) -> String {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "gone".into();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .take(16)
        .map(|e| {
            let p = e.path();
            let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
            let stat = read("stat");
            let state = stat.rsplit_once(") ").map_or("?", |(_, s)| &s[..1]);
            let syscall = read("syscall");
            let nr = syscall.split_whitespace().next().unwrap_or("?");
            let nr = if nr == "running" || nr == "-1" {
                "-"
            } else {
                nr
            };
            format!(
                "{} {state} {nr}@{}",
                e.file_name().to_string_lossy(),
                read("wchan").trim()
            )
        })
        .collect();
    out.sort();
    out.join(", ")
}

/// The last line of `out` that is a case's document.
fn verdict(out: &[u8]) -> Option<CaseDoc> {
    String::from_utf8_lossy(out)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<CaseDoc>(l).ok())
}

/// `; stderr: ...` with the last few lines a dead case wrote, or nothing.
fn stderr_tail(err: &[u8]) -> String {
    let text = String::from_utf8_lossy(err);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.len() > 400 {
        let mut cut = tail.len() - 400;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail.drain(..cut);
    }
    format!("; stderr: {tail}")
}

/// How a process ended, in words.
fn describe(status: Option<ExitStatus>) -> String {
    let Some(status) = status else {
        return "its exit status is unknown".into();
    };
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
        _ => format!("{status}"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT, a panic or abort",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGPIPE => "SIGPIPE",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Instant;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    fn fail_reason(s: Status) -> String {
        match s {
            Status::Fail(m) => m,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn the_verdict_line_decides() {
        let s = run_limited(
            sh(r#"echo noise; echo '{"name":"x","result":"ok","reason":"","seconds":0.1}'"#),
            Duration::from_secs(20),
        );
        assert_eq!(s, Status::Pass);
        let s = run_limited(
            sh(r#"echo '{"name":"x","result":"skip","reason":"one node","seconds":0}'"#),
            Duration::from_secs(20),
        );
        assert_eq!(s, Status::Skip("one node".into()));
    }

    #[test]
    fn a_process_that_aborts_is_a_failure_with_its_last_words() {
        // What a Rust panic with panic = "abort" looks like from outside.
        let m = fail_reason(run_limited(
            sh("echo \"thread 'main' panicked at src/x.rs:1:1:\" >&2; echo boom >&2; kill -ABRT $$"),
            Duration::from_secs(20),
        ));
        assert!(m.contains("killed by signal 6 (SIGABRT"), "{m}");
        assert!(m.contains("panicked at src/x.rs:1:1: | boom"), "{m}");
        let m = fail_reason(run_limited(sh("exit 101"), Duration::from_secs(20)));
        assert!(m.contains("without a verdict: exit status 101"), "{m}");
    }

    #[test]
    fn a_hung_case_is_killed_with_everything_it_started() {
        let dir = std::env::temp_dir().join(format!("edu-test-hang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("grandchild");
        let t = Instant::now();
        let m = fail_reason(run_limited(
            sh(&format!("sleep 60 & echo $! > {}; wait", pidfile.display())),
            Duration::from_millis(300),
        ));
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(m.starts_with("no verdict within 0 s: killed"), "{m}");
        // The shell sleeps in a system call (wait4 or sigsuspend); where,
        // the kernel names.
        assert!(m.contains("its threads: ") && m.contains(" S "), "{m}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild got SIGKILL with its group; allow for its reaping.
        let gone = |pid: i32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.is_empty() || stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'))
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(gone(pid), "sleep {pid} survived its case");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_program_is_a_failure() {
        let m = fail_reason(run_limited(
            Command::new(Path::new("/nonexistent/edu-test")),
            Duration::from_secs(1),
        ));
        assert!(m.starts_with("cannot start the case's process"), "{m}");
    }

    #[test]
    fn stderr_tails_are_short() {
        assert_eq!(stderr_tail(b""), "");
        assert_eq!(stderr_tail(b"a\n\nb\nc\nd\n"), "; stderr: b | c | d");
        assert!(stderr_tail(&[b'x'; 5000]).len() < 420);
    }
}
