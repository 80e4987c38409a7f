//! `corral_status`: fixed numbers, one per core error kind plus the boundary's own.

use std::ffi::c_char;

use corral_core::ErrorKind;

/// The result of every call. The numbers never change; new ones are only added.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorralStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is malformed (not UTF-8, not an address, out of its type's range).
    InvalidArgument = 2,
    /// An option is out of range or options contradict each other; the config is unchanged.
    InvalidConfig = 3,
    /// A wildcard address (0.0.0.0 or ::) without corral_config_set_allow_public().
    PublicAddress = 4,
    /// Binding or listening failed (address in use, permission, no such address).
    Bind = 5,
    /// Another system call failed.
    Io = 6,
    /// The call needs an engine of the other mode (handoff vs serve).
    WrongMode = 7,
    /// The engine is not in a state that allows the call (already started, shut down).
    State = 8,
    /// The output buffer is too small; the needed size was written where asked.
    BufferTooSmall = 9,
    /// A Rust panic was caught at the boundary (a bug in corral: please report it).
    Panic = 10,
    /// The requested item does not exist (no such header, address index past the end,
    /// trailer index past the end; corral_request_take_body(): the body came whole).
    NotFound = 11,
    /// A streamed request body has nothing to read yet: wait (corral_body_when_ready())
    /// and read again.
    Pending = 12,
    /// A streamed request body has ended: everything was read.
    End = 13,
    /// The request body is over `max_body`: corral answered 413 and closes the connection.
    BodyTooLarge = 14,
    /// The request body's chunked encoding is malformed: corral answered 400 and closes
    /// the connection.
    BodyMalformed = 15,
    /// The client sent the request body too slowly (`min_body_rate` over
    /// `body_timeout`): corral answered 408 and closes the connection.
    BodyTooSlow = 16,
    /// The request body will not end: the client left, the connection closed, or the
    /// request was answered before its body was read.
    BodyClosed = 17,
    /// corral_ws_send(): the message was queued, but the websocket's unwritten bytes are
    /// now over `ws_max_backpressure`: wait for its on_drain callback before sending more.
    Backpressure = 18,
    /// Not done: the websocket (or its connection) is closing or closed, or, for
    /// corral_ws_send(), its unwritten bytes were already over `ws_max_backpressure`.
    Dropped = 19,
}

impl CorralStatus {
    /// Every status, in number order (the numbers are checked by a test).
    const ALL: [CorralStatus; 20] = [
        CorralStatus::Ok,
        CorralStatus::NullArgument,
        CorralStatus::InvalidArgument,
        CorralStatus::InvalidConfig,
        CorralStatus::PublicAddress,
        CorralStatus::Bind,
        CorralStatus::Io,
        CorralStatus::WrongMode,
        CorralStatus::State,
        CorralStatus::BufferTooSmall,
        CorralStatus::Panic,
        CorralStatus::NotFound,
        CorralStatus::Pending,
        CorralStatus::End,
        CorralStatus::BodyTooLarge,
        CorralStatus::BodyMalformed,
        CorralStatus::BodyTooSlow,
        CorralStatus::BodyClosed,
        CorralStatus::Backpressure,
        CorralStatus::Dropped,
    ];

    /// The status with this number, if there is one.
    pub(crate) fn from_number(n: u32) -> Option<CorralStatus> {
        CorralStatus::ALL.get(n as usize).copied()
    }

    /// The status for a core error: its number comes from core's error-kind table.
    pub(crate) fn of(e: &corral_core::Error) -> CorralStatus {
        let kind: ErrorKind = e.kind();
        CorralStatus::from_number(kind.c_status()).unwrap_or(CorralStatus::Io)
    }

