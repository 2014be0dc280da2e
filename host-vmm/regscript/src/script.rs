//! The register-script language: parsing text into [`Script`].
//!
//! One command per line, `#` starts a comment. The full grammar, with
//! examples, is in `docs/regscript.md`; in short:
//!
//! ```text
//! # model-only: <reason>          header: run against our model only
//! # known-model-mismatch: <what>  header: the model does not match yet
//! # timing-sensitive: <why>       header: compare only on the manual clock
//! read  bar0|cfg SIZE OFFSET [& MASK] [as-buf]
//! write bar0|cfg SIZE OFFSET VALUE
//! save  @NAME bar0|cfg SIZE OFFSET
//! wait  bar0|cfg SIZE OFFSET MASK set|clear TIMEOUT_MS
//! sleep MS
//! buf fill OFFSET LEN BYTE | buf pattern OFFSET LEN SEED
//! buf dump OFFSET LEN      | buf sum OFFSET LEN
//! echo TEXT
//! ```
//!
//! A VALUE is a number (decimal or `0x` hex), `$buf`, `$buf+N`, `$buf-N`
//! (the bus address of the runner's DMA buffer plus or minus N) or `@NAME`
//! (a value saved earlier).

use thiserror::Error;

/// Size in bytes of the DMA buffer every runner provides.
pub const BUF_LEN: usize = 4096;

/// Size of the region behind BAR0 (QEMU's edu: 1 MiB).
pub const BAR0_LEN: u64 = 1 << 20;

/// Size of the PCI configuration space a script may touch.
pub const CONFIG_LEN: u64 = 256;

/// Errors found while parsing a script.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// A line could not be understood.
    #[error("line {line}: {msg}")]
    Syntax {
        /// 1-based line number in the script.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

/// Which address space an access goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// The 1 MiB memory region behind BAR0.
    Bar0,
    /// The 256-byte PCI configuration space.
    Config,
}

impl Space {
    /// The name used in scripts and transcripts.
    pub fn name(self) -> &'static str {
        match self {
            Space::Bar0 => "bar0",
            Space::Config => "cfg",
        }
    }

    fn len(self) -> u64 {
        match self {
            Space::Bar0 => BAR0_LEN,
            Space::Config => CONFIG_LEN,
        }
    }
}

/// A value written by a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A literal number.
    Lit(u64),
    /// The DMA buffer's bus address plus a signed offset.
    Buf(i64),
    /// A value saved earlier with `save`.
    Var(String),
}

/// Which way a `wait` waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Until every bit of the mask is set.
    Set,
    /// Until every bit of the mask is clear.
    Clear,
}

/// One access: space, size in bytes and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Address space.
    pub space: Space,
    /// 1, 2, 4 or 8 (8 only for BAR0).
    pub size: u8,
    /// Byte offset inside the space.
    pub offset: u64,
}

/// One command of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Read and print the value (optionally masked, or relative to `$buf`).
    Read {
        /// What to read.
        access: Access,
        /// Printed value is `value & mask`.
        mask: Option<u64>,
        /// Print as `$buf+N` when the value lies inside the buffer.
        as_buf: bool,
    },
    /// Write a value.
    Write {
        /// Where to write.
        access: Access,
        /// What to write.
        value: Value,
    },
    /// Read a value into a variable without printing it.
    Save {
        /// Variable name, without the `@`.
        var: String,
        /// What to read.
        access: Access,
    },
    /// Poll until bits are set or clear, at most `timeout_ms` polls 1 ms apart.
    Wait {
        /// What to poll.
        access: Access,
        /// Bits to look at.
        mask: u64,
        /// Set or clear.
        until: WaitFor,
        /// Upper bound in milliseconds.
        timeout_ms: u64,
    },
    /// Let time pass.
    Sleep {
        /// Milliseconds.
        ms: u64,
    },
    /// Fill part of the DMA buffer with one byte.
    BufFill {
        /// Start offset in the buffer.
        offset: usize,
        /// Number of bytes.
        len: usize,
        /// The byte.
        byte: u8,
    },
    /// Fill part of the DMA buffer with a pattern (see [`pattern_byte`]).
    BufPattern {
        /// Start offset in the buffer.
        offset: usize,
        /// Number of bytes.
        len: usize,
        /// Pattern seed.
        seed: u8,
    },
    /// Print part of the DMA buffer, 16 bytes a line.
    BufDump {
        /// Start offset in the buffer.
        offset: usize,
        /// Number of bytes.
        len: usize,
    },
    /// Print a checksum of part of the DMA buffer.
    BufSum {
        /// Start offset in the buffer.
        offset: usize,
        /// Number of bytes.
        len: usize,
    },
    /// Print a line of text into the transcript.
    Echo(String),
}

