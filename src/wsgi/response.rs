//! The response side of PEP 3333: `start_response`, the `write()` callable,
//! and framing the app's bytes onto the wire.
//!
//! Framing is decided when the head is sent: the app's Content-Length is
//! honoured (extra bytes dropped, a short body closes the connection so the
//! client is not left waiting); otherwise chunked on HTTP/1.1, or
//! close-delimited on HTTP/1.0. HEAD and 1xx/204/304 responses carry no body.

use crate::net;
use crate::stream::Stream;
use pyo3::exceptions::{PyAssertionError, PyIOError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;

pub struct Responder {
    io: Stream,
    minor: u8,
    head_request: bool,
    /// The request allows keep-alive and the server is not stopping.
    keep_alive_allowed: bool,
    patience: net::Patience,
    /// The status line text ("200 OK"), valid once `started`.
    status: String,
    /// start_response() has been called (successfully).
    pub started: bool,
    pub status_code: u16,
    /// The app's headers, validated and already serialized as
    /// `Name: value\r\n` lines: no per-header allocation on the hot path.
    header_block: Vec<u8>,
    /// The app's headers as pairs, kept only when the access log asks for them.
    pub headers: Vec<(String, String)>,
    record_headers: bool,
    pub headers_sent: bool,
    content_length: Option<u64>,
    chunked: bool,
    no_body: bool,
    /// Body bytes written (after framing decisions, excluding chunk framing).
    pub sent: u64,
    pub must_close: bool,
    /// Set once a write to the client failed: the client is gone.
    pub broken: bool,
    head: Vec<u8>,
    /// The request body, when there is one: its state when the head is
    /// built decides whether the connection can stay open.
    pub body: Option<super::input::SharedBody>,
    /// Body length known before the bytes are (a wrapped regular file),
    /// used when the app gave no Content-Length.
    pub length_hint: Option<u64>,
}

pub type SharedResponder = Rc<RefCell<Responder>>;

/// Hop-by-hop headers belong to the connection, which the server manages.
fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    ];
    HOP.iter()
        .any(|h| h.len() == name.len() && h.eq_ignore_ascii_case(name))
}

/// RFC 9110 token characters: the same table the request parser uses.
use crate::http::is_tchar;

impl Responder {
    pub fn new(
        io: Stream,
        minor: u8,
        head_request: bool,
        keep_alive_allowed: bool,
        patience: net::Patience,
    ) -> Responder {
        Responder {
            io,
            minor,
            head_request,
            keep_alive_allowed,
            patience,
            status: String::new(),
            started: false,
            status_code: 0,
            header_block: Vec::with_capacity(256),
            headers: Vec::new(),
            record_headers: false,
            headers_sent: false,
            content_length: None,
            chunked: false,
            no_body: false,
            sent: 0,
            must_close: !keep_alive_allowed,
            broken: false,
            head: Vec::with_capacity(256),
            body: None,
            length_hint: None,
        }
    }

    /// Make this responder ready for the next request, keeping its buffers.
    pub fn reset(
        &mut self,
        io: Stream,
        minor: u8,
        head_request: bool,
        keep_alive_allowed: bool,
        record_headers: bool,
    ) {
        self.io = io;
        self.minor = minor;
        self.head_request = head_request;
        self.keep_alive_allowed = keep_alive_allowed;
        self.status.clear();
        self.started = false;
        self.status_code = 0;
        self.header_block.clear();
        self.headers.clear();
        self.record_headers = record_headers;
        self.headers_sent = false;
        self.content_length = None;
        self.chunked = false;
        self.no_body = false;
        self.sent = 0;
        self.must_close = !keep_alive_allowed;
        self.broken = false;
        self.body = None;
        self.length_hint = None;
    }

    /// The status line text, once start_response() was called.
    pub fn status_text(&self) -> Option<&str> {
        self.started.then_some(self.status.as_str())
    }

