//! One error type for the whole engine, with a kind that each front maps one to one
//! (C status numbers, Python exception classes, Node `code` strings).

use std::fmt;
use std::io;

/// Declares [`ErrorKind`] and, from the same list, what each kind is in every front:
/// its C status number (ABI: never renumbered), its Node `err.code`, its Python exception
/// class, and a few words. The fronts read these methods and never match on the kinds,
/// so a new kind cannot silently become another one anywhere.
macro_rules! error_kinds {
    ($($(#[$doc:meta])* $kind:ident = $status:literal, $code:literal, $class:literal, $words:literal;)+) => {
        /// What went wrong, in a form a front can map to a fixed number or class.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $($(#[$doc])* $kind,)+
        }

        impl ErrorKind {
            /// Every kind, in status-number order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind),+];

            /// The `corral_status` number C callers get for this kind.
            pub fn c_status(self) -> u32 {
                match self {
                    $(ErrorKind::$kind => $status,)+
                }
            }

            /// The `err.code` Node callers get (`CORRAL_…`).
            pub fn code(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $code,)+
                }
            }

            /// The name of the Python exception class raised for this kind (`corral.…`,
            /// or the built-in `OSError`).
            pub fn python_class(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $class,)+
                }
            }

            /// A few words for the kind.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $words,)+
                }
            }
        }
    };
}

error_kinds! {
    /// An option is out of range, unknown, of the wrong type, has no effect where it was
    /// given, or contradicts another.
    InvalidConfig = 3, "CORRAL_INVALID_CONFIG", "ConfigError", "invalid configuration";
    /// A wildcard address was given without `allow_public`.
    PublicAddress = 4, "CORRAL_PUBLIC_ADDRESS", "PublicAddressError", "public address refused";
    /// Binding or listening failed (address in use, permission, no such address).
    Bind = 5, "CORRAL_BIND", "BindError", "bind failed";
    /// Another system call failed; the source carries the errno.
    Io = 6, "CORRAL_IO", "OSError", "system call failed";
    /// The call needs a running engine in another mode (e.g. `take` on a serving engine).
    WrongMode = 7, "CORRAL_WRONG_MODE", "WrongModeError", "wrong engine mode";
    /// The engine is already started, shut down, or otherwise not in the needed state.
    State = 8, "CORRAL_STATE", "StateError", "wrong engine state";
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

    /// An `InvalidConfig` error (for the fronts, which check their own arguments with the
    /// same kind as the option table).
    pub fn config(message: impl Into<String>) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_number_code_and_class() {
        let mut numbers: Vec<u32> = ErrorKind::ALL.iter().map(|k| k.c_status()).collect();
        numbers.dedup();
        assert_eq!(numbers.len(), ErrorKind::ALL.len());
        for k in ErrorKind::ALL {
            assert!(k.code().starts_with("CORRAL_"), "{k:?}");
            assert!(!k.python_class().is_empty() && !k.as_str().is_empty());
        }
    }
}
