//! `corral_tls_*`: the TLS certificates of a running engine.

use std::ffi::c_char;

use crate::engine::{engine, CorralEngine};
use crate::{boundary, CorralStatus};

/// Reads the engine's TLS certificates and keys again from their files (`tls_cert`,
/// `tls_key`, `tls_sni_certs`, `tls_client_ca`): connections accepted from now on use
/// the new ones, open connections keep theirs. Call it after replacing the files (a
/// renewal's deploy hook, a SIGHUP handler that sets a flag your loop reads).
///
/// CORRAL_STATUS_INVALID_CONFIG if a file cannot be used (unreadable, not PEM, a key
/// that is not its certificate's) or the engine serves no TLS: the certificates served
/// before stay in use. Then, when `why` is not NULL, the reason (naming the file) is
/// written there as a NUL-terminated string, cut to fit `why_len` bytes; `why` is left
/// as it was on success. Blocks while the files are read; any thread, but not a
/// handler callback of this engine (it would hold that connection's turn meanwhile).
#[no_mangle]
pub unsafe extern "C" fn corral_tls_reload(e: *const CorralEngine, why: *mut c_char, why_len: usize) -> CorralStatus {
    boundary(|| {
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        match e.reload_tls() {
            Ok(()) => CorralStatus::Ok,
            Err(err) => {
                // SAFETY: the caller passes NULL or a buffer of `why_len` bytes.
                unsafe { write_cut(&err.to_string(), why, why_len) };
                CorralStatus::of(&err)
            }
        }
    })
}

/// Copies as much of `s` as fits `buf` (`len` bytes) with a NUL, cut at a character's
/// start; nothing when `buf` is NULL or `len` is 0.
unsafe fn write_cut(s: &str, buf: *mut c_char, len: usize) {
    if buf.is_null() || len == 0 {
        return;
    }
    let mut n = s.len().min(len - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `buf` has `len` > `n` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_cut_to_fit_at_a_character() {
        let mut buf = [1 as c_char; 6];
        unsafe { write_cut("ab\u{e9}cdef", buf.as_mut_ptr(), 4) };
        let got = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(got.to_str().unwrap(), "ab", "the two-byte character does not fit whole");
        unsafe { write_cut("ok", std::ptr::null_mut(), 4) };
        assert_eq!(unsafe { corral_tls_reload(std::ptr::null(), buf.as_mut_ptr(), 6) }, CorralStatus::NullArgument);
    }
}
