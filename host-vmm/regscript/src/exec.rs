//! Running a [`Script`] against a [`Target`] and producing its transcript.
//!
//! The transcript has one line per `read`, `wait` and `echo`, and one per
//! 16 bytes of `buf dump` (one per `buf sum`). It never contains anything a
//! runner chooses (bus addresses, BAR addresses, timings), so two runners
//! that see the same device behaviour produce the same text.

use std::collections::HashMap;

use thiserror::Error;

use crate::script::{pattern_byte, Access, Command, Line, Script, Space, Value, WaitFor, BUF_LEN};

/// Errors of a target (the thing a script drives).
#[derive(Debug, Error)]
pub enum TargetError {
    /// An I/O error talking to the device.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The target cannot do this access.
    #[error("{0}")]
    Unsupported(String),
}

/// Errors while running a script.
#[derive(Debug, Error)]
pub enum ExecError {
    /// The target failed.
    #[error("line {line}: {source}")]
    Target {
        /// Script line.
        line: usize,
        /// The failure.
        #[source]
        source: TargetError,
    },
    /// A variable was used before `save`.
    #[error("line {line}: @{name} is used before it is saved")]
    UnknownVar {
        /// Script line.
        line: usize,
        /// Variable name.
        name: String,
    },
    /// `$buf` plus an offset does not fit in 64 bits.
    #[error("line {line}: $buf{offset:+} overflows")]
    BufOverflow {
        /// Script line.
        line: usize,
        /// The offset.
        offset: i64,
    },
}

/// What a script drives: one edu device plus a DMA buffer.
pub trait Target {
    /// Read `size` bytes at `offset` of BAR0 with one access of that size.
    fn bar0_read(&mut self, offset: u64, size: u8) -> Result<u64, TargetError>;
    /// Write `size` bytes at `offset` of BAR0 with one access of that size.
    fn bar0_write(&mut self, offset: u64, size: u8, value: u64) -> Result<(), TargetError>;
    /// Read `size` bytes of configuration space.
    fn config_read(&mut self, offset: u64, size: u8) -> Result<u64, TargetError>;
    /// Write `size` bytes of configuration space.
    fn config_write(&mut self, offset: u64, size: u8, value: u64) -> Result<(), TargetError>;
    /// Bus address of the first byte of the DMA buffer ([`BUF_LEN`] bytes).
    fn buf_addr(&self) -> u64;
    /// Copy bytes out of the DMA buffer.
    fn buf_read(&mut self, offset: usize, out: &mut [u8]) -> Result<(), TargetError>;
    /// Copy bytes into the DMA buffer.
    fn buf_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TargetError>;
    /// Let `ms` milliseconds pass.
    fn sleep_ms(&mut self, ms: u64);
}

/// The mask for the low `size` bytes.
pub fn size_mask(size: u8) -> u64 {
    match size {
        8 => u64::MAX,
        n => (1u64 << (8 * u32::from(n))) - 1,
    }
}

fn hex(value: u64, size: u8) -> String {
    format!("{value:#0w$x}", w = 2 + 2 * usize::from(size))
}

fn access_text(a: &Access) -> String {
    format!("{} {} {:#05x}", a.space.name(), a.size, a.offset)
}

/// FNV-1a over the bytes: the checksum `buf sum` prints.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

struct Runner<'t, T: Target + ?Sized> {
    target: &'t mut T,
    vars: HashMap<String, u64>,
    out: Vec<String>,
    line: usize,
}

