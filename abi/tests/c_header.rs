//! `include/edu_abi.h` against the Rust ABI: compiles `c_header.c` with the
//! host's C compiler (`$CC`, default `cc`), runs it, and checks that it
//! prints every constant of `abi.rs` with the same value, and the same size
//! and field offsets for every struct.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use edu_abi::*;

/// The Rust side: every line the C program must print, as it must print it.
fn rust_lines() -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    macro_rules! num {
        ($($c:ident),* $(,)?) => { $( m.insert(stringify!($c).to_string(), u64::from($c)); )* };
    }
    num!(
        EDU_IOC_MAGIC,
        EDU_BUF_SIZE,
        DMA_READ_CMD,
        DMA_WRITE_CMD,
        PRINT_EDUINFO_CMD,
        SEND_INTERRUPT_CMD,
        FACTORIAL_CMD,
        EDU_IOC_INFO,
        EDU_IOC_FACTORIAL,
        EDU_IOC_LIVENESS,
        EDU_IOC_RAISE_IRQ,
        EDU_IOC_DMA_TO_DEVICE,
        EDU_IOC_DMA_FROM_DEVICE,
        EDU_IRQ_MODE_INTX,
        EDU_IRQ_MODE_MSI,
        EDU_IRQ_FACTORIAL,
        EDU_IRQ_DMA,
    );
    macro_rules! layout {
        ($c:literal, $t:ty, $($f:ident),*) => {
            m.insert(format!("sizeof({})", $c), size_of::<$t>() as u64);
            $( m.insert(format!("offsetof({}.{})", $c, stringify!($f)), offset_of!($t, $f) as u64); )*
        };
    }
    layout!("edu_info", EduInfo, id, irq, irq_mode, minor, bar0_start, bar0_len, dma_mask);
    layout!("edu_dma", EduDma, user_addr, offset, len);
    m
}

/// The `pub const` names declared in `abi.rs`.
fn declared_constants() -> Vec<String> {
    include_str!("../src/abi.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_string)
        .collect()
}

/// Compiles and runs `c_header.c`; its output as name -> value.
fn c_lines() -> BTreeMap<String, u64> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("edu_abi_c_header");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join("tests/c_header.c"))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("running the C compiler `{cc}`: {e} (install gcc, or set CC)"));
    assert!(
        out.status.success(),
        "{cc} failed to compile tests/c_header.c against include/edu_abi.h:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().expect("running the C program");
    assert!(out.status.success(), "the C program failed");
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("NAME VALUE");
            (name.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn c_header_matches_the_rust_abi() {
    let rust = rust_lines();
    for name in declared_constants() {
        assert!(
            rust.contains_key(&name),
            "abi.rs declares {name}, which this test (and c_header.c) must check"
        );
    }
    let c = c_lines();
    for (name, value) in &rust {
        match c.get(name) {
            Some(v) => assert_eq!(v, value, "{name}: C says {v:#x}, Rust says {value:#x}"),
            None => panic!("c_header.c printed no {name}"),
        }
    }
    assert_eq!(
        c.len(),
        rust.len(),
        "c_header.c prints lines Rust does not check"
    );
}
