//! Checks on arguments given from Python that are not engine options (those go through
//! the option table): each bad value is a `ConfigError` naming the argument, never a
//! panic. Used by `engine` and `serve` alike, so neither imports the other for them.

use std::time::Duration;

use pyo3::prelude::*;

use corral_core::options;

use crate::errors;

/// Seconds given from Python, checked: negative, NaN, infinite or huge values are a
/// `ConfigError` naming `what`, never a panic.
pub(crate) fn seconds(py: Python<'_>, what: &str, s: f64) -> PyResult<Duration> {
    options::seconds(s).ok_or_else(|| {
        errors::config(py, format!("{what} = {s} is out of range: use a number of seconds from 0 to 100 years"))
    })
}
