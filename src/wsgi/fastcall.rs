//! `start_response` as a METH_FASTCALL builtin function.
//!
//! It is called once per request. Through a pyclass `__call__` every call
//! builds an argument tuple and goes through generic argument parsing; as a
//! vectorcall builtin the arguments arrive as a C array, which saves about
//! a tenth of the server's own work per hello-world request.

use super::response::StartResponse;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Wrap `target` (a StartResponse) in a builtin `start_response` function.
pub fn make(py: Python<'_>, target: &Py<StartResponse>) -> PyResult<Py<PyAny>> {
    // The method definition must outlive every function made from it; one
    // leaked definition per worker process.
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"start_response".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: start_response_fast,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: c"start_response(status, response_headers, exc_info=None)".as_ptr(),
    }));
    // SAFETY: GIL held; `def` is 'static; the function keeps a reference to `target`.
    unsafe {
        let f = ffi::PyCFunction_NewEx(def, target.as_ptr(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, f).map(Bound::unbind)
    }
}

unsafe extern "C" fn start_response_fast(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls builtins with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        call(py, slf, args, nargsf, kwnames)
    }));
    match result {
        Ok(Ok(obj)) => obj,
        Ok(Err(err)) => {
            err.restore(py);
            std::ptr::null_mut()
        }
        Err(_) => {
            pyo3::exceptions::PySystemError::new_err("start_response panicked").restore(py);
            std::ptr::null_mut()
        }
    }
}

unsafe fn call(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf as usize) } as usize;
    let kw: Option<Bound<'_, PyTuple>> = if kwnames.is_null() {
        None
    } else {
        Some(unsafe { Bound::from_borrowed_ptr(py, kwnames) }.cast_into::<PyTuple>()?)
    };
    let arg = |i: usize| unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) };
    let (mut status, mut headers, mut exc_info) = (None, None, None);
    for i in 0..nargs {
        match i {
            0 => status = Some(arg(0)),
            1 => headers = Some(arg(1)),
            2 => exc_info = Some(arg(2)),
            _ => {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "start_response() takes at most 3 arguments",
                ))
            }
        }
    }
    if let Some(kw) = &kw {
        for (j, name) in kw.iter().enumerate() {
            let value = arg(nargs + j);
            match name.extract::<&str>()? {
                "status" => status = Some(value),
                "response_headers" | "headers" => headers = Some(value),
                "exc_info" => exc_info = Some(value),
                other => {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "start_response() got an unexpected keyword argument '{other}'"
                    )))
                }
            }
        }
    }
    let (Some(status), Some(headers)) = (status, headers) else {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "start_response() needs status and response_headers",
        ));
    };
    let target = unsafe { Bound::from_borrowed_ptr(py, slf) }.cast_into::<StartResponse>()?;
    let write = target
        .borrow()
        .start(py, &status, &headers, exc_info.as_ref())?;
    Ok(write.into_ptr())
}
