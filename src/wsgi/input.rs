//! `wsgi.input`: the request body, streamed from the socket as the app reads.
//!
//! Never reads past the body: Content-Length bodies stop at the length,
//! chunked bodies at the last chunk, so the bytes of a pipelined next
//! request stay in the connection's buffer.

use crate::http::{ChunkedDecoder, HttpError, Limits};
use crate::net;
use crate::stream::Stream;
use pyo3::exceptions::{PyIOError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Debug)]
enum Framing {
    Length { remaining: u64 },
    Chunked(Box<ChunkedDecoder>),
    Empty,
}

/// The body of one request, shared between the Python stream and the worker.
pub struct Body {
    io: Stream,
    /// Bytes read from the socket and not yet handed on (raw, still framed).
    raw: Vec<u8>,
    raw_pos: usize,
    /// Decoded bytes ready for the app (chunked bodies only).
    decoded: Vec<u8>,
    decoded_pos: usize,
    framing: Framing,
    finished: bool,
    continue_pending: bool,
    eof: bool,
    patience: net::Patience,
    /// A framing error found while reading; answered 400 if nothing was sent yet.
    pub error: Option<HttpError>,
}

pub type SharedBody = Rc<RefCell<Body>>;

/// Most unread body bytes the worker reads and discards (or buffers ahead of
/// the response) to keep a connection reusable; a larger unread rest closes it.
pub const DRAIN_MAX: usize = 64 * 1024;

