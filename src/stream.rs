//! A connection's byte stream: the socket itself, or a TLS session over it.
//!
//! The request path (the body reader, the responder, error pages) reads and
//! writes through a [`Stream`], so the same code serves http and https.
//! TLS record I/O stays non-blocking: when rustls needs the socket to be
//! readable or writable, the wait goes through the request's
//! [`net::Wait`](crate::net::Wait) like any other socket wait, so thread
//! pools and gevent keep their behaviour over TLS.
//!
//! The session (`rustls::ServerConnection`) lives in the worker's `Conn`
//! behind an `Arc<Mutex<_>>` and moves with it into a job and back; only the
//! thread holding the connection touches it, so the lock is never contended.

use crate::net::{self, Ready, Wait};
use rustls::ServerConnection;
use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub type Session = Arc<Mutex<ServerConnection>>;

#[derive(Clone)]
pub struct Stream {
    fd: RawFd,
    tls: Option<Session>,
    /// gunicorn's suppress_ragged_eofs: a TCP close without TLS close_notify
    /// is an ordinary EOF (true) or an error (false).
    ragged_eof_ok: bool,
}

/// The socket as `io::Read`/`io::Write` for rustls's `read_tls`/`write_tls`.
struct Fd(RawFd);

impl Read for Fd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        net::read_some(self.0, buf)
    }
}

impl Write for Fd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        net::write_some_vectored(self.0, &bufs[..bufs.len().min(libc::UIO_MAXIOV as usize)])
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn lock(s: &Session) -> MutexGuard<'_, ServerConnection> {
    // A panic while holding it leaves a session no worse than the socket.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

impl Stream {
    pub fn plain(fd: RawFd) -> Stream {
        Stream {
            fd,
            tls: None,
            ragged_eof_ok: true,
        }
    }

    pub fn new(fd: RawFd, tls: Option<Session>, ragged_eof_ok: bool) -> Stream {
        Stream {
            fd,
            tls,
            ragged_eof_ok,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Append what has arrived (up to `max` bytes) to `buf` without
    /// waiting; `(n, eof)` as [`net::read_into`]. Over TLS this also drives
    /// the handshake: records are read, processed, and rustls's answers
    /// (handshake flights, alerts) written as far as the socket takes them.
    pub fn read_into(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<(usize, bool)> {
        let Some(s) = &self.tls else {
            return net::read_into(self.fd, buf, max);
        };
        let mut s = lock(s);
        let mut total = 0;
        let mut tcp_eof = false;
        loop {
            // Plaintext rustls already holds.
            while total < max {
                let start = buf.len();
                let want = (max - total).min(16384);
                buf.resize(start + want, 0);
                match s.reader().read(&mut buf[start..]) {
                    Ok(0) => {
                        // close_notify: a clean end.
                        buf.truncate(start);
                        self.flush_now(&mut s);
                        return Ok((total, true));
                    }
                    Ok(n) => {
                        buf.truncate(start + n);
                        total += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        buf.truncate(start);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        buf.truncate(start);
                        if self.ragged_eof_ok {
                            return Ok((total, true));
                        }
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "TLS: the client closed without close_notify",
                        ));
                    }
                    Err(e) => {
                        buf.truncate(start);
                        return Err(e);
                    }
                }
            }
            if total >= max || tcp_eof {
                self.flush_now(&mut s);
                return Ok((total, tcp_eof && total == 0));
            }
            match s.read_tls(&mut Fd(self.fd)) {
                Ok(0) => tcp_eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flush_now(&mut s);
                    return Ok((total, false));
                }
                Err(e) => return Err(e),
            }
            if let Err(e) = s.process_new_packets() {
                // Tell the client why (an alert), then give up.
                self.flush_now(&mut s);
                return Err(tls_error(e));
            }
            if tcp_eof && !s.is_handshaking() {
                // Whatever the last read brought is taken above next turn;
                // then the reader reports close_notify or a ragged EOF.
                continue;
            }
            if tcp_eof {
                return Ok((total, true));
            }
        }
    }

    /// Write what rustls has queued as far as the socket takes it now.
    fn flush_now(&self, s: &mut ServerConnection) {
        while s.wants_write() {
            match s.write_tls(&mut Fd(self.fd)) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// rustls has bytes for the socket that it could not take yet.
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|s| lock(s).wants_write())
    }

