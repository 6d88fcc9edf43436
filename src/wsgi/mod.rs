//! Calling the WSGI app for one parsed request (PEP 3333).

pub mod date;
pub mod environ;
pub mod errors;
mod fastcall;
pub mod file_wrapper;
pub mod input;
pub mod response;

use crate::http::{BodyKind, HttpError, Limits, RequestHead};
use crate::net::Patience;
use environ::{build_environ, ConnInfo, Keys};
use input::{Body, InputStream, DRAIN_MAX};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use response::{Responder, StartResponse, WriteCallable};
use std::cell::RefCell;
use std::rc::Rc;

/// Set (from a signal handler) when the worker was told to stop gracefully:
/// a response whose head is built from then on says `Connection: close`,
/// even if the event loop has not seen the signal yet because the app is
/// still running.
pub static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// gunicorn's error page body, so clients and tests see the familiar text.
pub fn error_page(reason: &str, detail: &str) -> String {
    format!("<html>\n  <head>\n    <title>{reason}</title>\n  </head>\n  <body>\n    <h1><p>{reason}</p></h1>\n    {detail}\n  </body>\n</html>\n")
}

/// Options fixed for the life of a worker.
#[derive(Clone)]
pub struct WsgiOptions {
    pub limits: Limits,
    /// How the request's socket operations wait (the worker's mode decides).
    pub patience: Patience,
    pub sendfile: bool,
    pub script_name: String,
    pub multiprocess: bool,
    /// Other requests may run at the same time on other threads of this
    /// process (`wsgi.multithread`).
    pub multithread: bool,
    /// Keep the app's response headers as pairs (the access log needs them).
    pub record_headers: bool,
}

/// The loaded app plus everything built once per worker.
pub struct WsgiApp {
    app: Py<PyAny>,
    template: Py<PyDict>,
    keys: Keys,
    opts: WsgiOptions,
    /// Made once and reset per request: one request runs at a time, so the
    /// same start_response, wsgi.input and their state serve every request
    /// without allocating.
    responder: Rc<RefCell<Responder>>,
    /// The `start_response` builtin handed to the app (wraps a StartResponse).
    start_response: Py<PyAny>,
    body: input::SharedBody,
    /// pre_request/post_request server hooks; None (the usual case) costs
    /// one check per request.
    request_hooks: Option<crate::hooks::RequestHooks>,
    /// The last request's environ, kept for post_request only (`hooked`).
    last_environ: Option<Py<PyDict>>,
    hooked: bool,
}

/// One request as the worker hands it over.
pub struct Request<'a> {
    /// The connection's byte stream (plain or TLS).
    pub io: &'a crate::stream::Stream,
    /// The connection buffer: the head, then whatever the client sent after it.
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    pub conn: &'a ConnInfo<'a>,
    /// The worker is stopping: answer with `Connection: close`.
    pub stopping: bool,
    pub keep_alive_enabled: bool,
}

/// What happened, for the worker's connection handling and the access log.
pub struct Outcome {
    pub keep_alive: bool,
    /// Bytes after the body that belong to the next request, when the body
    /// was moved out of the connection buffer. None: the body was empty and
    /// everything after `head_len` in the buffer is still the next request.
    pub leftover: Option<Vec<u8>>,
    pub status: u16,
    pub sent: u64,
    pub response_headers: Vec<(String, String)>,
    /// The connection closes with request bytes possibly still unread:
    /// close it gently (see the worker's lingering close), since closing a
    /// socket with unread input resets it and can cut the response short.
    pub linger: bool,
}