    /// Validate the status and begin a new set of headers (start_response).
    /// The previous ones are replaced: with exc_info an app may start over.
    pub fn begin(&mut self, status: &str) -> Result<(), String> {
        let code = parse_status(status)?;
        self.started = false;
        self.status.clear();
        self.status.push_str(status);
        self.status_code = code;
        self.header_block.clear();
        self.headers.clear();
        self.content_length = None;
        Ok(())
    }

    /// Validate one app header and append it (hop-by-hop ones are the
    /// server's business and are dropped; `Connection: close` is honoured).
    pub fn push_header(&mut self, name: &str, value: &str) -> Result<(), String> {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("Invalid HTTP header name: {name:?}"));
        }
        if value
            .bytes()
            .any(|b| b < 0x20 && (b == b'\r' || b == b'\n' || b == 0))
        {
            return Err(format!("Invalid HTTP header value for {name}: {value:?}"));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let cl = value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("Invalid Content-Length header value: {value:?}"))?;
            if self.content_length.is_some() {
                return Ok(());
            }
            self.content_length = Some(cl);
        } else if is_hop_by_hop(name) {
            if name.eq_ignore_ascii_case("connection")
                && value.to_ascii_lowercase().contains("close")
            {
                self.must_close = true;
            }
            return Ok(());
        }
        self.header_block.extend_from_slice(name.as_bytes());
        self.header_block.extend_from_slice(b": ");
        self.header_block.extend_from_slice(value.as_bytes());
        self.header_block.extend_from_slice(b"\r\n");
        if self.record_headers {
            self.headers.push((name.to_string(), value.to_string()));
        }
        Ok(())
    }

    /// All headers were accepted: the response has started.
    pub fn commit(&mut self) {
        self.started = true;
    }

    fn keep_alive(&self) -> bool {
        self.keep_alive_allowed && !self.must_close
    }

    /// Build the head; `known_total` is the whole body length if known now.
    fn build_head(&mut self, known_total: Option<u64>) {
        let known_total = known_total.or(self.length_hint);
        let code = self.status_code;
        if super::STOPPING.load(std::sync::atomic::Ordering::Relaxed)
            || self
                .body
                .as_ref()
                .is_some_and(|b| b.borrow().blocks_keep_alive())
        {
            self.must_close = true;
        }
        self.no_body = self.head_request || code < 200 || code == 204 || code == 304;
        if self.content_length.is_none() && !self.no_body {
            if let Some(total) = known_total {
                self.content_length = Some(total);
                self.header_block.extend_from_slice(b"Content-Length: ");
                self.header_block
                    .extend_from_slice(itoa::Buffer::new().format(total).as_bytes());
                self.header_block.extend_from_slice(b"\r\n");
                if self.record_headers {
                    self.headers
                        .push(("Content-Length".to_string(), total.to_string()));
                }
            } else if self.minor >= 1 {
                self.chunked = true;
            } else {
                self.must_close = true;
            }
        }
        if self.head_request && self.content_length.is_none() && self.minor == 0 {
            // Nothing to delimit, but a 1.0 client expects close without a length.
            self.must_close = true;
        }
        let h = &mut self.head;
        h.clear();
        h.extend_from_slice(if self.minor == 0 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        h.extend_from_slice(self.status.as_bytes());
        h.extend_from_slice(b"\r\nServer: ");
        h.extend_from_slice(crate::server_name::header());
        h.extend_from_slice(b"\r\nDate: ");
        crate::wsgi::date::with_http_date(|d| h.extend_from_slice(d.as_bytes()));
        h.extend_from_slice(if self.keep_alive_allowed && !self.must_close {
            b"\r\nConnection: keep-alive\r\n"
        } else {
            b"\r\nConnection: close\r\n"
        });
        if self.chunked {
            h.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        h.extend_from_slice(&self.header_block);
        h.extend_from_slice(b"\r\n");
    }

    fn send(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        if self.broken {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "client disconnected",
            ));
        }
        let p = self.patience;
        let r = self.io.write_all_vectored(parts, p.timeout, p.waiter);
        if r.is_err() {
            self.broken = true;
            self.must_close = true;
        }
        r
    }

    /// Clip `data` to what the framing allows to be sent.
    fn clip<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        if self.no_body {
            return &[];
        }
        match self.content_length {
            Some(cl) => {
                let room = cl.saturating_sub(self.sent) as usize;
                &data[..data.len().min(room)]
            }
            None => data,
        }
    }

    /// Send body bytes, sending the head first if needed.
    pub fn write_body(&mut self, data: &[u8], known_total: Option<u64>) -> std::io::Result<()> {
        if !self.started {
            return Err(std::io::Error::other("write() before start_response()"));
        }
        let first = !self.headers_sent;
        if first {
            self.build_head(known_total);
            self.headers_sent = true;
        }
        let body = self.clip(data);
        self.sent += body.len() as u64;
        let head = if first {
            std::mem::take(&mut self.head)
        } else {
            Vec::new()
        };
        let r = if self.chunked && !body.is_empty() {
            let mut size = [0u8; 18];
            let n = hex_len(body.len(), &mut size);
            self.send(&[&head, &size[..n], body, b"\r\n"])
        } else {
            self.send(&[&head, body])
        };
        if first {
            self.head = head;
        }
        r
    }

    /// Finish the response: head if nothing was sent, the last chunk, and
    /// whether a short body forces the connection closed.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if !self.headers_sent {
            self.write_body(&[], Some(0))?;
        }
        if self.chunked {
            self.send(&[b"0\r\n\r\n"])?;
        }
        if let Some(cl) = self.content_length {
            if self.sent < cl && !self.no_body {
                self.must_close = true;
            }
        }
        Ok(())
    }

    /// sendfile() a file's bytes as the body (wsgi.file_wrapper).
    pub fn send_file(
        &mut self,
        file_fd: RawFd,
        offset: i64,
        length: Option<u64>,
    ) -> std::io::Result<()> {
        let total = self.content_length.or(length);
        if !self.headers_sent {
            self.build_head(length);
            self.headers_sent = true;
            let head = std::mem::take(&mut self.head);
            let r = self.send(&[&head]);
            self.head = head;
            r?;
        }
        if self.no_body {
            return Ok(());
        }
        if self.chunked {
            // Chunked framing needs the bytes in userspace; the caller falls back.
            return Err(std::io::Error::other("sendfile with chunked framing"));
        }
        let want = match total {
            Some(t) => Some(t.saturating_sub(self.sent)),
            None => None,
        };
        let p = self.patience;
        let r = self
            .io
            .send_file(file_fd, offset, want, p.timeout, p.waiter);
        match r {
            Ok(n) => {
                self.sent += n;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                self.must_close = true;
                Err(e)
            }
        }
    }

    pub fn connection_reusable(&self) -> bool {
        self.keep_alive() && !self.broken
    }
}

