//! Assembles the bare-metal test guests in `guests/` with the GNU assembler
//! and links them with `ld` into ELF images in OUT_DIR, which the
//! integration tests boot through edu-vmm.
//!
//! The VMM itself does not need them: if `as` or `ld` is missing the build
//! goes on, and EDU_GUESTS_ERROR tells the tests why they cannot run (they
//! then fail loudly rather than pass).

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn build_guest(dir: &Path, out: &Path, name: &str) -> Result<(), String> {
    let obj = out.join(format!("{name}.o"));
    let elf = out.join(format!("{name}.elf"));
    run(Command::new("as")
        .arg("--64")
        .arg("-I")
        .arg(dir)
        .arg("-o")
        .arg(&obj)
        .arg(dir.join(format!("{name}.S"))))?;
    run(Command::new("ld")
        .args([
            "-static",
            "-nostdlib",
            "--build-id=none",
            "-z",
            "noexecstack",
        ])
        .args(["-z", "max-page-size=0x1000", "-T"])
        .arg(dir.join("guest.ld"))
        .arg("-o")
        .arg(&elf)
        .arg(&obj))
}

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("guests");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=guests");
    let mut errors = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let p = e.path();
                    (p.extension()? == "S").then(|| p.file_stem()?.to_str().map(String::from))?
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for n in &names {
        if let Err(e) = build_guest(&dir, &out, n) {
            errors.push(format!("{n}: {e}"));
        }
    }
    if names.is_empty() {
        errors.push(format!("no guests found in {}", dir.display()));
    }
    if !errors.is_empty() {
        let msg = errors.join("; ").replace('\n', " ");
        println!("cargo:warning=bare-metal test guests not built: {msg}");
        println!("cargo:rustc-env=EDU_GUESTS_ERROR={msg}");
    }
}