impl WsgiApp {
    pub fn new(py: Python<'_>, app: Py<PyAny>, opts: WsgiOptions) -> PyResult<WsgiApp> {
        let keys = Keys::new(py);
        let t = presized_dict(py, 48)?;
        let k = |s: &str| PyString::intern(py, s);
        t.set_item(k("wsgi.version"), (1, 0))?;
        t.set_item(k("wsgi.url_scheme"), "http")?;
        t.set_item(k("wsgi.multithread"), opts.multithread)?;
        t.set_item(k("wsgi.multiprocess"), opts.multiprocess)?;
        t.set_item(k("wsgi.run_once"), false)?;
        t.set_item(k("wsgi.input_terminated"), true)?;
        t.set_item(k("wsgi.errors"), Py::new(py, errors::ErrorStream)?)?;
        t.set_item(
            k("wsgi.file_wrapper"),
            py.get_type::<file_wrapper::FileWrapper>(),
        )?;
        t.set_item(k("SERVER_SOFTWARE"), crate::server_name::software())?;
        t.set_item(k("SCRIPT_NAME"), opts.script_name.as_str())?;
        // Every per-request key is in the template already, so filling in a
        // request replaces values in place instead of growing the dict.
        for key in [
            &keys.request_method,
            &keys.path_info,
            &keys.query_string,
            &keys.raw_uri,
            &keys.server_protocol,
            &keys.remote_addr,
            &keys.remote_port,
            &keys.server_name,
            &keys.server_port,
            &keys.wsgi_input,
        ] {
            t.set_item(key.bind(py), "")?;
        }
        let responder = Rc::new(RefCell::new(Responder::new(
            crate::stream::Stream::plain(-1),
            1,
            false,
            false,
            opts.patience,
        )));
        let write = Py::new(
            py,
            WriteCallable {
                responder: responder.clone(),
            },
        )?;
        let start_target = Py::new(
            py,
            StartResponse {
                responder: responder.clone(),
                write,
            },
        )?;
        let start_response = fastcall::make(py, &start_target)?;
        let body = Rc::new(RefCell::new(Body::new(
            crate::stream::Stream::plain(-1),
            Vec::new(),
            &BodyKind::None,
            &opts.limits,
            false,
            opts.patience,
        )));
        let input = Py::new(py, InputStream { body: body.clone() })?;
        // One wsgi.input object serves every request (its body is reset per
        // request), so it lives in the template.
        t.set_item(keys.wsgi_input.bind(py), input.bind(py))?;
        let request_hooks = crate::hooks::RequestHooks::for_this_worker();
        Ok(WsgiApp {
            app,
            template: t.unbind(),
            keys,
            opts,
            responder,
            start_response,
            body,
            hooked: request_hooks.is_some(),
            request_hooks,
            last_environ: None,
        })
    }

    pub fn handle(&mut self, py: Python<'_>, req: &Request<'_>) -> Outcome {
        let Some(hooks) = self.request_hooks.take() else {
            return self.call_app(py, req);
        };
        let out = match hooks.pre_request(py, req.head, req.buf, req.conn) {
            Ok(r) => {
                let out = self.call_app(py, req);
                hooks.post_request(
                    py,
                    &r,
                    self.last_environ.take(),
                    out.status,
                    &out.response_headers,
                    out.sent,
                );
                out
            }
            // As gunicorn: a failing pre_request is that request's 500.
            Err((r, e)) => {
                let path =
                    String::from_utf8_lossy(environ::split_target(req.head.target(req.buf)).0)
                        .into_owned();
                crate::error!(
                    "Error handling request {path}\n{}",
                    crate::python::loader::format_traceback(py, &e).trim_end()
                );
                let page = error_page("Internal Server Error", "");
                send_simple(
                    req.io,
                    req.head.minor_version,
                    500,
                    "Internal Server Error",
                    &page,
                    self.opts.patience,
                );
                hooks.post_request(py, &r, None, 500, &[], page.len() as u64);
                Outcome {
                    keep_alive: false,
                    leftover: None,
                    status: 500,
                    sent: page.len() as u64,
                    response_headers: vec![],
                    linger: true,
                }
            }
        };
        self.request_hooks = Some(hooks);
        out
    }