fn hex_len(mut n: usize, out: &mut [u8; 18]) -> usize {
    let mut digits = [0u8; 16];
    let mut i = 0;
    loop {
        digits[i] = b"0123456789abcdef"[n & 15];
        i += 1;
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    for j in 0..i {
        out[j] = digits[i - 1 - j];
    }
    out[i] = b'\r';
    out[i + 1] = b'\n';
    i + 2
}

fn parse_status(status: &str) -> Result<u16, String> {
    let b = status.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || (b.len() > 3 && b[3] != b' ') {
        return Err(format!(
            "Invalid status line {status:?}: expected \"NNN Reason\""
        ));
    }
    if status.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
        return Err(format!(
            "Invalid status line {status:?}: control characters"
        ));
    }
    let code: u16 = status[..3].parse().unwrap_or(0);
    if code < 100 {
        return Err(format!("Invalid status code in {status:?}"));
    }
    Ok(code)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Validate `headers` (a list of `(str, str)` tuples) into the responder.
fn push_headers(r: &mut Responder, headers: &Bound<'_, PyAny>) -> PyResult<()> {
    let list = headers.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "headers must be a list of (name, value) tuples, not {}",
            type_name(headers)
        ))
    })?;
    for item in list.iter() {
        let tuple = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(format!("header must be a (name, value) tuple, not {item}"))
        })?;
        if tuple.len() != 2 {
            return Err(PyTypeError::new_err(format!(
                "header must be a (name, value) tuple, not {item}"
            )));
        }
        let name = tuple.get_borrowed_item(0)?;
        let value = tuple.get_borrowed_item(1)?;
        let name = name.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("header name {} is not a string", name.to_owned()))
        })?;
        let value = value.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("header value {} is not a string", value.to_owned()))
        })?;
        r.push_header(name.to_str()?, value.to_str()?)
            .map_err(PyValueError::new_err)?;
    }
    Ok(())
}

