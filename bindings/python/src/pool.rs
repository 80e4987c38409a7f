//! `Pool`: corral's work-stealing CPU pool, for the Python `corral.Executor`.

use std::time::Duration;

use pyo3::prelude::*;

use crate::errors;

#[pyclass(frozen, module = "corral._corral")]
pub struct Pool {
    inner: corral_core::Pool,
}

#[pymethods]
impl Pool {
    #[new]
    fn new(py: Python<'_>, threads: usize) -> PyResult<Pool> {
        if threads == 0 || threads > 1024 {
            return Err(errors::config(py, format!("max_workers = {threads} is out of range: use 1..=1024")));
        }
        let inner = corral_core::Pool::new(threads).map_err(|e| errors::to_py(py, e))?;
        Ok(Pool { inner })
    }

    /// Runs `job()` on a pool thread, attached to the interpreter for the call.
    fn submit(&self, py: Python<'_>, job: Py<PyAny>) -> PyResult<()> {
        let queued = self.inner.submit(move || {
            Python::attach(|py| {
                if let Err(e) = job.call0(py) {
                    // The Python wrapper catches job errors into its Future.
                    e.write_unraisable(py, None);
                }
            })
        });
        if queued {
            Ok(())
        } else {
            Err(errors::state(py, "the pool is shut down"))
        }
    }

    /// Stops taking jobs; with `wait`, blocks (GIL released) until the queued ones ran.
    #[pyo3(signature = (wait=true))]
    fn shutdown(&self, py: Python<'_>, wait: bool) -> bool {
        py.detach(|| self.inner.shutdown(wait.then_some(Duration::from_secs(365 * 86_400))))
    }

    #[getter]
    fn threads(&self) -> usize {
        self.inner.threads()
    }

    #[getter]
    fn queued(&self) -> usize {
        self.inner.queued()
    }
}