/// A command with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// The command.
    pub command: Command,
}

/// A parsed script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The reason given by a `# model-only:` header, if any.
    pub model_only: Option<String>,
    /// The difference given by a `# known-model-mismatch:` header, if any:
    /// the model is known not to reproduce this script's golden file yet.
    pub known_mismatch: Option<String>,
    /// The reason given by a `# timing-sensitive:` header: the transcript
    /// depends on how long the device's asynchronous work takes, so it is
    /// only compared under the model's manual clock.
    pub timing_sensitive: Option<String>,
    /// The commands in order.
    pub lines: Vec<Line>,
}

/// The byte at position `i` of `buf pattern ... SEED`: distinct for
/// neighbouring bytes and for different seeds, so shifted or partial copies
/// show up in dumps.
pub fn pattern_byte(seed: u8, i: usize) -> u8 {
    // Truncation to the low byte is the point of the pattern.
    (i as u8)
        .wrapping_mul(7)
        .wrapping_add((i >> 8) as u8)
        .wrapping_add(seed)
}

/// Parse a number: decimal or `0x` hexadecimal, `_` allowed as separator.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    }
}

impl Script {
    /// Parse a whole script.
    pub fn parse(text: &str) -> Result<Script, ParseError> {
        let mut script = Script {
            model_only: None,
            known_mismatch: None,
            timing_sensitive: None,
            lines: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let trimmed = raw.trim();
            if let Some(comment) = trimmed.strip_prefix('#') {
                let comment = comment.trim_start();
                for (key, slot) in [
                    ("model-only:", &mut script.model_only),
                    ("known-model-mismatch:", &mut script.known_mismatch),
                    ("timing-sensitive:", &mut script.timing_sensitive),
                ] {
                    if let Some(reason) = comment.strip_prefix(key) {
                        let reason = reason.trim();
                        if reason.is_empty() {
                            return Err(syntax(number, &format!("{key} needs a reason")));
                        }
                        *slot = Some(reason.to_string());
                    }
                }
                continue;
            }
            // `echo` keeps its text verbatim, `#` included.
            if let Some(text) = trimmed.strip_prefix("echo") {
                if text.is_empty() || text.starts_with(char::is_whitespace) {
                    script.lines.push(Line {
                        number,
                        command: Command::Echo(text.trim().to_string()),
                    });
                    continue;
                }
            }
            let code = trimmed.split('#').next().unwrap_or("").trim();
            if code.is_empty() {
                continue;
            }
            let words: Vec<&str> = code.split_whitespace().collect();
            let command = parse_command(&words).map_err(|msg| syntax(number, &msg))?;
            script.lines.push(Line { number, command });
        }
        Ok(script)
    }
}

fn syntax(line: usize, msg: &str) -> ParseError {
    ParseError::Syntax {
        line,
        msg: msg.to_string(),
    }
}

fn number(word: &str, what: &str) -> Result<u64, String> {
    parse_number(word).ok_or_else(|| format!("{what}: '{word}' is not a number"))
}

fn small(word: &str, what: &str, max: usize) -> Result<usize, String> {
    let n = number(word, what)?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| format!("{what}: {n} is larger than {max}"))
}

fn parse_access(words: &[&str]) -> Result<Access, String> {
    let [space, size, offset] = words else {
        return Err("expected SPACE SIZE OFFSET".into());
    };
    let space = match *space {
        "bar0" => Space::Bar0,
        "cfg" => Space::Config,
        other => return Err(format!("unknown space '{other}' (bar0 or cfg)")),
    };
    let size = match (space, *size) {
        (_, "1") => 1,
        (_, "2") => 2,
        (_, "4") => 4,
        (Space::Bar0, "8") => 8,
        (_, other) => {
            return Err(format!(
                "size '{other}' not allowed for {} (1, 2, 4{})",
                space.name(),
                if space == Space::Bar0 { " or 8" } else { "" }
            ))
        }
    };
    let offset = number(offset, "offset")?;
    if offset.checked_add(size).is_none_or(|end| end > space.len()) {
        return Err(format!(
            "offset {offset:#x} + {size} is outside {} ({:#x} bytes)",
            space.name(),
            space.len()
        ));
    }
    if space == Space::Config && offset % size != 0 {
        return Err(format!(
            "cfg offset {offset:#x} is not a multiple of {size} (the kernel splits such accesses)"
        ));
    }
    Ok(Access {
        space,
        size: size as u8,
        offset,
    })
}

