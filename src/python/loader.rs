//! Importing the WSGI app named on the command line (logic in loader.py,
//! which mirrors gunicorn's `import_app`).

use pyo3::prelude::*;
use pyo3::types::PyModule;
use std::ffi::CString;

const LOADER_SOURCE: &str = include_str!("loader.py");

/// Why the app did not load, ready to print: one line for a wrong spec,
/// a full traceback for an exception raised by the app's own code.
#[derive(Debug)]
pub struct LoadError {
    pub report: String,
}

fn loader_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let code = CString::new(LOADER_SOURCE).expect("loader source has no NUL");
    PyModule::from_code(py, &code, c"<ferricorn.loader>", c"_ferricorn_loader")
}

/// Import and return the app object.
pub fn load_app(py: Python<'_>, spec: &str) -> Result<Py<PyAny>, LoadError> {
    let loader = loader_module(py).map_err(|e| LoadError { report: format!("internal loader error: {e}\n") })?;
    match loader.call_method1("load", (spec,)) {
        Ok(app) => Ok(app.unbind()),
        Err(err) => Err(LoadError { report: describe(py, &loader, err) }),
    }
}

/// Render an exception for the error log: a traceback, or our one-line message.
pub fn describe(py: Python<'_>, loader: &Bound<'_, PyModule>, err: PyErr) -> String {
    let value = err.value(py).clone();
    loader
        .call_method1("describe", (value,))
        .and_then(|s| s.extract::<String>())
        .unwrap_or_else(|_| format!("{err}\n"))
}

/// Format any Python exception as a traceback string.
pub fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let run = || -> PyResult<String> {
        let tb = py.import("traceback")?;
        let lines = tb.call_method1("format_exception", (err.value(py),))?;
        let joined = "".into_pyobject(py)?.call_method1("join", (lines,))?;
        joined.extract()
    };
    run().unwrap_or_else(|_| format!("{err}\n"))
}
