//! What a command ends with, and how it is printed: with `--json`, exactly
//! one JSON document on one line of stdout, on every path (success, a
//! device error, a wrong result, a usage error); without it, text.
//!
//! The document is `{"schema":1,"command":NAME, ...the command's fields...,
//! "error":{...}}`, with `error` only when the command failed.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::device::DevError;

/// Version of the JSON documents' layout; bumped when a field changes
/// meaning or goes away (new fields do not bump it).
pub const SCHEMA: u32 = 1;

/// A command's fields in its JSON document.
pub type Fields = Map<String, Value>;

/// The fields of a serializable struct.
///
/// # Panics
///
/// If `value` does not serialize to a JSON object: a bug in the caller.
pub fn fields<T: Serialize>(value: &T) -> Fields {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object: {other:?}"),
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command line or its input does not make sense; found before the
    /// device is opened. Exit status 2.
    #[error("{0}")]
    Usage(String),
    /// The device refused an operation.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The device answered, but not what it should have.
    #[error("{0}")]
    Check(String),
}

impl Failure {
    /// The process's exit status.
    pub fn exit_status(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// The `error` object of a document.
#[derive(Debug, Serialize, PartialEq)]
pub struct ErrorDoc {
    /// `usage`, `device`, `io` or `check`.
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_name: Option<&'static str>,
}

impl From<&Failure> for ErrorDoc {
    fn from(f: &Failure) -> Self {
        let plain = |kind, message: &String| ErrorDoc {
            kind,
            message: message.clone(),
            device: None,
            op: None,
            errno: None,
            errno_name: None,
        };
        match f {
            Failure::Usage(m) => plain("usage", m),
            Failure::Io(m) => plain("io", m),
            Failure::Check(m) => plain("check", m),
            Failure::Dev(e) => ErrorDoc::from(e),
        }
    }
}

impl From<&DevError> for ErrorDoc {
    fn from(e: &DevError) -> Self {
        ErrorDoc {
            kind: "device",
            message: e.errno.to_string(),
            device: Some(e.path.clone()),
            op: Some(e.op),
            errno: Some(e.errno.0),
            errno_name: e.errno.name(),
        }
    }
}

/// What a command ended with: its fields and, if it failed, why. A command
/// can fail after producing fields (a wrong factorial), so both may be set.
#[derive(Debug)]
pub struct Outcome {
    pub fields: Fields,
    pub failure: Option<Failure>,
}

impl Outcome {
    pub fn ok(fields: Fields) -> Self {
        Outcome {
            fields,
            failure: None,
        }
    }

    pub fn failed(fields: Fields, failure: Failure) -> Self {
        Outcome {
            fields,
            failure: Some(failure),
        }
    }
}

impl From<Failure> for Outcome {
    fn from(f: Failure) -> Self {
        Outcome::failed(Fields::new(), f)
    }
}

/// The whole JSON document of one invocation.
#[derive(Serialize)]
pub struct Doc<'a> {
    pub schema: u32,
    pub command: &'a str,
    #[serde(flatten)]
    pub fields: &'a Fields,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDoc>,
}

impl<'a> Doc<'a> {
    pub fn new(command: &'a str, outcome: &'a Outcome) -> Self {
        Doc {
            schema: SCHEMA,
            command,
            fields: &outcome.fields,
            error: outcome.failure.as_ref().map(ErrorDoc::from),
        }
    }
}

impl std::fmt::Display for Doc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Serializing maps of strings and numbers cannot fail.
        let line = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::Errno;

    #[derive(Serialize)]
    struct Example {
        n: u32,
        name: &'static str,
    }

    #[test]
    fn documents_carry_schema_command_fields_and_error() {
        let ok = Outcome::ok(fields(&Example { n: 5, name: "x" }));
        assert_eq!(
            Doc::new("factorial", &ok).to_string(),
            r#"{"schema":1,"command":"factorial","n":5,"name":"x"}"#
        );
        let usage = Outcome::from(Failure::Usage("offset 4096 is outside".into()));
        assert_eq!(
            Doc::new("dma-read", &usage).to_string(),
            r#"{"schema":1,"command":"dma-read","error":{"kind":"usage","message":"offset 4096 is outside"}}"#
        );
        let dev = Outcome::from(Failure::Dev(DevError {
            path: "/dev/edu0".into(),
            op: "EDU_IOC_RAISE_IRQ",
            errno: Errno(libc::EINVAL),
        }));
        assert_eq!(
            Doc::new("raise", &dev).to_string(),
            r#"{"schema":1,"command":"raise","error":{"kind":"device","message":"EINVAL (Invalid argument)","device":"/dev/edu0","op":"EDU_IOC_RAISE_IRQ","errno":22,"errno_name":"EINVAL"}}"#
        );
        let both = Outcome::failed(
            fields(&Example { n: 13, name: "y" }),
            Failure::Check("wrong".into()),
        );
        let v: Value = serde_json::from_str(&Doc::new("factorial", &both).to_string()).unwrap();
        assert_eq!(v["n"], 13);
        assert_eq!(v["error"]["kind"], "check");
    }

    #[test]
    fn usage_errors_exit_2_and_others_1() {
        assert_eq!(Failure::Usage(String::new()).exit_status(), 2);
        assert_eq!(Failure::Io(String::new()).exit_status(), 1);
        assert_eq!(Failure::Check(String::new()).exit_status(), 1);
    }

    #[test]
    fn strings_are_escaped() {
        let o = Outcome::from(Failure::Io("a\"b\nc".into()));
        assert!(Doc::new("x", &o).to_string().contains(r#""a\"b\nc""#));
    }
}
