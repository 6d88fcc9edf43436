//! pre_request and post_request, around each request the app serves.

use super::worker::worker_side;
use super::{helper, log_failure};
use crate::config::HookSet;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::sync::Arc;

/// pre_request / post_request for one worker; None when neither is set, so
/// the request path pays nothing for them.
pub struct RequestHooks {
    hooks: Arc<HookSet>,
    worker: Py<PyAny>,
}

impl RequestHooks {
    pub fn for_this_worker() -> Option<RequestHooks> {
        let w = worker_side()?;
        if w.hooks.get("pre_request").is_none() && w.hooks.get("post_request").is_none() {
            return None;
        }
        Some(RequestHooks {
            hooks: w.hooks.clone(),
            worker: Python::attach(|py| w.worker.clone_ref(py)),
        })
    }

    /// Make the `req` object and call pre_request. Err: the hook raised
    /// (the request is answered 500, as gunicorn does).
    pub fn pre_request<'py>(
        &self,
        py: Python<'py>,
        head: &crate::http::RequestHead,
        buf: &[u8],
        conn: &crate::wsgi::environ::ConnInfo<'_>,
    ) -> Result<Bound<'py, PyAny>, (Bound<'py, PyAny>, PyErr)> {
        let target = head.target(buf);
        let (path, query) = crate::wsgi::environ::split_target(target);
        let headers = PyList::empty(py);
        for (n, v) in head.headers(buf) {
            let name = String::from_utf8_lossy(n).to_ascii_uppercase();
            let _ = headers.append((name, String::from_utf8_lossy(v).into_owned()));
        }
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        // gunicorn's peer_addr is what accept() returned: (host, port) on
        // TCP, an empty string on a unix socket.
        let peer: PyResult<Bound<'py, PyAny>> = match conn.remote_port {
            Some(port) => (conn.remote_addr, port)
                .into_pyobject(py)
                .map(|t| t.into_any()),
            None => Ok(pyo3::types::PyString::new(py, "").into_any()),
        };
        let req = peer
            .and_then(|peer| {
                helper(py)?.getattr("Request")?.call1((
                    lossy(head.method(buf)),
                    lossy(target),
                    lossy(path),
                    lossy(query),
                    (1, head.minor_version),
                    headers,
                    peer,
                    if conn.tls { "https" } else { "http" },
                ))
            })
            .unwrap_or_else(|_| py.None().into_bound(py));
        if let Some(w) = self
            .worker
            .bind(py)
            .getattr("nr")
            .ok()
            .and_then(|n| n.extract::<u64>().ok())
        {
            let _ = self.worker.bind(py).setattr("nr", w + 1);
        }
        let Some(hook) = self.hooks.get("pre_request") else {
            return Ok(req);
        };
        match hook.callable.bind(py).call1((self.worker.bind(py), &req)) {
            Ok(_) => Ok(req),
            Err(e) => Err((req, e)),
        }
    }

    /// post_request(worker, req, environ, resp); failures are logged.
    pub fn post_request(
        &self,
        py: Python<'_>,
        req: &Bound<'_, PyAny>,
        environ: Option<Py<PyDict>>,
        status: u16,
        headers: &[(String, String)],
        sent: u64,
    ) {
        let Some(hook) = self.hooks.get("post_request") else {
            return;
        };
        let environ = environ
            .map(|e| e.into_bound(py).into_any())
            .unwrap_or_else(|| PyDict::new(py).into_any());
        let resp = helper(py)
            .and_then(|h| {
                h.getattr("Response")?
                    .call1((req, status, headers.to_vec(), sent))
            })
            .unwrap_or_else(|_| py.None().into_bound(py));
        let args = [self.worker.bind(py).clone(), req.clone(), environ, resp];
        let n = hook.arity.clamp(2, 4);
        let r = PyTuple::new(py, &args[..n]).and_then(|a| hook.callable.bind(py).call1(a));
        if let Err(e) = r {
            if let Some(tb) = e.traceback(py) {
                let _ = e.value(py).setattr("__traceback__", tb);
            }
            log_failure(
                "post_request",
                &crate::python::loader::format_traceback(py, &e),
            );
        }
    }
}
