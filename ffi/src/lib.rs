//! The C ABI of corral: `extern "C"` functions only; all behaviour lives in the
//! `corral` crate. Every exported body runs inside [`boundary`], so a Rust panic
//! becomes `CORRAL_STATUS_PANIC` instead of unwinding into C.
//!
//! Naming follows rustls-ffi: `corral_<object>_<verb>`, `_new`/`_free` pairs,
//! `_free(NULL)` is a no-op, outputs are written only on success.
#![allow(clippy::missing_safety_doc)] // every function's safety contract is in its doc comment

mod body;
mod config;
mod engine;
mod serve;
mod status;
mod tls;
mod ws;

pub use body::*;
pub use config::*;
pub use engine::*;
pub use serve::*;
pub use status::*;
pub use tls::*;
pub use ws::*;

/// The library's major version (matches `corral_version()`).
pub const CORRAL_VERSION_MAJOR: u32 = 0;
/// The library's minor version.
pub const CORRAL_VERSION_MINOR: u32 = 1;
/// The library's patch version.
pub const CORRAL_VERSION_PATCH: u32 = 0;

/// Runs `f`, turning a panic into `CORRAL_STATUS_PANIC`.
/// A path argument: NULL or not UTF-8 is refused with the status to return.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives the returned borrow.
pub(crate) unsafe fn path_arg<'a>(p: *const std::ffi::c_char) -> Result<&'a str, CorralStatus> {
    if p.is_null() {
        return Err(CorralStatus::NullArgument);
    }
    // SAFETY: the caller's contract.
    unsafe { std::ffi::CStr::from_ptr(p) }.to_str().map_err(|_| CorralStatus::InvalidArgument)
}

pub(crate) fn boundary(f: impl FnOnce() -> CorralStatus) -> CorralStatus {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(CorralStatus::Panic)
}

/// Runs `f` for a function that returns a value of its own; a panic gives `fallback`.
pub(crate) fn boundary_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Runs `f` for a function with no status to return; a panic is swallowed.
pub(crate) fn boundary_void(f: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
}

/// The library version as a NUL-terminated string, e.g. "0.1.0". Static; do not free.
/// Any thread.
#[no_mangle]
pub extern "C" fn corral_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_cargo_toml() {
        let want: Vec<u32> = env!("CARGO_PKG_VERSION").split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(want, vec![CORRAL_VERSION_MAJOR, CORRAL_VERSION_MINOR, CORRAL_VERSION_PATCH]);
        let s = unsafe { std::ffi::CStr::from_ptr(corral_version()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn a_panic_becomes_a_status() {
        assert_eq!(boundary(|| panic!("expected in this test")), CorralStatus::Panic);
        boundary_void(|| panic!("expected in this test"));
    }
}
