//! Assembles the bare-metal test guests in `guests/` with the GNU assembler
//! and links them with `ld` into ELF images in OUT_DIR, which the
//! integration tests boot through edu-vmm. `bootinfo` is also packaged as a
//! bzImage (a setup header in front of the flat 64-bit code), so the
//! bzImage path Linux takes is tested too.
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

/// A static, freestanding `ld` link with the given linker script; the
/// caller adds `-o` and the objects.
fn ld(script: &Path) -> Command {
    let mut cmd = Command::new("ld");
    cmd.args(["-static", "-nostdlib", "--build-id=none"])
        .args(["-z", "noexecstack", "-z", "max-page-size=0x1000"])
        .arg("-T")
        .arg(script);
    cmd
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
    run(ld(&dir.join(if name.starts_with("pvh") {
        "guest-pvh.ld"
    } else {
        "guest.ld"
    }))
    .arg("-o")
    .arg(&elf)
    .arg(&obj))
}

/// Wraps the flat image `bin` (linked at 0x100200) into a minimal bzImage:
/// a boot sector and one setup sector carrying the setup header, then the
/// protected-mode part (0x200 bytes of padding, then the code).
fn make_bzimage(bin: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 1024];
    let put = |v: &mut Vec<u8>, off: usize, b: &[u8]| v[off..off + b.len()].copy_from_slice(b);
    put(&mut v, 0x1f1, &[1]); // setup_sects
    put(&mut v, 0x1fe, &0xaa55u16.to_le_bytes()); // boot_flag
    put(&mut v, 0x202, b"HdrS");
    put(&mut v, 0x206, &0x020fu16.to_le_bytes()); // protocol 2.15
    put(&mut v, 0x211, &[0x01]); // loadflags: LOADED_HIGH
    put(&mut v, 0x214, &0x10_0000u32.to_le_bytes()); // code32_start
    put(&mut v, 0x22c, &0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    put(&mut v, 0x230, &0x1000u32.to_le_bytes()); // kernel_alignment
    put(&mut v, 0x236, &1u16.to_le_bytes()); // xloadflags: XLF_KERNEL_64
    put(&mut v, 0x238, &2047u32.to_le_bytes()); // cmdline_size
    put(&mut v, 0x258, &0x10_0000u64.to_le_bytes()); // pref_address
    put(&mut v, 0x260, &0x10_0000u32.to_le_bytes()); // init_size: 1 MiB
    v.extend_from_slice(&[0u8; 0x200]);
    v.extend_from_slice(bin);
    v
}

fn build_bzimage(dir: &Path, out: &Path, name: &str) -> Result<(), String> {
    let obj = out.join(format!("{name}.o"));
    let elf = out.join(format!("{name}-bz.elf"));
    let bin = out.join(format!("{name}-bz.bin"));
    run(ld(&dir.join("guest-bz.ld")).arg("-o").arg(&elf).arg(&obj))?;
    run(Command::new("objcopy")
        .args(["-O", "binary"])
        .arg(&elf)
        .arg(&bin))?;
    let flat = std::fs::read(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let image = out.join(format!("{name}.bzImage"));
    std::fs::write(&image, make_bzimage(&flat)).map_err(|e| format!("{}: {e}", image.display()))
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
    if names.iter().any(|n| n == "bootinfo") {
        if let Err(e) = build_bzimage(&dir, &out, "bootinfo") {
            errors.push(format!("bootinfo.bzImage: {e}"));
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