impl<T: Target + ?Sized> Runner<'_, T> {
    fn t<R>(&self, r: Result<R, TargetError>) -> Result<R, ExecError> {
        r.map_err(|source| ExecError::Target {
            line: self.line,
            source,
        })
    }

    fn read(&mut self, a: &Access) -> Result<u64, ExecError> {
        let v = match a.space {
            Space::Bar0 => self.target.bar0_read(a.offset, a.size),
            Space::Config => self.target.config_read(a.offset, a.size),
        };
        self.t(v).map(|v| v & size_mask(a.size))
    }

    fn value(&self, v: &Value) -> Result<u64, ExecError> {
        match v {
            Value::Lit(n) => Ok(*n),
            Value::Buf(off) => {
                self.target
                    .buf_addr()
                    .checked_add_signed(*off)
                    .ok_or(ExecError::BufOverflow {
                        line: self.line,
                        offset: *off,
                    })
            }
            Value::Var(name) => self.vars.get(name).copied().ok_or(ExecError::UnknownVar {
                line: self.line,
                name: name.clone(),
            }),
        }
    }

    fn buf(&mut self, offset: usize, len: usize) -> Result<Vec<u8>, ExecError> {
        let mut data = vec![0; len];
        let r = self.target.buf_read(offset, &mut data);
        self.t(r)?;
        Ok(data)
    }

    fn step(&mut self, line: &Line) -> Result<(), ExecError> {
        self.line = line.number;
        match &line.command {
            Command::Read {
                access,
                mask,
                as_buf,
            } => {
                let v = self.read(access)?;
                let shown = match mask {
                    Some(m) => format!("& {} = {}", hex(*m, access.size), hex(v & m, access.size)),
                    None => {
                        let base = self.target.buf_addr();
                        match v.checked_sub(base) {
                            Some(rel) if *as_buf && rel <= BUF_LEN as u64 => {
                                format!("= $buf+{rel:#05x}")
                            }
                            _ => format!("= {}", hex(v, access.size)),
                        }
                    }
                };
                self.out
                    .push(format!("read {} {shown}", access_text(access)));
            }
            Command::Write { access, value } => {
                let v = self.value(value)? & size_mask(access.size);
                let r = match access.space {
                    Space::Bar0 => self.target.bar0_write(access.offset, access.size, v),
                    Space::Config => self.target.config_write(access.offset, access.size, v),
                };
                self.t(r)?;
            }
            Command::Save { var, access } => {
                let v = self.read(access)?;
                self.vars.insert(var.clone(), v);
            }
            Command::Wait {
                access,
                mask,
                until,
                timeout_ms,
            } => {
                let want = match until {
                    WaitFor::Set => *mask,
                    WaitFor::Clear => 0,
                };
                let mut polls = 0;
                let result = loop {
                    let v = self.read(access)?;
                    if v & mask == want {
                        break "ok".to_string();
                    }
                    if polls >= *timeout_ms {
                        break format!("timeout, last {}", hex(v, access.size));
                    }
                    self.target.sleep_ms(1);
                    polls += 1;
                };
                let until = match until {
                    WaitFor::Set => "set",
                    WaitFor::Clear => "clear",
                };
                self.out.push(format!(
                    "wait {} {} {until}: {result}",
                    access_text(access),
                    hex(*mask, access.size)
                ));
            }
            Command::Sleep { ms } => self.target.sleep_ms(*ms),
            Command::BufFill { offset, len, byte } => {
                let r = self.target.buf_write(*offset, &vec![*byte; *len]);
                self.t(r)?;
            }
            Command::BufPattern { offset, len, seed } => {
                let data: Vec<u8> = (*offset..offset + len)
                    .map(|i| pattern_byte(*seed, i))
                    .collect();
                let r = self.target.buf_write(*offset, &data);
                self.t(r)?;
            }
            Command::BufDump { offset, len } => {
                let data = self.buf(*offset, *len)?;
                for (i, chunk) in data.chunks(16).enumerate() {
                    let bytes: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                    self.out
                        .push(format!("buf {:#06x}: {}", offset + 16 * i, bytes.join(" ")));
                }
            }
            Command::BufSum { offset, len } => {
                let data = self.buf(*offset, *len)?;
                self.out.push(format!(
                    "buf sum {offset:#06x}+{len} = {:#010x}",
                    fnv1a(&data)
                ));
            }
            Command::Echo(text) => self.out.push(format!("echo {text}")),
        }
        Ok(())
    }
}

