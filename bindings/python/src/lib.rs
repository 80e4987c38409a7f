//! `corral._corral`: the native half of the Python package. It converts types and
//! errors and nothing else; the idioms (sockets, context managers, asyncio, Response)
//! live in the pure-Python package `corral`.
//!
//! Threads: corral's threads attach to the interpreter only to call the Python
//! dispatcher of a serving engine, and every wait releases the GIL (`detach`).
//!
//! Modules point one way: `engine` (the `Engine` class) uses `serve` (the handler
//! bridge, `Request`, `Responder`), which uses `ws` (websocket events to Python, the
//! `WebSocket` class); all use `args` (argument checks) and `errors`.

mod args;
mod body;
mod engine;
mod errors;
mod pool;
mod serve;
mod service;
mod ws;

use pyo3::prelude::*;

#[pymodule]
fn _corral(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<engine::Engine>()?;
    m.add_function(wrap_pyfunction!(engine::options_table, m)?)?;
    m.add_function(wrap_pyfunction!(engine::hold_wakes, m)?)?;
    m.add_function(wrap_pyfunction!(engine::release_wakes, m)?)?;
    m.add_function(wrap_pyfunction!(engine::metrics_table, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_classes, m)?)?;
    m.add_function(wrap_pyfunction!(service::listen_fds, m)?)?;
    m.add_function(wrap_pyfunction!(service::notify, m)?)?;
    m.add_class::<pool::Pool>()?;
    m.add_class::<serve::Request>()?;
    m.add_class::<serve::Responder>()?;
    m.add_class::<body::BodyReader>()?;
    m.add_class::<ws::WebSocket>()?;
    Ok(())
}
