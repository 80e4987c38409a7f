//! The exception classes, created at import: `Error` and its subclasses, with
//! `ConfigError` also a `ValueError` and `BindError` also an `OSError` (with `errno`).

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

struct Classes {
    error: Py<PyType>,
    config: Py<PyType>,
    public: Py<PyType>,
    bind: Py<PyType>,
    mode: Py<PyType>,
    state: Py<PyType>,
    body: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn make(py: Python<'_>, name: &str, bases: &Bound<'_, PyTuple>, doc: &str) -> PyResult<Py<PyType>> {
    let ns = PyDict::new(py);
    ns.set_item("__doc__", doc)?;
    ns.set_item("__module__", "corral")?;
    let ty = py.import("builtins")?.getattr("type")?.call1((name, bases, ns))?;
    Ok(ty.cast_into::<PyType>()?.unbind())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let exc = py.get_type::<pyo3::exceptions::PyException>();
    let value = py.get_type::<pyo3::exceptions::PyValueError>();
    let os = py.get_type::<PyOSError>();
    let error = make(py, "Error", &PyTuple::new(py, [exc])?, "Base class of corral's errors.")?;
    let e = error.bind(py).clone();
    let config = make(
        py,
        "ConfigError",
        &PyTuple::new(py, [e.clone(), value])?,
        "An option is out of range or contradicts another.",
    )?;
    let public = make(
        py,
        "PublicAddressError",
        &PyTuple::new(py, [config.bind(py).clone()])?,
        "A wildcard address (0.0.0.0 or ::) without allow_public=True.",
    )?;
    let bind = make(
        py,
        "BindError",
        &PyTuple::new(py, [e.clone(), os])?,
        "Cannot listen on the address (in use, not local, no permission); errno says which.",
    )?;
    let mode = make(py, "WrongModeError", &PyTuple::new(py, [e.clone()])?, "The call needs the other kind of engine.")?;
    let state = make(py, "StateError", &PyTuple::new(py, [e.clone()])?, "The engine is closed, or already started.")?;
    let body = make(
        py,
        "BodyError",
        &PyTuple::new(py, [e, py.get_type::<PyOSError>()])?,
        "A streamed request body will not complete (too large, malformed, too slow, or the \
         client left); the engine has answered the client already. errno: EMSGSIZE, EPROTO, \
         ETIMEDOUT or ECONNRESET.",
    )?;
    for (name, ty) in [
        ("Error", &error),
        ("ConfigError", &config),
        ("PublicAddressError", &public),
        ("BindError", &bind),
        ("WrongModeError", &mode),
        ("StateError", &state),
        ("BodyError", &body),
    ] {
        m.add(name, ty.clone_ref(py))?;
    }
    let _ = CLASSES.set(py, Classes { error, config, public, bind, mode, state, body });
    Ok(())
}

/// Maps a core error to its Python exception: the class core's error table names for
/// its kind (an `OSError` subclass gets the errno as its first argument).
pub(crate) fn to_py(py: Python<'_>, e: corral_core::Error) -> PyErr {
    let Some(c) = CLASSES.get(py) else { return PyOSError::new_err(e.to_string()) };
    let msg = e.to_string();
    let errno = e.raw_os_error().unwrap_or(0);
    let ty: Bound<'_, PyType> = match e.kind().python_class() {
        "ConfigError" => c.config.bind(py).clone(),
        "PublicAddressError" => c.public.bind(py).clone(),
        "BindError" => c.bind.bind(py).clone(),
        "WrongModeError" => c.mode.bind(py).clone(),
        "StateError" => c.state.bind(py).clone(),
        "OSError" => py.get_type::<PyOSError>(),
        // A class core names that this module does not define yet: the base class.
        _ => c.error.bind(py).clone(),
    };
    if ty.is_subclass_of::<PyOSError>().unwrap_or(false) {
        PyErr::from_type(ty, (errno, msg))
    } else {
        PyErr::from_type(ty, msg)
    }
}

/// A `StateError` with this message.
pub(crate) fn state(py: Python<'_>, msg: &str) -> PyErr {
    match CLASSES.get(py) {
        Some(c) => PyErr::from_type(c.state.bind(py).clone(), msg.to_string()),
        None => PyOSError::new_err(msg.to_string()),
    }
}

/// A `ConfigError` (a `ValueError`) with this message.
pub(crate) fn config(py: Python<'_>, msg: String) -> PyErr {
    match CLASSES.get(py) {
        Some(c) => PyErr::from_type(c.config.bind(py).clone(), msg),
        None => pyo3::exceptions::PyValueError::new_err(msg),
    }
}

/// The Python class core's error table names for each error kind (checked by a test
/// against the classes this module defines).
#[pyfunction]
pub(crate) fn error_classes() -> Vec<(&'static str, &'static str)> {
    corral_core::ErrorKind::ALL.iter().map(|k| (k.code(), k.python_class())).collect()
}

/// A `BodyError` (an `OSError`) for a streamed body that will not complete: errno says
/// why (EMSGSIZE over max_body, EPROTO malformed, ETIMEDOUT too slow, ECONNRESET the
/// connection closed), the message is core's sentence.
pub(crate) fn body(py: Python<'_>, e: &corral_core::BodyError) -> PyErr {
    let name = match e {
        corral_core::BodyError::TooLarge { .. } => "EMSGSIZE",
        corral_core::BodyError::Malformed(_) => "EPROTO",
        corral_core::BodyError::TooSlow => "ETIMEDOUT",
        _ => "ECONNRESET",
    };
    let errno: i32 = py.import("errno").and_then(|m| m.getattr(name)).and_then(|v| v.extract()).unwrap_or(0);
    match CLASSES.get(py) {
        Some(c) => PyErr::from_type(c.body.bind(py).clone(), (errno, e.to_string())),
        None => PyOSError::new_err((errno, e.to_string())),
    }
}

/// A `BodyError` with this message (no errno): a read that cannot be done here.
pub(crate) fn body_msg(py: Python<'_>, msg: &str) -> PyErr {
    match CLASSES.get(py) {
        Some(c) => PyErr::from_type(c.body.bind(py).clone(), msg.to_string()),
        None => PyOSError::new_err(msg.to_string()),
    }
}