impl Body {
    /// `raw` holds the bytes after the request head (maybe body, maybe more).
    pub fn new(
        io: Stream,
        raw: Vec<u8>,
        kind: &crate::http::BodyKind,
        limits: &Limits,
        expect_continue: bool,
        patience: net::Patience,
    ) -> Body {
        let framing = match kind {
            crate::http::BodyKind::Length(0) | crate::http::BodyKind::None => Framing::Empty,
            crate::http::BodyKind::Length(n) => Framing::Length { remaining: *n },
            crate::http::BodyKind::Chunked => {
                Framing::Chunked(Box::new(ChunkedDecoder::new(limits)))
            }
        };
        let finished = matches!(framing, Framing::Empty);
        Body {
            io,
            raw,
            raw_pos: 0,
            decoded: Vec::new(),
            decoded_pos: 0,
            framing,
            finished,
            continue_pending: expect_continue && !finished,
            eof: false,
            patience,
            error: None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished && self.decoded_pos >= self.decoded.len()
    }

    /// Bytes after the body (the next pipelined request), once the body is done.
    pub fn take_leftover(&mut self) -> Vec<u8> {
        let mut raw = std::mem::take(&mut self.raw);
        raw.drain(..self.raw_pos);
        self.raw_pos = 0;
        raw
    }

    /// Decode chunked data already buffered, without reading the socket, so a
    /// malformed body is answered 400 before the app runs.
    pub fn precheck(&mut self) {
        if matches!(self.framing, Framing::Chunked(_)) {
            self.decode_buffered();
        }
    }

    /// For a chunked body the app has not read to its end: read and decode
    /// the rest (up to `max` decoded bytes, kept for the app) before the
    /// response goes out, so malformed framing is still answered 400. Never
    /// sends the interim 100: a client waiting for it has sent nothing.
    pub fn prefetch(&mut self, max: usize) {
        if !matches!(self.framing, Framing::Chunked(_)) || self.continue_pending {
            return;
        }
        loop {
            self.decode_buffered();
            if self.error.is_some() || self.finished || self.decoded.len() - self.decoded_pos > max
            {
                return;
            }
            if self.eof {
                self.error = Some(HttpError::bad_request(
                    "client closed the connection before sending the whole body",
                ));
                return;
            }
            if self.raw_pos > 0 && self.raw_pos == self.raw.len() {
                self.raw.clear();
                self.raw_pos = 0;
            }
            let p = self.patience;
            match self
                .io
                .read_into_wait(&mut self.raw, 65536, p.timeout, p.waiter)
            {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// Whether the response must close the connection because the unread
    /// rest of the body cannot be skipped cheaply afterwards: a client still
    /// waiting for `100 Continue`, a chunked body of unknown remaining size,
    /// or more than [`DRAIN_MAX`] bytes left.
    pub fn blocks_keep_alive(&self) -> bool {
        if self.error.is_some() {
            return true;
        }
        if self.finished {
            return false;
        }
        if self.continue_pending {
            return true;
        }
        match &self.framing {
            Framing::Length { remaining } => *remaining > DRAIN_MAX as u64,
            Framing::Chunked(_) => true,
            Framing::Empty => false,
        }
    }

    fn decode_buffered(&mut self) {
        if let Framing::Chunked(dec) = &mut self.framing {
            if self.raw_pos < self.raw.len() && self.error.is_none() && !self.finished {
                match dec.decode(&self.raw[self.raw_pos..], &mut self.decoded) {
                    Ok((used, done)) => {
                        self.raw_pos += used;
                        self.finished = done;
                    }
                    Err(e) => self.error = Some(e),
                }
            }
        }
    }

    /// Bytes available to the app right now without reading the socket.
    fn available(&self) -> usize {
        match &self.framing {
            Framing::Length { remaining } => {
                ((self.raw.len() - self.raw_pos) as u64).min(*remaining) as usize
            }
            Framing::Chunked(_) => self.decoded.len() - self.decoded_pos,
            Framing::Empty => 0,
        }
    }

    fn peek(&self) -> &[u8] {
        let n = self.available();
        match &self.framing {
            Framing::Length { .. } => &self.raw[self.raw_pos..self.raw_pos + n],
            Framing::Chunked(_) => &self.decoded[self.decoded_pos..self.decoded_pos + n],
            Framing::Empty => &[],
        }
    }

    fn consume(&mut self, n: usize) {
        match &mut self.framing {
            Framing::Length { remaining } => {
                self.raw_pos += n;
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.finished = true;
                }
            }
            Framing::Chunked(_) => {
                self.decoded_pos += n;
                if self.decoded_pos == self.decoded.len() {
                    self.decoded.clear();
                    self.decoded_pos = 0;
                }
            }
            Framing::Empty => {}
        }
    }

    /// Make at least one more body byte available, or learn the body is over.
    /// Reads the socket with the GIL released.
    fn fill(&mut self) -> Result<(), String> {
        if let Some(e) = &self.error {
            return Err(e.detail.clone());
        }
        loop {
            if self.available() > 0 || self.finished {
                return Ok(());
            }
            if let Framing::Chunked(_) = self.framing {
                let before = self.decoded.len();
                self.decode_buffered();
                if let Some(e) = &self.error {
                    return Err(e.detail.clone());
                }
                if self.decoded.len() > before || self.finished {
                    continue;
                }
            }
            if self.eof {
                self.error = Some(HttpError::bad_request(
                    "client closed the connection before sending the whole body",
                ));
                return Err("client closed the connection before sending the whole body".into());
            }
            if self.continue_pending {
                self.continue_pending = false;
                let p = self.patience;
                self.io
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n", p.timeout, p.waiter)
                    .map_err(|e| e.to_string())?;
            }
            // Compact so the buffer does not grow with the whole body.
            if self.raw_pos > 0 && self.raw_pos == self.raw.len() {
                self.raw.clear();
                self.raw_pos = 0;
            }
            let p = self.patience;
            let n = self
                .io
                .read_into_wait(&mut self.raw, 65536, p.timeout, p.waiter)
                .map_err(|e| format!("error reading the request body: {e}"))?;
            if n == 0 {
                self.eof = true;
            }
        }
    }

    fn read(&mut self, size: Option<usize>) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        loop {
            if let Some(limit) = size {
                if out.len() >= limit {
                    break;
                }
            }
            self.fill()?;
            let avail = self.available();
            if avail == 0 {
                break;
            }
            let take = match size {
                Some(limit) => avail.min(limit - out.len()),
                None => avail,
            };
            out.extend_from_slice(&self.peek()[..take]);
            self.consume(take);
        }
        Ok(out)
    }

    fn readline(&mut self, size: Option<usize>) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        loop {
            if let Some(limit) = size {
                if out.len() >= limit {
                    break;
                }
            }
            self.fill()?;
            let avail = self.peek();
            if avail.is_empty() {
                break;
            }
            let cap = match size {
                Some(limit) => avail.len().min(limit - out.len()),
                None => avail.len(),
            };
            let window = &avail[..cap];
            if let Some(pos) = window.iter().position(|&b| b == b'\n') {
                out.extend_from_slice(&window[..=pos]);
                self.consume(pos + 1);
                break;
            }
            out.extend_from_slice(window);
            self.consume(cap);
        }
        Ok(out)
    }

    /// Read and discard the rest of the body (up to `max` bytes) so the
    /// connection can serve its next request. False if that is not possible.
    pub fn drain(&mut self, max: usize) -> bool {
        if self.continue_pending && !self.finished {
            // The client waits for 100 Continue before sending the body;
            // asking for it after the final response would corrupt the stream.
            return false;
        }
        let mut budget = max;
        loop {
            if self.is_finished() {
                return self.error.is_none();
            }
            if self.fill().is_err() {
                return false;
            }
            let n = self.available();
            if n == 0 {
                return self.is_finished() && self.error.is_none();
            }
            if n > budget {
                return false;
            }
            budget -= n;
            self.consume(n);
        }
    }
}

fn size_arg(size: Option<isize>) -> Option<usize> {
    match size {
        Some(n) if n >= 0 => Some(n as usize),
        _ => None,
    }
}

/// The Python face of [`Body`].
#[pyclass(unsendable, module = "ferricorn")]
pub struct InputStream {
    pub body: SharedBody,
}

#[pymethods]
impl InputStream {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self
            .body
            .borrow_mut()
            .read(size_arg(size))
            .map_err(PyIOError::new_err)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self
            .body
            .borrow_mut()
            .readline(size_arg(size))
            .map_err(PyIOError::new_err)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint).filter(|h| *h > 0);
        let list = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self
                .body
                .borrow_mut()
                .readline(None)
                .map_err(PyIOError::new_err)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            list.append(PyBytes::new(py, &line))?;
            if matches!(hint, Some(h) if total >= h) {
                break;
            }
        }
        Ok(list)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self
            .body
            .borrow_mut()
            .readline(None)
            .map_err(PyIOError::new_err)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    fn close(&self) {}

    #[pyo3(signature = (_size=None))]
    fn seek(&self, _size: Option<isize>) -> PyResult<()> {
        Err(PyValueError::new_err("wsgi.input is not seekable"))
    }
}