fn parse_value(word: &str) -> Result<Value, String> {
    if let Some(rest) = word.strip_prefix("$buf") {
        if rest.is_empty() {
            return Ok(Value::Buf(0));
        }
        let (sign, n) = if let Some(n) = rest.strip_prefix('+') {
            (1, n)
        } else if let Some(n) = rest.strip_prefix('-') {
            (-1, n)
        } else {
            return Err(format!("'{word}': expected $buf, $buf+N or $buf-N"));
        };
        let n = number(n, "buffer offset")?;
        let n = i64::try_from(n).map_err(|_| format!("'{word}': offset too large"))?;
        return Ok(Value::Buf(sign * n));
    }
    if let Some(name) = word.strip_prefix('@') {
        return var_name(name).map(|n| Value::Var(n.to_string()));
    }
    number(word, "value").map(Value::Lit)
}

fn var_name(name: &str) -> Result<&str, String> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(name)
    } else {
        Err(format!("bad variable name '@{name}'"))
    }
}

fn buf_range(words: &[&str]) -> Result<(usize, usize), String> {
    let offset = small(words[0], "buffer offset", BUF_LEN)?;
    let len = small(words[1], "length", BUF_LEN)?;
    if offset + len > BUF_LEN {
        return Err(format!(
            "buffer range {offset:#x}+{len} is outside the {BUF_LEN}-byte buffer"
        ));
    }
    Ok((offset, len))
}

