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
    /// Files the failure involved (watched in reload mode, so a fix retries).
    pub files: Vec<String>,
}

/// The loader module, compiled once per process.
fn loader_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    static LOADER: pyo3::sync::PyOnceLock<Py<PyModule>> = pyo3::sync::PyOnceLock::new();
    LOADER
        .get_or_try_init(py, || {
            let code = CString::new(LOADER_SOURCE).expect("loader source has no NUL");
            PyModule::from_code(py, &code, c"<ferricorn.loader>", c"_ferricorn_loader")
                .map(Bound::unbind)
        })
        .map(|m| m.bind(py).clone())
}

/// Import and return the app object.
pub fn load_app(py: Python<'_>, spec: &str) -> Result<Py<PyAny>, LoadError> {
    let loader = loader_module(py).map_err(|e| LoadError {
        report: format!("internal loader error: {e}\n"),
        files: vec![],
    })?;
    match loader.call_method1("load", (spec,)) {
        Ok(app) => Ok(app.unbind()),
        Err(err) => {
            if let Some(tb) = err.traceback(py) {
                let _ = err
                    .value(py)
                    .setattr(pyo3::intern!(py, "__traceback__"), tb);
            }
            let files = loader
                .call_method1("error_files", (err.value(py),))
                .and_then(|f| f.extract::<Vec<String>>())
                .unwrap_or_default();
            Err(LoadError {
                report: describe(py, &loader, err),
                files,
            })
        }
    }
}

/// The source files behind `sys.modules` (for the reloader).
pub fn module_files(py: Python<'_>) -> Vec<String> {
    loader_module(py)
        .and_then(|l| l.call_method0("module_files"))
        .and_then(|f| f.extract::<Vec<String>>())
        .unwrap_or_default()
}

/// A WSGI app answering 500 with `report` (reload mode, broken first start).
pub fn error_app(py: Python<'_>, report: &str) -> PyResult<Py<PyAny>> {
    Ok(loader_module(py)?
        .call_method1("error_app", (report,))?
        .unbind())
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
