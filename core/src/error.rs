//! One error type for the whole engine, with a kind that each front maps one to one
//! (C status numbers, Python exception classes, Node `code` strings).

use std::fmt;
use std::io;

/// What went wrong, in a form a front can map to a fixed number or class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An option is out of range or options contradict each other.
    InvalidConfig,
    /// A wildcard address was given without `allow_public`.
    PublicAddress,
    /// Binding or listening failed (address in use, permission, no such address).
    Bind,
    /// Another system call failed; the source carries the errno.
    Io,
    /// The call needs a running engine in another mode (e.g. `take` on a serving engine).
    WrongMode,
    /// The engine is already started, shut down, or otherwise not in the needed state.
    State,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidConfig => "invalid configuration",
            ErrorKind::PublicAddress => "public address refused",
            ErrorKind::Bind => "bind failed",
            ErrorKind::Io => "system call failed",
            ErrorKind::WrongMode => "wrong engine mode",
            ErrorKind::State => "wrong engine state",
        }
    }
}

/// An error with its kind, a message that says what to do, and the OS error if any.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<io::Error>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), source: None }
    }

    pub(crate) fn io(kind: ErrorKind, message: impl Into<String>, source: io::Error) -> Error {
        Error { kind, message: message.into(), source: Some(source) }
    }

    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidConfig, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The OS error number, where a system call failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.as_ref().and_then(|e| e.raw_os_error())
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {}", self.message, e),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