fn parse_command(words: &[&str]) -> Result<Command, String> {
    match words {
        ["read", rest @ ..] => {
            let access = parse_access(rest.get(..3).ok_or("read SPACE SIZE OFFSET")?)?;
            let mut mask = None;
            let mut as_buf = false;
            let mut extra = &rest[3..];
            while !extra.is_empty() {
                match extra {
                    ["&", m, tail @ ..] => {
                        mask = Some(number(m, "mask")?);
                        extra = tail;
                    }
                    ["as-buf", tail @ ..] => {
                        as_buf = true;
                        extra = tail;
                    }
                    _ => return Err(format!("unexpected '{}' after read", extra.join(" "))),
                }
            }
            Ok(Command::Read {
                access,
                mask,
                as_buf,
            })
        }
        ["write", s, z, o, v] => Ok(Command::Write {
            access: parse_access(&[s, z, o])?,
            value: parse_value(v)?,
        }),
        ["save", var, s, z, o] => {
            let name = var
                .strip_prefix('@')
                .ok_or("save wants @NAME first")
                .map_err(str::to_string)?;
            Ok(Command::Save {
                var: var_name(name)?.to_string(),
                access: parse_access(&[s, z, o])?,
            })
        }
        ["wait", s, z, o, mask, until, timeout] => {
            let until = match *until {
                "set" => WaitFor::Set,
                "clear" => WaitFor::Clear,
                other => return Err(format!("wait: '{other}' is neither set nor clear")),
            };
            Ok(Command::Wait {
                access: parse_access(&[s, z, o])?,
                mask: number(mask, "mask")?,
                until,
                timeout_ms: number(timeout, "timeout")?,
            })
        }
        ["sleep", ms] => Ok(Command::Sleep {
            ms: number(ms, "milliseconds")?,
        }),
        ["buf", "fill", o, l, b] => {
            let (offset, len) = buf_range(&[o, l])?;
            let byte = u8::try_from(number(b, "byte")?).map_err(|_| "fill byte > 0xff")?;
            Ok(Command::BufFill { offset, len, byte })
        }
        ["buf", "pattern", o, l, s] => {
            let (offset, len) = buf_range(&[o, l])?;
            let seed = u8::try_from(number(s, "seed")?).map_err(|_| "seed > 0xff")?;
            Ok(Command::BufPattern { offset, len, seed })
        }
        ["buf", "dump", o, l] => {
            let (offset, len) = buf_range(&[o, l])?;
            Ok(Command::BufDump { offset, len })
        }
        ["buf", "sum", o, l] => {
            let (offset, len) = buf_range(&[o, l])?;
            Ok(Command::BufSum { offset, len })
        }
        [cmd, ..] => Err(format!("cannot parse '{}' ({cmd}?)", words.join(" "))),
        [] => Err("empty command".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Command {
        let s = Script::parse(line).unwrap();
        assert_eq!(s.lines.len(), 1, "{line}");
        s.lines[0].command.clone()
    }

    fn err(line: &str) -> String {
        Script::parse(line).unwrap_err().to_string()
    }

    #[test]
    fn parses_reads_with_modifiers() {
        assert_eq!(
            one("read bar0 4 0x20"),
            Command::Read {
                access: Access {
                    space: Space::Bar0,
                    size: 4,
                    offset: 0x20
                },
                mask: None,
                as_buf: false
            }
        );
        assert_eq!(
            one("read cfg 2 6 & 0x8   # interrupt status"),
            Command::Read {
                access: Access {
                    space: Space::Config,
                    size: 2,
                    offset: 6
                },
                mask: Some(8),
                as_buf: false
            }
        );
        assert!(matches!(
            one("read bar0 8 0x80 as-buf"),
            Command::Read { as_buf: true, .. }
        ));
    }

    #[test]
    fn parses_values() {
        let w = |v: &str| match one(&format!("write bar0 8 0x80 {v}")) {
            Command::Write { value, .. } => value,
            c => panic!("{c:?}"),
        };
        assert_eq!(w("0x1_0000"), Value::Lit(0x10000));
        assert_eq!(w("17"), Value::Lit(17));
        assert_eq!(w("$buf"), Value::Buf(0));
        assert_eq!(w("$buf+0xfff"), Value::Buf(0xfff));
        assert_eq!(w("$buf-1"), Value::Buf(-1));
        assert_eq!(w("@bar"), Value::Var("bar".into()));
    }

    #[test]
    fn parses_everything_else() {
        assert_eq!(
            one("wait bar0 4 0x98 1 clear 500"),
            Command::Wait {
                access: Access {
                    space: Space::Bar0,
                    size: 4,
                    offset: 0x98
                },
                mask: 1,
                until: WaitFor::Clear,
                timeout_ms: 500
            }
        );
        assert_eq!(one("sleep 150"), Command::Sleep { ms: 150 });
        assert_eq!(
            one("buf fill 0 4096 0xaa"),
            Command::BufFill {
                offset: 0,
                len: 4096,
                byte: 0xaa
            }
        );
        assert_eq!(
            one("buf pattern 0xff0 16 3"),
            Command::BufPattern {
                offset: 0xff0,
                len: 16,
                seed: 3
            }
        );
        assert_eq!(one("buf dump 0 1"), Command::BufDump { offset: 0, len: 1 });
        assert_eq!(
            one("buf sum 0 4096"),
            Command::BufSum {
                offset: 0,
                len: 4096
            }
        );
        assert_eq!(
            one("save @cmd cfg 2 4"),
            Command::Save {
                var: "cmd".into(),
                access: Access {
                    space: Space::Config,
                    size: 2,
                    offset: 4
                }
            }
        );
        assert_eq!(one("echo # a #1 b"), Command::Echo("# a #1 b".into()));
    }

    #[test]
    fn header_comments_and_line_numbers() {
        let s = Script::parse("# model-only: QEMU aborts\n\n  # note\nsleep 1 # x\n").unwrap();
        assert_eq!(s.model_only.as_deref(), Some("QEMU aborts"));
        assert_eq!(s.lines.len(), 1);
        assert_eq!(s.lines[0].number, 4);
        assert!(Script::parse("sleep 1").unwrap().model_only.is_none());
        assert!(err("# model-only:").contains("needs a reason"));
        let s = Script::parse("# known-model-mismatch: line 4 status\n").unwrap();
        assert_eq!(s.known_mismatch.as_deref(), Some("line 4 status"));
        assert!(s.model_only.is_none());
        let s = Script::parse("#timing-sensitive: slow\n").unwrap();
        assert_eq!(s.timing_sensitive.as_deref(), Some("slow"));
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        assert_eq!(
            err("sleep 1\nread bar0 3 0"),
            "line 2: size '3' not allowed for bar0 (1, 2, 4 or 8)"
        );
        assert!(err("read cfg 8 0").contains("size '8' not allowed for cfg"));
        assert!(err("read cfg 4 0xfe").contains("outside cfg"));
        assert!(err("read cfg 4 0x02").contains("not a multiple of 4"));
        assert!(err("write cfg 2 0x03 0").contains("not a multiple of 2"));
        assert!(err("read bar0 8 0xffffc").contains("outside bar0"));
        assert!(err("read bar0 4 0xffffffffffffffff").contains("outside bar0"));
        assert!(err("read bar0 4 zz").contains("not a number"));
        assert!(err("read bar0 4 0 | 3").contains("unexpected"));
        assert!(err("write bar0 4 0 $bufx").contains("expected $buf"));
        assert!(err("write bar0 4 0 @").contains("bad variable"));
        assert!(err("save x cfg 4 0").contains("@NAME"));
        assert!(err("wait bar0 4 0 1 maybe 5").contains("neither set nor clear"));
        assert!(err("buf dump 0xff0 17").contains("outside the 4096-byte buffer"));
        assert!(err("buf fill 0 1 0x100").contains("fill byte"));
        assert!(err("frobnicate").contains("cannot parse"));
    }

    #[test]
    fn pattern_differs_between_neighbours_and_pages() {
        assert_ne!(pattern_byte(0, 0), pattern_byte(0, 1));
        assert_ne!(pattern_byte(0, 0), pattern_byte(0, 256));
        assert_ne!(pattern_byte(0, 5), pattern_byte(1, 5));
        assert_eq!(pattern_byte(3, 2), 17);
    }
}
