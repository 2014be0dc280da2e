//! Carrying transcripts out of a guest over its serial console.
//!
//! The guest prints each transcript between a begin and an end marker, every
//! line prefixed, and the end marker carries the line count and a checksum.
//! The host takes the console log apart again with [`extract`]: anything
//! else on the console (kernel messages, the init's own lines, `\r`) is
//! ignored, and a transcript that was garbled on the way (a kernel message
//! in the middle of a line) fails its checksum instead of becoming a wrong
//! golden file.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::exec::fnv1a;

const BEGIN: &str = "@@regscript begin ";
const LINE: &str = "@@| ";
const END: &str = "@@regscript end ";
const FAIL: &str = "@@regscript fail ";

/// What went wrong with one script in a console log.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The guest reported an error running the script.
    #[error("{name}: failed in the guest: {msg}")]
    Failed {
        /// Script name.
        name: String,
        /// The guest's message.
        msg: String,
    },
    /// The script began but never ended (the VM died or timed out).
    #[error("{name}: began but never ended (did the VMM crash?)")]
    Unfinished {
        /// Script name.
        name: String,
    },
    /// The line count or checksum does not match.
    #[error("{name}: transcript garbled on the console ({detail})")]
    Garbled {
        /// Script name.
        name: String,
        /// Expected versus seen.
        detail: String,
    },
}

fn checksum(lines: &[String]) -> u32 {
    fnv1a(lines.join("\n").as_bytes())
}

/// The console text for one script's transcript.
pub fn frame(name: &str, lines: &[String]) -> String {
    let mut s = format!("{BEGIN}{name}\n");
    for l in lines {
        s.push_str(LINE);
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(&format!(
        "{END}{name} lines={} fnv={:#010x}\n",
        lines.len(),
        checksum(lines)
    ));
    s
}

/// The console text for a script that failed in the guest; `partial` is the
/// transcript up to the failure.
pub fn frame_failure(name: &str, partial: &[String], msg: &str) -> String {
    let mut s = format!("{BEGIN}{name}\n");
    for l in partial {
        s.push_str(LINE);
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(&format!("{FAIL}{name}: {}\n", msg.replace('\n', " ")));
    s
}

/// Every script found in a console log, by name, in name order.
pub fn extract(log: &str) -> BTreeMap<String, Result<Vec<String>, FrameError>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for raw in log.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix(BEGIN) {
            if let Some((old, _)) = current.take() {
                out.insert(old.clone(), Err(FrameError::Unfinished { name: old }));
            }
            current = Some((name.trim().to_string(), Vec::new()));
        } else if let Some(text) = line.strip_prefix(LINE) {
            if let Some((_, lines)) = current.as_mut() {
                lines.push(text.to_string());
            }
        } else if let Some(rest) = line.strip_prefix(END) {
            let Some((name, lines)) = current.take() else {
                continue;
            };
            let expected = format!(
                "{name} lines={} fnv={:#010x}",
                lines.len(),
                checksum(&lines)
            );
            let result = if rest.trim() == expected {
                Ok(lines)
            } else {
                Err(FrameError::Garbled {
                    name: name.clone(),
                    detail: format!("end line says '{}', received '{expected}'", rest.trim()),
                })
            };
            out.insert(name, result);
        } else if let Some(rest) = line.strip_prefix(FAIL) {
            let Some((name, _)) = current.take() else {
                continue;
            };
            let msg = rest
                .strip_prefix(&format!("{name}: "))
                .unwrap_or(rest)
                .to_string();
            out.insert(name.clone(), Err(FrameError::Failed { name, msg }));
        }
    }
    if let Some((name, _)) = current {
        out.insert(name.clone(), Err(FrameError::Unfinished { name }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn round_trip_through_a_noisy_console() {
        let a = lines(&["read bar0 4 0x000 = 0x010000ed", "echo x"]);
        let b: Vec<String> = Vec::new();
        let log = format!(
            "[    0.1] booting\r\n{}[    1.2] random: crng init done\r\n{}EDU-RS-GUEST-END status=0\n",
            frame("a", &a).replace('\n', "\r\n"),
            frame("b", &b)
        );
        let got = extract(&log);
        assert_eq!(got.len(), 2);
        assert_eq!(got["a"], Ok(a));
        assert_eq!(got["b"], Ok(b));
    }

    #[test]
    fn garbled_failed_and_unfinished_scripts_are_errors() {
        let good = frame("g", &lines(&["read bar0 4 0x000 = 0x010000ed"]));
        let garbled = good.replace("0x010000ed", "0x010[ 3.0] oops000ed");
        let dropped = frame("d", &lines(&["x", "y"])).replace("@@| y\n", "");
        let log = format!(
            "{garbled}{dropped}{}{}@@regscript begin u\n@@| half",
            frame_failure("f", &lines(&["x"]), "line 3: read config: EIO\nmore"),
            frame("ok", &lines(&["z"]))
        );
        let got = extract(&log);
        assert!(matches!(got["g"], Err(FrameError::Garbled { .. })));
        assert!(matches!(got["d"], Err(FrameError::Garbled { .. })));
        assert_eq!(
            got["f"],
            Err(FrameError::Failed {
                name: "f".into(),
                msg: "line 3: read config: EIO more".into()
            })
        );
        assert_eq!(got["u"], Err(FrameError::Unfinished { name: "u".into() }));
        assert_eq!(got["ok"], Ok(lines(&["z"])));
    }

    #[test]
    fn a_new_begin_ends_an_unfinished_script() {
        let log = format!("@@regscript begin a\n@@| 1\n{}", frame("b", &[]));
        let got = extract(&log);
        assert_eq!(got["a"], Err(FrameError::Unfinished { name: "a".into() }));
        assert_eq!(got["b"], Ok(vec![]));
    }
}