    /// The verified client certificate, as PEM.
    pub fn peer_cert_pem(&self) -> Option<String> {
        self.tls
            .as_ref()
            .and_then(|s| crate::tls::peer_cert_pem(&lock(s)))
    }

    /// At least one byte appended to `buf` (Ok(0) = EOF), waiting up to
    /// `timeout` each time the client is not ready.
    pub fn read_into_wait(
        &self,
        buf: &mut Vec<u8>,
        max: usize,
        timeout: Duration,
        waiter: &dyn Wait,
    ) -> io::Result<usize> {
        loop {
            let (n, eof) = self.read_into(buf, max)?;
            if n > 0 || eof {
                return Ok(n);
            }
            if self.wants_write() {
                waiter.wait(self.fd, Ready::Write, timeout)?;
            } else {
                waiter.wait(self.fd, Ready::Read, timeout)?;
            }
        }
    }

    /// Write all of `parts`, waiting up to `timeout` each time the client's
    /// buffer is full.
    pub fn write_all_vectored(
        &self,
        parts: &[&[u8]],
        timeout: Duration,
        waiter: &dyn Wait,
    ) -> io::Result<()> {
        let Some(s) = &self.tls else {
            return net::write_all_vectored(self.fd, parts, timeout, waiter);
        };
        let mut s = lock(s);
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total <= 16384 && parts.len() > 1 {
            // One record for a small response rather than one per part.
            let mut joined = Vec::with_capacity(total);
            for p in parts {
                joined.extend_from_slice(p);
            }
            self.put(&mut s, &joined, timeout, waiter)?;
        } else {
            for p in parts {
                self.put(&mut s, p, timeout, waiter)?;
            }
        }
        self.drain(&mut s, timeout, waiter)
    }

    pub fn write_all(&self, data: &[u8], timeout: Duration, waiter: &dyn Wait) -> io::Result<()> {
        self.write_all_vectored(&[data], timeout, waiter)
    }

    /// Hand `data` to rustls, sending records whenever its buffer is full.
    fn put(
        &self,
        s: &mut ServerConnection,
        mut data: &[u8],
        timeout: Duration,
        waiter: &dyn Wait,
    ) -> io::Result<()> {
        while !data.is_empty() {
            let n = s.writer().write(data)?;
            data = &data[n..];
            if n == 0 || !data.is_empty() {
                self.drain(s, timeout, waiter)?;
            }
        }
        Ok(())
    }

    /// Send every queued record, waiting for the client as needed.
    fn drain(
        &self,
        s: &mut ServerConnection,
        timeout: Duration,
        waiter: &dyn Wait,
    ) -> io::Result<()> {
        while s.wants_write() {
            match s.write_tls(&mut Fd(self.fd)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    waiter.wait(self.fd, Ready::Write, timeout)?
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `count` bytes (or to EOF) of `file_fd` from `offset`: sendfile(2) on
    /// a plain socket; over TLS the file is read and encrypted here, since
    /// the kernel cannot.
    pub fn send_file(
        &self,
        file_fd: RawFd,
        offset: i64,
        count: Option<u64>,
        timeout: Duration,
        waiter: &dyn Wait,
    ) -> io::Result<u64> {
        if self.tls.is_none() {
            return net::sendfile_all(self.fd, file_fd, offset, count, timeout, waiter);
        }
        let mut chunk = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        loop {
            let want = match count {
                Some(c) if sent >= c => return Ok(sent),
                Some(c) => (c - sent).min(chunk.len() as u64) as usize,
                None => chunk.len(),
            };
            let at = offset + sent as i64;
            let read = net::with_fd(file_fd, |f| nix::sys::uio::pread(f, &mut chunk[..want], at));
            let n = match read {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Ok(sent);
            }
            self.write_all(&chunk[..n], timeout, waiter)?;
            sent += n as u64;
        }
    }

    /// Our side is done: TLS close_notify (best effort, never waiting),
    /// then shutdown(SHUT_WR).
    pub fn shutdown_write(&self) -> io::Result<()> {
        if let Some(s) = &self.tls {
            let mut s = lock(s);
            s.send_close_notify();
            self.flush_now(&mut s);
        }
        nix::sys::socket::shutdown(self.fd, nix::sys::socket::Shutdown::Write)
            .map_err(io::Error::from)
    }
}
