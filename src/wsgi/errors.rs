//! `wsgi.errors`: text the app writes goes to the error log.

use pyo3::prelude::*;

#[pyclass(module = "ferricorn")]
pub struct ErrorStream;

#[pymethods]
impl ErrorStream {
    fn write(&self, text: &str) -> usize {
        crate::log::raw_error(text);
        text.len()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            crate::log::raw_error(line?.extract::<&str>()?);
        }
        Ok(())
    }

    fn flush(&self) {}
}
