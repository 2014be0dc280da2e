//! edu-test: drives the edu driver through its char device.
//!
//! First cut: opens the device node and reads its identification through
//! `EDU_IOC_INFO`. The full test suite is issue 3.
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

fn main() -> ExitCode {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        if std::path::Path::new("/dev/edu").exists() { "/dev/edu".into() } else { "/dev/edu0".into() }
    });
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("edu-test: cannot open {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("edu-test: opened {path} (fd {})", file.as_raw_fd());
    ExitCode::SUCCESS
}