/// Run `script` against `target` and return its transcript lines.
///
/// On an error the transcript up to the failing line is returned with it.
pub fn run<T: Target + ?Sized>(
    script: &Script,
    target: &mut T,
) -> Result<Vec<String>, (Vec<String>, ExecError)> {
    let mut runner = Runner {
        target,
        vars: HashMap::new(),
        out: Vec::new(),
        line: 0,
    };
    for line in &script.lines {
        if let Err(e) = runner.step(line) {
            return Err((runner.out, e));
        }
    }
    Ok(runner.out)
}

/// Run a script and also return, for each transcript line, the script line
/// that produced it (for error messages that point into the script).
pub fn run_with_origins<T: Target + ?Sized>(
    script: &Script,
    target: &mut T,
) -> Result<Vec<(usize, String)>, ExecError> {
    let mut runner = Runner {
        target,
        vars: HashMap::new(),
        out: Vec::new(),
        line: 0,
    };
    let mut lines = Vec::new();
    for line in &script.lines {
        let before = runner.out.len();
        runner.step(line)?;
        lines.extend(
            runner.out[before..]
                .iter()
                .map(|l| (line.number, l.clone())),
        );
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register file: every access reads back the last write of the same
    /// offset (config and BAR0 separately), the buffer is plain memory.
    #[derive(Default)]
    struct Echo {
        bar: HashMap<u64, u64>,
        cfg: HashMap<u64, u64>,
        buf: Vec<u8>,
        slept: u64,
        /// The register at 0x20 reads 1 until this many ms have passed.
        busy_until: u64,
    }

    impl Target for Echo {
        fn bar0_read(&mut self, offset: u64, _size: u8) -> Result<u64, TargetError> {
            if offset == 0x20 {
                return Ok(u64::from(self.slept < self.busy_until));
            }
            Ok(self.bar.get(&offset).copied().unwrap_or(u64::MAX))
        }
        fn bar0_write(&mut self, offset: u64, _size: u8, value: u64) -> Result<(), TargetError> {
            self.bar.insert(offset, value);
            Ok(())
        }
        fn config_read(&mut self, offset: u64, _size: u8) -> Result<u64, TargetError> {
            Ok(self.cfg.get(&offset).copied().unwrap_or(0))
        }
        fn config_write(&mut self, offset: u64, _size: u8, value: u64) -> Result<(), TargetError> {
            if offset == 0xfc {
                return Err(TargetError::Unsupported("no".into()));
            }
            self.cfg.insert(offset, value);
            Ok(())
        }
        fn buf_addr(&self) -> u64 {
            0x10_0000
        }
        fn buf_read(&mut self, offset: usize, out: &mut [u8]) -> Result<(), TargetError> {
            self.buf.resize(BUF_LEN, 0);
            out.copy_from_slice(&self.buf[offset..offset + out.len()]);
            Ok(())
        }
        fn buf_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TargetError> {
            self.buf.resize(BUF_LEN, 0);
            self.buf[offset..offset + data.len()].copy_from_slice(data);
            Ok(())
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.slept += ms;
        }
    }

    fn transcript(text: &str, t: &mut Echo) -> Vec<String> {
        run(&Script::parse(text).unwrap(), t).unwrap()
    }

    #[test]
    fn reads_print_sized_values_and_masks() {
        let mut t = Echo::default();
        let out = transcript(
            "write bar0 4 0x04 0x1234\nread bar0 4 4\nread bar0 1 4\nread bar0 8 0x10\n\
             write cfg 2 4 0x0507\nread cfg 2 4 & 0x4\n",
            &mut t,
        );
        assert_eq!(
            out,
            [
                "read bar0 4 0x004 = 0x00001234",
                "read bar0 1 0x004 = 0x34",
                "read bar0 8 0x010 = 0xffffffffffffffff",
                "read cfg 2 0x004 & 0x0004 = 0x0004",
            ]
        );
    }

    #[test]
    fn buffer_addresses_are_symbolic() {
        let mut t = Echo::default();
        let out = transcript(
            "write bar0 8 0x80 $buf+0x10\nread bar0 8 0x80 as-buf\nread bar0 8 0x80\n\
             write bar0 8 0x88 $buf+4096\nread bar0 8 0x88 as-buf\n\
             write bar0 8 0x88 $buf+4097\nread bar0 8 0x88 as-buf\n\
             write bar0 4 0x90 0x40000\nread bar0 4 0x90 as-buf\n",
            &mut t,
        );
        assert_eq!(
            out,
            [
                "read bar0 8 0x080 = $buf+0x010",
                "read bar0 8 0x080 = 0x0000000000100010",
                "read bar0 8 0x088 = $buf+0x1000",
                "read bar0 8 0x088 = 0x0000000000101001",
                "read bar0 4 0x090 = 0x00040000",
            ]
        );
    }

    #[test]
    fn writes_are_truncated_to_their_size() {
        let mut t = Echo::default();
        transcript("write bar0 2 0x08 0x12345\n", &mut t);
        assert_eq!(t.bar[&8], 0x2345);
    }

    #[test]
    fn save_and_restore_through_variables() {
        let mut t = Echo::default();
        t.cfg.insert(0x10, 0xfea0_0000);
        let out = transcript(
            "save @bar cfg 4 0x10\nwrite cfg 4 0x10 0xffffffff\nread cfg 4 0x10\n\
             write cfg 4 0x10 @bar\nread cfg 4 0x10 & 0xf\n",
            &mut t,
        );
        assert_eq!(t.cfg[&0x10], 0xfea0_0000);
        assert_eq!(out[0], "read cfg 4 0x010 = 0xffffffff");
        let err = run(&Script::parse("write cfg 4 0x10 @nope").unwrap(), &mut t).unwrap_err();
        assert_eq!(
            err.1.to_string(),
            "line 1: @nope is used before it is saved"
        );
    }

    #[test]
    fn wait_polls_until_done_or_timeout() {
        let mut t = Echo {
            busy_until: 30,
            ..Echo::default()
        };
        let out = transcript(
            "wait bar0 4 0x20 1 clear 10\nwait bar0 4 0x20 1 clear 100\nwait bar0 4 0x20 1 set 5\n",
            &mut t,
        );
        assert_eq!(
            out,
            [
                "wait bar0 4 0x020 0x00000001 clear: timeout, last 0x00000001",
                "wait bar0 4 0x020 0x00000001 clear: ok",
                "wait bar0 4 0x020 0x00000001 set: timeout, last 0x00000000",
            ]
        );
        // 10 polls of the first wait, 20 more until the bit cleared, 5 more.
        assert_eq!(t.slept, 35);
    }

    #[test]
    fn buffer_fill_pattern_dump_sum() {
        let mut t = Echo::default();
        let out = transcript(
            "buf fill 0 4096 0xee\nbuf pattern 0xffe 2 1\nbuf dump 0xff0 16\nbuf dump 0 3\n\
             buf sum 0 0\necho done # really\nsleep 7\n",
            &mut t,
        );
        assert_eq!(
            out,
            [
                "buf 0x0ff0: ee ee ee ee ee ee ee ee ee ee ee ee ee ee 02 09",
                "buf 0x0000: ee ee ee",
                "buf sum 0x0000+0 = 0x811c9dc5",
                "echo done # really",
            ]
        );
        assert_eq!(t.slept, 7);
    }

    #[test]
    fn target_errors_carry_the_line_and_partial_transcript() {
        let mut t = Echo::default();
        let (out, e) = run(
            &Script::parse("echo a\n\nwrite cfg 4 0xfc 1\necho b").unwrap(),
            &mut t,
        )
        .unwrap_err();
        assert_eq!(out, ["echo a"]);
        assert_eq!(e.to_string(), "line 3: no");
    }

    #[test]
    fn origins_point_at_script_lines() {
        let mut t = Echo::default();
        let lines = run_with_origins(
            &Script::parse("# c\necho a\nbuf dump 0 32").unwrap(),
            &mut t,
        )
        .unwrap();
        let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [2, 3, 3]);
    }

    #[test]
    fn fnv_known_value() {
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(size_mask(1), 0xff);
        assert_eq!(size_mask(8), u64::MAX);
    }
}
