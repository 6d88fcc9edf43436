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

/// CPython's entry point: turns the raw call into borrowed objects, runs
/// [`call`], and hands back a new reference or NULL with the error set.
/// (A safe `extern "C" fn`: it coerces to the method table's pointer type.)
extern "C" fn start_response_fast(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a METH_FASTCALL|METH_KEYWORDS builtin with the GIL
    // held, `slf` the object it was made with (a StartResponse: `make`),
    // `args` an array of PyVectorcall_NARGS(nargsf) positional arguments
    // followed by one per name in `kwnames` (NULL or a tuple of str), all
    // borrowed for the length of the call, which is how long they are used.
    let (py, target, args, kwnames) = unsafe {
        let py = Python::assume_attached();
        let nargs = ffi::PyVectorcall_NARGS(nargsf as usize) as usize;
        let kwnames = (!kwnames.is_null()).then(|| Bound::from_borrowed_ptr(py, kwnames));
        let nkw = kwnames
            .as_ref()
            .map_or(0, |k| ffi::PyTuple_GET_SIZE(k.as_ptr()) as usize);
        let all = if nargs + nkw == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(args, nargs + nkw)
        };
        let args = Arguments { py, all, nargs };
        (py, Bound::from_borrowed_ptr(py, slf), args, kwnames)
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call(py, target, args, kwnames)
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

/// The vectorcall argument array: positional ones first, then keyword values.
struct Arguments<'py> {
    py: Python<'py>,
    all: &'py [*mut ffi::PyObject],
    nargs: usize,
}

impl<'py> Arguments<'py> {
    fn get(&self, i: usize) -> Bound<'py, PyAny> {
        // SAFETY: every pointer of the array is a live object CPython lends
        // us for the call (see start_response_fast); from_borrowed_ptr takes
        // a new reference of its own.
        unsafe { Bound::from_borrowed_ptr(self.py, self.all[i]) }
    }
}

fn call(
    py: Python<'_>,
    target: Bound<'_, PyAny>,
    args: Arguments<'_>,
    kwnames: Option<Bound<'_, PyAny>>,
) -> PyResult<*mut ffi::PyObject> {
    let nargs = args.nargs;
    let kw: Option<Bound<'_, PyTuple>> = kwnames.map(|k| k.cast_into::<PyTuple>()).transpose()?;
    let arg = |i: usize| args.get(i);
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
    let target = target.cast_into::<StartResponse>()?;
    let write = target
        .borrow()
        .start(py, &status, &headers, exc_info.as_ref())?;
    Ok(write.into_ptr())
}