    fn call_app(&mut self, py: Python<'_>, req: &Request<'_>) -> Outcome {
        let head = req.head;
        let responder = self.reset_responder(req);
        let body = self.reset_body(req);

        if let Some(err) = body.as_ref().and_then(|b| b.borrow().error.clone()) {
            return self.client_error(req, &responder, err.status, err.reason, &err.detail);
        }
        responder.borrow_mut().body = body.clone();

        let template = self.template.bind(py);
        let environ = match build_environ(
            py,
            &mut self.keys,
            template,
            head,
            req.buf,
            req.conn,
            &self.opts.script_name,
        ) {
            Ok(env) => env,
            Err(e) => return self.client_error(req, &responder, 400, "Bad Request", &e.0),
        };
        if self.hooked {
            self.last_environ = Some(environ.clone().unbind());
        }
        let start = self.start_response.bind(py).clone();
        let result = match self.app.bind(py).call1((environ, start)) {
            Ok(r) => r,
            Err(e) => return self.server_error(py, req, &responder, &e, body.as_ref()),
        };
        if let Some(err) = body.as_ref().and_then(|b| unread_body_error(b, &responder)) {
            let _ = call_close(py, &result);
            return self.client_error(req, &responder, err.status, err.reason, &err.detail);
        }
        let sent = send_iterable(py, &result, &responder, self.opts.sendfile);
        // PEP 3333: close() is called whatever happened, client gone or not.
        let closed = call_close(py, &result);
        if let Err(e) = sent.and(closed) {
            return self.server_error(py, req, &responder, &e, body.as_ref());
        }
        if !responder.borrow().started {
            let e = pyo3::exceptions::PyRuntimeError::new_err(
                "the app returned without calling start_response()",
            );
            return self.server_error(py, req, &responder, &e, body.as_ref());
        }
        let finish = responder.borrow_mut().finish();
        self.outcome(&responder, body.as_ref(), finish.is_ok())
    }

    /// The shared responder, made ready for this request.
    fn reset_responder(&self, req: &Request<'_>) -> Rc<RefCell<Responder>> {
        let head = req.head;
        let allowed = head.keep_alive && req.keep_alive_enabled && !req.stopping;
        let is_head = head.method(req.buf) == b"HEAD";
        let responder = self.responder.clone();
        responder.borrow_mut().reset(
            req.io.clone(),
            head.minor_version,
            is_head,
            allowed,
            self.opts.record_headers,
        );
        responder
    }

    /// The shared `wsgi.input`, made ready for this request's body (or for
    /// none); the body is handed out only when the request has one.
    fn reset_body(&self, req: &Request<'_>) -> Option<Rc<RefCell<Body>>> {
        let head = req.head;
        let has_body = !matches!(head.body, BodyKind::None | BodyKind::Length(0));
        let mut b = self.body.borrow_mut();
        if has_body {
            let raw = req.buf[head.head_len..].to_vec();
            *b = Body::new(
                req.io.clone(),
                raw,
                &head.body,
                &self.opts.limits,
                head.expect_continue,
                self.opts.patience,
            );
            b.precheck();
        } else {
            *b = Body::new(
                req.io.clone(),
                Vec::new(),
                &BodyKind::None,
                &self.opts.limits,
                false,
                self.opts.patience,
            );
        }
        has_body.then(|| self.body.clone())
    }

    fn outcome(
        &self,
        responder: &Rc<RefCell<Responder>>,
        body: Option<&Rc<RefCell<Body>>>,
        ok: bool,
    ) -> Outcome {
        let mut r = responder.borrow_mut();
        let mut keep_alive = ok && r.connection_reusable();
        let mut leftover = None;
        let mut linger = false;
        if let Some(b) = body {
            let mut b = b.borrow_mut();
            // Unread body bytes must go before the next request can be parsed.
            if keep_alive && !b.is_finished() && !b.drain(DRAIN_MAX) {
                keep_alive = false;
            }
            if b.error.is_some() {
                keep_alive = false;
            }
            linger = !keep_alive && (!b.is_finished() || b.error.is_some());
            leftover = Some(b.take_leftover());
        }
        Outcome {
            keep_alive,
            leftover,
            status: r.status_code,
            sent: r.sent,
            response_headers: std::mem::take(&mut r.headers),
            linger,
        }
    }

