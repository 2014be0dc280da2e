//! Files a guest sends out on its serial console, between
//!
//! ```text
//! EDU-RS-TRACE-BEGIN NAME
//! <gzip, base64, 76 columns>
//! EDU-RS-TRACE-END NAME
//! ```
//!
//! (`scripts/guest/init` writes them for `edutrace=1`). The console of a
//! nested run passes through two VMMs and may carry other lines in
//! between (kernel messages): lines that are not base64 are skipped, and
//! gzip's CRC catches a block whose lines were cut.

use std::io::Read;

use base64::Engine;

/// The marker lines.
pub const BEGIN: &str = "EDU-RS-TRACE-BEGIN ";
/// See [`BEGIN`].
pub const END: &str = "EDU-RS-TRACE-END ";

/// Errors extracting a block.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No block with that name.
    #[error("the console has no {0:?} trace block (no line `{BEGIN}{0}`)")]
    Missing(String),
    /// The block never ended (the guest died while printing it).
    #[error("the {0:?} trace block has no end line: the guest stopped while sending it")]
    Unterminated(String),
    /// The content is not base64.
    #[error("the {0:?} trace block is not base64: {1}")]
    Base64(String, base64::DecodeError),
    /// The content is not gzip or is damaged.
    #[error("the {0:?} trace block does not decompress (lines lost or cut on the console?): {1}")]
    Gzip(String, std::io::Error),
}

/// The content of block `name` in `console`.
pub fn extract(console: &str, name: &str) -> Result<String, Error> {
    let mut lines = console.lines().map(|l| l.trim_end_matches('\r'));
    let begin = format!("{BEGIN}{name}");
    let end = format!("{END}{name}");
    if !lines.any(|l| l.trim() == begin) {
        return Err(Error::Missing(name.into()));
    }
    let mut b64 = String::new();
    let mut ended = false;
    for l in lines {
        let t = l.trim();
        if t == end {
            ended = true;
            break;
        }
        if !t.is_empty()
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
        {
            b64.push_str(t);
        }
    }
    if !ended {
        return Err(Error::Unterminated(name.into()));
    }
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| Error::Base64(name.into(), e))?;
    let mut out = String::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_string(&mut out)
        .map_err(|e| Error::Gzip(name.into(), e))?;
    Ok(out)
}

/// The guest kernel's clocksource switches on the console: the printk time
/// (ns) and the new clocksource of each `clocksource: Switched to
/// clocksource NAME` line. A switch changes the rate of the guest's clock
/// (on QEMU's TCG, `tsc-early` ran 2,680 ppm fast until the kernel refined
/// the TSC's frequency and switched to `tsc`).
pub fn clock_switches(console: &str) -> Vec<(u64, String)> {
    const SWITCHED: &str = "] clocksource: Switched to clocksource ";
    console
        .lines()
        .filter_map(|l| {
            let (stamp, name) = l.split_once(SWITCHED)?;
            let secs: f64 = stamp.rsplit_once('[')?.1.trim().parse().ok()?;
            Some(((secs * 1e9).round() as u64, name.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn block(name: &str, content: &str) -> String {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(content.as_bytes()).unwrap();
        let b = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!("{BEGIN}{name}\r\n{}\r\n{END}{name}\r\n", lines.join("\r\n"))
    }

    #[test]
    fn extracts_a_block_among_other_lines() {
        let content = "x".repeat(5000) + "\nend\n";
        let b = block("guest", &content);
        // A kernel message between two base64 lines is skipped.
        let mut lines: Vec<&str> = b.lines().collect();
        lines.insert(2, "[   12.345678] some kernel message");
        let console = format!("boot\n{}\nafter\n", lines.join("\n"));
        assert_eq!(extract(&console, "guest").unwrap(), content);
    }

    #[test]
    fn says_what_is_wrong() {
        assert!(matches!(
            extract("nothing", "guest"),
            Err(Error::Missing(_))
        ));
        let b = block("guest", "hello");
        let cut = b.lines().take(2).collect::<Vec<_>>().join("\n");
        assert!(matches!(
            extract(&cut, "guest"),
            Err(Error::Unterminated(_))
        ));
        // A block whose middle lost characters fails the gzip check.
        let content: String = (0..4000)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        let b = block("guest", &content);
        let mut lines: Vec<String> = b.lines().map(String::from).collect();
        lines[2] = lines[2][4..].to_string();
        let e = extract(&lines.join("\n"), "guest").unwrap_err();
        assert!(matches!(e, Error::Gzip(..) | Error::Base64(..)), "{e}");
    }

    #[test]
    fn finds_the_clocksource_switches() {
        let console = "[    0.484583] clocksource: Switched to clocksource tsc-early\r\n\
                       [    1.681498] tsc: Refined TSC clocksource calibration: 2596.149 MHz\n\
                       EDU-RS-TRACE-ON\n\
                       [    1.683974] clocksource: Switched to clocksource tsc\n";
        assert_eq!(
            clock_switches(console),
            vec![
                (484_583_000, "tsc-early".to_string()),
                (1_683_974_000, "tsc".to_string())
            ]
        );
        assert!(clock_switches("clocksource: Switched to clocksource tsc").is_empty());
    }
}
