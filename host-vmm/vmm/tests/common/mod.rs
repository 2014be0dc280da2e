//! Shared harness for the integration tests: runs the real `edu-vmm` binary
//! on a bare-metal guest from `guests/` and returns what it printed.
//!
//! Without `/dev/kvm` these tests fail with a message saying so; they never
//! pass without having run a guest.

#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a guest may run before the test kills it.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The outcome of one VMM run.
#[derive(Debug)]
pub struct Run {
    /// Exit status (-1 if killed by a signal).
    pub status: i32,
    /// The guest's serial output.
    pub serial: String,
    /// The VMM's log.
    pub log: String,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// CPU time (user + system) the VMM process used.
    pub cpu: Duration,
    /// The signal that ended the VMM, if one did (including our own kill).
    pub signal: Option<i32>,
}

impl Run {
    /// Lines of serial output that start with `prefix`.
    pub fn lines(&self, prefix: &str) -> Vec<&str> {
        self.serial
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Asserts the guest printed PASS, exited 0 and printed no FAIL.
    pub fn assert_pass(&self) {
        assert!(
            self.status == 0
                && self.serial.lines().any(|l| l == "PASS")
                && !self.serial.contains("FAIL"),
            "guest did not pass (status {}):\n--- serial ---\n{}\n--- log ---\n{}",
            self.status,
            self.serial,
            self.log
        );
    }

    /// Parses `key=0x...` from the first line starting with `prefix`.
    pub fn value(&self, prefix: &str, key: &str) -> u64 {
        let line = self
            .lines(prefix)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{}", self.serial));
        parse_kv(line, key).unwrap_or_else(|| panic!("no {key}= in {line:?}"))
    }
}

/// Parses `key=0x...` (or decimal) from a line of `key=value` words.
pub fn parse_kv(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| {
        let v = w.strip_prefix(key)?.strip_prefix('=')?;
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        }
    })
}

/// Path of an assembled guest ELF; panics with the build's reason if the
/// guests could not be built.
pub fn guest(name: &str) -> PathBuf {
    guest_file(&format!("{name}.elf"))
}

/// Path of a guest image file in the build's output directory.
pub fn guest_file(file: &str) -> PathBuf {
    if let Some(e) = option_env!("EDU_GUESTS_ERROR") {
        panic!("bare-metal guests were not assembled (install GNU binutils: as, ld, objcopy): {e}");
    }
    let p = PathBuf::from(env!("OUT_DIR")).join(file);
    assert!(p.exists(), "guest image {} was not built", p.display());
    p
}

/// Fails loudly when there is no usable KVM.
pub fn require_kvm() {
    let kvm = std::path::Path::new("/dev/kvm");
    assert!(
        kvm.exists(),
        "NOT RUN: /dev/kvm does not exist on this host, so the bare-metal guest \
         tests cannot run (they need KVM; load kvm_intel/kvm_amd)"
    );
    assert!(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(kvm)
            .is_ok(),
        "NOT RUN: /dev/kvm cannot be opened (permission?): the bare-metal guest tests need it"
    );
}

/// Runs edu-vmm with `args` and returns its output.
pub fn run_vmm(args: &[&str]) -> Run {
    run_vmm_limited(args, None)
}

/// Runs edu-vmm with `args`; with `stop_after`, kills it then (status -1)
/// instead of failing the test.
pub fn run_vmm_limited(args: &[&str], stop_after: Option<Duration>) -> Run {
    let mut cmd = vmm_command();
    cmd.args(args);
    run_command(cmd, stop_after)
}

/// The edu-vmm binary of this build, as a command.
pub fn vmm_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edu-vmm"));
    // A backtrace needs files the seccomp filter refuses: a panic would
    // end in SIGSYS rather than SIGABRT if the runner's setting leaked.
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// Runs `cmd` (from [`vmm_command`]) as [`run_vmm_limited`] does.
// The child is reaped with wait4 (see `reap`), which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn run_command(mut cmd: Command, stop_after: Option<Duration>) -> Run {
    let start = Instant::now();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn edu-vmm");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut killed = false;
    let (wait_status, usage) = loop {
        if let Some(done) = reap(&child) {
            break done;
        }
        if stop_after.is_some_and(|limit| start.elapsed() > limit) && !killed {
            let _ = child.kill();
            killed = true;
        }
        if start.elapsed() > TIMEOUT && !killed {
            let _ = child.kill();
            let _ = reap_blocking(&child);
            panic!("edu-vmm {args:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let run = Run {
        status: if libc::WIFEXITED(wait_status) && !killed {
            libc::WEXITSTATUS(wait_status)
        } else {
            -1
        },
        serial: t_out.join().unwrap_or_default(),
        log: t_err.join().unwrap_or_default(),
        elapsed,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        signal: libc::WIFSIGNALED(wait_status).then(|| libc::WTERMSIG(wait_status)),
    };
    eprintln!(
        "edu-vmm {} -> status {} in {:.3} s, {:.3} CPU-s",
        args.join(" "),
        run.status,
        elapsed.as_secs_f64(),
        run.cpu.as_secs_f64()
    );
    run
}

/// The child's wait status and resource usage once it has ended (reaped
/// with `wait4`, which, unlike std's `try_wait`, reports the CPU time of
/// this one child).
fn reap(child: &Child) -> Option<(i32, libc::rusage)> {
    wait4(child, libc::WNOHANG)
}

fn reap_blocking(child: &Child) -> Option<(i32, libc::rusage)> {
    wait4(child, 0)
}

fn wait4(child: &Child, flags: i32) -> Option<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data, all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes one status and one rusage into the pointed-to
    // locals; the pid is our own unreaped child.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, flags, &mut usage) };
    assert!(pid >= 0, "wait4: {}", std::io::Error::last_os_error());
    (pid > 0).then_some((status, usage))
}

/// Boots the named guest (an ELF) with extra VMM arguments.
pub fn boot(name: &str, extra: &[&str]) -> Run {
    boot_image(&format!("{name}.elf"), extra)
}

/// Boots a guest image file from the build (e.g. `bootinfo.bzImage`).
pub fn boot_image(file: &str, extra: &[&str]) -> Run {
    require_kvm();
    let g = guest_file(file);
    let mut args = vec!["--kernel", g.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    run_vmm(&args)
}

/// A file under the system temp dir unique to this test process.
pub fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("edu-vmm-it-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("write temp file");
    p
}