    /// A request the client got wrong (bad body framing, contradictory
    /// headers): answered with `status` and the connection closed.
    fn client_error(
        &self,
        req: &Request<'_>,
        responder: &Rc<RefCell<Responder>>,
        status: u16,
        reason: &str,
        detail: &str,
    ) -> Outcome {
        crate::debug!("Invalid request from {}: {}", req.conn.remote_addr, detail);
        let page = error_page(reason, &html_escape(detail));
        send_simple(
            req.io,
            req.head.minor_version,
            status,
            reason,
            &page,
            self.opts.patience,
        );
        let _ = responder;
        Outcome {
            keep_alive: false,
            leftover: None,
            status,
            sent: page.len() as u64,
            response_headers: vec![],
            linger: true,
        }
    }

    /// The app failed: 500 if nothing was sent yet, else cut the connection.
    fn server_error(
        &self,
        py: Python<'_>,
        req: &Request<'_>,
        responder: &Rc<RefCell<Responder>>,
        err: &PyErr,
        body: Option<&Rc<RefCell<Body>>>,
    ) -> Outcome {
        // A malformed body is the client's fault even if the app tripped over it.
        if let Some(e) = body.and_then(|b| b.borrow().error.clone()) {
            if !responder.borrow().headers_sent {
                return self.client_error(req, responder, e.status, e.reason, &e.detail);
            }
        }
        let path =
            String::from_utf8_lossy(environ::split_target(req.head.target(req.buf)).0).into_owned();
        // On 3.11 a fetched error keeps its traceback beside the value;
        // put it on the value so the formatted report has the frames.
        if let Some(tb) = err.traceback(py) {
            let _ = err
                .value(py)
                .setattr(pyo3::intern!(py, "__traceback__"), tb);
        }
        let tb = crate::python::loader::format_traceback(py, err);
        crate::error!("Error handling request {path}\n{}", tb.trim_end());
        let r = responder.borrow();
        let sent_headers = r.headers_sent;
        drop(r);
        if !sent_headers {
            let page = error_page("Internal Server Error", "");
            send_simple(
                req.io,
                req.head.minor_version,
                500,
                "Internal Server Error",
                &page,
                self.opts.patience,
            );
            return Outcome {
                keep_alive: false,
                leftover: None,
                status: 500,
                sent: page.len() as u64,
                response_headers: vec![],
                linger: true,
            };
        }
        let r = responder.borrow();
        Outcome {
            keep_alive: false,
            leftover: None,
            status: r.status_code,
            sent: r.sent,
            response_headers: r.headers.clone(),
            linger: true,
        }
    }
}

/// A dict with room for `n` keys. Copies of it keep that room (CPython's
/// dict copy clones the key table), so the ~15 keys a request adds never
/// trigger a resize. `_PyDict_NewPresized` has been exported since 3.6.
fn presized_dict(py: Python<'_>, n: isize) -> PyResult<Bound<'_, PyDict>> {
    extern "C" {
        fn _PyDict_NewPresized(minused: pyo3::ffi::Py_ssize_t) -> *mut pyo3::ffi::PyObject;
    }
    // SAFETY: called with the GIL held; a NULL result raises the pending error.
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(n))? };
    Ok(obj.cast_into::<PyDict>()?)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A complete small response that closes the connection (errors, 408, 500).
