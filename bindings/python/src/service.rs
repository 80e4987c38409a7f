//! Living under a service manager, from Python: socket activation and readiness
//! notification, the core's (`corral::os`) — the command line uses them.

use std::os::fd::IntoRawFd;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

/// The sockets passed by socket activation as (fd, name or None): `LISTEN_FDS`
/// descriptors from fd 3 when `LISTEN_PID` is this process. The variables are removed
/// (children do not take the sockets again); each fd is the caller's from here on.
#[pyfunction]
pub(crate) fn listen_fds() -> PyResult<Vec<(i32, Option<String>)>> {
    let got = corral_core::os::listen_fds().map_err(|e| PyOSError::new_err(format!("socket activation: {e}")))?;
    Ok(got.into_iter().map(|a| (a.fd.into_raw_fd(), a.name)).collect())
}

/// Tells the service manager (`NOTIFY_SOCKET`) a state such as "READY=1"; False when
/// none listens.
#[pyfunction]
pub(crate) fn notify(py: Python<'_>, state: &str) -> PyResult<bool> {
    py.detach(|| corral_core::os::notify(state)).map_err(|e| PyOSError::new_err(format!("cannot notify {state}: {e}")))
}
