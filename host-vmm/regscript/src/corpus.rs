//! The script corpus on disk and its expected transcripts.
//!
//! A directory holds `NAME.regs` scripts. Each has exactly one expected
//! transcript beside it:
//! - `NAME.golden`: recorded from QEMU's edu by `scripts/regscript-record`;
//! - `NAME.expected`: written by hand from the specification, only for
//!   scripts with a `# model-only:` header (they are never run on QEMU).
//!
//! Lines starting with `#` in either file are provenance notes and are not
//! compared (transcript lines never start with `#`).

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::script::{ParseError, Script};

/// Extension of script files.
pub const SCRIPT_EXT: &str = "regs";
/// Extension of transcripts recorded from QEMU.
pub const GOLDEN_EXT: &str = "golden";
/// Extension of hand-written transcripts of model-only scripts.
pub const EXPECTED_EXT: &str = "expected";

/// Errors reading the corpus.
#[derive(Debug, Error)]
pub enum CorpusError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A script does not parse.
    #[error("{path}: {source}")]
    Parse {
        /// The script.
        path: PathBuf,
        /// The error.
        #[source]
        source: ParseError,
    },
}

/// One script of the corpus.
#[derive(Debug, Clone)]
pub struct Entry {
    /// File name without extension.
    pub name: String,
    /// The script file.
    pub path: PathBuf,
    /// Its parsed content.
    pub script: Script,
}

impl Entry {
    /// Where its expected transcript lives: `.golden` for scripts that run
    /// on QEMU, `.expected` for model-only ones.
    pub fn expected_path(&self) -> PathBuf {
        let ext = if self.script.model_only.is_some() {
            EXPECTED_EXT
        } else {
            GOLDEN_EXT
        };
        self.path.with_extension(ext)
    }
}

/// The corpus shipped with this crate.
pub fn builtin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// Read and parse one script file.
pub fn load_script(path: &Path) -> Result<Entry, CorpusError> {
    let text = std::fs::read_to_string(path).map_err(|source| CorpusError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let script = Script::parse(&text).map_err(|source| CorpusError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Entry {
        name,
        path: path.to_path_buf(),
        script,
    })
}

/// Every `*.regs` script in `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Entry>, CorpusError> {
    let io = |source| CorpusError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let p = e.map_err(io)?.path();
        if p.extension().is_some_and(|x| x == SCRIPT_EXT) {
            paths.push(p);
        }
    }
    paths.sort();
    paths.iter().map(|p| load_script(p)).collect()
}

/// The transcript lines of an expected-transcript file (notes dropped).
pub fn parse_transcript(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Read an expected transcript.
pub fn read_transcript(path: &Path) -> Result<Vec<String>, CorpusError> {
    std::fs::read_to_string(path)
        .map(|t| parse_transcript(&t))
        .map_err(|source| CorpusError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// The first place two transcripts differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// 0-based transcript line.
    pub index: usize,
    /// The script line that produced the differing line, when known.
    pub script_line: Option<usize>,
    /// What the expected transcript has there (None: it ended).
    pub expected: Option<String>,
    /// What the run produced there (None: it ended).
    pub got: Option<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "<end of transcript>".into());
        match self.script_line {
            Some(n) => write!(f, "script line {n}")?,
            None => write!(f, "after the last script line")?,
        }
        write!(
            f,
            ", transcript line {}:\n  expected: {}\n  got:      {}",
            self.index + 1,
            show(&self.expected),
            show(&self.got)
        )
    }
}

/// Compare a run (lines with their script line) with an expected transcript.
pub fn compare(expected: &[String], got: &[(usize, String)]) -> Option<Mismatch> {
    let n = expected.len().max(got.len());
    (0..n).find_map(|i| {
        let e = expected.get(i);
        let g = got.get(i);
        if e == g.map(|(_, l)| l) {
            return None;
        }
        Some(Mismatch {
            index: i,
            script_line: g.map(|(n, _)| *n),
            expected: e.cloned(),
            got: g.map(|(_, l)| l.clone()),
        })
    })
}

/// A golden file's text: provenance notes, then the transcript.
pub fn golden_text(notes: &[String], lines: &[String]) -> String {
    let mut s = String::new();
    for n in notes {
        s.push_str("# ");
        s.push_str(n);
        s.push('\n');
    }
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn compare_finds_first_difference_and_length_changes() {
        let exp = v(&["a", "b", "c"]);
        let got = |l: &[&str]| -> Vec<(usize, String)> {
            l.iter()
                .enumerate()
                .map(|(i, s)| (10 + i, s.to_string()))
                .collect()
        };
        assert_eq!(compare(&exp, &got(&["a", "b", "c"])), None);
        let m = compare(&exp, &got(&["a", "x", "c"])).unwrap();
        assert_eq!((m.index, m.script_line), (1, Some(11)));
        assert_eq!(m.got.as_deref(), Some("x"));
        let m = compare(&exp, &got(&["a", "b"])).unwrap();
        assert_eq!((m.index, m.script_line, m.got), (2, None, None));
        let m = compare(&exp, &got(&["a", "b", "c", "d"])).unwrap();
        assert_eq!((m.index, m.expected.clone()), (3, None));
        assert!(m.to_string().contains("expected: <end of transcript>"));
    }

    #[test]
    fn golden_round_trip_drops_notes() {
        let text = golden_text(&v(&["recorded on QEMU"]), &v(&["read x", "echo y"]));
        assert!(text.starts_with("# recorded on QEMU\n"));
        assert_eq!(parse_transcript(&text), v(&["read x", "echo y"]));
    }

    #[test]
    fn corpus_directory_loading() {
        let dir = std::env::temp_dir().join(format!("regscript-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.regs"), "# model-only: why\necho b\n").unwrap();
        std::fs::write(dir.join("a.regs"), "echo a\n").unwrap();
        std::fs::write(dir.join("a.golden"), "echo a\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        let c = load_dir(&dir).unwrap();
        assert_eq!(
            c.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(c[0].expected_path(), dir.join("a.golden"));
        assert_eq!(c[1].expected_path(), dir.join("b.expected"));
        std::fs::write(dir.join("c.regs"), "bogus\n").unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("c.regs") && err.contains("line 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
