//! Documents carried out of a guest over its serial console.
//!
//! In the guest, `scripts/guest/frame NAME CMD...` keeps CMD's standard
//! output in a file and then prints it as
//!
//! ```text
//! EDU-RS-FRAME-BEGIN NAME
//! EDU-RS-FRAME| first line of the output
//! EDU-RS-FRAME| ...
//! EDU-RS-FRAME-END NAME status=N bytes=B sha256=HEX
//! ```
//!
//! The console carries more than that: kernel messages (the guest's, and a
//! nested L1 host's, which shares the console), `\r` from the serial line.
//! Whole lines without the prefix are skipped; a kernel message that lands
//! inside a prefixed line changes the text, so its size or checksum no
//! longer matches and the document is rejected as damaged rather than read
//! wrongly.

use sha2::{Digest, Sha256};
use thiserror::Error;

const BEGIN: &str = "EDU-RS-FRAME-BEGIN ";
const LINE: &str = "EDU-RS-FRAME| ";
const END: &str = "EDU-RS-FRAME-END ";

/// Why a framed document could not be taken out of a console log.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// No begin marker: the command never finished, or never ran.
    #[error("no framed `{0}` document in the log (did the guest run it to the end?)")]
    Missing(String),
    /// More than one begin marker for the name.
    #[error("the log has {count} framed `{name}` documents; expected exactly one")]
    Repeated {
        /// Document name.
        name: String,
        /// How many begin markers.
        count: usize,
    },
    /// A begin marker without its end marker.
    #[error("the framed `{0}` document has no end line (the guest stopped while printing it?)")]
    Unfinished(String),
    /// The end line does not have the `status= bytes= sha256=` fields.
    #[error("the end line of `{name}` is malformed: {line:?}")]
    BadEnd {
        /// Document name.
        name: String,
        /// The end line as found.
        line: String,
    },
    /// Size or checksum differ from what the guest computed.
    #[error("the framed `{name}` document was damaged on the console ({detail})")]
    Damaged {
        /// Document name.
        name: String,
        /// What differs.
        detail: String,
    },
}

/// A document as the guest printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command's standard output, byte for byte.
    pub text: String,
    /// The command's exit status.
    pub status: i32,
}

/// Takes the framed document `name` out of a console log.
pub fn extract(log: &str, name: &str) -> Result<Frame, FrameError> {
    let lines: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).collect();
    let begin = format!("{BEGIN}{name}");
    let starts: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == begin).collect();
    let start = match starts.as_slice() {
        [] => return Err(FrameError::Missing(name.into())),
        [one] => *one,
        more => {
            return Err(FrameError::Repeated {
                name: name.into(),
                count: more.len(),
            })
        }
    };
    let end_prefix = format!("{END}{name} ");
    let mut body = Vec::new();
    for line in &lines[start + 1..] {
        if let Some(fields) = line.strip_prefix(&end_prefix) {
            return check(name, &body, fields, line);
        }
        if let Some(text) = line.strip_prefix(LINE) {
            body.push(text);
        }
    }
    Err(FrameError::Unfinished(name.into()))
}