pub fn simple_response(minor: u8, status: u16, reason: &str, body: &str) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.{} {status} {reason}\r\nServer: {}\r\nDate: ",
        if minor == 0 { 0 } else { 1 },
        String::from_utf8_lossy(crate::server_name::header())
    );
    date::with_http_date(|d| head.push_str(d));
    head.push_str(&format!(
        "\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    head.push_str(body);
    head.into_bytes()
}

/// Send a small closing response from inside a request (the GIL is held).
fn send_simple(
    io: &crate::stream::Stream,
    minor: u8,
    status: u16,
    reason: &str,
    body: &str,
    patience: Patience,
) {
    let bytes = simple_response(minor, status, reason, body);
    let _ = io.write_all(&bytes, patience.timeout, patience.waiter);
}

/// Write the app's iterable. Errors are Python errors raised by the app's
/// iterator (or a non-bytes item); a client that went away is not an error:
/// the iterator is simply not drained further.
fn send_iterable(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    responder: &Rc<RefCell<Responder>>,
    sendfile: bool,
) -> PyResult<()> {
    // Fast path: a list or tuple of bytes has a known length, sent in one
    // writev; up to 8 items without any allocation.
    if let Some(n) = sequence_len(result) {
        if !responder.borrow().started {
            // Let the generic path raise the error for a non-bytes item.
            for i in 0..n {
                bytes_item(&sequence_item(result, i)?)?;
            }
            return Ok(());
        }
        if n <= 8 {
            let mut items: [Option<Bound<'_, PyBytes>>; 8] = Default::default();
            for (i, slot) in items.iter_mut().enumerate().take(n) {
                *slot = Some(bytes_item(&sequence_item(result, i)?)?);
            }
            let mut slices: [&[u8]; 8] = [&[]; 8];
            let mut total = 0u64;
            for (slice, item) in slices.iter_mut().zip(items.iter().flatten()) {
                *slice = item.as_bytes();
                total += slice.len() as u64;
            }
            let _ = responder.borrow_mut().write_parts(&slices[..n], total);
            return Ok(());
        }
        let mut items = Vec::with_capacity(n);
        for i in 0..n {
            items.push(bytes_item(&sequence_item(result, i)?)?);
        }
        let slices: Vec<&[u8]> = items.iter().map(|b| b.as_bytes()).collect();
        let total: u64 = slices.iter().map(|s| s.len() as u64).sum();
        let _ = responder.borrow_mut().write_parts(&slices, total);
        return Ok(());
    }
    if let Ok(wrapper) = result.cast::<file_wrapper::FileWrapper>() {
        let w = wrapper.borrow();
        if let Some((fd, offset)) = file_wrapper::sendfile_source(py, &w) {
            // A regular file's length is known: send it with Content-Length
            // rather than chunked, whether or not sendfile does the copying.
            let len = file_wrapper::remaining_len(fd, offset);
            let mut r = responder.borrow_mut();
            if r.started && !r.headers_sent {
                if sendfile {
                    let _ = r.send_file(fd, offset, len);
                    return Ok(());
                }
                r.length_hint = len;
            }
        }
    }
    for item in result.try_iter()? {
        let item = item?;
        let bytes = bytes_item(&item)?;
        let data = bytes.as_bytes();
        if data.is_empty() && responder.borrow().headers_sent {
            continue;
        }
        if responder.borrow_mut().write_body(data, None).is_err() {
            break;
        }
    }
    Ok(())
}

/// The length of an exact list or tuple (not a subclass, whose iteration
/// may be overridden).
fn sequence_len(result: &Bound<'_, PyAny>) -> Option<usize> {
    if let Ok(list) = result.cast_exact::<PyList>() {
        return Some(list.len());
    }
    result.cast_exact::<PyTuple>().ok().map(|t| t.len())
}

fn sequence_item<'py>(result: &Bound<'py, PyAny>, i: usize) -> PyResult<Bound<'py, PyAny>> {
    match result.cast_exact::<PyList>() {
        Ok(list) => list.get_item(i),
        Err(_) => result
            .cast_exact::<PyTuple>()
            .map_err(PyErr::from)?
            .get_item(i),
    }
}

fn bytes_item<'py>(item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    item.cast::<PyBytes>().cloned().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "the app must yield bytes, not {}",
            item.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

/// An app that did not read its chunked body: the framing of the rest is
/// checked now, while a 400 can still replace the response.
fn unread_body_error(body: &RefCell<Body>, responder: &RefCell<Responder>) -> Option<HttpError> {
    if responder.borrow().headers_sent {
        return None;
    }
    let mut b = body.borrow_mut();
    b.prefetch(DRAIN_MAX);
    b.error.clone()
}

fn call_close(py: Python<'_>, result: &Bound<'_, PyAny>) -> PyResult<()> {
    // Lists and tuples have no close(); skipping the lookup saves a raised
    // and cleared AttributeError per request.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    let close = pyo3::intern!(py, "close");
    if result.hasattr(close)? {
        result.call_method0(close)?;
    }
    Ok(())
}
