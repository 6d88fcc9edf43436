//! `wsgi.file_wrapper`: lets an app hand over a file; when the file has a
//! real descriptor the worker sends it with sendfile(2) instead of reading
//! it through Python.

use nix::sys::stat::SFlag;
use pyo3::prelude::*;

#[pyclass(module = "ferricorn", name = "FileWrapper")]
pub struct FileWrapper {
    #[pyo3(get)]
    pub filelike: Py<PyAny>,
    #[pyo3(get)]
    pub blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        Ok(if data.is_truthy()? { Some(data) } else { None })
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}

/// The fd and current offset of a wrapped file, if sendfile can use it.
pub fn sendfile_source(py: Python<'_>, wrapper: &FileWrapper) -> Option<(i32, i64)> {
    let f = wrapper.filelike.bind(py);
    let fd: i32 = f.call_method0("fileno").ok()?.extract().ok()?;
    // Text files or buffered readers may have read ahead; tell() is the truth.
    let pos: i64 = f.call_method0("tell").ok()?.extract().ok()?;
    let st = fstat(fd)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return None;
    }
    Some((fd, pos))
}

/// Bytes from `offset` to the end of the file behind `fd`.
pub fn remaining_len(fd: i32, offset: i64) -> Option<u64> {
    Some((fstat(fd)?.st_size - offset).max(0) as u64)
}

/// fstat(2) of the wrapped file's fd; its file object keeps it open.
fn fstat(fd: i32) -> Option<nix::sys::stat::FileStat> {
    crate::net::with_fd(fd, |fd| nix::sys::stat::fstat(fd)).ok()
}