/// Rebuilds the output from its lines and checks it against the end line's
/// `status=N bytes=B sha256=HEX`.
fn check(name: &str, body: &[&str], fields: &str, line: &str) -> Result<Frame, FrameError> {
    let bad_end = || FrameError::BadEnd {
        name: name.into(),
        line: line.into(),
    };
    let field = |key: &str| {
        fields
            .split_whitespace()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
    };
    let status: i32 = field("status")
        .and_then(|v| v.parse().ok())
        .ok_or_else(bad_end)?;
    let bytes: usize = field("bytes")
        .and_then(|v| v.parse().ok())
        .ok_or_else(bad_end)?;
    let sha = field("sha256").ok_or_else(bad_end)?;
    let mut text: String = body.iter().map(|l| format!("{l}\n")).collect();
    // The output's last line may lack its newline; `sed` in the guest adds one.
    if text.len() == bytes + 1 {
        text.pop();
    }
    if text.len() != bytes {
        return Err(FrameError::Damaged {
            name: name.into(),
            detail: format!("{} bytes arrived, the guest printed {bytes}", text.len()),
        });
    }
    let got = hex(&Sha256::digest(text.as_bytes()));
    if got != sha {
        return Err(FrameError::Damaged {
            name: name.into(),
            detail: format!("sha256 {got}, the guest computed {sha}"),
        });
    }
    Ok(Frame { text, status })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The console text `scripts/guest/frame` prints for `text`.
    pub(crate) fn framed(name: &str, text: &str, status: i32) -> String {
        let mut s = format!("{BEGIN}{name}\n");
        for l in text.lines() {
            s.push_str(&format!("{LINE}{l}\n"));
        }
        let sha = hex(&Sha256::digest(text.as_bytes()));
        s.push_str(&format!(
            "{END}{name} status={status} bytes={} sha256={sha}\n",
            text.len()
        ));
        s
    }

    #[test]
    fn takes_the_document_out_of_a_noisy_console() {
        let doc = "{\"a\":1}\nsecond line\n";
        let log = format!(
            "[    1.0] boot\r\ninit: running: x\r\n{}EDU-RS-GUEST-END status=0\r\n",
            framed("selftest", doc, 0).replace('\n', "\r\n")
        );
        let f = extract(&log, "selftest").unwrap();
        assert_eq!((f.text.as_str(), f.status), (doc, 0));
    }

    #[test]
    fn skips_whole_kernel_lines_between_the_markers() {
        let framed = framed("selftest", "{}\n", 1);
        let (head, tail) = framed.split_once('\n').unwrap();
        let log = format!("{head}\n[   12.5] kvm: something\n{tail}");
        let f = extract(&log, "selftest").unwrap();
        assert_eq!((f.text.as_str(), f.status), ("{}\n", 1));
    }

    #[test]
    fn output_without_a_final_newline_survives() {
        let f = extract(&framed("x", "no newline", 0), "x").unwrap();
        assert_eq!(f.text, "no newline");
    }

    #[test]
    fn a_kernel_message_inside_a_line_is_damage() {
        let log = framed("selftest", "{\"passed\":27,\"failed\":0}\n", 0)
            .replace("\"failed\"", "[   3.1] edu: WARNING\n\"failed\"");
        assert!(matches!(
            extract(&log, "selftest"),
            Err(FrameError::Damaged { .. })
        ));
    }

    #[test]
    fn a_changed_byte_is_damage() {
        let log = framed("selftest", "{\"passed\":27}\n", 0).replace("27", "28");
        let e = extract(&log, "selftest").unwrap_err();
        assert!(e.to_string().contains("sha256"), "{e}");
    }

    #[test]
    fn missing_unfinished_repeated_and_bad_end_lines_are_errors() {
        assert_eq!(
            extract("nothing here\n", "selftest"),
            Err(FrameError::Missing("selftest".into()))
        );
        let whole = framed("selftest", "{}\n", 0);
        let cut = whole.lines().take(2).collect::<Vec<_>>().join("\n");
        assert_eq!(
            extract(&cut, "selftest"),
            Err(FrameError::Unfinished("selftest".into()))
        );
        assert!(matches!(
            extract(&format!("{whole}{whole}"), "selftest"),
            Err(FrameError::Repeated { count: 2, .. })
        ));
        let bad = whole.replace("status=0", "status=zero");
        assert!(matches!(
            extract(&bad, "selftest"),
            Err(FrameError::BadEnd { .. })
        ));
    }

    #[test]
    fn other_names_are_not_taken() {
        let log = framed("info", "{}\n", 0);
        assert_eq!(
            extract(&log, "selftest"),
            Err(FrameError::Missing("selftest".into()))
        );
    }
}