/// `start_response(status, response_headers, exc_info=None)`.
#[pyclass(unsendable, module = "ferricorn")]
pub struct StartResponse {
    pub responder: SharedResponder,
    /// The write() callable, made once and handed out on every call.
    pub write: Py<WriteCallable>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<WriteCallable>> {
        self.start(py, status, headers, exc_info)
    }
}

impl StartResponse {
    /// PEP 3333's start_response, shared by `__call__` and the fast builtin.
    pub fn start(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<WriteCallable>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let r = self.responder.borrow();
            if let Some(info) = exc_info {
                if r.headers_sent {
                    // PEP 3333: too late to change the response; re-raise.
                    let value = info.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
            } else if r.started {
                return Err(PyAssertionError::new_err("Response headers already set!"));
            }
        }
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("{status} is not a string")))?;
        let mut r = self.responder.borrow_mut();
        r.begin(status.to_str()?).map_err(PyValueError::new_err)?;
        push_headers(&mut r, headers)?;
        r.commit();
        Ok(self.write.clone_ref(py))
    }
}

/// The legacy `write(data)` callable start_response returns.
#[pyclass(unsendable, module = "ferricorn")]
pub struct WriteCallable {
    pub responder: SharedResponder,
}

#[pymethods]
impl WriteCallable {
    fn __call__(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.cast::<pyo3::types::PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "write() argument must be bytes, not {}",
                data.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        self.responder
            .borrow_mut()
            .write_body(bytes.as_bytes(), None)
            .map_err(|e| PyIOError::new_err(e.to_string()))
    }
}

impl Responder {
    /// Send several body parts at once (a list/tuple body whose total is known).
    pub fn write_parts(&mut self, parts: &[&[u8]], known_total: u64) -> std::io::Result<()> {
        if !self.started {
            return Err(std::io::Error::other("no start_response() call"));
        }
        let first = !self.headers_sent;
        if first {
            self.build_head(Some(known_total));
            self.headers_sent = true;
        }
        if self.chunked {
            for p in parts {
                self.write_body(p, None)?;
            }
            return Ok(());
        }
        let head = if first {
            std::mem::take(&mut self.head)
        } else {
            Vec::new()
        };
        let r = if parts.len() < 8 {
            // The usual case (a list of one or a few bytes): gathered on the stack.
            let mut gathered: [&[u8]; 8] = [&[]; 8];
            gathered[0] = &head;
            for (slot, p) in gathered[1..].iter_mut().zip(parts) {
                let clipped = self.clip(p);
                self.sent += clipped.len() as u64;
                *slot = clipped;
            }
            self.send(&gathered[..parts.len() + 1])
        } else {
            let mut gathered: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
            gathered.push(&head);
            for p in parts {
                let clipped = self.clip(p);
                self.sent += clipped.len() as u64;
                gathered.push(clipped);
            }
            self.send(&gathered)
        };
        if first {
            self.head = head;
        }
        r
    }
}