    fn message(self) -> &'static str {
        match self {
            CorralStatus::Ok => "success",
            CorralStatus::NullArgument => "a required pointer argument was NULL",
            CorralStatus::InvalidArgument => "an argument is malformed (check UTF-8, address syntax and ranges)",
            CorralStatus::InvalidConfig => {
                "an option is out of range or contradicts another; the configuration was left unchanged"
            }
            CorralStatus::PublicAddress => {
                "refusing a wildcard address (0.0.0.0 or ::): name a specific address, or call \
                 corral_config_set_allow_public(cfg, true) to mean it"
            }
            CorralStatus::Bind => "cannot listen on the address: it may be in use, or not an address of this host",
            CorralStatus::Io => "a system call failed (descriptors or memory may be exhausted)",
            CorralStatus::WrongMode => "this call needs an engine of the other mode (handoff vs serve)",
            CorralStatus::State => "the engine is not in a state that allows this call (already started or shut down)",
            CorralStatus::BufferTooSmall => "the output buffer is too small; retry with the size reported",
            CorralStatus::Panic => "corral panicked internally; this is a bug, please report it",
            CorralStatus::NotFound => {
                "no such item (header, address or trailer index); from corral_request_take_body(): the \
                 body came whole, read it with corral_request_body()"
            }
            CorralStatus::Pending => {
                "nothing to read yet: the request body goes on; wait with corral_body_when_ready() or \
                 corral_body_read_blocking(), then read again"
            }
            CorralStatus::End => "the request body has ended: everything was read",
            CorralStatus::BodyTooLarge => {
                "the request body is larger than max_body; corral answered 413 and closes the connection; \
                 raise max_body to accept such uploads"
            }
            CorralStatus::BodyMalformed => {
                "the request body's chunked encoding is malformed; corral answered 400 and closes the connection"
            }
            CorralStatus::BodyTooSlow => {
                "the client sent the request body slower than min_body_rate for longer than body_timeout; \
                 corral answered 408 and closes the connection"
            }
            CorralStatus::BodyClosed => {
                "the request body will not end: the client left, the connection closed, or the request was \
                 answered before its body was read"
            }
            CorralStatus::Backpressure => {
                "the message was queued, but the websocket's unwritten bytes are over ws_max_backpressure: \
                 wait for on_drain before sending more"
            }
            CorralStatus::Dropped => {
                "not done: the websocket or its connection is closing or closed, or the websocket's unwritten \
                 bytes were already over ws_max_backpressure (wait for on_drain)"
            }
        }
    }
}

/// Writes a NUL-terminated description of `status` into `buf` (`len` bytes), and the
/// number of bytes written, without the NUL, into `written` (may be NULL). If `buf` is
/// too small it returns CORRAL_STATUS_BUFFER_TOO_SMALL and writes the needed size
/// (including the NUL) into `written`. An unknown number gets a generic message.
/// Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_status_message(
    status: u32,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> CorralStatus {
    crate::boundary(|| {
        let msg = match CorralStatus::from_number(status) {
            Some(s) => s.message(),
            None => "unknown status number (from a newer corral?)",
        };
        unsafe { write_str(msg, buf, len, written) }
    })
}

/// Copies `s` plus a NUL into `buf`, or reports the size needed.
pub(crate) unsafe fn write_str(s: &str, buf: *mut c_char, len: usize, written: *mut usize) -> CorralStatus {
    if buf.is_null() {
        return CorralStatus::NullArgument;
    }
    if s.len() + 1 > len {
        if !written.is_null() {
            unsafe { *written = s.len() + 1 };
        }
        return CorralStatus::BufferTooSmall;
    }
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
        if !written.is_null() {
            *written = s.len();
        }
    }
    CorralStatus::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_positions_and_every_error_kind_has_its_own_status() {
        for (i, s) in CorralStatus::ALL.iter().enumerate() {
            assert_eq!(*s as u32, i as u32);
        }
        for k in ErrorKind::ALL {
            let s = CorralStatus::from_number(k.c_status()).expect("a status for every kind");
            assert!(!matches!(s, CorralStatus::Ok | CorralStatus::Panic | CorralStatus::NullArgument), "{k:?}");
        }
        assert_eq!(CorralStatus::from_number(20), None);
    }
}
